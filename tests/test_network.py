"""Sequential and mlp: structure, the two passes, parameters, astype, summary, predict/evaluate."""

from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw


def small_model(dtype=np.float32) -> lw.Sequential:
    return lw.Sequential(lw.Dense(4, 5, init="he", rng=0, dtype=dtype), lw.ReLU(),
                         lw.Dense(5, 3, rng=1, dtype=dtype))


def test_forward_is_the_textbook_composition():
    """forward computes f(X @ W1.T + b1) @ W2.T + b2, layer by layer."""
    m = small_model(np.float64)
    d1, d2 = m.layers[0], m.layers[2]
    d1.b[:] = [0.1, -0.2, 0.3, 0.0, 0.5]
    X = np.random.default_rng(0).standard_normal((6, 4))
    expected = np.maximum(X @ d1.W.T + d1.b, 0) @ d2.W.T + d2.b
    np.testing.assert_allclose(m.forward(X), expected, rtol=1e-12)


def test_backward_matches_hand_written_chain_rule():
    """dW2 = dZ2.T @ A1, dA1 = dZ2 @ W2, dZ1 = dA1 * 1[Z1>0], dW1 = dZ1.T @ X, db = sum(dZ)."""
    m = small_model(np.float64)
    d1, d2 = m.layers[0], m.layers[2]
    X = np.random.default_rng(1).standard_normal((7, 4))
    m.forward(X, training=True)
    dZ2 = np.random.default_rng(2).standard_normal((7, 3))
    dX = m.backward(dZ2)
    Z1 = X @ d1.W.T + d1.b
    A1 = np.maximum(Z1, 0)
    dA1 = dZ2 @ d2.W
    dZ1 = dA1 * (Z1 > 0)
    np.testing.assert_allclose(d2.dW, dZ2.T @ A1, rtol=1e-12)
    np.testing.assert_allclose(d2.db, dZ2.sum(0), rtol=1e-12)
    np.testing.assert_allclose(d1.dW, dZ1.T @ X, rtol=1e-12)
    np.testing.assert_allclose(d1.db, dZ1.sum(0), rtol=1e-12)
    np.testing.assert_allclose(dX, dZ1 @ d1.W, rtol=1e-12)


def test_backward_without_input_grad_returns_none_but_fills_gradients():
    m = small_model(np.float64)
    X = np.ones((3, 4))
    m.forward(X, training=True)
    assert m.backward(np.ones((3, 3)), input_grad=False) is None
    assert np.abs(m.layers[0].dW).sum() > 0


def test_parameters_are_live_views_named_by_layer():
    m = small_model()
    ps = m.parameters()
    assert [p.name for p in ps] == ["0.W", "0.b", "2.W", "2.b"]
    ps[0].value[0, 0] = 42.0
    assert m.layers[0].W[0, 0] == 42.0
    assert m.n_params() == 4 * 5 + 5 + 5 * 3 + 3


def test_parameters_are_views_of_one_flat_buffer_from_construction():
    """Sequential packs its parameters into one buffer when it is built (and again after
    astype), so model.parameters() carries that buffer and an optimizer steps it whole."""
    for m in (small_model(), small_model().astype(np.float64)):
        (flat,) = m.flat_parameters()
        ps = m.parameters()
        assert ps.flat() is flat
        assert all(p.value.base is flat.value and p.grad.base is flat.grad for p in ps)
        assert flat.value.size == m.n_params()
        assert np.array_equal(np.concatenate([p.value.ravel() for p in ps]), flat.value)


@pytest.mark.parametrize("make", [lambda: lw.SGD(0.1, momentum=0.9, weight_decay=0.01),
                                  lambda: lw.Adam(0.01, weight_decay=0.01), lambda: lw.AdamW(0.01),
                                  lambda: lw.RMSprop(0.01, momentum=0.5, centered=True)])
