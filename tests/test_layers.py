"""Dense and Dropout: shapes, dtypes, the textbook equations, buffers, masks, bad arguments."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import layerwise as lw


def data(B: int, n: int, seed: int = 0, dtype=np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((B, n)).astype(dtype)


# -- Dense: parameters, dtypes --------------------------------------------------------------------
@pytest.mark.parametrize(("n_in", "n_out"), [(1, 1), (4, 3), (3, 7), (64, 10)])
def test_dense_parameter_and_gradient_shapes(n_in, n_out):
    d = lw.Dense(n_in, n_out, rng=0)
    assert d.W.shape == d.dW.shape == (n_out, n_in)
    assert d.b.shape == d.db.shape == (n_out,)
    assert d.W.flags.c_contiguous
    np.testing.assert_array_equal(d.b, 0.0)            # biases start at zero
    assert np.abs(d.W).max() > 0                       # weights do not
    assert d.output_size(n_in) == n_out


def test_dense_is_float32_by_default_and_float64_on_request():
    d32 = lw.Dense(4, 3, rng=0)
    assert {a.dtype for a in (d32.W, d32.b, d32.dW, d32.db)} == {np.dtype(np.float32)}
    for dt in (np.float64, "float64", np.dtype("float64")):
        d64 = lw.Dense(4, 3, rng=0, dtype=dt)
        assert {a.dtype for a in (d64.W, d64.b, d64.dW, d64.db)} == {np.dtype(np.float64)}
    X = data(5, 4)
    assert d32.forward(X.astype(np.float32)).dtype == np.float32
    assert d64.forward(X).dtype == np.float64


def test_dense_astype_round_trip_keeps_values_and_casts_everything():
    d = lw.Dense(4, 3, rng=0)
    d.b[:] = [0.5, -0.25, 1.5]
    W32, b32 = d.W.copy(), d.b.copy()
    X = data(6, 4)
    out32 = d.forward(X.astype(np.float32)).copy()     # fills float32 buffers
    assert d.astype(np.float64) is d
    assert {a.dtype for a in (d.W, d.b, d.dW, d.db)} == {np.dtype(np.float64)}
    out64 = d.forward(X)
    assert out64.dtype == np.float64                   # buffers re-made in the new dtype
    np.testing.assert_allclose(out64, X @ W32.astype(np.float64).T + b32, rtol=1e-12)
    np.testing.assert_allclose(out64, out32, rtol=1e-5, atol=1e-6)
    d.astype(np.float32)
    assert {a.dtype for a in (d.W, d.b, d.dW, d.db)} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(d.W, W32)            # float32 → float64 → float32 is exact
    np.testing.assert_array_equal(d.b, b32)
    assert d.forward(X.astype(np.float32)).dtype == np.float32


def test_dense_params_are_the_layer_arrays_updated_in_place():
    d = lw.Dense(4, 3, rng=0)
    ps = d.params()
    assert [p.name for p in ps] == ["W", "b"]
    assert ps[0].value is d.W and ps[0].grad is d.dW
    assert ps[1].value is d.b and ps[1].grad is d.db
    ps[0].value -= 1.0
    np.testing.assert_array_equal(d.params()[0].value, d.W)


# -- Dense: the equations -------------------------------------------------------------------------
@pytest.mark.parametrize("B", [1, 7, 64])
def test_dense_forward_and_backward_follow_the_equations(B):
    d = lw.Dense(5, 3, rng=1, dtype=np.float64)
    d.b[:] = [0.1, -0.2, 0.3]
    X = data(B, 5, seed=B)
    Z = d.forward(X, training=True)
    assert Z.shape == (B, 3)
    np.testing.assert_allclose(Z, X @ d.W.T + d.b, rtol=1e-12)          # Z = A_prev @ W.T + b
    dZ = data(B, 3, seed=100 + B)
    dX = d.backward(dZ)
    assert dX.shape == (B, 5)
    np.testing.assert_allclose(d.dW, dZ.T @ X, rtol=1e-12)              # dW = dZ.T @ A_prev
    np.testing.assert_allclose(d.db, dZ.sum(axis=0), rtol=1e-12)        # db = Σ_batch dZ
    np.testing.assert_allclose(dX, dZ @ d.W, rtol=1e-12)                # dA_prev = dZ @ W


def test_dense_backward_without_input_grad_fills_gradients_and_returns_none():
    d = lw.Dense(4, 2, rng=0, dtype=np.float64)
    X, dZ = data(3, 4), data(3, 2, seed=1)
    d.forward(X)
    assert d.backward(dZ, input_grad=False) is None
    np.testing.assert_allclose(d.dW, dZ.T @ X, rtol=1e-12)
    np.testing.assert_allclose(d.db, dZ.sum(0), rtol=1e-12)


def test_dense_without_bias():
    d = lw.Dense(4, 3, bias=False, rng=0, dtype=np.float64)
    d.b[:] = 5.0                                        # ignored: the layer has no bias
    X = data(7, 4)
    np.testing.assert_allclose(d.forward(X), X @ d.W.T, rtol=1e-12)
    d.backward(np.ones((7, 3)))
    assert [p.name for p in d.params()] == ["W"]
    np.testing.assert_array_equal(d.db, 0.0)
    assert d.config()["bias"] is False


def test_dense_same_seed_same_weights_and_config():
    a, b = lw.Dense(6, 4, init="he_normal", rng=3), lw.Dense(6, 4, init="he_normal", rng=3)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, lw.Dense(6, 4, init="he_normal", rng=4).W)
    assert a.config() == {"n_in": 6, "n_out": 4, "init": "he_normal", "bias": True}
    assert repr(a).startswith("Dense(n_in=6, n_out=4")


# -- buffers: batch sizes and a short last batch --------------------------------------------------
def test_dense_short_batch_after_a_larger_one_reuses_the_buffer_and_is_correct():
    d = lw.Dense(4, 3, rng=0, dtype=np.float64)
    fresh = copy.deepcopy(d)
    big, small = data(64, 4, seed=1), data(5, 4, seed=2)
    out_big = d.forward(big)
    out_small = d.forward(small)
    assert out_small.shape == (5, 3)
    assert out_small.flags.c_contiguous
    assert np.shares_memory(out_big, out_small)         # sliced, not reallocated
    np.testing.assert_allclose(out_small, fresh.forward(small), rtol=1e-12)
    dZ = data(5, 3, seed=3)
    dX = d.backward(dZ)
    dX_fresh = fresh.backward(dZ)
    assert dX.shape == (5, 4)
    np.testing.assert_allclose(dX, dX_fresh, rtol=1e-12)
    np.testing.assert_allclose(d.dW, fresh.dW, rtol=1e-12)
    np.testing.assert_allclose(d.db, fresh.db, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_with_every_layer_type_handles_a_short_last_batch(dtype):
    model = lw.Sequential(
        lw.Dense(4, 8, init="he_normal", rng=0, dtype=dtype), lw.ReLU(), lw.Dropout(0.25, rng=1),
        lw.Dense(8, 8, rng=2, dtype=dtype), lw.Tanh(), lw.Dense(8, 6, rng=3, dtype=dtype),
        lw.Sigmoid(), lw.Dense(6, 5, rng=4, dtype=dtype), lw.Softmax())
    fresh = copy.deepcopy(model)
    big, small = data(64, 4, seed=1, dtype=dtype), data(5, 4, seed=2, dtype=dtype)
    model.forward(big, training=False)
    model.backward(np.ones((64, 5), dtype))
    out = model.forward(small, training=False)
    expected = fresh.forward(small, training=False)
    assert out.shape == (5, 5) and out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=1e-6 if dtype == np.float32 else 1e-12)
    dA = data(5, 5, seed=3, dtype=dtype)
    dX, dX_fresh = model.backward(dA), fresh.backward(dA)
    assert dX.shape == (5, 4)
    np.testing.assert_allclose(dX, dX_fresh, rtol=1e-5, atol=1e-7)
    for p, q in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7, err_msg=p.name)


def test_dropout_short_batch_in_training():
    d = lw.Dropout(0.5, rng=0)
    d.forward(np.ones((64, 10)), training=True)
    out = d.forward(np.ones((5, 10)), training=True)
    assert out.shape == (5, 10)
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert d.backward(np.ones((5, 10))).shape == (5, 10)


# -- Dropout --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_is_the_identity_in_inference(dtype):
    d = lw.Dropout(0.5, rng=0)
    A = data(7, 4, dtype=dtype)
    out = d.forward(A, training=False)
    np.testing.assert_array_equal(out, A)
    assert out.dtype == dtype
    dA = data(7, 4, seed=1, dtype=dtype)
    np.testing.assert_array_equal(d.backward(dA), dA)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_scales_kept_units_by_one_over_one_minus_p(p, dtype):
    d = lw.Dropout(p, rng=0)
    A = (1.0 + np.abs(data(400, 250, dtype=np.float64))).astype(dtype)   # no zeros in A
    out = d.forward(A, training=True)
    assert out.dtype == dtype and out.shape == A.shape
    kept = out != 0
    np.testing.assert_allclose(out[kept], A[kept] / (1 - p), rtol=1e-6)
    # fraction of zeros ≈ p (σ = √(p(1−p)/10⁵) < 0.002)
    assert abs((~kept).mean() - p) < 0.01
    # mean-preserving: E[M] = 1, so the mean of A ⊙ M is close to the mean of A
    ones = d.forward(np.ones((400, 250), dtype), training=True)
    assert abs(float(ones.mean()) - 1.0) < 0.03


def test_dropout_backward_applies_the_same_mask():
    p = 0.3
    d = lw.Dropout(p, rng=1)
    out = d.forward(np.ones((50, 20)), training=True).copy()
    dA = data(50, 20, seed=2)
    dZ = d.backward(dA)
    np.testing.assert_allclose(dZ, dA * out, rtol=1e-12)      # out is the mask M itself
    assert ((dZ == 0) == (out == 0)).all()


def test_dropout_same_seed_same_mask_and_a_new_mask_each_call():
    A = np.ones((32, 16))
    m1 = lw.Dropout(0.5, rng=7).forward(A, training=True).copy()
    m2 = lw.Dropout(0.5, rng=7).forward(A, training=True).copy()
    np.testing.assert_array_equal(m1, m2)
    g = lw.Dropout(0.5, rng=np.random.default_rng(7)).forward(A, training=True)
    np.testing.assert_array_equal(m1, g)
    other = lw.Dropout(0.5, rng=8).forward(A, training=True)
    assert not np.array_equal(m1, other)
    d = lw.Dropout(0.5, rng=7)
    first = d.forward(A, training=True).copy()
    assert not np.array_equal(first, d.forward(A, training=True))


def test_dropout_zero_rate_is_the_identity_in_training():
    d = lw.Dropout(0.0, rng=0)
    A = data(6, 3)
    np.testing.assert_array_equal(d.forward(A, training=True), A)
    np.testing.assert_array_equal(d.backward(A), A)
    assert d.params() == []


# -- bad arguments at the constructors ------------------------------------------------------------
@pytest.mark.parametrize(("args", "name", "shown"), [
    ((0, 3), "n_in", "0"),
    ((3, 0), "n_out", "0"),
    ((2.5, 3), "n_in", "2.5"),
    ((3, -4), "n_out", "-4"),
    ((True, 3), "n_in", "True"),
    (("4", 3), "n_in", "'4'"),
])
def test_dense_rejects_bad_sizes(args, name, shown):
    with pytest.raises(lw.ValidationError) as exc:
        lw.Dense(*args)
    assert isinstance(exc.value, lw.LayerwiseError) and isinstance(exc.value, ValueError)
    msg = str(exc.value)
    assert name in msg and "positive integer" in msg and f"received {shown}" in msg


@pytest.mark.parametrize("dtype", [np.int32, np.float16, "int64", "complex128", "not-a-dtype"])
def test_dense_rejects_non_float_dtypes(dtype):
    with pytest.raises(lw.ConfigError) as exc:
        lw.Dense(3, 2, dtype=dtype)
    assert isinstance(exc.value, lw.LayerwiseError)
    msg = str(exc.value)
    assert "float32 or float64" in msg and "received" in msg
    shown = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    assert shown in msg


def test_dense_rejects_a_bad_rng():
    with pytest.raises(lw.ConfigError, match=r"rng must be an int seed.*received str"):
        lw.Dense(3, 2, rng="zero")


@pytest.mark.parametrize(("p", "shown"), [(1.0, "1.0"), (-0.1, "-0.1"), (1.5, "1.5"),
                                          ("half", "'half'")])
def test_dropout_rejects_rates_outside_0_1(p, shown):
    with pytest.raises(lw.ValidationError) as exc:
        lw.Dropout(p)
    assert isinstance(exc.value, lw.LayerwiseError) and isinstance(exc.value, ValueError)
    msg = str(exc.value)
    assert "dropout p" in msg and "[0, 1)" in msg and shown in msg
