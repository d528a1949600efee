"""Issue 12, items 3 and 4: initialiser specs ("normal:1.0") and a bias initialiser, in the API,
model files and the CLI; weight decay on the weights only (``decay_biases=False``) or on every
parameter (``decay_biases=True``, torch.optim's way), in the optimizers, fit, checkpoints, the
estimators and the CLI, agreeing with torch.optim (param groups for weights-only decay)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import layerwise as lw
from layerwise import _blas
from layerwise.cli import _resume_args, main
from test_checkpoints import StopAt  # Ctrl-C after a number of steps

try:                    # only the torch.optim agreement needs torch: the rest runs without it
    import torch
except ImportError:     # pragma: no cover
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


# -- item 3: initialiser specs and the bias initialiser ------------------------------------------
def test_normal_spec_draws_weights_and_biases_with_that_std():
    """Nielsen's W, b ~ N(0, 1): mean and std of a large layer within sampling tolerance
    (std of the sample std ≈ σ/√(2n): 0.1% for the 400,000 weights, 0.8% for 8,000 biases)."""
    d = lw.Dense(50, 8000, init="normal:1.0", bias_init="normal:1.0", dtype=np.float64, rng=3)
    assert abs(d.W.mean()) < 0.01 and abs(d.W.std() - 1.0) < 0.005
    assert abs(d.b.mean()) < 0.04 and abs(d.b.std() - 1.0) < 0.03
    d2 = lw.Dense(50, 8000, init="normal:0.3", bias_init="normal:2", dtype=np.float64, rng=3)
    assert abs(d2.W.std() - 0.3) < 0.0015 and abs(d2.b.std() - 2.0) < 0.06


def test_uniform_and_constant_specs():
    d = lw.Dense(100, 2000, init="uniform:0.2", bias_init="uniform:0.5", dtype=np.float64,
                 rng=0)
    assert np.abs(d.W).max() <= 0.2 and np.abs(d.W).max() > 0.199
    assert abs(d.W.std() - 0.2 / np.sqrt(3)) < 0.001              # U(−a, a): σ = a/√3
    assert np.abs(d.b).max() <= 0.5 and abs(d.b.std() - 0.5 / np.sqrt(3)) < 0.01
    c = lw.Dense(3, 5, init="constant:-0.25", bias_init="constant:0.1", rng=0)
    assert (c.W == np.float32(-0.25)).all() and (c.b == np.float32(0.1)).all()
    assert c.b.dtype == np.float32


def test_specs_are_reproducible_and_zeros_bias_leaves_weights_as_before():
    a = lw.Dense(20, 30, init="normal:1.0", bias_init="normal:1.0", rng=5)
    b = lw.Dense(20, 30, init="normal:1.0", bias_init="normal:1.0", rng=5)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.b, b.b)
    assert not np.array_equal(a.W, lw.Dense(20, 30, init="normal:1.0", rng=6).W)
    # W is drawn first, so the bias initialiser never changes the weights of a seed
    np.testing.assert_array_equal(a.W, lw.Dense(20, 30, init="normal:1.0", rng=5).W)
    np.testing.assert_array_equal(lw.Dense(20, 30, init="normal", rng=5).W,
                                  lw.Dense(20, 30, init="normal:0.01", rng=5).W)
    assert (lw.Dense(20, 30, rng=5).b == 0).all()                    # default: zeros


def test_canonical_spec_is_what_the_layer_records():
    assert lw.Dense(2, 3, init="Normal:1", rng=0).init == "normal:1.0"
    assert lw.Dense(2, 3, init="normal", rng=0).init == "normal"
    assert lw.Dense(2, 3, init="uniform: 5e-2", rng=0).init == "uniform:0.05"
    d = lw.Dense(2, 3, bias_init="constant:-1", rng=0)
    assert d.bias_init == "constant:-1.0" and d.config()["bias_init"] == "constant:-1.0"
    assert "bias_init" not in lw.Dense(2, 3, rng=0).config()     # default: the old format


@pytest.mark.parametrize("bad", ["normal:", "normal:abc", "normal:0", "normal:-1",
                                 "uniform:nan", "uniform:inf", "he:2", "constant",
                                 "orthogonal:1", "normal:1:2"])
def test_bad_spec_is_a_config_error_naming_the_grammar_and_the_names(bad):
    with pytest.raises(lw.ConfigError) as exc:
        lw.Dense(3, 2, init=bad)
    msg = str(exc.value)
    assert repr(bad) in msg and "normal:STD" in msg and "constant:VALUE" in msg
    with pytest.raises(lw.ConfigError, match="normal:STD"):
        lw.Dense(3, 2, bias_init=bad)


@pytest.mark.parametrize("fan_based", ["he_normal", "xavier", "lecun_uniform"])
def test_fan_based_bias_initialiser_is_refused(fan_based):
    with pytest.raises(lw.ConfigError, match="fan_in"):
        lw.Dense(3, 2, bias_init=fan_based)


def test_bias_init_without_a_bias_is_refused_and_callables_get_the_bias_shape():
    with pytest.raises(lw.ValidationError, match="bias=False"):
        lw.Dense(3, 2, bias=False, bias_init="constant:1")
    shapes = []

    def mine(shape, rng, dtype):
        shapes.append(shape)
        return np.arange(shape[0], dtype=dtype)

    d = lw.Dense(3, 4, bias_init=mine, rng=0)
    assert shapes == [(4,)] and d.b.tolist() == [0, 1, 2, 3]
    with pytest.raises(lw.ValidationError, match="shape"):
        lw.Dense(3, 4, bias_init=lambda shape, rng, dtype: np.zeros(3, dtype))


def test_mlp_passes_bias_init_to_every_dense_layer():
    model = lw.mlp([4, 50, 60, 3], activation="sigmoid", init="normal:1.0",
                   bias_init="normal:1.0", rng=0)
    dense = [layer for layer in model.layers if isinstance(layer, lw.Dense)]
    assert [d.init for d in dense] == ["normal:1.0"] * 3
    assert [d.bias_init for d in dense] == ["normal:1.0"] * 3
    assert all(np.abs(d.b).max() > 0.5 for d in dense)


def test_model_file_records_both_specs_and_loads_with_them(tmp_path):
    model = lw.mlp([4, 6, 3], init="normal:1.0", bias_init="constant:0.1", rng=0)
    model.save(tmp_path / "m.lw")
    with zipfile.ZipFile(tmp_path / "m.lw") as z:
        doc = json.loads(z.read("model.json"))
    assert doc["layers"][0]["config"] == {"n_in": 4, "n_out": 6, "init": "normal:1.0",
                                          "bias": True, "bias_init": "constant:0.1"}
    loaded = lw.load(tmp_path / "m.lw")
    for d, e in zip(model.layers[::2], loaded.layers[::2]):
        assert (e.init, e.bias_init) == (d.init, d.bias_init)
        np.testing.assert_array_equal(d.b, e.b)
    # a file without bias_init (every file written before it existed) loads with zeros
    lw.mlp([4, 6, 3], rng=0).save(tmp_path / "old.lw")
    with zipfile.ZipFile(tmp_path / "old.lw") as z:
        assert "bias_init" not in z.read("model.json").decode()
    assert lw.load(tmp_path / "old.lw").layers[0].bias_init == "zeros"


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_cli_init_and_bias_init_flags_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "iris", "--layers", "8", "--init", "normal:1.0", "--bias-init",
                 "normal:0.5", "--epochs", "2", "--optimizer", "sgd", "--lr", "0.01",
                 "--weight-decay", "0", "--quiet", "--no-plots", "--out", str(out)])
    capsys.readouterr()
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["init"] == "normal:1.0" and config["bias_init"] == "normal:0.5"
    assert config["args"]["init"] == "normal:1.0" and config["args"]["bias_init"] == "normal:0.5"
    model = lw.load(out / "model.lw")
    dense = [layer for layer in model.layers if isinstance(layer, lw.Dense)]
    assert [(d.init, d.bias_init) for d in dense] == [("normal:1.0", "normal:0.5")] * 2
    # two epochs of lr 0.01 barely move them: the biases still show their N(0, 0.5²) start
    assert 0.2 < float(np.std(dense[0].b)) < 1.0


@pytest.mark.parametrize(("flag", "value"), [("--init", "normal:x"), ("--init", "he:2"),
                                             ("--bias-init", "he_normal"),
                                             ("--bias-init", "constant")])
def test_cli_refuses_a_bad_spec_in_one_line_before_writing_anything(tmp_path, capsys, flag,
                                                                    value):
    out = tmp_path / "run"
    code = main(["train", "iris", flag, value, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.startswith(f"layerwise: error: {flag}: ") and err.count("\n") == 1


# -- item 4: weight decay on weights only, against torch.optim ---------------------------------
def small_model(seed: int) -> lw.Sequential:
    model = lw.Sequential(lw.Dense(5, 7, dtype=np.float64, rng=seed), lw.Tanh(),
                          lw.Dense(7, 3, dtype=np.float64, rng=seed + 1))
    g = np.random.default_rng(seed)
    for layer in model.layers[::2]:
        layer.b[...] = g.normal(size=layer.b.shape)     # biases large enough to see decay
    return model


def torch_step_fn(model: lw.Sequential):
    """torch copies of the model's parameters and a function computing the same MSE loss."""
    Ws = [torch.tensor(d.W.copy(), requires_grad=True) for d in model.layers[::2]]
    bs = [torch.tensor(d.b.copy(), requires_grad=True) for d in model.layers[::2]]

    def loss(X, Y):
        A = torch.tanh(X @ Ws[0].T + bs[0])
        Z = A @ Ws[1].T + bs[1]
        return 0.5 * ((Z - Y) ** 2).sum(dim=1).mean()      # lw.MSE: ½‖a − y‖², batch mean
    return Ws, bs, loss