def test_stepping_the_parameter_list_equals_stepping_each_array(make):
    """The README's opt.step(model.parameters()) runs on the flat buffer (ParamList.flat), and
    gives the same bits as stepping every array on its own (a plain list), biases undecayed."""
    rng = np.random.default_rng(0)
    models = [small_model(np.float64), small_model(np.float64)]
    opts = [make(), make()]
    loss = lw.CrossEntropy()
    for _ in range(5):
        X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
        for m, opt, as_list in zip(models, opts, (lambda ps: ps, list)):
            loss.forward(m.forward(X, training=True), y)
            m.backward(loss.backward())
            opt.step(as_list(m.parameters()))
    assert len(opts[0].state) == 1 and len(opts[1].state) == 4      # flat, and per array
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert np.array_equal(a.value, b.value), a.name


def test_a_changed_parameter_list_is_stepped_array_by_array():
    m = small_model()
    ps = m.parameters()
    ps[0].value = ps[0].value.copy()            # no longer a view of the flat buffer
    assert ps.flat() is None
    assert m.parameters().flat() is not None    # the model itself is unchanged
    ps = m.parameters()
    ps.pop()
    assert ps.flat() is None


def test_parameters_returns_the_same_list_only_while_nothing_changed():
    """A training loop calls parameters() at every step, so an unchanged list is returned
    again; a list that was edited, or a layer whose array was replaced, gets a fresh one."""
    m = small_model()
    ps = m.parameters()
    assert m.parameters() is ps
    ps.pop()                                    # the caller edited the list it was given
    fresh = m.parameters()
    assert fresh is not ps and len(fresh) == 4 and fresh.flat() is not None
    fresh[0].value = fresh[0].value.copy()      # ... or one of its Params
    again = m.parameters()
    assert again is not fresh and again[0].value is m.layers[0].W
    m.layers[0].W = np.zeros((5, 4), np.float32)    # the model's own array replaced
    latest = m.parameters()
    assert latest is not again and latest[0].value is m.layers[0].W and latest.flat() is None
    import pickle
    assert "_params" not in pickle.loads(pickle.dumps(m)).__dict__


def test_a_model_built_around_the_layers_of_another_leaves_their_buffer_alone():
    """A Sequential made of the layers of a model in training (the CLI does this to report
    metrics in original units) must not move those layers' arrays into a buffer of its own:
    the training model's fit updates its own buffer, which the layers must keep reading."""
    m = small_model()
    (flat,) = m.flat_parameters()
    outer = lw.Sequential(lw.Identity(), *m.layers)
    assert all(p.value.base is flat.value for p in m.parameters())
    assert outer.parameters().flat() is None and m.parameters().flat() is flat
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 4)).astype(np.float32), rng.integers(0, 3, 32)
    before = outer.predict(X)
    m.fit(X, y, optimizer=lw.SGD(0.5), epochs=2, batch_size=8, rng=0, verbose=0)
    assert not np.allclose(outer.predict(X), before)    # outer sees the trained weights
    np.testing.assert_array_equal(outer.predict(X), m.predict(X))


def test_astype_casts_every_parameter_and_buffer():
    m = small_model()
    assert m.dtype == np.float32
    m.forward(np.ones((2, 4), np.float32))
    assert m.astype(np.float64) is m
    assert all(p.value.dtype == np.float64 and p.grad.dtype == np.float64 for p in m.parameters())
    assert m.forward(np.ones((2, 4))).dtype == np.float64
    with pytest.raises(lw.ConfigError, match="float32 or float64"):
        m.astype(np.int32)


def test_mismatched_dense_sizes_are_refused():
    with pytest.raises(lw.ValidationError, match=r"expects 6 inputs.*gives 5"):
        lw.Sequential(lw.Dense(4, 5), lw.ReLU(), lw.Dense(6, 2))


