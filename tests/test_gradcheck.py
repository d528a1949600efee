"""Gradient checks: every layer, activation and loss against float64 central differences.

Each layer is wrapped as Dense → layer → Dense, built in float64, and checked for batch sizes
1, 7 and 64 with every element (``max_elements=None``). Layers and losses with kinks (ReLU,
LeakyReLU, ELU(α≠1), MAE, Huber) get data placed at least ~1e-2 away from the kink, so the
checks are deterministic. The second half shows the check fails on a broken backward.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable

import numpy as np
import pytest

import layerwise as lw

gradcheck_mod = importlib.import_module("layerwise.gradcheck")

BATCHES = (1, 7, 64)
F64 = np.float64
N_IN, HIDDEN, N_OUT = 4, 6, 3


# -- helpers --------------------------------------------------------------------------------------
def dense(n_in: int, n_out: int, seed: int, **kw) -> lw.Dense:
    return lw.Dense(n_in, n_out, dtype=F64, rng=seed, **kw)


def sandwich(layer: lw.Layer, n_out: int = N_OUT, init: str = "xavier_uniform",
             seed: int = 0) -> lw.Sequential:
    """Dense(4, 6) → layer → Dense(6, n_out), float64."""
    return lw.Sequential(dense(N_IN, HIDDEN, seed, init=init), layer,
                         dense(HIDDEN, n_out, seed + 1))


def inputs(B: int, n: int = N_IN, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(100 + 7 * B + seed).standard_normal((B, n))


def clear_kinks(model: lw.Sequential, X: np.ndarray, i: int = 0) -> lw.Sequential:
    """Set the bias of Dense layer ``i`` so no pre-activation lies near 0 (a ReLU-type kink).

    Per unit, the bias splits the batch at the widest gap among the middle half of the sorted
    pre-activations, so both sides of the kink are exercised (for B = 1: alternate sides).
    """
    d = model.layers[i]
    Z = X @ d.W.T
    for j in range(Z.shape[1]):
        v = np.sort(Z[:, j])
        if len(v) == 1:
            c = v[0] + (0.5 if j % 2 else -0.5)
        else:
            lo, hi = len(v) // 4, len(v) - 1 - len(v) // 4
            k = lo + int(np.argmax(np.diff(v[lo:hi + 1])))
            c = 0.5 * (v[k] + v[k + 1])
        d.b[j] = -c
    margin = np.abs(X @ d.W.T + d.b).min()
    assert margin > 1e-3, f"could not clear the kink (margin {margin:.1e})"
    return model


def outputs(model: lw.Sequential, X: np.ndarray) -> np.ndarray:
    return model.forward(X).copy()


def away_from(out: np.ndarray, kinks: tuple[float, ...], seed: int) -> np.ndarray:
    """Targets y = out − d with |d| in bands that stay >= 0.1·scale from every |d| = kink."""
    rng = np.random.default_rng(seed)
    bounds = sorted({0.0, *kinks})
    bands = [(a + 0.1 * max(b - a, 0.5), b - 0.1 * max(b - a, 0.5))
             for a, b in zip(bounds, bounds[1:])]
    bands.append((bounds[-1] + 0.2, bounds[-1] + 2.0))
    which = rng.integers(0, len(bands), out.shape)
    lo = np.array([b[0] for b in bands])[which]
    hi = np.array([b[1] for b in bands])[which]
    d = rng.uniform(lo, hi) * rng.choice([-1.0, 1.0], out.shape)
    return out - d


def check(model: lw.Sequential, loss, X, y, **kw) -> lw.GradcheckReport:
    """Run the check on every element and assert it passes, showing the table if it does not."""
    kw.setdefault("max_elements", None)
    report = lw.gradcheck(model, loss, X, y, **kw)
    expected = {p.name for p in model.parameters()} | {"input"}
    assert set(report.max_rel_error) == expected
    assert report.passed, "\n" + str(report)
    assert "FAIL" not in str(report)
    return report


# -- every layer and activation -------------------------------------------------------------------
# (factory, has a kink at 0)
ACTIVATIONS: dict[str, tuple[Callable[[], lw.Layer], bool]] = {
    "identity": (lw.Identity, False),
    "relu": (lw.ReLU, True),
    "leaky_relu_0.01": (lambda: lw.LeakyReLU(alpha=0.01), True),
    "leaky_relu_0.2": (lambda: lw.LeakyReLU(alpha=0.2), True),
    "sigmoid": (lw.Sigmoid, False),
    "tanh": (lw.Tanh, False),
    "gelu_none": (lambda: lw.GELU(approximate="none"), False),
    "gelu_tanh": (lambda: lw.GELU(approximate="tanh"), False),
    "softplus": (lw.Softplus, False),
    "elu_1": (lambda: lw.ELU(alpha=1.0), True),
    "elu_0.5": (lambda: lw.ELU(alpha=0.5), True),
    "elu_negative_alpha": (lambda: lw.ELU(alpha=-0.5), True),
    "softmax": (lw.Softmax, False),
}


@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_between_dense_layers(name, B):
    make, kinked = ACTIVATIONS[name]
    X = inputs(B)
    model = sandwich(make())
    if kinked:
        clear_kinks(model, X)
    check(model, lw.MSE(), X, inputs(B, N_OUT, seed=1))


@pytest.mark.parametrize("B", BATCHES)
def test_softmax_as_output_layer_with_its_jacobian_vector_backward(B):
    """Softmax last, MSE against soft targets: only the full Jacobian product passes."""
    model = lw.Sequential(dense(N_IN, HIDDEN, 0), lw.Tanh(), dense(HIDDEN, N_OUT, 1),
                          lw.Softmax())
    T = np.random.default_rng(B).dirichlet(np.ones(N_OUT), size=B)
    check(model, lw.MSE(), inputs(B), T)


@pytest.mark.parametrize("B", BATCHES)
def test_relu_with_both_sides_of_the_kink_exercised(B):
    """clear_kinks really leaves active and inactive units (else ReLU would be a linear test)."""
    X = inputs(B)
    model = clear_kinks(sandwich(lw.ReLU()), X)
    Z = model.layers[0].forward(X).copy()
    assert (Z > 0).any() and (Z < 0).any()
    check(model, lw.MSE(), X, inputs(B, N_OUT, seed=1))


@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("init", ["xavier_uniform", "xavier_normal", "he_normal", "he_uniform",
                                  "lecun_normal", "lecun_uniform", "normal", "uniform"])
def test_dense_with_different_inits(init, B):
    check(sandwich(lw.Tanh(), init=init), lw.MSE(), inputs(B), inputs(B, N_OUT, seed=2))


@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("bias", [True, False])
def test_single_dense_layer(bias, B):
    model = lw.Sequential(dense(N_IN, N_OUT, 3, bias=bias))
    report = check(model, lw.MSE(), inputs(B), inputs(B, N_OUT, seed=3))
    assert ("0.b" in report.max_rel_error) is bias


@pytest.mark.parametrize("B", BATCHES)
def test_dense_without_bias_in_a_network(B):
    model = lw.Sequential(dense(N_IN, HIDDEN, 0, bias=False, init="he_normal"), lw.Sigmoid(),
                          dense(HIDDEN, N_OUT, 1, bias=False))
    report = check(model, lw.MSE(), inputs(B), inputs(B, N_OUT, seed=4))
    assert set(report.max_rel_error) == {"0.W", "2.W", "input"}


@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_in_training_mode_with_a_fixed_mask(p, B):
    model = lw.Sequential(dense(N_IN, HIDDEN, 0), lw.Tanh(), lw.Dropout(p, rng=5),
                          dense(HIDDEN, N_OUT, 1))
    X = inputs(B)
    check(model, lw.MSE(), X, inputs(B, N_OUT, seed=5), training=True)
    if B > 1:   # the mask really drops units, so this is not the identity in disguise
        probe = copy.deepcopy(model)
        trained = probe.forward(X, training=True).copy()    # outputs are reused buffers
        assert not np.allclose(trained, probe.forward(X, training=False))


@pytest.mark.parametrize("B", BATCHES)
def test_dropout_after_relu_in_training_mode(B):
    X = inputs(B)
    model = lw.Sequential(dense(N_IN, HIDDEN, 0, init="he_normal"), lw.ReLU(),
                          lw.Dropout(0.3, rng=1), dense(HIDDEN, N_OUT, 1))
    clear_kinks(model, X)
    check(model, lw.MSE(), X, inputs(B, N_OUT, seed=6), training=True)


@pytest.mark.parametrize("B", BATCHES)
def test_mlp_with_two_dropout_layers_sharing_one_generator(B):
    """lw.mlp hands one Generator to every Dropout: the check must still fix both masks."""
    model = lw.mlp([N_IN, 6, 5, N_OUT], activation="tanh", dropout=0.4, dtype=F64, rng=0)
    drops = [layer for layer in model.layers if isinstance(layer, lw.Dropout)]
    assert len(drops) == 2 and drops[0].rng is drops[1].rng
    check(model, lw.CrossEntropy(), inputs(B), np.arange(B) % N_OUT, training=True)


@pytest.mark.parametrize("B", BATCHES)
def test_dropout_in_inference_mode_is_the_identity(B):
    model = sandwich(lw.Dropout(0.5, rng=0))
    check(model, lw.MSE(), inputs(B), inputs(B, N_OUT, seed=7), training=False)


@pytest.mark.parametrize("B", BATCHES)
def test_deeper_network_mixing_every_activation(B):
    X = inputs(B)
    model = lw.Sequential(
        dense(N_IN, 5, 0), lw.GELU(), dense(5, 5, 1), lw.ELU(), dense(5, 5, 2), lw.Softplus(),
        dense(5, 5, 3), lw.Sigmoid(), dense(5, 5, 4), lw.Softmax(), dense(5, N_OUT, 5))
    check(model, lw.CrossEntropy(), X, np.arange(B) % N_OUT)


# -- every loss -----------------------------------------------------------------------------------
def _loss_case(name: str, B: int) -> tuple[lw.Sequential, lw.Loss, np.ndarray, np.ndarray]:
    X = inputs(B)
    rng = np.random.default_rng(10 + B)
    labels = rng.integers(0, N_OUT, B)
    if name == "mse":
        return sandwich(lw.Tanh()), lw.MSE(), X, rng.standard_normal((B, N_OUT))
    if name.startswith(("mae", "huber")):
        model = sandwich(lw.Tanh())
        if name == "mae":
            loss, kinks = lw.MAE(), ()
        else:
            delta = float(name.split("_")[1])
            loss, kinks = lw.Huber(delta=delta), (delta,)
        return model, loss, X, away_from(outputs(model, X), kinks, seed=B)
    if name == "bce_logits":
        return sandwich(lw.Tanh(), n_out=2), lw.BinaryCrossEntropy(), X, \
            rng.integers(0, 2, (B, 2)).astype(F64)
    if name == "bce_logits_soft":
        return sandwich(lw.Tanh(), n_out=2), lw.BinaryCrossEntropy(from_logits=True), X, \
            rng.uniform(0, 1, (B, 2))
    if name == "bce_probs":
        model = lw.Sequential(dense(N_IN, HIDDEN, 0), lw.Tanh(), dense(HIDDEN, 2, 1),
                              lw.Sigmoid())
        return model, lw.BinaryCrossEntropy(from_logits=False), X, \
            rng.integers(0, 2, (B, 2)).astype(F64)
    model = sandwich(lw.Tanh())
    if name == "ce_labels":
        return model, lw.CrossEntropy(), X, labels
    if name == "ce_onehot":
        return model, lw.CrossEntropy(), X, np.eye(N_OUT)[labels]
    if name == "ce_soft":
        return model, lw.CrossEntropy(), X, rng.dirichlet(np.ones(N_OUT), size=B)
    if name == "ce_smooth_labels":
        return model, lw.CrossEntropy(label_smoothing=0.1), X, labels
    if name == "ce_smooth_onehot":
        return model, lw.CrossEntropy(label_smoothing=0.25), X, np.eye(N_OUT)[labels]
    raise AssertionError(name)


LOSS_CASES = ["mse", "mae", "huber_1.0", "huber_0.3", "bce_logits", "bce_logits_soft",
              "bce_probs", "ce_labels", "ce_onehot", "ce_soft", "ce_smooth_labels",
              "ce_smooth_onehot"]


@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("name", LOSS_CASES)
def test_loss(name, B):
    model, loss, X, y = _loss_case(name, B)
    check(model, loss, X, y)


@pytest.mark.parametrize("B", [7, 64])
def test_huber_targets_really_cover_both_regimes(B):
    """The Huber check is only meaningful if some |a − y| fall below δ and some above."""
    model, _, X, y = _loss_case("huber_0.3", B)
    d = np.abs(outputs(model, X) - y)
    assert (d < 0.3).any() and (d > 0.3).any()
    assert np.abs(d - 0.3).min() > 1e-2 and d.min() > 1e-2


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "bce", "ce", "cross_entropy"])
def test_loss_given_by_name(name):
    B = 7
    X = inputs(B)
    model = sandwich(lw.Tanh())
    if name in ("mae", "huber"):
        y = away_from(outputs(model, X), (1.0,), seed=0)
    elif name == "bce":
        y = np.random.default_rng(0).integers(0, 2, (B, N_OUT)).astype(F64)
    elif name in ("ce", "cross_entropy"):
        y = np.arange(B) % N_OUT
    else:
        y = inputs(B, N_OUT, seed=9)
    check(model, name, X, y)


# -- the report and the check's own contract ------------------------------------------------------
def test_report_counts_every_element_and_max_elements_subsamples():
    B = 7
    model = sandwich(lw.Tanh())
    X, y = inputs(B), inputs(B, N_OUT, seed=1)
    full = check(model, lw.MSE(), X, y)
    assert full.checked == {"0.W": 24, "0.b": 6, "2.W": 18, "2.b": 3, "input": B * N_IN}
    part = lw.gradcheck(model, lw.MSE(), X, y, max_elements=5)
    assert part.passed
    assert part.checked == {"0.W": 5, "0.b": 5, "2.W": 5, "2.b": 3, "input": 5}


def test_report_errors_are_tiny_for_a_correct_backward():
    model = sandwich(lw.Sigmoid())
    report = check(model, lw.MSE(), inputs(7), inputs(7, N_OUT, seed=1))
    assert 0 < report.worst < 1e-7


def test_tol_decides_pass_or_fail_for_a_slightly_wrong_gradient(monkeypatch):
    """A derivative 1e-4 too large: relative error ~1e-4, over 1e-6 but under 1e-3."""
    original = lw.Tanh._df

    def off_by_1e4(self, dA, dZ):
        original(self, dA, dZ)
        dZ *= 1 + 1e-4

    monkeypatch.setattr(lw.Tanh, "_df", off_by_1e4)
    model = sandwich(lw.Tanh())
    X, y = inputs(7), inputs(7, N_OUT, seed=1)
    strict = lw.gradcheck(model, lw.MSE(), X, y, max_elements=None)
    assert not strict.passed and not bool(strict)
    assert 3e-5 < strict.max_rel_error["0.W"] < 3e-4
    assert strict.max_rel_error["2.W"] < 1e-6
    assert "FAIL" in str(strict)
    loose = lw.gradcheck(model, lw.MSE(), X, y, tol=1e-3, max_elements=None)
    assert loose.passed and bool(loose)


def test_report_str_is_a_readable_table():
    report = lw.GradcheckReport({"0.W": 2e-11, "0.b": 0.5, "input": 1e-10}, tol=1e-6,
                                checked={"0.W": 24, "0.b": 6, "input": 28})
    text = str(report)
    lines = text.splitlines()
    assert lines[0].split() == ["parameter", "max", "rel", "error", "elements", "result"]
    assert lines[1].split()[0] == "0.W" and lines[1].split()[-1] == "ok"
    assert lines[2].split()[0] == "0.b" and lines[2].split()[-1] == "FAIL"
    assert lines[2].split()[2] == "6"
    assert "FAILED" in lines[-1] and "1.0e-06" in lines[-1]
    assert not report.passed and report.worst == 0.5
    ok = lw.GradcheckReport({"0.W": 2e-11}, tol=1e-6)
    assert ok.passed and "PASSED" in str(ok) and "FAIL" not in str(ok)


def test_gradcheck_leaves_the_model_unchanged_and_checks_a_float32_model_in_float64():
    model = lw.Sequential(lw.Dense(N_IN, HIDDEN, rng=0), lw.Tanh(), lw.Dropout(0.5, rng=1),
                          lw.Dense(HIDDEN, N_OUT, rng=1))
    before = [p.value.copy() for p in model.parameters()]
    rng_state = copy.deepcopy(model.layers[2].rng.bit_generator.state)
    X = inputs(7).astype(np.float32)
    check(model, lw.MSE(), X, inputs(7, N_OUT, seed=1), training=True)
    for p, v in zip(model.parameters(), before):
        assert p.value.dtype == np.float32
        np.testing.assert_array_equal(p.value, v)
    assert model.layers[2].rng.bit_generator.state == rng_state      # no mask drawn from it


def test_gradcheck_in_float32_with_a_larger_step():
    model = sandwich(lw.Tanh())
    X, y = inputs(7), inputs(7, N_OUT, seed=1)
    report = lw.gradcheck(model, lw.MSE(), X, y, dtype=np.float32, eps=1e-2, tol=1e-2,
                          max_elements=None)
    assert report.passed, "\n" + str(report)


def test_gradcheck_rejects_a_non_float_dtype():
    with pytest.raises(lw.ConfigError, match="float32 or float64"):
        lw.gradcheck(sandwich(lw.Tanh()), "mse", inputs(2), inputs(2, N_OUT), dtype=np.int32)


# -- the check can fail ---------------------------------------------------------------------------
def _fit_case(B: int = 7):
    return inputs(B), inputs(B, N_OUT, seed=11)


def _assert_fails(report: lw.GradcheckReport, bad: set[str], good: set[str], at_least=0.1):
    assert not report.passed
    text = str(report)
    assert "FAIL" in text and "FAILED" in text
    for name in bad:
        assert report.max_rel_error[name] > at_least, f"{name} not flagged\n{text}"
        line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
        assert line.endswith("FAIL")
    for name in good:
        assert report.max_rel_error[name] <= report.tol, f"{name} wrongly flagged\n{text}"


def test_check_fails_when_sigmoid_derivative_is_A_instead_of_A_times_1_minus_A(monkeypatch):
    def broken(self, dA, dZ):
        np.multiply(dA, self._A, out=dZ)                # σ′ written as A, not A(1 − A)

    monkeypatch.setattr(lw.Sigmoid, "_df", broken)
    monkeypatch.setattr(lw.Sigmoid, "in_place", False)  # backward, not backward_over
    X, y = _fit_case()
    report = lw.gradcheck(sandwich(lw.Sigmoid()), lw.MSE(), X, y, max_elements=None)
    # everything below the broken layer is wrong, the layer above it is still right
    _assert_fails(report, bad={"0.W", "0.b", "input"}, good={"2.W", "2.b"}, at_least=0.5)


def test_check_fails_when_dense_backward_drops_the_bias_gradient(monkeypatch):
    original = lw.Dense.backward

    def no_db(self, dZ, input_grad=True):
        out = original(self, dZ, input_grad)
        self.db[...] = 0.0                              # db forgotten
        return out

    monkeypatch.setattr(lw.Dense, "backward", no_db)
    X, y = _fit_case()
    report = lw.gradcheck(sandwich(lw.Tanh()), lw.MSE(), X, y, max_elements=None)
    _assert_fails(report, bad={"0.b", "2.b"}, good={"0.W", "2.W", "input"}, at_least=0.99)


def test_check_fails_on_a_wrong_sign(monkeypatch):
    original = lw.Tanh._df

    def flipped(self, dA, dZ):
        original(self, dA, dZ)
        np.negative(dZ, out=dZ)                         # −f′ instead of f′

    monkeypatch.setattr(lw.Tanh, "_df", flipped)
    X, y = _fit_case()
    report = lw.gradcheck(sandwich(lw.Tanh()), lw.MSE(), X, y, max_elements=None)
    # a flipped sign gives |a − (−a)| / |a| = 2
    _assert_fails(report, bad={"0.W", "0.b", "input"}, good={"2.W", "2.b"}, at_least=1.5)


def test_check_fails_when_softmax_backward_uses_only_the_jacobian_diagonal(monkeypatch):
    def diagonal(self, dA, dZ):
        np.multiply(dA, self._A * (1 - self._A), out=dZ)   # misses −A_k A_j off the diagonal

    monkeypatch.setattr(lw.Softmax, "_df", diagonal)
    X, y = _fit_case()
    report = lw.gradcheck(sandwich(lw.Softmax()), lw.MSE(), X, y, max_elements=None)
    _assert_fails(report, bad={"0.W", "input"}, good={"2.W", "2.b"})


def test_check_fails_when_the_loss_gradient_is_not_divided_by_the_batch(monkeypatch):
    def unscaled(self):
        return self._D                                  # (a − y), missing the 1/B

    monkeypatch.setattr(lw.MSE, "backward", unscaled)
    X, y = _fit_case(B=7)
    report = lw.gradcheck(sandwich(lw.Tanh()), lw.MSE(), X, y, max_elements=None)
    # analytic = 7 × numeric: relative error 6/7 everywhere
    _assert_fails(report, bad={"0.W", "0.b", "2.W", "2.b", "input"}, good=set(), at_least=0.8)


def test_check_fails_on_a_wrong_leaky_relu_slope(monkeypatch):
    def slope_one_tenth(self, dA, dZ):
        np.multiply(dA, np.where(self._Z > 0, 1.0, 0.1), out=dZ)   # 0.1 instead of α

    monkeypatch.setattr(lw.LeakyReLU, "_df", slope_one_tenth)
    X, y = _fit_case()
    model = clear_kinks(sandwich(lw.LeakyReLU(alpha=0.2)), X)
    report = lw.gradcheck(model, lw.MSE(), X, y, max_elements=None)
    _assert_fails(report, bad={"0.W", "input"}, good={"2.W", "2.b"}, at_least=1e-3)


def test_dropout_check_needs_the_fixed_mask(monkeypatch):
    """Without restoring the generator, each evaluation draws a new mask and the check fails."""
    model = lw.Sequential(dense(N_IN, HIDDEN, 0), lw.Tanh(), lw.Dropout(0.5, rng=5),
                          dense(HIDDEN, N_OUT, 1))
    X, y = _fit_case(B=16)
    check(model, lw.MSE(), X, y, training=True)
    monkeypatch.setattr(gradcheck_mod, "_restore_rngs", lambda net, states: None)
    report = lw.gradcheck(model, lw.MSE(), X, y, training=True, max_elements=None)
    assert not report.passed
    assert report.max_rel_error["0.W"] > 0.1