OPTS = {   # layerwise optimizer (given decay_biases), torch optimizer (given param groups)
    "sgd": (lambda d: lw.SGD(lr=0.1, weight_decay=0.2, decay_biases=d),
            lambda g: torch.optim.SGD(g, lr=0.1, weight_decay=0.2)),
    "sgd_nesterov": (
        lambda d: lw.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, decay_biases=d),
        lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    "sgd_dampening": (
        lambda d: lw.SGD(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1,
                         decay_biases=d),
        lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1)),
    "adam": (lambda d: lw.Adam(lr=0.02, weight_decay=0.3, decay_biases=d),
             lambda g: torch.optim.Adam(g, lr=0.02, weight_decay=0.3)),
    "adamw": (lambda d: lw.AdamW(lr=0.02, weight_decay=0.5, decay_biases=d),
              lambda g: torch.optim.AdamW(g, lr=0.02, weight_decay=0.5)),
    "rmsprop": (
        lambda d: lw.RMSprop(lr=0.01, alpha=0.9, weight_decay=0.2, momentum=0.5, centered=True,
                             decay_biases=d),
        lambda g: torch.optim.RMSprop(g, lr=0.01, alpha=0.9, weight_decay=0.2, momentum=0.5,
                                      centered=True)),
}


@needs_torch
@pytest.mark.parametrize("update", ["numpy", "blas"])
@pytest.mark.parametrize("layout", ["per_array", "flat"])
@pytest.mark.parametrize("decay_biases", [False, True])
@pytest.mark.parametrize("name", list(OPTS))
def test_decay_matches_torch_param_groups(name, decay_biases, layout, update, monkeypatch):
    """20 steps on random batches: decay_biases=False equals torch.optim with the biases in a
    param group of weight_decay 0; True equals torch.optim decaying every parameter. Both for
    per-array parameters and fit's single flat buffer, on NumPy and BLAS update paths."""
    monkeypatch.setattr(_blas, "MIN_SIZE", 1 if update == "blas" else 1 << 62)
    make_lw, make_torch = OPTS[name]
    model = small_model(1)
    b0 = [d.b.copy() for d in model.layers[::2]]
    Ws, bs, torch_loss = torch_step_fn(model)
    groups = [{"params": Ws + bs}] if decay_biases else \
        [{"params": Ws}, {"params": bs, "weight_decay": 0.0}]
    opt, opt_t = make_lw(decay_biases), make_torch(groups)
    params = model.flat_parameters() if layout == "flat" else model.parameters()
    loss = lw.MSE()
    rng = np.random.default_rng(2)
    for _ in range(20):
        B = int(rng.integers(1, 9))
        X, Y = rng.normal(size=(B, 5)), rng.normal(size=(B, 3))
        loss.forward(model.forward(X, training=True), Y)
        model.backward(loss.backward())
        opt.step(params)
        opt_t.zero_grad()
        torch_loss(torch.tensor(X), torch.tensor(Y)).backward()
        opt_t.step()
    for d, W, b in zip(model.layers[::2], Ws, bs):
        np.testing.assert_allclose(d.W, W.detach().numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(d.b, b.detach().numpy(), rtol=1e-9, atol=1e-11)
    # the two settings differ visibly on the biases (else the test could not tell them apart)
    other = small_model(1)
    oparams = other.flat_parameters() if layout == "flat" else other.parameters()
    o = make_lw(not decay_biases)
    rng = np.random.default_rng(2)
    for _ in range(20):
        B = int(rng.integers(1, 9))
        X, Y = rng.normal(size=(B, 5)), rng.normal(size=(B, 3))
        loss.forward(other.forward(X, training=True), Y)
        other.backward(loss.backward())
        o.step(oparams)
    gap = max(np.abs(d.b - e.b).max() for d, e in zip(model.layers[::2], other.layers[::2]))
    moved = max(np.abs(d.b - b).max() for d, b in zip(model.layers[::2], b0))
    assert gap > 1e-4 and moved > 1e-3


def test_decay_biases_is_in_the_config_and_false_by_default():
    for cls in (lw.SGD, lw.Adam, lw.AdamW, lw.RMSprop):
        assert cls().decay_biases is False and cls().config()["decay_biases"] is False
        assert cls(decay_biases=True).config()["decay_biases"] is True
        assert "decay_biases=True" in repr(cls(decay_biases=True))


def test_flat_buffer_lists_each_bias_range():
    model = lw.mlp([3, 4, 2], rng=0)
    (flat,) = model.flat_parameters()
    # layout W0 (12), b0 (4), W1 (8), b1 (2)
    assert flat.no_decay == ((12, 16), (24, 26))
    assert [p.no_decay for p in model.parameters()] == [(), ((0, 4),), (), ((0, 2),)]
    assert lw.mlp([3, 4, 2], bias=False, rng=0).flat_parameters()[0].no_decay == ()


def _data(n=64):
    g = np.random.default_rng(0)
    return g.normal(size=(n, 5)), g.normal(size=(n, 3))


def test_fit_decay_biases_equals_a_hand_loop_and_sets_the_optimizer():
    """fit(decay_biases=...) trains its flat buffer exactly as opt.step on per-array
    parameters does (which the torch test above checks), for both settings."""
    X, Y = _data()
    for decay_biases in (False, True):
        model, opt = small_model(4), lw.SGD(0.05, momentum=0.9, weight_decay=0.3)
        model.fit(X, Y, loss="mse", optimizer=opt, epochs=3, batch_size=16, shuffle=False,
                  verbose=0, decay_biases=decay_biases, threads=1)
        assert opt.decay_biases is decay_biases
        ref, ref_opt = small_model(4), lw.SGD(0.05, momentum=0.9, weight_decay=0.3,
                                              decay_biases=decay_biases)
        loss, params = lw.MSE(), ref.parameters()
        for _ in range(3):
            for i in range(0, 64, 16):
                loss.forward(ref.forward(X[i:i + 16], training=True), Y[i:i + 16])
                ref.backward(loss.backward())
                ref_opt.step(params)
        for p, q in zip(model.parameters(), ref.parameters()):
            np.testing.assert_allclose(p.value, q.value, rtol=1e-12, atol=1e-14)
    with pytest.raises(lw.ValidationError, match="decay_biases"):
        small_model(4).fit(X, Y, loss="mse", epochs=1, verbose=0, decay_biases="no")


def test_weights_only_decay_never_shrinks_biases_without_gradient():
    """With zero gradients a step is the decay alone: the weights shrink by (1 − ηλ) per step
    (SGD's coupled and AdamW's decoupled decay alike) and the biases stay (SGD: bit for bit;
    AdamW adds ηλ·b back after its fused pass: to rounding)."""
    model = small_model(5)
    W0, b0 = model.layers[0].W.copy(), model.layers[0].b.copy()
    for opt in (lw.SGD(0.1, weight_decay=0.5), lw.AdamW(0.1, weight_decay=0.5)):
        params = model.flat_parameters()
        params[0].grad[...] = 0
        opt.step(params)
        np.testing.assert_allclose(model.layers[0].b, b0, rtol=1e-15 * (opt.kind == "adamw"),
                                   atol=0)
    np.testing.assert_allclose(model.layers[0].W, W0 * (1 - 0.05) ** 2, rtol=1e-12)


def _fit(model, decay_biases, **kw):
    X, Y = _data()
    return model.fit(X, Y, loss="mse", optimizer=lw.AdamW(0.01, weight_decay=0.3), epochs=3,
                     batch_size=16, rng=1, verbose=0, decay_biases=decay_biases, threads=1, **kw)


@pytest.mark.parametrize("decay_biases", [False, True])
def test_checkpoint_resume_keeps_the_setting(tmp_path, decay_biases):
    ref = small_model(6)
    _fit(ref, decay_biases)
    ck = tmp_path / "ck.lw"
    with pytest.raises(lw.TrainingInterrupted):
        _fit(small_model(6), decay_biases, checkpoint=ck, checkpoint_every=1,
             callbacks=[StopAt(5)])
    with zipfile.ZipFile(ck) as z:
        meta = json.loads(z.read("checkpoint.json"))
    assert meta["optimizer"]["config"]["decay_biases"] is decay_biases
    with pytest.raises(lw.ValidationError, match="decay_biases must match"):
        _fit(small_model(6), not decay_biases, resume=ck)
    model = small_model(6)
    _fit(model, decay_biases, resume=ck)
    for p, q in zip(ref.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.value, q.value)


def test_adamw_bound_stays_an_upper_bound_when_biases_keep_their_size():
    """guarded_step carries a bound on ‖W‖ from step to step. With weights-only AdamW decay the
    biases are not shrunk by (1 − ηλ), so the bound must not shrink them either: big biases,
    small weights and ηλ = 0.9 would otherwise make the carried bound fall below ‖W‖. (Zero
    gradients: the Adam part of the bound is then 0 and the decay alone decides it.)"""
    model = lw.mlp([4, 3, 2], rng=0, dtype=np.float64)
    for d in model.layers[::2]:
        d.W *= 1e-3
        d.b[...] = 100.0
    opt = lw.AdamW(lr=0.9, weight_decay=1.0)
    params = model.flat_parameters()
    params[0].grad[...] = 0
    for _ in range(5):
        opt.guarded_step(params, 0.0)
        assert opt._bounds is not None
        assert opt._bounds["w"] >= float(np.linalg.norm(params[0].value))


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_estimators_decay_weights_only_like_scikit_learn():
    """scikit-learn's alpha penalises coefs_ only, never intercepts_, as λ = α/B on the mean
    gradient of a batch of B rows: the estimators' SGD with alpha equals lw.SGD(weight_decay=α/B)
    on the weights only."""
    from layerwise.sklearn import LayerwiseRegressor
    X, Y = _data(80)                                   # batch_size "auto": B = min(200, 80)
    est = LayerwiseRegressor(hidden_layer_sizes=(6,), solver="sgd", alpha=0.5 * 80,
                             nesterovs_momentum=False, learning_rate_init=0.05, max_iter=3,
                             random_state=0)
    assert est._make_optimizer(80).decay_biases is False
    assert est._make_optimizer(80).weight_decay == 0.5
    est.fit(X, Y[:, 0])
    other = LayerwiseRegressor(hidden_layer_sizes=(6,),
                               solver=lw.SGD(0.05, momentum=0.9, weight_decay=0.5,
                                             decay_biases=True),
                               max_iter=3, random_state=0).fit(X, Y[:, 0])
    same = LayerwiseRegressor(hidden_layer_sizes=(6,),
                              solver=lw.SGD(0.05, momentum=0.9, weight_decay=0.5),
                              max_iter=3, random_state=0).fit(X, Y[:, 0])
    np.testing.assert_array_equal(est.predict(X), same.predict(X))
    assert not np.array_equal(est.predict(X), other.predict(X))


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_cli_decay_biases_flag_reaches_the_optimizer_and_config(tmp_path, capsys):
    common = ["train", "iris", "--layers", "8", "--epochs", "2", "--optimizer", "sgd",
              "--weight-decay", "0.01", "--quiet", "--no-plots"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--decay-biases", "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    a = json.loads((tmp_path / "a" / "config.json").read_text())
    b = json.loads((tmp_path / "b" / "config.json").read_text())
    assert a["decay_biases"] is False and "decay_biases=False" in a["optimizer"]
    assert b["decay_biases"] is True and "decay_biases=True" in b["optimizer"]
    assert b["args"]["decay_biases"] is True
    pa = lw.load(tmp_path / "a" / "model.lw").layers[1].b
    pb = lw.load(tmp_path / "b" / "model.lw").layers[1].b
    assert not np.array_equal(pa, pb)


def test_cli_resume_of_a_run_from_before_the_flag_decays_biases(tmp_path):
    """An old run's config.json has no decay_biases: its weight decay included the biases,
    so the resumed run keeps doing that; a new run's setting is read back as saved."""
    import argparse
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.lw").write_bytes(b"")
    args = argparse.Namespace(resume=str(run))
    (run / "config.json").write_text(json.dumps({"args": {"data": "iris", "seed": 0}}))
    assert _resume_args(args).decay_biases is True
    (run / "config.json").write_text(json.dumps(
        {"args": {"data": "iris", "seed": 0, "decay_biases": False, "bias_init": "normal:1.0"}}))
    merged = _resume_args(args)
    assert merged.decay_biases is False and merged.bias_init == "normal:1.0"


@pytest.mark.parametrize("kwargs, words", [
    ({"init": "normal:1e40"}, "init='normal:1e+40' drew values that are not finite in float32"),
    ({"bias_init": "constant:1e39"}, "bias_init='constant:1e+39' drew values"),
    ({"init": lambda shape, rng, dtype: np.full(shape, np.nan)}, "not finite in float32"),
])
def test_an_initialiser_whose_draw_overflows_the_dtype_is_refused_by_name(kwargs, words):
    """normal:1e40 in float32 drew inf; training then reported a NaN loss and blamed the
    learning rate."""
    with pytest.raises(lw.ValidationError) as e:
        lw.Dense(4, 3, rng=0, **kwargs)
    assert words in str(e.value)
    lw.Dense(4, 3, init="normal:1e40", dtype=np.float64, rng=0)      # fits in float64


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_cli_names_the_flag_of_an_overflowing_initialiser(tmp_path, capsys):
    from layerwise.cli import main
    assert main(["train", "iris", "--init", "normal:1e40", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise: error: --init normal:1e+40 drew values") and \
        err.count("\n") == 1
    assert not (tmp_path / "r").exists()