def test_non_layers_are_refused_with_a_hint():
    with pytest.raises(lw.ConfigError, match=r"lw.ReLU\(\)"):
        lw.Sequential(lw.Dense(4, 5), "relu")


def test_summary_lists_layers_shapes_and_counts():
    text = lw.mlp([64, 128, 10]).summary(print_fn=None)
    assert "Dense(n_in=64, n_out=128" in text and "ReLU()" in text
    assert "(B, 128)" in text and "(B, 10)" in text
    assert "8,320" in text and "1,290" in text and "total parameters: 9,610" in text


def test_mlp_builds_layers_with_sensible_inits_and_dropout():
    m = lw.mlp([8, 16, 16, 3], activation="tanh", output="softmax", dropout=0.25, rng=0)
    kinds = [layer.kind for layer in m.layers]
    assert kinds == ["dense", "tanh", "dropout", "dense", "tanh", "dropout", "dense", "softmax"]
    assert m.layers[0].init == "xavier_uniform"
    assert lw.mlp([8, 16, 3]).layers[0].init == "he_normal"          # He for ReLU
    with pytest.raises(lw.ValidationError, match="at least two positive integers"):
        lw.mlp([8])


def test_mlp_same_seed_same_weights():
    a, b = lw.mlp([10, 20, 3], rng=7), lw.mlp([10, 20, 3], rng=7)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.value, q.value)
    c = lw.mlp([10, 20, 3], rng=8)
    assert not np.array_equal(a.parameters()[0].value, c.parameters()[0].value)


def test_predict_chunks_equal_one_pass_and_do_not_alias_buffers():
    m = small_model(np.float64)
    X = np.random.default_rng(3).standard_normal((50, 4))
    full = m.predict(X, batch_size=1000)
    chunked = m.predict(X, batch_size=7)
    np.testing.assert_allclose(full, chunked, rtol=1e-13)
    m.predict(X[:3] * 10)
    np.testing.assert_allclose(full, chunked, rtol=1e-13)      # earlier results not overwritten


def test_predict_validates_input():
    m = small_model()
    with pytest.raises(lw.ValidationError, match="expects 4"):
        m.predict(np.ones((2, 5)))
    with pytest.raises(lw.ValidationError, match="2-D"):
        m.predict(np.ones(4))
    with pytest.raises(lw.ValidationError, match="NaN or infinite"):
        m.predict(np.array([[1.0, 2, 3, np.nan]]))
    with pytest.raises(lw.ValidationError, match="numeric"):
        m.predict(np.array([["a", "b", "c", "d"]]))
    with pytest.raises(lw.ValidationError, match="empty"):
        m.predict(np.ones((0, 4)))


def test_predict_proba_and_classes_follow_the_loss():
    m = small_model(np.float64)
    X = np.random.default_rng(4).standard_normal((9, 4))
    with pytest.raises(lw.ConfigError, match="no loss"):
        m.predict_proba(X)
    m.loss = lw.CrossEntropy()
    P = m.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(m.predict_classes(X), m.predict(X).argmax(axis=1))


def test_evaluate_reports_loss_and_metrics():
    m = small_model(np.float64)
    X = np.random.default_rng(5).standard_normal((20, 4))
    y = np.random.default_rng(6).integers(0, 3, 20)
    r = m.evaluate(X, y, loss="ce", batch_size=6)
    L = lw.CrossEntropy()
    assert r["loss"] == pytest.approx(L.forward(m.predict(X), y), rel=1e-12)
    assert r["accuracy"] == pytest.approx(np.mean(m.predict(X).argmax(1) == y))
    reg = m.evaluate(X, np.zeros((20, 3)), loss="mse")
    assert set(reg) == {"loss", "mse", "mae", "r2"}
    with pytest.raises(lw.ValidationError, match="same number of samples"):
        m.evaluate(X, y[:5], loss="ce")


