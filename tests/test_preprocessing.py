"""Standardize: fitted constants, forward/backward, gradient check, model files, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw
from layerwise.preprocessing import SCALINGS, Standardize


def raw(n=50, seed=0):
    """Features on very different scales, with one constant column (index 2)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)) * [1.0, 100.0, 0.0, 1e-3] + [0.0, 5000.0, 7.0, -3.0]
    return X


def test_fit_standard():
    X = raw()
    s = Standardize.fit(X, "standard", dtype=np.float64)
    np.testing.assert_allclose(s.offset, X.mean(axis=0), rtol=1e-12)
    expected_scale = X.std(axis=0)
    expected_scale[2] = 1.0                                      # constant column
    np.testing.assert_allclose(s.scale, expected_scale, rtol=1e-12)
    A = s.transform(X)
    np.testing.assert_allclose(A.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(A.std(axis=0)[[0, 1, 3]], 1, rtol=1e-9)
    assert s.method == "standard" and s.n == 4


def test_fit_minmax():
    X = raw()
    s = Standardize.fit(X, "minmax", dtype=np.float64)
    np.testing.assert_array_equal(s.offset, X.min(axis=0))
    span = X.max(axis=0) - X.min(axis=0)
    span[2] = 1.0
    np.testing.assert_allclose(s.scale, span, rtol=1e-12)
    A = s.transform(X)
    np.testing.assert_allclose(A.min(axis=0)[[0, 1, 3]], 0, atol=1e-12)
    np.testing.assert_allclose(A.max(axis=0)[[0, 1, 3]], 1, atol=1e-12)


def test_fit_none_is_the_identity():
    X = raw()
    s = Standardize.fit(X, "none", dtype=np.float64)
    np.testing.assert_array_equal(s.offset, np.zeros(4))
    np.testing.assert_array_equal(s.scale, np.ones(4))
    np.testing.assert_array_equal(s.transform(X), X)


@pytest.mark.parametrize("method", [m for m in SCALINGS if m != "image"])   # per feature
def test_constant_columns_get_scale_one_without_warnings(method):
    X = np.full((10, 3), 4.0)
    X[:, 1] = np.arange(10)
    s = Standardize.fit(X, method)                    # filterwarnings=error: no division by 0
    assert s.scale[0] == 1.0 and s.scale[2] == 1.0
    A = s.transform(X)
    assert np.isfinite(A).all()
    if method != "none":
        np.testing.assert_array_equal(A[:, [0, 2]], 0)          # constant features map to 0


def test_a_single_sample_is_fine():
    s = Standardize.fit(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(s.scale, 1)
    np.testing.assert_array_equal(s.transform([[1.0, 2.0, 3.0]]), [[0, 0, 0]])


def test_fit_accumulates_in_float64():
    """float32 data with a large offset: the fitted std is still accurate."""
    rng = np.random.default_rng(0)
    X = (1e4 + rng.standard_normal((2000, 2))).astype(np.float32)
    s = Standardize.fit(X)
    assert s.offset.dtype == s.scale.dtype == np.float32
    np.testing.assert_allclose(s.scale, X.astype(np.float64).std(axis=0), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", SCALINGS)
def test_forward_equals_transform(method, dtype):
    X = raw(n=20)
    s = Standardize.fit(X, method, dtype=dtype)
    A = s.forward(X.astype(dtype), training=True).copy()
    assert A.dtype == dtype and A.shape == X.shape
    np.testing.assert_array_equal(A, s.transform(X))
    short = s.forward(X[:3].astype(dtype))                      # a short batch after a long one
    np.testing.assert_array_equal(short, s.transform(X[:3]))
    assert short.flags.c_contiguous


def test_forward_does_not_change_its_input():
    X = raw(n=5)
    X0 = X.copy()
    Standardize.fit(X, dtype=np.float64).forward(X)
    np.testing.assert_array_equal(X, X0)


def test_backward_divides_by_scale():
    X = raw(n=6)
    s = Standardize.fit(X, dtype=np.float64)
    s.forward(X)
    dA = np.random.default_rng(1).standard_normal(X.shape)
    dX = s.backward(dA)
    np.testing.assert_array_equal(dX, dA / s.scale)
    assert s.params() == []                                     # nothing to train


@pytest.mark.parametrize("method", ["standard", "minmax"])
def test_gradcheck_through_standardize(method):
    X = raw(n=8)
    model = lw.Sequential(Standardize.fit(X, method, dtype=np.float64),
                          lw.Dense(4, 3, rng=0, dtype=np.float64), lw.Tanh(),
                          lw.Dense(3, 2, rng=1, dtype=np.float64))
    y = np.random.default_rng(0).integers(0, 2, 8)
    report = lw.gradcheck(model, "ce", X, y, max_elements=None)
    assert report.passed, str(report)
    assert "input" in report.max_rel_error                     # dL/dX goes through dA / scale


def test_in_a_model_file_offset_and_scale_are_bit_identical(tmp_path):
    X = raw()
    for dtype in (np.float32, np.float64):
        scaler = Standardize.fit(X, "standard", dtype=dtype)
        inverse = Standardize(-scaler.offset[:1] / scaler.scale[:1], 1 / scaler.scale[:1],
                              method="inverse", dtype=dtype)
        model = lw.Sequential(scaler, lw.Dense(4, 1, rng=0, dtype=dtype), inverse)
        model.save(tmp_path / "m.lw")
        loaded = lw.load(tmp_path / "m.lw")
        for a, b in ((loaded.layers[0], scaler), (loaded.layers[2], inverse)):
            assert isinstance(a, Standardize)
            assert a.method == b.method and a.n == b.n
            assert a.offset.dtype == a.scale.dtype == dtype
            assert a.offset.tobytes() == b.offset.tobytes()
            assert a.scale.tobytes() == b.scale.tobytes()
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_from_config_is_the_identity():
    s = Standardize.from_config(3, method="minmax", dtype=np.float64)
    np.testing.assert_array_equal(s.offset, 0)
    np.testing.assert_array_equal(s.scale, 1)
    assert s.config() == {"n": 3, "method": "minmax"}
    assert set(s.arrays()) == {"offset", "scale"}
    assert repr(s) == "Standardize(n=3, method='minmax')"


def test_astype():
    s = Standardize.fit(raw())
    X = raw(n=4)
    s.forward(X)                                                # a float32 buffer exists now
    assert s.astype(np.float64) is s
    assert s.offset.dtype == s.scale.dtype == np.float64
    assert s.forward(X).dtype == np.float64


def test_summary_and_shapes_in_a_sequential():
    model = lw.Sequential(Standardize.fit(raw()), lw.Dense(4, 2, rng=0))
    assert model.n_in == 4 and model.n_params() == 10
    assert "Standardize" in model.summary(print_fn=None)


def test_unknown_method_is_a_config_error():
    with pytest.raises(lw.ConfigError, match="unknown scaling 'zscore'"):
        Standardize.fit(raw(), "zscore")


def test_offset_and_scale_must_match():
    with pytest.raises(lw.ConfigError, match="same shape"):
        Standardize(np.zeros(3), np.ones(2))
