"""Initialisers: shapes, dtypes, the variance formulas, reproducibility, names and callables."""

from __future__ import annotations

import math

import numpy as np
import pytest

import layerwise as lw
from layerwise import activations, initializers

N_OUT, N_IN = 300, 700          # fan_in ≠ fan_out, so He, Glorot and LeCun are told apart


def _normal(std):
    return ("normal", std)


def _uniform(limit):
    return ("uniform", limit)


# every registered name → the distribution its paper prescribes, for W of shape (n_out, n_in)
EXPECTED = {
    "zeros": ("zeros", 0.0),
    "normal": _normal(0.01),
    "uniform": _uniform(0.05),
    "xavier_uniform": _uniform(math.sqrt(6 / (N_IN + N_OUT))),
    "glorot_uniform": _uniform(math.sqrt(6 / (N_IN + N_OUT))),
    "xavier": _uniform(math.sqrt(6 / (N_IN + N_OUT))),
    "glorot": _uniform(math.sqrt(6 / (N_IN + N_OUT))),
    "xavier_normal": _normal(math.sqrt(2 / (N_IN + N_OUT))),
    "glorot_normal": _normal(math.sqrt(2 / (N_IN + N_OUT))),
    "he_uniform": _uniform(math.sqrt(6 / N_IN)),
    "kaiming_uniform": _uniform(math.sqrt(6 / N_IN)),
    "he_normal": _normal(math.sqrt(2 / N_IN)),
    "kaiming_normal": _normal(math.sqrt(2 / N_IN)),
    "he": _normal(math.sqrt(2 / N_IN)),
    "kaiming": _normal(math.sqrt(2 / N_IN)),
    "lecun_normal": _normal(math.sqrt(1 / N_IN)),
    "lecun": _normal(math.sqrt(1 / N_IN)),
    "lecun_uniform": _uniform(math.sqrt(3 / N_IN)),
}
NAMES = sorted(initializers.INITIALIZERS)


def draw(name, shape=(N_OUT, N_IN), seed=0, dtype=np.float64):
    return initializers.INITIALIZERS[name](shape, np.random.default_rng(seed), dtype)