def test_mlp_takes_per_layer_activation_dropout_init_and_norm():
    model = lw.mlp([6, 5, 4, 3], activation=["tanh", "relu"], dropout=[0.0, 0.25],
                   init=["normal:1.0", "lecun_normal", "zeros"], norm=[None, "batch"], rng=0)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "Tanh", "Dense", "BatchNorm", "ReLU", "Dropout", "Dense"]
    dense = [layer for layer in model.layers if isinstance(layer, lw.Dense)]
    assert [d.init for d in dense] == ["normal:1.0", "lecun_normal", "zeros"]
    assert model.layers[5].p == 0.25 and not dense[2].W.any()
    # one value still applies to every layer, and None picks each activation's default
    same = lw.mlp([6, 5, 4, 3], activation="tanh", rng=0)
    assert [d.init for d in same.layers if isinstance(d, lw.Dense)] == \
        ["xavier_uniform"] * 3


@pytest.mark.parametrize("kwargs, words", [
    ({"activation": ["relu"]}, "activation has 1 entries but the network has 2 layers"),
    ({"dropout": [0.1, 0.2, 0.3]}, "dropout has 3 entries but the network has 2 layers"),
    ({"init": ["he_normal", "he_normal"]}, "init has 2 entries but the network has 3 layers"),
    ({"norm": ["layer"]}, "norm has 1 entries"),
])
def test_mlp_refuses_per_layer_lists_of_the_wrong_length(kwargs, words):
    with pytest.raises(lw.ValidationError, match=words):
        lw.mlp([6, 5, 4, 3], **kwargs)


# -- in-place activations: the same bits, the user's arrays untouched --------------------------
def _layer_by_layer(layers, X, dA):
    """Forward and backward calling each layer's plain forward/backward (own buffers)."""
    A = X
    for layer in layers:
        A = layer.forward(A, True).copy()
    out = A
    for layer in reversed(layers):
        dA = layer.backward(dA).copy()
    return out, dA, [p.grad.copy() for layer in layers for p in layer.params()]


@pytest.mark.parametrize("act", [lw.ReLU, lw.Sigmoid, lw.Tanh])
@pytest.mark.parametrize("B", [1, 7, 300])          # 300 × 20 takes ReLU's large path
def test_activations_written_over_dense_buffers_give_the_same_bits(act, B):
    rng = np.random.default_rng(0)
    X, dY = rng.standard_normal((B, 6)), rng.standard_normal((B, 3))

    def make():
        return lw.Sequential(lw.Dense(6, 20, rng=1), act(), lw.Dense(20, 20, rng=2), act(),
                             lw.Dense(20, 3, rng=3)).astype(np.float64)
    m, ref = make(), make()
    X0 = X.copy()
    out = m.forward(X, training=True).copy()
    dX = m.backward(dY.copy()).copy()
    r_out, r_dX, r_grads = _layer_by_layer(ref.layers, X, dY.copy())
    assert np.array_equal(out, r_out) and np.array_equal(dX, r_dX)
    assert all(np.array_equal(p.grad, g) for p, g in zip(m.parameters(), r_grads))
    assert np.array_equal(X, X0)
    dense, a = m.layers[0], m.layers[1]
    assert np.shares_memory(a._out, dense._Z)       # written over the Dense output: in place


def test_an_activation_not_after_a_dense_layer_leaves_its_input_alone():
    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    X0 = X.copy()
    m = lw.Sequential(lw.ReLU(), lw.Dense(4, 3, rng=0), lw.Tanh())
    m.backward(m.forward(X, training=True).copy())
    assert np.array_equal(X, X0)
    assert not np.shares_memory(m.layers[0]._out, X)


