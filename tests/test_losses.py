"""Losses: values and gradients against direct NumPy formulas, stability, names, targets."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import layerwise as lw
from layerwise import losses

B, K = 7, 3


def rand(shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def log_softmax(Z):
    S = Z - Z.max(axis=1, keepdims=True)
    return S - np.log(np.exp(S).sum(axis=1, keepdims=True))


def value_and_grad(loss: lw.Loss, pred, target):
    L = loss.forward(pred, target)
    assert type(L) is float
    return L, loss.backward().copy()


# -- regression losses ----------------------------------------------------------------------------
def test_mse_is_half_the_squared_norm_per_sample_averaged_over_the_batch():
    a, y = rand((B, K)), rand((B, K), seed=1)
    L, g = value_and_grad(lw.MSE(), a, y)
    expected = np.mean([0.5 * np.sum((a[b] - y[b]) ** 2) for b in range(B)])
    assert L == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(g, (a - y) / B, rtol=1e-14)
    # PyTorch's MSELoss (mean over every element, no ½) is (2/n)·L
    assert 2 / K * L == pytest.approx(np.mean((a - y) ** 2), rel=1e-14)


def test_mae_averages_over_every_element():
    a, y = rand((B, K)), rand((B, K), seed=1)
    L, g = value_and_grad(lw.MAE(), a, y)
    assert L == pytest.approx(np.abs(a - y).mean(), rel=1e-14)
    np.testing.assert_allclose(g, np.sign(a - y) / (B * K), rtol=1e-14)


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber_matches_its_piecewise_definition(delta):
    a, y = rand((B, K), scale=2.0), rand((B, K), seed=1, scale=2.0)
    d = a - y
    assert (np.abs(d) < delta).any() and (np.abs(d) > delta).any()
    L, g = value_and_grad(lw.Huber(delta), a, y)
    per = np.where(np.abs(d) <= delta, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta))
    assert L == pytest.approx(per.mean(), rel=1e-14)
    np.testing.assert_allclose(g, np.clip(d, -delta, delta) / d.size, rtol=1e-14)


def test_huber_default_delta_is_one_and_quadratic_inside():
    a = np.array([[0.5, -0.5, 3.0]])
    L, _ = value_and_grad(lw.Huber(), a, np.zeros_like(a))
    assert L == pytest.approx((0.125 + 0.125 + (3.0 - 0.5)) / 3)


@pytest.mark.parametrize("delta", [0, -1.0, float("nan"), float("inf"), "big"])
def test_huber_rejects_a_bad_delta(delta):
    with pytest.raises(lw.ValidationError, match="Huber delta"):
        lw.Huber(delta)


# -- binary cross-entropy -------------------------------------------------------------------------
@pytest.mark.parametrize("soft", [False, True])
def test_bce_on_logits_matches_the_textbook_formula(soft):
    z = rand((B, 2), scale=3.0)
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 1, (B, 2)) if soft else rng.integers(0, 2, (B, 2)).astype(float)
    L, g = value_and_grad(lw.BinaryCrossEntropy(), z, y)
    p = sigmoid(z)
    assert L == pytest.approx(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(), rel=1e-12)
    np.testing.assert_allclose(g, (p - y) / y.size, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_on_logits_is_stable_for_plus_minus_1000(dtype):
    """No overflow warning (warnings are errors here), no inf: the fused form."""
    z = np.array([[1000.0, 1000.0, -1000.0, -1000.0, 0.0]], dtype)
    y = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]], dtype)
    loss = lw.BinaryCrossEntropy(from_logits=True)
    L, g = value_and_grad(loss, z, y)
    assert math.isfinite(L)
    assert L == pytest.approx((0 + 1000 + 0 + 1000 + math.log(2)) / 5, rel=1e-6)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, [[0.0, 1 / 5, 0.0, -1 / 5, -0.5 / 5]], atol=1e-7)
    probs = loss.output_transform(z)
    np.testing.assert_allclose(probs, [[1, 1, 0, 0, 0.5]])


def test_bce_on_probabilities_after_a_sigmoid():
    p = sigmoid(rand((B, 2), scale=2.0))
    y = np.random.default_rng(3).integers(0, 2, (B, 2)).astype(float)
    loss = lw.BinaryCrossEntropy(from_logits=False)
    L, g = value_and_grad(loss, p, y)
    assert L == pytest.approx(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(), rel=1e-12)
    np.testing.assert_allclose(g, (p - y) / (p * (1 - p)) / y.size, rtol=1e-12)
    assert loss.output_transform(p) is p


def test_bce_on_probabilities_clips_0_and_1():
    p = np.array([[0.0, 1.0, 0.0, 1.0]])
    y = np.array([[0.0, 1.0, 1.0, 0.0]])
    L, g = value_and_grad(lw.BinaryCrossEntropy(from_logits=False), p, y)
    assert math.isfinite(L)
    assert L == pytest.approx(2 * -math.log(1e-7) / 4, rel=1e-6)
    np.testing.assert_array_equal(g, 0.0)      # the clip's derivative


# -- softmax cross-entropy ------------------------------------------------------------------------
def labels_and_onehot(seed=0):
    y = np.random.default_rng(seed).integers(0, K, B)
    return y, np.eye(K)[y]


def test_ce_with_integer_labels_is_minus_mean_log_softmax_of_the_true_class():
    z, (y, Y) = rand((B, K), scale=2.0), labels_and_onehot()
    L, g = value_and_grad(lw.CrossEntropy(), z, y)
    assert L == pytest.approx(-log_softmax(z)[np.arange(B), y].mean(), rel=1e-13)
    np.testing.assert_allclose(g, (np.exp(log_softmax(z)) - Y) / B, rtol=1e-12, atol=1e-15)


def test_ce_integer_labels_and_one_hot_agree():
    z, (y, Y) = rand((B, K), scale=2.0), labels_and_onehot(1)
    L1, g1 = value_and_grad(lw.CrossEntropy(), z, y)
    L2, g2 = value_and_grad(lw.CrossEntropy(), z, Y)
    assert L1 == pytest.approx(L2, rel=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-16)


def test_ce_with_soft_targets():
    z = rand((B, K), scale=2.0)
    T = np.random.default_rng(4).dirichlet(np.ones(K), size=B)
    L, g = value_and_grad(lw.CrossEntropy(), z, T)
    assert L == pytest.approx(-(T * log_softmax(z)).sum(axis=1).mean(), rel=1e-13)
    np.testing.assert_allclose(g, (np.exp(log_softmax(z)) - T) / B, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("eps", [0.1, 0.3, 1.0])
@pytest.mark.parametrize("kind", ["labels", "onehot", "soft"])
def test_ce_label_smoothing_uses_one_minus_eps_t_plus_eps_over_K(eps, kind):
    z, (y, Y) = rand((B, K), scale=2.0), labels_and_onehot(2)
    T = np.random.default_rng(5).dirichlet(np.ones(K), size=B) if kind == "soft" else Y
    target = {"labels": y, "onehot": Y, "soft": T}[kind]
    Ts = (1 - eps) * T + eps / K
    L, g = value_and_grad(lw.CrossEntropy(label_smoothing=eps), z, target)
    assert L == pytest.approx(-(Ts * log_softmax(z)).sum(axis=1).mean(), rel=1e-13)
    np.testing.assert_allclose(g, (np.exp(log_softmax(z)) - Ts) / B, rtol=1e-12, atol=1e-15)


def test_ce_label_smoothing_raises_the_loss_of_a_confident_correct_prediction():
    z = np.array([[10.0, 0.0, 0.0]])
    plain = lw.CrossEntropy().forward(z, np.array([0]))
    smooth = lw.CrossEntropy(label_smoothing=0.1).forward(z, np.array([0]))
    assert smooth > plain > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ce_is_stable_for_huge_logits(dtype):
    z = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0]], dtype)
    y = np.array([2, 1])
    L, g = value_and_grad(lw.CrossEntropy(), z, y)
    assert math.isfinite(L) and np.isfinite(g).all()
    assert L == pytest.approx((2000 + math.log(3)) / 2, rel=1e-6)
    np.testing.assert_allclose(g, [[0.5, 0, -0.5], [1 / 6, -1 / 3, 1 / 6]], atol=1e-6)
    L1, _ = value_and_grad(lw.CrossEntropy(), z, np.eye(3, dtype=dtype)[y])
    assert L1 == pytest.approx(L, rel=1e-6)
    np.testing.assert_allclose(lw.CrossEntropy().output_transform(z).sum(axis=1), 1.0)


@pytest.mark.parametrize("eps", [-0.1, 1.5, "x"])
def test_ce_rejects_label_smoothing_outside_0_1(eps):
    with pytest.raises(lw.ValidationError, match="label_smoothing"):
        lw.CrossEntropy(label_smoothing=eps)


# -- buffers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lw.MSE, lw.MAE, lw.Huber, lw.BinaryCrossEntropy,
                                  lambda: lw.BinaryCrossEntropy(from_logits=False),
                                  lw.CrossEntropy, lambda: lw.CrossEntropy(0.1)],
                         ids=["mse", "mae", "huber", "bce", "bce_probs", "ce", "ce_smooth"])
def test_short_batch_after_a_larger_one(make):
    loss = make()
    fresh = copy.deepcopy(loss)
    rng = np.random.default_rng(0)
    if isinstance(loss, lw.CrossEntropy):
        big, small = (rng.standard_normal((64, K)), rng.integers(0, K, 64)), \
            (rng.standard_normal((5, K)), rng.integers(0, K, 5))
    else:
        big = (rng.uniform(0.05, 0.95, (64, K)), rng.uniform(0, 1, (64, K)))
        small = (rng.uniform(0.05, 0.95, (5, K)), rng.uniform(0, 1, (5, K)))
    value_and_grad(loss, *big)
    L, g = value_and_grad(loss, *small)
    L0, g0 = value_and_grad(fresh, *small)
    assert g.shape == (5, K)
    assert L == pytest.approx(L0, rel=1e-14)
    np.testing.assert_allclose(g, g0, rtol=1e-14)


# -- names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "cls"), [
    ("mse", lw.MSE), ("MSE", lw.MSE), ("mean_squared_error", lw.MSE),
    ("mae", lw.MAE), ("l1", lw.MAE), ("mean_absolute_error", lw.MAE),
    ("huber", lw.Huber),
    ("bce", lw.BinaryCrossEntropy), ("binary_crossentropy", lw.BinaryCrossEntropy),
    ("binary-cross-entropy", lw.BinaryCrossEntropy),
    ("ce", lw.CrossEntropy), ("cross_entropy", lw.CrossEntropy),
    ("crossentropy", lw.CrossEntropy), ("categorical_crossentropy", lw.CrossEntropy),
])
def test_get_by_name(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls
    assert losses.get(loss) is loss


def test_names_give_the_default_configuration():
    assert losses.get("huber").delta == 1.0
    assert losses.get("bce").from_logits is True
    assert losses.get("ce").label_smoothing == 0.0


@pytest.mark.parametrize("bad", ["nll", "mean_squared", "", 3])
def test_unknown_loss_name_lists_the_valid_ones(bad):
    with pytest.raises(lw.ConfigError) as exc:
        losses.get(bad)
    assert isinstance(exc.value, lw.LayerwiseError)
    msg = str(exc.value)
    assert "unknown loss" in msg and repr(bad) in msg
    for valid in ("'mse'", "'mae'", "'huber'", "'bce'", "'ce'", "'cross_entropy'"):
        assert valid in msg


# -- target preparation ---------------------------------------------------------------------------
def bad_target(loss, y, n_out, *words):
    with pytest.raises(lw.ValidationError) as exc:
        loss.prepare_target(y, n_out, np.float64)
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, lw.LayerwiseError)
    msg = str(exc.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


def test_ce_labels_out_of_range():
    bad_target(lw.CrossEntropy(), np.array([0, 1, 3]), 3, "labels in 0..2", "3 outputs",
               "from 0 to 3")
    bad_target(lw.CrossEntropy(), np.array([-1, 0, 2]), 3, "0..2", "from -1 to 2")


def test_ce_non_integer_float_labels():
    bad_target(lw.CrossEntropy(), np.array([0.0, 1.5, 2.0]), 3, "non-integer", "loss='mse'")


def test_ce_integer_valued_float_labels_and_column_labels_are_accepted():
    y = lw.CrossEntropy().prepare_target(np.array([0.0, 2.0, 1.0]), 3, np.float64)
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 1]
    y = lw.CrossEntropy().prepare_target(np.array([[2], [0]]), 3, np.float32)
    assert y.dtype == np.int64 and y.tolist() == [2, 0]


def test_ce_one_hot_targets_are_cast_to_the_model_dtype():
    Y = lw.CrossEntropy().prepare_target(np.eye(3, dtype=np.int64), 3, np.float32)
    assert Y.dtype == np.float32 and Y.shape == (3, 3) and Y.flags.c_contiguous


def test_ce_one_hot_of_the_wrong_width():
    bad_target(lw.CrossEntropy(), np.eye(4)[[0, 1, 3]], 3, "(N, 3)", "received shape (3, 4)")


def test_ce_string_labels():
    bad_target(lw.CrossEntropy(), np.array(["cat", "dog"]), 2, "integer class labels", "dtype")


def test_bce_targets_outside_0_1():
    bad_target(lw.BinaryCrossEntropy(), np.array([[0.0], [1.0], [2.0]]), 1, "[0, 1]",
               "from 0.0 to 2.0")
    bad_target(lw.BinaryCrossEntropy(), np.array([[-0.5, 1.0]]), 2, "[0, 1]", "-0.5")


def test_bce_accepts_labels_and_probabilities():
    y = lw.BinaryCrossEntropy().prepare_target(np.array([0, 1, 1]), 1, np.float32)
    assert y.shape == (3, 1) and y.dtype == np.float32
    p = lw.BinaryCrossEntropy().prepare_target(np.array([[0.2, 1.0]]), 2, np.float64)
    np.testing.assert_array_equal(p, [[0.2, 1.0]])


def test_regression_target_width_mismatch():
    bad_target(lw.MSE(), np.zeros((5, 2)), 3, "MSE", "(N, 3)", "3 outputs",
               "received shape (5, 2)")
    bad_target(lw.Huber(), np.zeros((5, 4)), 1, "Huber", "(N, 1)")


def test_regression_one_dimensional_targets_need_a_single_output():
    y = lw.MSE().prepare_target(np.arange(4), 1, np.float64)
    assert y.shape == (4, 1) and y.dtype == np.float64
    bad_target(lw.MAE(), np.arange(4), 3, "(N, 3)", "received shape (4,)", "loss='ce'")


def test_regression_targets_must_be_numeric():
    bad_target(lw.MSE(), np.array([["a"], ["b"]]), 1, "numeric targets", "dtype")


@pytest.mark.parametrize(("loss", "y", "n_out"), [
    (lw.MSE(), [[1.0], [np.nan]], 1),
    (lw.MAE(), [[0.0, np.inf]], 2),
    (lw.Huber(), [1.0, np.nan, 2.0], 1),
    (lw.BinaryCrossEntropy(), [[0.0], [np.nan]], 1),
    (lw.CrossEntropy(), [[np.nan, 1.0, 0.0]], 3),
], ids=["mse", "mae", "huber", "bce", "ce_onehot"])
def test_non_finite_targets_are_rejected_up_front(loss, y, n_out):
    """X with NaN is refused by as_input; a NaN target slips through prepare_target and fit
    then blames the learning rate ("the loss became nan ... lower the learning rate")."""
    bad_target(loss, np.array(y), n_out, "NaN")


@pytest.mark.parametrize("from_logits", [True, False])
def test_bce_summed_over_outputs_is_k_times_the_mean_with_its_gradient(from_logits):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(6, 4))
    if not from_logits:
        Z = 1 / (1 + np.exp(-Z))
    T = (rng.random((6, 4)) > 0.5).astype(np.float64)
    mean = lw.BinaryCrossEntropy(from_logits=from_logits)
    summed = lw.BinaryCrossEntropy(from_logits=from_logits, sum_outputs=True)
    assert summed.forward(Z, T) == pytest.approx(4 * mean.forward(Z, T), rel=1e-12)
    G = summed.backward().copy()
    np.testing.assert_allclose(G, 4 * mean.backward(), rtol=1e-12)
    num = np.zeros_like(Z)                       # central differences of the summed loss
    for idx in np.ndindex(*Z.shape):
        d = np.zeros_like(Z)
        d[idx] = 1e-6
        num[idx] = (summed.forward(Z + d, T) - summed.forward(Z - d, T)) / 2e-6
    np.testing.assert_allclose(G, num, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(summed.per_sample(Z, T), 4 * mean.per_sample(Z, T), rtol=1e-12)
    assert lw.BinaryCrossEntropy(**summed.config()).sum_outputs
    assert "sum_outputs" not in mean.config()            # old model files read as before


def test_bce_summed_over_outputs_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    Z, T = rng.normal(size=(5, 3)), (rng.random((5, 3)) > 0.5).astype(np.float64)
    loss = lw.BinaryCrossEntropy(sum_outputs=True)
    value, grad = loss.forward(Z, T), loss.backward()
    z = torch.tensor(Z, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        z, torch.tensor(T), reduction="sum") / len(Z)
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-12, atol=1e-15)
