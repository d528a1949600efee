"""Activation layers: values and derivatives against formulas, stability, shapes, registry."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import pytest

import layerwise as lw
from layerwise import activations

_erf = np.vectorize(math.erf, otypes=[np.float64])
SQRT2PI = math.sqrt(2 * math.pi)


def sig(z):
    return 1 / (1 + np.exp(-z))


def gelu_tanh(z):
    return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))


def gelu_tanh_prime(z):
    k = math.sqrt(2 / math.pi)
    t = np.tanh(k * (z + 0.044715 * z**3))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t**2) * k * (1 + 3 * 0.044715 * z**2)


# name: (factory, f(z), f′(z)) written directly from the definitions
ELEMENTWISE: dict[str, tuple[Callable[[], lw.Layer], Callable, Callable]] = {
    "identity": (lw.Identity, lambda z: z, lambda z: np.ones_like(z)),
    "relu": (lw.ReLU, lambda z: np.where(z > 0, z, 0.0), lambda z: (z > 0) * 1.0),
    "leaky_relu": (lw.LeakyReLU, lambda z: np.where(z > 0, z, 0.01 * z),
                   lambda z: np.where(z > 0, 1.0, 0.01)),
    "leaky_relu_0.2": (lambda: lw.LeakyReLU(0.2), lambda z: np.where(z > 0, z, 0.2 * z),
                       lambda z: np.where(z > 0, 1.0, 0.2)),
    "leaky_relu_1.5": (lambda: lw.LeakyReLU(1.5), lambda z: np.where(z > 0, z, 1.5 * z),
                       lambda z: np.where(z > 0, 1.0, 1.5)),
    "sigmoid": (lw.Sigmoid, sig, lambda z: sig(z) * (1 - sig(z))),
    "tanh": (lw.Tanh, np.tanh, lambda z: 1 / np.cosh(z) ** 2),
    "elu": (lw.ELU, lambda z: np.where(z > 0, z, np.exp(z) - 1),
            lambda z: np.where(z > 0, 1.0, np.exp(z))),
    "elu_0.5": (lambda: lw.ELU(0.5), lambda z: np.where(z > 0, z, 0.5 * (np.exp(z) - 1)),
                lambda z: np.where(z > 0, 1.0, 0.5 * np.exp(z))),
    "elu_negative_alpha": (lambda: lw.ELU(-0.5),
                           lambda z: np.where(z > 0, z, -0.5 * (np.exp(z) - 1)),
                           lambda z: np.where(z > 0, 1.0, -0.5 * np.exp(z))),
    "softplus": (lw.Softplus, lambda z: np.log1p(np.exp(z)), sig),
    "gelu": (lw.GELU, lambda z: z * 0.5 * (1 + _erf(z / math.sqrt(2))),
             lambda z: 0.5 * (1 + _erf(z / math.sqrt(2))) + z * np.exp(-z * z / 2) / SQRT2PI),
    "gelu_tanh": (lambda: lw.GELU("tanh"), gelu_tanh, gelu_tanh_prime),
}
ALL = {**{k: v[0] for k, v in ELEMENTWISE.items()}, "softmax": lw.Softmax}

# a grid that avoids the kinks at exactly 0, plus random values
Z_GRID = np.concatenate([np.linspace(-6, 6, 48),
                         np.random.default_rng(0).standard_normal(48) * 3]).reshape(8, 12)


def softmax_ref(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


# -- values and derivatives -----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_forward_matches_the_definition(name):
    make, f, _ = ELEMENTWISE[name]
    A = make().forward(Z_GRID.copy())
    np.testing.assert_allclose(A, f(Z_GRID), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_backward_is_dA_times_the_analytic_derivative(name):
    make, _, df = ELEMENTWISE[name]
    layer = make()
    layer.forward(Z_GRID.copy(), training=True)
    dA = np.random.default_rng(1).standard_normal(Z_GRID.shape)
    np.testing.assert_allclose(layer.backward(dA), dA * df(Z_GRID), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(layer.backward(np.ones_like(dA)), df(Z_GRID), rtol=1e-10,
                               atol=1e-14)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_derivative_is_computed_from_the_output(name):
    """f′ from A: overwriting the input after forward must not change backward."""
    make, _, df = ELEMENTWISE[name]
    layer = make()
    Z = Z_GRID.copy()
    layer.forward(Z, training=True)
    Z[...] = np.nan                                  # the caller reuses its buffer
    np.testing.assert_allclose(layer.backward(np.ones_like(Z)), df(Z_GRID), rtol=1e-10,
                               atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 12), (64, 64), (128, 800)], ids=["small", "4096", "large"])
def test_relu_is_exact_on_both_code_paths(shape, dtype):
    """ReLU computes f′ with sign() below 4096 elements and a boolean mask above; both give
    exactly max(Z, 0) and dA·𝟙[Z > 0], with exact zeros in the input included."""
    rng = np.random.default_rng(3)
    Z = rng.standard_normal(shape).astype(dtype)
    Z[::3, ::5] = 0.0
    dA = rng.standard_normal(shape).astype(dtype)
    layer = lw.ReLU()
    np.testing.assert_array_equal(layer.forward(Z, training=True), np.where(Z > 0, Z, 0))
    np.testing.assert_array_equal(layer.backward(dA), np.where(Z > 0, dA, 0))
    assert layer.backward(dA).dtype == dtype


def test_subgradients_at_zero_follow_pytorch():
    z = np.zeros((1, 3))
    for layer, expected in [(lw.ReLU(), 0.0), (lw.LeakyReLU(0.2), 0.2), (lw.ELU(0.5), 0.5)]:
        layer.forward(z)
        np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), expected)


def test_softmax_forward_and_jacobian_vector_backward():
    sm = lw.Softmax()
    Z = Z_GRID.copy()
    A = sm.forward(Z)
    np.testing.assert_allclose(A, softmax_ref(Z_GRID), rtol=1e-12)
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-14)
    assert (A > 0).all()
    dA = np.random.default_rng(2).standard_normal(Z.shape)
    dZ = sm.backward(dA)
    for b in range(Z.shape[0]):                      # dZ = Jᵀ dA, J_kj = A_k(δ_kj − A_j)
        a = softmax_ref(Z_GRID[b:b + 1])[0]
        J = np.diag(a) - np.outer(a, a)
        np.testing.assert_allclose(dZ[b], J.T @ dA[b], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dZ.sum(axis=1), 0.0, atol=1e-12)   # shift invariance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_for_huge_logits(dtype):
    Z = np.array([[1000.0, 999.0, 0.0], [-1000.0, -1000.0, -1000.0], [1e4, -1e4, 1e4]], dtype)
    A = lw.Softmax().forward(Z)
    assert np.isfinite(A).all()
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-6)
    e = math.exp(-1)
    np.testing.assert_allclose(A[0], [1 / (1 + e), e / (1 + e), 0.0], rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(A[1], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(A[2], [0.5, 0.0, 0.5], rtol=1e-6)
    shifted = lw.Softmax().forward(np.array([[1.0, 0.0, -999.0]], dtype))
    np.testing.assert_allclose(A[0], shifted[0], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_plus_minus_1000(dtype):
    """No overflow warning (warnings are errors here), exact limits, zero derivative."""
    Z = np.array([[-1000.0, -100.0, 0.0, 100.0, 1000.0]], dtype)
    s = lw.Sigmoid()
    A = s.forward(Z)
    assert A.dtype == dtype
    np.testing.assert_array_equal(A[0, [0, 4]], [0.0, 1.0])
    assert A[0, 2] == 0.5
    dZ = s.backward(np.ones_like(Z))
    assert np.isfinite(dZ).all()
    np.testing.assert_array_equal(dZ[0, [0, 4]], 0.0)
    assert dZ[0, 2] == 0.25


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturating_activations_are_finite_at_plus_minus_1000(dtype):
    Z = np.array([[-1000.0, -50.0, 50.0, 1000.0]], dtype)
    for layer in [lw.Tanh(), lw.ELU(), lw.Softplus(), lw.GELU(), lw.GELU("tanh"),
                  lw.LeakyReLU(), lw.ReLU()]:
        A = layer.forward(Z)
        dZ = layer.backward(np.ones_like(Z))
        assert np.isfinite(A).all() and np.isfinite(dZ).all(), repr(layer)
        assert A.dtype == dZ.dtype == dtype, repr(layer)
        np.testing.assert_allclose(A[0, 3], 1000.0 if not isinstance(layer, lw.Tanh) else 1.0)
    np.testing.assert_allclose(lw.ELU(0.5).forward(Z)[0, 0], -0.5)


def test_softplus_matches_log1p_exp_and_is_linear_above_20():
    sp = lw.Softplus()
    z = np.linspace(-30, 19.9, 200).reshape(4, 50)
    np.testing.assert_allclose(sp.forward(z), np.log1p(np.exp(z)), rtol=1e-12)
    big = np.array([[20.5, 25.0, 100.0, 1e6]])
    A = sp.forward(big)
    np.testing.assert_array_equal(A, big)                       # exactly z above the threshold
    np.testing.assert_array_equal(sp.backward(np.ones_like(big)), 1.0)
    neg = np.array([[-1000.0, -745.0, -50.0]])
    A = sp.forward(neg)
    assert (A >= 0).all() and A[0, 0] == 0.0
    np.testing.assert_allclose(A[0, 2], math.exp(-50), rtol=1e-10)
    np.testing.assert_allclose(sp.backward(np.ones_like(neg))[0, 2], sig(-50.0), rtol=1e-10)


def test_softplus_threshold_is_configurable():
    sp = lw.Softplus(threshold=5.0)
    np.testing.assert_array_equal(sp.forward(np.array([[6.0]])), [[6.0]])
    assert sp.config() == {"threshold": 5.0}


def test_gelu_tanh_approximation_is_close_to_exact():
    z = np.linspace(-5, 5, 101).reshape(1, -1)
    exact, approx = lw.GELU().forward(z).copy(), lw.GELU("tanh").forward(z)
    assert 0 < np.abs(exact - approx).max() < 1e-3


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(lw.ConfigError, match=r"'none' or 'tanh'.*'fast'"):
        lw.GELU(approximate="fast")


def test_identity_passes_arrays_through():
    Z = Z_GRID.copy()
    ident = lw.Identity()
    assert ident.forward(Z) is Z
    assert ident.backward(Z) is Z


# -- shapes, dtypes, buffers ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B", [1, 7])
@pytest.mark.parametrize("name", list(ALL))
def test_shapes_and_dtypes(name, B, dtype):
    layer = ALL[name]()
    Z = np.random.default_rng(B).standard_normal((B, 5)).astype(dtype)
    A = layer.forward(Z, training=True)
    assert A.shape == (B, 5) and A.dtype == dtype
    dZ = layer.backward(np.ones((B, 5), dtype))
    assert dZ.shape == (B, 5) and dZ.dtype == dtype
    assert layer.params() == [] and layer.output_size(5) == 5


@pytest.mark.parametrize("name", list(ALL))
def test_short_batch_after_a_larger_one_matches_a_fresh_layer(name):
    layer = ALL[name]()
    fresh = copy.deepcopy(layer)
    rng = np.random.default_rng(3)
    big, small = rng.standard_normal((64, 6)), rng.standard_normal((5, 6))
    layer.forward(big, training=True)
    layer.backward(np.ones((64, 6)))
    A = layer.forward(small, training=True)
    assert A.shape == (5, 6)
    np.testing.assert_allclose(A, fresh.forward(small, training=True), rtol=1e-13)
    dA = rng.standard_normal((5, 6))
    dZ = layer.backward(dA)
    assert dZ.shape == (5, 6)
    np.testing.assert_allclose(dZ, fresh.backward(dA), rtol=1e-12)


# -- registry -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "cls"), [
    ("identity", lw.Identity), ("linear", lw.Identity), ("relu", lw.ReLU), ("ReLU", lw.ReLU),
    ("leaky_relu", lw.LeakyReLU), ("leaky-relu", lw.LeakyReLU), ("leakyrelu", lw.LeakyReLU),
    ("sigmoid", lw.Sigmoid), ("tanh", lw.Tanh), ("elu", lw.ELU), ("softplus", lw.Softplus),
    ("gelu", lw.GELU), ("softmax", lw.Softmax),
])
def test_get_by_name(name, cls):
    layer = activations.get(name)
    assert type(layer) is cls
    assert activations.get(layer) is layer


def test_every_registered_name_resolves_to_an_activation_of_that_kind():
    for name in activations.ACTIVATIONS:
        layer = activations.get(name)
        assert isinstance(layer, activations.Activation)
        assert layer.kind.replace("_", "") == name.replace("_", "") or name == "linear"


def test_defaults_and_config():
    assert lw.LeakyReLU().alpha == 0.01 and lw.LeakyReLU().config() == {"alpha": 0.01}
    assert lw.ELU().alpha == 1.0 and lw.ELU(0.5).config() == {"alpha": 0.5}
    assert lw.GELU().config() == {"approximate": "none"}
    assert repr(lw.LeakyReLU(0.2)) == "LeakyReLU(alpha=0.2)"


@pytest.mark.parametrize("bad", ["swish", "", "relu6", 3])
def test_unknown_activation_name_lists_the_valid_ones(bad):
    with pytest.raises(lw.ConfigError) as exc:
        activations.get(bad)
    assert isinstance(exc.value, lw.LayerwiseError) and isinstance(exc.value, TypeError)
    msg = str(exc.value)
    assert repr(bad) in msg and "expected one of" in msg
    for valid in ("relu", "tanh", "sigmoid", "gelu", "softmax"):
        assert f"'{valid}'" in msg


@pytest.mark.parametrize("make", [lambda: lw.LeakyReLU(alpha="steep"),
                                  lambda: lw.ELU(alpha=None),
                                  lambda: lw.Softplus(threshold="high")],
                         ids=["leaky_relu_alpha", "elu_alpha", "softplus_threshold"])
def test_activation_constructors_reject_non_numbers_with_a_layerwise_error(make):
    """Every error on bad input derives from LayerwiseError (DESIGN: public API contract);
    float(alpha) alone raises a bare ValueError/TypeError that names no argument."""
    with pytest.raises(lw.LayerwiseError, match=r"alpha|threshold"):
        make()