def test_a_subclass_with_its_own_derivative_runs_its_own_backward():
    """in_place is not inherited: a ReLU subclass with another _df gets plain calls, so a
    derivative that is not written to run over its input still gives the right gradient."""
    class Doubled(lw.ReLU):
        kind = "doubled_relu_test"

        def _df(self, dA, dZ):                      # wrong if dZ were dA (it zeroes dA first)
            dZ.fill(0.0)
            dZ += 2.0 * dA * (self._out > 0)

    X = np.random.default_rng(0).standard_normal((4, 3))
    m = lw.Sequential(lw.Dense(3, 5, rng=0), Doubled(), lw.Dense(5, 2, rng=1)).astype(np.float64)
    ref = lw.Sequential(lw.Dense(3, 5, rng=0), lw.ReLU(), lw.Dense(5, 2, rng=1)).astype(np.float64)
    dY = np.ones((4, 2))
    m.forward(X, training=True)
    ref.forward(X, training=True)
    assert np.allclose(m.backward(dY.copy()), 2 * ref.backward(dY.copy()))


def test_replacing_a_layer_makes_the_passes_anew():
    X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    m = lw.Sequential(lw.Dense(3, 5, rng=0), lw.ReLU(), lw.Dense(5, 2, rng=1))
    m.forward(X)
    m.layers[1] = lw.Tanh()
    d1, d2 = m.layers[0], m.layers[2]
    expected = np.tanh(X @ d1.W.T + d1.b) @ d2.W.T + d2.b
    np.testing.assert_allclose(m.forward(X), expected, rtol=1e-5)


@pytest.mark.parametrize("make", [lambda: lw.SGD(0.05, momentum=0.9), lambda: lw.Adam(1e-2)])
def test_the_readme_loop_equals_fits_training_step_bit_for_bit(make):
    """forward / loss / backward / opt.step(model.parameters()) is train_step's update, on
    the same flat buffer: the same parameters after every step."""
    from layerwise.training import train_step
    rng = np.random.default_rng(3)
    tour, fit_model = lw.mlp([6, 16, 8, 3], rng=0), lw.mlp([6, 16, 8, 3], rng=0)
    tour_opt, fit_opt, loss = make(), make(), lw.CrossEntropy()
    params = fit_model.flat_parameters()
    for B in (5, 8, 1, 8):
        X, y = rng.standard_normal((B, 6)).astype(np.float32), rng.integers(0, 3, B)
        A = tour.forward(X, training=True)
        loss.forward(A, y)
        tour.backward(loss.backward(), input_grad=False)
        tour_opt.step(tour.parameters())
        train_step(fit_model, lw.CrossEntropy(), fit_opt, X, y, params)
        assert np.array_equal(tour.flat_parameters()[0].value, params[0].value)


def test_a_method_replaced_after_the_first_pass_is_the_one_called():
    """The passes look each layer's forward/backward up at every call, so a layer patched (or
    instrumented) after the model has run is run as patched."""
    X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    m = lw.Sequential(lw.Dense(3, 5, rng=0), lw.ReLU(), lw.Dense(5, 2, rng=1))
    m.forward(X)
    calls = []
    relu = m.layers[1]
    original = relu.forward_over

    def spy(Z, training=False):
        calls.append(Z.shape)
        return original(Z, training)
    relu.forward_over = spy
    m.forward(X)
    assert calls == [(4, 5)]


def test_an_optimizer_whose_state_was_replaced_checks_the_layout_again():
    """The optimizer remembers which arrays its state list was checked against; a state list
    put in from outside (emptied here) is checked again, so the step starts fresh state
    rather than silently updating nothing."""
    m = small_model()
    opt = lw.SGD(0.1, momentum=0.9)
    loss = lw.CrossEntropy()
    X, y = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32), np.arange(6) % 3
    for _ in range(2):
        loss.forward(m.forward(X, training=True), y)
        m.backward(loss.backward())
        opt.step(m.parameters())
    opt.state = []
    before = m.flat_parameters()[0].value.copy()
    opt.step(m.parameters())
    assert opt.t == 1 and len(opt.state) == 1
    assert not np.array_equal(m.flat_parameters()[0].value, before)