def test_every_registered_name_has_an_expected_distribution():
    """A new initialiser must be added to EXPECTED (and so get its statistics checked)."""
    assert set(EXPECTED) == set(initializers.INITIALIZERS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_shape_and_dtype(name, dtype):
    W = draw(name, shape=(5, 3), dtype=dtype)
    assert W.shape == (5, 3) and W.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_empirical_statistics_match_the_formula(name):
    kind, scale = EXPECTED[name]
    W = draw(name)
    if kind == "zeros":
        np.testing.assert_array_equal(W, 0.0)
        return
    std = scale if kind == "normal" else scale / math.sqrt(3)    # U(−a, a) has σ = a/√3
    assert W.std() == pytest.approx(std, rel=0.03)
    assert abs(W.mean()) < 0.02 * std
    if kind == "uniform":
        assert np.abs(W).max() <= scale
        assert np.abs(W).max() > 0.999 * scale
        assert np.mean(np.abs(W) > 2 * std) == 0.0               # no tails beyond √3σ
    else:
        # a Gaussian puts 4.55% of its mass beyond 2σ (a uniform with that σ puts none)
        assert np.mean(np.abs(W) > 2 * std) == pytest.approx(0.0455, abs=0.005)


def test_he_normal_std_uses_fan_in_which_is_the_second_dimension():
    W = initializers.he_normal((N_OUT, N_IN), np.random.default_rng(0), np.float64)
    assert W.std() == pytest.approx(math.sqrt(2 / N_IN), rel=0.05)
    assert abs(W.std() - math.sqrt(2 / N_OUT)) > 0.2 * math.sqrt(2 / N_IN)


@pytest.mark.parametrize("name", NAMES)
def test_same_rng_same_weights(name):
    W1, W2 = draw(name, (20, 10), seed=3), draw(name, (20, 10), seed=3)
    np.testing.assert_array_equal(W1, W2)
    if name != "zeros":
        assert not np.array_equal(W1, draw(name, (20, 10), seed=4))


@pytest.mark.parametrize("name", NAMES)
def test_float32_and_float64_from_the_same_seed_agree(name):
    """Drawn in float64 and cast: float32 weights are the float64 ones rounded."""
    W64 = draw(name, (20, 10), dtype=np.float64)
    W32 = draw(name, (20, 10), dtype=np.float32)
    np.testing.assert_array_equal(W32, W64.astype(np.float32))
    d32 = lw.Dense(10, 20, init=name, rng=5)
    d64 = lw.Dense(10, 20, init=name, rng=5, dtype=np.float64)
    assert d32.W.dtype == np.float32 and d64.W.dtype == np.float64
    np.testing.assert_allclose(d32.W, d64.W, rtol=np.finfo(np.float32).eps, atol=1e-30)


@pytest.mark.parametrize("name", NAMES)
def test_dense_draws_its_weights_with_the_named_initializer(name):
    d = lw.Dense(7, 5, init=name, rng=11)
    np.testing.assert_array_equal(d.W, draw(name, (5, 7), seed=11, dtype=np.float32))
    assert initializers.INITIALIZERS[d.init] is initializers.INITIALIZERS[name]


@pytest.mark.parametrize(("alias", "canonical"), [
    ("he", "he_normal"), ("kaiming", "he_normal"), ("kaiming_uniform", "he_uniform"),
    ("xavier", "xavier_uniform"), ("glorot", "xavier_uniform"),
    ("glorot_normal", "xavier_normal"), ("lecun", "lecun_normal"), ("He_Normal", "he_normal"),
    ("HE", "he_normal"),
])
def test_aliases_resolve_to_one_function_with_a_canonical_name(alias, canonical):
    assert initializers.get(alias) is initializers.INITIALIZERS[canonical]
    assert initializers.name_of(alias) == canonical
    assert lw.Dense(3, 2, init=alias, rng=0).init == canonical


@pytest.mark.parametrize("bad", ["orthogonal", "he-normall", "", 3, None])
def test_unknown_initializer_is_a_config_error_listing_the_valid_names(bad):
    with pytest.raises(lw.ConfigError) as exc:
        initializers.get(bad)
    assert isinstance(exc.value, lw.LayerwiseError)
    msg = str(exc.value)
    assert "initializer" in msg and repr(bad) in msg
    for valid in ("'he_normal'", "'xavier_uniform'", "'lecun_normal'", "'zeros'"):
        assert valid in msg
    with pytest.raises(lw.ConfigError):
        lw.Dense(3, 2, init=bad)


def test_a_callable_initializer_is_accepted():
    calls = []

    def constant_init(shape, rng, dtype):
        calls.append((shape, type(rng), np.dtype(dtype)))
        return np.full(shape, 0.25)                  # float64, cast by Dense

    d = lw.Dense(4, 3, init=constant_init, rng=0)
    assert calls == [((3, 4), np.random.Generator, np.dtype(np.float32))]
    assert d.W.shape == (3, 4) and d.W.dtype == np.float32
    np.testing.assert_array_equal(d.W, 0.25)
    assert d.init == "constant_init"
    assert initializers.get(constant_init) is constant_init
    d64 = lw.Dense(4, 3, init=constant_init, dtype=np.float64, rng=0)
    assert calls[-1][2] == np.float64 and d64.W.dtype == np.float64


def test_a_callable_initializer_of_the_wrong_shape_is_refused_by_dense():
    """Validation at the constructor: W must be (n_out, n_in), not discovered at forward."""
    def transposed(shape, rng, dtype):
        return np.zeros(shape[::-1], dtype)

    with pytest.raises(lw.ValidationError, match=r"\(3, 4\)"):
        lw.Dense(4, 3, init=transposed)


def test_a_callable_initializer_sees_the_layer_rng():
    def normal_init(shape, rng, dtype):
        return rng.standard_normal(shape).astype(dtype)

    a = lw.Dense(4, 3, init=normal_init, rng=9)
    b = lw.Dense(4, 3, init=normal_init, rng=9)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(
        a.W, np.random.default_rng(9).standard_normal((3, 4)).astype(np.float32))


# -- which initialiser suits which activation -----------------------------------------------------
@pytest.mark.parametrize(("activation", "init"), [
    ("relu", "he_normal"), ("ReLU", "he_normal"), ("leaky_relu", "he_normal"),
    ("elu", "he_normal"), ("gelu", "he_normal"),
    ("tanh", "xavier_uniform"), ("sigmoid", "xavier_uniform"), ("identity", "xavier_uniform"),
    ("softmax", "xavier_uniform"), (None, "xavier_uniform"),
])
def test_default_for(activation, init):
    assert activations.default_init(activation) == init


RELU_LIKE = (lw.ReLU, lw.LeakyReLU, lw.ELU, lw.GELU)


@pytest.mark.parametrize("name", [*sorted(activations.ACTIVATIONS), "leaky-relu", "Leaky_ReLU"])
def test_default_for_agrees_with_the_activation_registry(name):
    """Every spelling that gives a ReLU-like layer gets He, every other one Glorot.

    activations.get treats "leakyrelu", "leaky-relu" and "leaky_relu" as the same layer, so
    lw.mlp(..., activation=name) must not pick a different initialiser for them.
    """
    layer = activations.get(name)
    expected = "he_normal" if isinstance(layer, RELU_LIKE) else "xavier_uniform"
    assert activations.default_init(name) == expected
