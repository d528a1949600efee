"""explain: one batch forward and backward, layer by layer, with norms, dead units and flags."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import layerwise as lw
from layerwise.explain import NAMES, Explanation, LayerExplanation, explain


def data(n=12, n_in=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), rng.integers(0, k, n)


def small_net(dtype=np.float64):
    return lw.Sequential(lw.Dense(5, 7, init="he", rng=0, dtype=dtype), lw.ReLU(),
                         lw.Dense(7, 6, rng=1, dtype=dtype), lw.Tanh(),
                         lw.Dense(6, 3, rng=2, dtype=dtype))


def norm(a):
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64)))


def test_report_fields_and_shapes():
    model = small_net()
    X, y = data()
    report = explain(model, "ce", X, y)
    assert isinstance(report, Explanation) and report.batch_size == len(X)
    assert [r.index for r in report.layers] == [1, 2, 3]
    assert [r.activation for r in report.layers] == ["relu", "tanh", "identity"]
    denses = [layer for layer in model.layers if isinstance(layer, lw.Dense)]
    B = len(X)
    for r, dense in zip(report.layers, denses):
        assert isinstance(r, LayerExplanation)
        assert set(r.shapes) == set(r.norms) == set(NAMES)
        assert set(NAMES) == {"A_prev", "Z", "A", "dA", "dZ", "dW", "db", "dX"}
        n_out, n_in = dense.W.shape
        assert r.shapes == {"A_prev": (B, n_in), "Z": (B, n_out), "A": (B, n_out),
                            "dA": (B, n_out), "dZ": (B, n_out), "dW": (n_out, n_in),
                            "db": (n_out,), "dX": (B, n_in)}
        assert all(np.isfinite(v) and v >= 0 for v in r.norms.values())
    assert report.layers[0].dead_fraction is not None                # ReLU
    assert report.layers[1].dead_fraction is None                    # tanh, identity: no "dead"
    assert report.layers[-1].grad_ratio == 1.0                       # ‖dW_K‖ / ‖dW_K‖
    # the gradient handed back by layer i is the one layer i−1 receives
    for lower, upper in zip(report.layers, report.layers[1:]):
        assert upper.norms["dX"] == lower.norms["dA"]
        assert upper.norms["A_prev"] == lower.norms["A"]


def test_norms_match_a_manual_forward_and_backward():
    model = small_net()
    X, y = data()
    report = explain(model, "ce", X, y)

    net = copy.deepcopy(model)
    loss = lw.CrossEntropy()
    L = loss.forward(net.forward(X), y)
    dX = net.backward(loss.backward()).copy()
    assert report.loss == pytest.approx(L, rel=1e-12)
    denses = [layer for layer in net.layers if isinstance(layer, lw.Dense)]
    for r, dense in zip(report.layers, denses):
        assert r.norms["dW"] == pytest.approx(norm(dense.dW), rel=1e-12)
        assert r.norms["db"] == pytest.approx(norm(dense.db), rel=1e-12)
    assert report.layers[0].norms["dX"] == pytest.approx(norm(dX), rel=1e-12)

    # forward by hand: Z_1 = X W_1ᵀ + b_1, A_1 = relu(Z_1), Z_2 = A_1 W_2ᵀ + b_2, A_2 = tanh(Z_2)
    W1, b1, W2, b2 = denses[0].W, denses[0].b, denses[1].W, denses[1].b
    Z1 = X @ W1.T + b1
    A1 = np.maximum(Z1, 0)
    Z2 = A1 @ W2.T + b2
    first, second = report.layers[:2]
    assert first.norms["A_prev"] == pytest.approx(norm(X), rel=1e-12)
    assert first.norms["Z"] == pytest.approx(norm(Z1), rel=1e-12)
    assert first.norms["A"] == pytest.approx(norm(A1), rel=1e-12)
    assert second.norms["Z"] == pytest.approx(norm(Z2), rel=1e-12)
    assert second.norms["A"] == pytest.approx(norm(np.tanh(Z2)), rel=1e-12)
    # dW_i / ‖dW_K‖ is the reported ratio
    assert first.grad_ratio == pytest.approx(norm(denses[0].dW) / norm(denses[2].dW), rel=1e-12)

    # backward by hand through the last two layers: dZ_3 = (softmax − onehot)/B
    P = np.exp(net.forward(X) - net.forward(X).max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    dZ3 = (P - np.eye(3)[y]) / len(X)
    third = report.layers[2]
    assert third.norms["dZ"] == pytest.approx(norm(dZ3), rel=1e-10)
    assert third.norms["dA"] == third.norms["dZ"]                    # identity output
    dA2 = dZ3 @ denses[2].W
    assert second.norms["dA"] == pytest.approx(norm(dA2), rel=1e-10)
    assert second.norms["dZ"] == pytest.approx(norm(dA2 * (1 - np.tanh(Z2) ** 2)), rel=1e-10)


def test_dead_relu_fraction():
    X, y = data()
    dense = lw.Dense(5, 4, init="he", rng=0, dtype=np.float64)
    model = lw.Sequential(dense, lw.ReLU(), lw.Dense(4, 3, rng=1, dtype=np.float64))
    dense.b[:] = -100.0                                              # every unit off: 100% dead
    report = explain(model, "ce", X, y)
    assert report.layers[0].dead_fraction == 1.0
    assert report.layers[0].norms["dW"] == 0.0 and report.layers[0].norms["A"] == 0.0
    assert report.layers[0].flag == "vanishing gradient"

    dense.b[:] = [-100.0, 100.0, -100.0, 100.0]                      # half of them
    assert explain(model, "ce", X, y).layers[0].dead_fraction == 0.5

    dense.b[:] = 100.0
    assert explain(model, "ce", X, y).layers[0].dead_fraction == 0.0


def test_a_unit_that_fires_for_one_sample_is_not_dead():
    X = np.zeros((6, 1))
    X[2, 0] = 1.0
    dense = lw.Dense(1, 2, dtype=np.float64)
    dense.W[:] = [[1.0], [-1.0]]
    model = lw.Sequential(dense, lw.ReLU(), lw.Dense(2, 2, rng=0, dtype=np.float64))
    report = explain(model, "ce", X, np.zeros(6, dtype=int))
    assert report.layers[0].dead_fraction == 0.5                    # unit 0 fires for sample 2


def test_vanishing_gradient_in_a_deep_small_init_sigmoid_net():
    X, y = data(n=32, n_in=16, k=4)
    model = lw.mlp([16, 32, 32, 32, 32, 32, 32, 4], activation="sigmoid", init="normal", rng=0)
    report = explain(model, "ce", X, y)
    assert report.flags and set(report.flags.values()) == {"vanishing gradient"}
    assert 1 in report.flags                                         # the first layer, surely
    assert report.layers[0].grad_ratio < 1e-3
    ratios = [r.grad_ratio for r in report.layers]
    assert ratios == sorted(ratios)                                  # shrinking towards the input
    text = str(report)
    assert "layer 1: vanishing gradient" in text and "gradients look healthy" not in text


def test_no_flags_on_a_healthy_net():
    X, y = data(n=32, n_in=16, k=4)
    report = explain(lw.mlp([16, 32, 32, 4], rng=0), "ce", X, y)
    assert report.flags == {}
    assert all(r.flag == "" for r in report.layers)
    text = str(report)
    assert text.rstrip().endswith("gradients look healthy")
    assert f"B = {len(X)}" in text and "dW ratio" in text


def test_exploding_gradient_flag():
    """A tiny first layer makes ‖dW_2‖ = ‖dZ_2ᵀ A_1‖ tiny while ‖dW_1‖ stays normal."""
    X, y = data()
    first = lw.Dense(5, 6, dtype=np.float64)
    first.W[:] = 1e-5 * np.random.default_rng(0).standard_normal((6, 5))
    model = lw.Sequential(first, lw.Dense(6, 3, rng=1, dtype=np.float64))
    report = explain(model, "ce", X, y)
    assert report.layers[0].grad_ratio > 1e3
    assert report.flags == {1: "exploding gradient"}


def test_non_finite_gradients_are_exploding():
    X, y = data()
    model = small_net()
    model.layers[0].W[0, 0] = np.inf
    with np.errstate(all="ignore"):
        report = explain(model, "ce", X, y)
    assert "exploding gradient" in report.flags.values()


def test_the_input_model_is_not_modified():
    model = small_net()
    X, y = data()
    model.forward(X)
    before = [(p.value.copy(), p.grad.copy()) for p in model.parameters()]
    out_before = model.predict(X)
    explain(model, "ce", X, y)
    for p, (value, grad) in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.value, value)
        np.testing.assert_array_equal(p.grad, grad)                  # gradients untouched too
    np.testing.assert_array_equal(model.predict(X), out_before)


def test_dropout_is_off_and_the_report_is_deterministic():
    X, y = data()
    model = lw.Sequential(lw.Dense(5, 8, rng=0), lw.ReLU(), lw.Dropout(0.5, rng=0),
                          lw.Dense(8, 3, rng=1))
    a, b = explain(model, "ce", X, y), explain(model, "ce", X, y)
    assert [r.activation for r in a.layers] == ["relu", "identity"]
    assert [r.norms for r in a.layers] == [r.norms for r in b.layers]
    no_dropout = lw.Sequential(model.layers[0], model.layers[1], model.layers[3])
    c = explain(no_dropout, "ce", X, y)
    for with_dropout, without in zip(a.layers, c.layers):
        assert with_dropout.norms == pytest.approx(without.norms, rel=1e-6)


def test_preprocessing_before_the_first_dense_layer_is_applied():
    X, y = data()
    X = 50 + 10 * X
    scaler = lw.Standardize.fit(X, dtype=np.float64)
    model = lw.Sequential(scaler, lw.Dense(5, 3, rng=0, dtype=np.float64))
    report = explain(model, lw.CrossEntropy(), X, y)
    assert len(report.layers) == 1
    assert report.layers[0].norms["A_prev"] == pytest.approx(norm(scaler.transform(X)))


def test_regression_loss_and_float32():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.standard_normal((10, 2)).astype(np.float32)
    report = explain(lw.mlp([4, 8, 2], activation="tanh", rng=0), lw.MSE(), X, y)
    assert report.layers[-1].shapes["dW"] == (2, 8)
    assert report.loss > 0 and np.isfinite(report.loss)


def test_bad_input():
    X, y = data()
    with pytest.raises(lw.ValidationError, match="same number of samples"):
        explain(small_net(), "ce", X, y[:-1])
    with pytest.raises(lw.ValidationError, match="Dense"):
        explain(lw.Sequential(lw.ReLU()), "ce", X, y)
    with pytest.raises(lw.LayerwiseError):
        explain(small_net(), "no-such-loss", X, y)
