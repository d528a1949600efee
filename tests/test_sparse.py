"""scipy.sparse input (issue 14, item 3): CSR/CSC/COO/... X trains and predicts through the
core library without densifying the whole matrix.

The reference everywhere is the same model trained or run on ``X.toarray()`` (the dense path,
itself checked against PyTorch in test_torch.py) and, for the first layer's products, the
equations written out in plain NumPy. The memory test runs in a subprocess whose address space
is capped far below what ``X.toarray()`` would need.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from test_checkpoints import StopAt  # Ctrl-C after a number of steps

sp = pytest.importorskip("scipy.sparse")

N, N_IN, N_OUT = 53, 12, 3          # batches of 16 leave a short last batch of 5
SRC = str(Path(lw.__file__).resolve().parent.parent)


def sparse_data(n: int = N, n_in: int = N_IN, density: float = 0.25, seed: int = 0):
    """A CSR matrix of float64 values with some all-zero rows (rows 0, 7 and the last)."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, n_in, density=density, format="csr", random_state=rng, dtype=np.float64,
                  data_rvs=lambda k: rng.standard_normal(k))
    X = X.tolil()
    for row in (0, 7, n - 1):
        X[row, :] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    assert all(X[row].nnz == 0 for row in (0, 7, n - 1))
    return X


X_SP = sparse_data()
# 40 features at density 0.02: a batch of 16 rows holds fewer than 40/2 stored values, so the
# first layer multiplies only the batch's non-zero columns; X_SP's batches hold more, and are
# multiplied whole (layers._nonzero_columns). Both must train the same network as dense rows.
X_THIN = sparse_data(n_in=40, density=0.02, seed=10)
DATA = {"thick": X_SP, "thin": X_THIN}
LABELS = np.random.default_rng(1).integers(0, N_OUT, N)
TARGETS = {"ce": LABELS,
           "bce": np.random.default_rng(2).integers(0, 2, (N, N_OUT)).astype(np.float64),
           "mse": np.random.default_rng(3).standard_normal((N, N_OUT))}


def net(dtype=np.float64, n_in: int = N_IN, **kw) -> lw.Sequential:
    return lw.mlp([n_in, 8, N_OUT], dtype=dtype, rng=0, **kw)


def train(X, loss: str, optimizer, dtype=np.float64, **kw):
    model = net(dtype, n_in=X.shape[1])
    kw = {"epochs": 3, "batch_size": 16, "verbose": 0, "rng": 0, "threads": 1, **kw}
    history = model.fit(X, TARGETS[loss], loss=loss, optimizer=optimizer(), **kw)
    return model, history


def params(model: lw.Sequential) -> list[np.ndarray]:
    return [p.value.copy() for p in model.parameters()]


def assert_same_network(a: lw.Sequential, b: lw.Sequential, rtol: float, atol: float) -> None:
    for pa, pb in zip(params(a), params(b)):
        np.testing.assert_allclose(pa, pb, rtol=rtol, atol=atol)


OPTIMIZERS = {"sgd": lambda: lw.SGD(0.05, momentum=0.9), "adam": lambda: lw.Adam(1e-2)}
TOLERANCES = {np.float64: (1e-12, 1e-12), np.float32: (2e-4, 2e-5)}


# -- training: the same network as on the dense copy --------------------------------------------
@pytest.mark.parametrize("data", ["thick", "thin"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", ["ce", "bce", "mse"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_training_on_csr_gives_the_network_training_on_the_dense_copy_gives(opt, loss, dtype,
                                                                           data):
    X = DATA[data]
    weights = np.random.default_rng(4).uniform(0.0, 2.0, N)
    X_val = sparse_data(20, n_in=X.shape[1], seed=5)
    y_val = TARGETS[loss][:20]
    kw = {"sample_weight": weights} if loss != "mse" else {}
    sparse, h_sparse = train(X, loss, OPTIMIZERS[opt], dtype,
                             validation_data=(X_val, y_val), **kw)
    dense, h_dense = train(X.toarray(), loss, OPTIMIZERS[opt], dtype,
                           validation_data=(X_val.toarray(), y_val), **kw)
    rtol, atol = TOLERANCES[dtype]
    assert_same_network(sparse, dense, rtol, atol)
    assert sparse.dtype == dtype
    untrained = net(dtype, n_in=X.shape[1])
    assert all(np.any(p != q) for p, q in zip(params(sparse), params(untrained)))  # it trained
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(h_sparse[key], h_dense[key], rtol=rtol * 10, atol=atol)


def test_a_validation_split_of_sparse_rows_holds_out_the_rows_the_dense_split_holds_out():
    sparse, h_sparse = train(X_SP, "ce", OPTIMIZERS["adam"], validation_split=0.2)
    dense, h_dense = train(X_SP.toarray(), "ce", OPTIMIZERS["adam"], validation_split=0.2)
    assert_same_network(sparse, dense, 1e-12, 1e-12)
    np.testing.assert_allclose(h_sparse["val_loss"], h_dense["val_loss"], rtol=1e-12)
    np.testing.assert_allclose(h_sparse["val_accuracy"], h_dense["val_accuracy"])


@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "dok", "bsr", "csr_array", "csc_array"])
def test_every_sparse_format_trains_as_csr_does(fmt):
    X = sp.csr_array(X_SP).tocsc() if fmt == "csc_array" else \
        sp.csr_array(X_SP) if fmt == "csr_array" else X_SP.asformat(fmt)
    reference, _ = train(X_SP, "ce", OPTIMIZERS["adam"])
    model, _ = train(X, "ce", OPTIMIZERS["adam"])
    assert_same_network(model, reference, 1e-12, 1e-12)
    np.testing.assert_allclose(model.predict(X, batch_size=10), reference.predict(X_SP),
                               rtol=1e-12, atol=1e-12)


def test_integer_counts_and_duplicate_entries_are_summed_and_cast_to_the_model_dtype():
    """CountVectorizer's output is int64; a COO matrix may repeat an entry (they add up)."""
    rows, cols = np.array([0, 0, 2, 2, 3]), np.array([1, 1, 0, 4, 2])
    counts = sp.coo_matrix((np.array([1, 2, 3, 1, 5]), (rows, cols)), shape=(4, 5))
    model = lw.mlp([5, 4, 2], rng=0)
    model.fit(counts, [0, 1, 0, 1], epochs=2, batch_size=3, verbose=0, rng=0)
    dense = lw.mlp([5, 4, 2], rng=0)
    dense.fit(counts.toarray().astype(np.float32), [0, 1, 0, 1], epochs=2, batch_size=3,
              verbose=0, rng=0)
    assert counts.toarray()[0, 1] == 3
    assert_same_network(model, dense, 1e-6, 1e-7)
    assert model.predict(counts).dtype == np.float32


def test_fit_leaves_the_callers_matrix_as_it_was():
    X = X_SP.copy()
    X_csc = X_SP.tocsc()
    train(X, "ce", OPTIMIZERS["sgd"], np.float32)
    train(X_csc, "ce", OPTIMIZERS["sgd"], np.float32)
    assert X.dtype == np.float64 and X.format == "csr" and X_csc.format == "csc"
    assert (X != X_SP).nnz == 0 and (X_csc != X_SP).nnz == 0


def test_a_batch_of_rows_without_any_non_zero_and_a_matrix_without_any():
    X = sp.csr_matrix((10, N_IN))                       # not a single stored value
    model, _ = train(sp.csr_matrix((N, N_IN)), "ce", OPTIMIZERS["sgd"])
    dense, _ = train(np.zeros((N, N_IN)), "ce", OPTIMIZERS["sgd"])
    assert_same_network(model, dense, 1e-12, 1e-12)
    # only the biases can have moved: dW = dZᵀ·X = 0 for an all-zero X
    np.testing.assert_array_equal(model.layers[0].W, net().layers[0].W)
    np.testing.assert_allclose(model.predict(X), dense.predict(np.zeros((10, N_IN))),
                               rtol=1e-12)


def test_a_single_row_and_a_single_feature():
    one_row = X_SP[1:2]
    model = net()
    np.testing.assert_allclose(model.predict(one_row), model.predict(one_row.toarray()),
                               rtol=1e-12)
    X1 = sp.csr_matrix(np.array([[0.0], [2.0], [0.0], [-1.0], [3.0]]))
    a = lw.mlp([1, 4, 2], dtype=np.float64, rng=0)
    b = copy.deepcopy(a)
    a.fit(X1, [0, 1, 0, 1, 1], epochs=4, batch_size=2, verbose=0, rng=0)
    b.fit(X1.toarray(), [0, 1, 0, 1, 1], epochs=4, batch_size=2, verbose=0, rng=0)
    assert_same_network(a, b, 1e-12, 1e-12)
    c = lw.mlp([N_IN, 4, 2], dtype=np.float64, rng=0)
    d = copy.deepcopy(c)
    c.fit(X_SP[5:6], [1], epochs=3, batch_size=4, verbose=0, rng=0)
    d.fit(X_SP[5:6].toarray(), [1], epochs=3, batch_size=4, verbose=0, rng=0)
    assert_same_network(c, d, 1e-12, 1e-12)


# -- the first layer's products ------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_the_dense_layer_on_sparse_rows_computes_the_equations_in_plain_numpy(bias):
    rng = np.random.default_rng(6)
    layer = lw.Dense(N_IN, N_OUT, dtype=np.float64, rng=0, bias=bias, bias_init="zeros")
    if bias:
        layer.b[...] = rng.standard_normal(N_OUT)
    X = X_SP[3:20]
    Xd = X.toarray()
    dZ = rng.standard_normal((X.shape[0], N_OUT))
    W, b = layer.W.copy(), layer.b.copy()
    Z = layer.forward(X, training=True)
    assert isinstance(Z, np.ndarray) and Z.shape == (17, N_OUT) and Z.dtype == np.float64
    Z_ref = np.array([[sum(Xd[i, k] * W[j, k] for k in range(N_IN)) + b[j]
                       for j in range(N_OUT)] for i in range(len(Xd))])      # Z = X·Wᵀ + b
    np.testing.assert_allclose(Z, Z_ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(layer.infer(X), Z_ref, rtol=1e-13, atol=1e-14)
    assert layer.backward(dZ, input_grad=False) is None      # no dX for the network's input
    dW_ref = np.array([[sum(dZ[i, j] * Xd[i, k] for i in range(len(Xd)))
                        for k in range(N_IN)] for j in range(N_OUT)])        # dW = dZᵀ·X
    np.testing.assert_allclose(layer.dW, dW_ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(layer.db, dZ.sum(axis=0) if bias else 0.0, rtol=1e-13)
    assert layer.dW.flags.c_contiguous
    dX = layer.backward(dZ)                                   # asked for explicitly: dZ·W
    np.testing.assert_allclose(dX, dZ @ W, rtol=1e-13)


def test_columns_a_batch_does_not_touch_get_a_zero_gradient_not_the_last_one():
    layer = lw.Dense(N_IN, N_OUT, dtype=np.float64, rng=0)
    rng = np.random.default_rng(7)
    layer.forward(rng.standard_normal((4, N_IN)), training=True)       # a dense step first
    layer.backward(rng.standard_normal((4, N_OUT)), input_grad=False)
    assert np.all(layer.dW != 0)
    X = sp.csr_matrix(([2.0, -1.0, 3.0], ([0, 2, 2], [4, 4, 9])), shape=(3, N_IN))
    dZ = rng.standard_normal((3, N_OUT))
    layer.forward(X, training=True)
    layer.backward(dZ, input_grad=False)
    expected = dZ.T @ X.toarray()                                       # dW = dZᵀ·X
    np.testing.assert_allclose(layer.dW, expected, rtol=1e-14)
    assert np.count_nonzero(layer.dW.any(axis=0)) == 2                  # columns 4 and 9 only


def test_a_sparse_run_interrupted_and_resumed_ends_as_the_uninterrupted_one(tmp_path):
    kw = {"epochs": 3, "batch_size": 16, "verbose": 0, "rng": 0, "threads": 1}
    reference = net()
    reference.fit(X_SP, LABELS, optimizer=lw.Adam(1e-2), **kw)
    ck = tmp_path / "ck.lw"
    with pytest.raises(lw.TrainingInterrupted):
        net().fit(X_SP, LABELS, optimizer=lw.Adam(1e-2), checkpoint=ck, checkpoint_every=1,
                  callbacks=[StopAt(5)], **kw)
    resumed = net()
    resumed.fit(X_SP, LABELS, optimizer=lw.Adam(1e-2), resume=ck, **kw)
    for p, q in zip(params(resumed), params(reference)):
        np.testing.assert_array_equal(p, q)


def test_a_batch_multiplied_on_its_non_zero_columns_gives_the_bits_of_a_whole_one():
    """A few rows use only their non-zero columns; stacked under rows with many values the
    same rows go through the whole product: each row's sum is the same, bit for bit."""
    layer = lw.Dense(40, 5, dtype=np.float64, rng=0)
    few = X_THIN[:6]
    many = sp.csr_matrix(np.random.default_rng(8).standard_normal((3, 40)))
    assert 2 * few.nnz < 40 <= 2 * (few.nnz + many.nnz)
    np.testing.assert_array_equal(layer.infer(few), layer.infer(sp.vstack([few, many]))[:6])
    np.testing.assert_array_equal(layer.forward(few).copy(), layer.infer(few))


@pytest.mark.parametrize("data", ["thick", "thin"])
@pytest.mark.parametrize("B", [1, 7, N])
@pytest.mark.parametrize("loss", ["ce", "bce", "mse"])
def test_gradcheck_through_the_sparse_first_layer(B, loss, data):
    X = DATA[data]
    model = lw.mlp([X.shape[1], 6, N_OUT], activation="tanh", dtype=np.float64, rng=0,
                   bias_init="normal:0.5")
    X = X[2:2 + B] if B < N else X
    report = lw.gradcheck(model, loss, X, TARGETS[loss][:X.shape[0]], max_elements=None)
    assert report.passed, str(report)
    assert report.checked["0.W"] == 6 * X.shape[1]
    assert report.checked["input"] == X.nnz            # dL/dX at the stored entries
    dense = lw.gradcheck(model, loss, X.toarray(), TARGETS[loss][:X.shape[0]],
                         max_elements=None)
    assert dense.passed and set(dense.max_rel_error) == set(report.max_rel_error)


def test_gradcheck_of_sparse_input_fails_on_a_wrong_sparse_gradient(monkeypatch):
    """The check can fail: a first layer whose sparse dW drops the last row is caught."""
    model = lw.mlp([N_IN, 6, N_OUT], dtype=np.float64, rng=0)
    original = lw.Dense.backward

    def broken(self, dZ, input_grad=True):
        out = original(self, dZ, input_grad)
        if not isinstance(self._A_prev, np.ndarray):
            self.dW[-1] = 0.0
        return out

    monkeypatch.setattr(lw.Dense, "backward", broken)
    report = lw.gradcheck(model, "ce", X_SP[:20], LABELS[:20], max_elements=None)
    assert not report.passed and report.max_rel_error["0.W"] > 1e-3


# -- inference ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predict_and_evaluate_on_sparse_rows_equal_those_on_the_dense_copy(dtype):
    model, _ = train(X_SP, "ce", OPTIMIZERS["adam"], dtype)
    X = sparse_data(41, seed=9)
    y = LABELS[:41]
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for bs in (1, 16, 1024):
        np.testing.assert_allclose(model.predict(X, batch_size=bs), model.predict(X.toarray()),
                                   rtol=rtol, atol=rtol)
    np.testing.assert_allclose(model.predict_proba(X), model.predict_proba(X.toarray()),
                               rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(model.predict_classes(X.tocsc()),
                                  model.predict_classes(X.toarray()))
    got, want = model.evaluate(X, y, batch_size=16), model.evaluate(X.toarray(), y)
    assert got.keys() == want.keys()
    for k in got:
        assert got[k] == pytest.approx(want[k], rel=rtol, abs=rtol)
    # the accuracy against an independent count
    right = np.count_nonzero(model.predict(X.toarray()).argmax(axis=1) == y)
    assert got["accuracy"] == pytest.approx(right / 41)
    np.testing.assert_allclose(model.infer(model.check_input(X)), model.predict(X.toarray()),
                               rtol=rtol, atol=rtol)


@pytest.mark.parametrize("data", ["thick", "thin"])
def test_lbfgs_on_csr_gives_the_network_lbfgs_on_the_dense_copy_gives(data):
    from layerwise.lbfgs import fit_lbfgs
    X = DATA[data]
    weights = np.random.default_rng(4).uniform(0.0, 2.0, N)
    sparse, dense = net(n_in=X.shape[1]), net(n_in=X.shape[1])
    r_sparse = fit_lbfgs(sparse, X, LABELS, l2=1e-3, max_iter=15, sample_weight=weights,
                         threads=1)
    r_dense = fit_lbfgs(dense, X.toarray(), LABELS, l2=1e-3, max_iter=15,
                        sample_weight=weights, threads=1)
    assert r_sparse.n_iter == r_dense.n_iter == 15
    assert r_sparse.loss == pytest.approx(r_dense.loss, rel=1e-10)
    assert_same_network(sparse, dense, 1e-8, 1e-10)


def test_a_saved_model_predicts_sparse_rows(tmp_path):
    model, _ = train(X_SP, "ce", OPTIMIZERS["adam"])
    model.save(tmp_path / "m.lw")
    loaded = lw.load(tmp_path / "m.lw")
    np.testing.assert_array_equal(loaded.predict(X_SP), model.predict(X_SP))


# -- memory: never the whole matrix densified ------------------------------------------------------
def test_a_matrix_whose_dense_copy_would_need_40_gb_trains_and_predicts_in_3_gb(tmp_path):
    """200,000 x 50,000 at density 1e-5 (100,000 stored values): dense float32 would be 40 GB.
    The subprocess caps its address space at 3 GiB after importing, then trains one epoch,
    predicts and evaluates; and shows that the cap bites, since toarray() then fails."""
    script = textwrap.dedent("""
        import resource, sys
        import numpy as np, scipy.sparse as sp
        import layerwise as lw
        n, d = 200_000, 50_000
        rng = np.random.default_rng(0)
        k = 100_000
        X = sp.coo_matrix((rng.standard_normal(k).astype(np.float32),
                           (rng.integers(0, n, k), rng.integers(0, d, k))), shape=(n, d))
        y = rng.integers(0, 2, n)
        model = lw.mlp([d, 8, 2], rng=0)
        cap = 3 * 2**30
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        h = model.fit(X, y, epochs=1, batch_size=256, verbose=0, rng=0, threads=1)
        P = model.predict(X, batch_size=4096, threads=1)
        assert P.shape == (n, 2) and np.isfinite(P).all()
        ev = model.evaluate(X.tocsr()[:5000], y[:5000], threads=1)
        print("trained", h["loss"][0], ev["accuracy"])
        try:
            X.toarray()
        except MemoryError:
            print("toarray refused")
        """)
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trained" in out.stdout and "toarray refused" in out.stdout, out.stdout


def test_dense_training_never_imports_scipy():
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import layerwise as lw
        X = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
        m = lw.mlp([5, 4, 2], rng=0)
        m.fit(X, np.arange(40) % 2, epochs=1, batch_size=8, verbose=0, rng=0,
              validation_data=(X, np.arange(40) % 2))
        m.predict(X); m.evaluate(X, np.arange(40) % 2)
        print(sorted(k for k in sys.modules if k.split(".")[0] == "scipy"))
        """)
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


# -- bad input ------------------------------------------------------------------------------------
def expect(exc: type[Exception], call, *words: str) -> str:
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    missing = [w for w in words if w not in msg]
    assert not missing, f"{missing} not in the message: {msg}"
    return msg


@pytest.mark.parametrize("first", ["dropout", "relu", "layernorm", "standardize"])
def test_sparse_input_to_a_model_whose_first_layer_is_not_dense_is_refused(first):
    layer = {"dropout": lambda: lw.Dropout(0.2, rng=0), "relu": lambda: lw.ReLU(),
             "layernorm": lambda: lw.LayerNorm(N_IN, dtype=np.float64),
             "standardize": lambda: lw.Standardize.fit(X_SP[:5].toarray())}[first]()
    model = lw.Sequential(layer, *net().layers)
    name = type(layer).__name__
    for call in (lambda: model.fit(X_SP, LABELS, epochs=1, verbose=0),
                 lambda: model.predict(X_SP),
                 lambda: model.evaluate(X_SP, LABELS, loss="ce")):
        expect(lw.ValidationError, call, "sparse", name, "Dense", "toarray()")
    model.predict(X_SP.toarray())                           # dense input is still fine


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_stored_values_are_refused_with_their_row_and_column(bad):
    X = X_SP.copy()
    k = 5
    X.data[k] = bad
    row = int(np.searchsorted(X.indptr, k, side="right") - 1)
    col = int(X.indices[k])
    where = f"(first in row {row}, column {col})"
    expect(lw.ValidationError, lambda: net().fit(X, LABELS, epochs=1, verbose=0),
           "X contains 1 NaN or infinite values", where, "remove or impute")
    expect(lw.ValidationError, lambda: net().predict(X.tocsc()), "NaN or infinite", where)
    expect(lw.ValidationError, lambda: net().fit(
        X_SP, LABELS, epochs=1, verbose=0, validation_data=(X, LABELS)), "X_val contains", where)


def test_stored_values_too_large_for_float32_are_refused():
    X = X_SP.copy()
    X.data[3] = 1e300
    row, col = int(np.searchsorted(X.indptr, 3, side="right") - 1), int(X.indices[3])
    expect(lw.ValidationError, lambda: net(np.float32).fit(X, LABELS, epochs=1, verbose=0),
           "too large for float32", f"row {row}, column {col}", "float64")


def test_wrong_feature_count_empty_and_mismatched_rows_are_refused():
    expect(lw.ValidationError, lambda: net().fit(X_SP[:, :10], LABELS, epochs=1, verbose=0),
           "X has 10 features but the model expects 12")
    expect(lw.ValidationError, lambda: net().predict(sp.csr_matrix((4, 13))),
           "13 features", "expects 12")
    expect(lw.ValidationError, lambda: net().fit(
        X_SP, LABELS, epochs=1, verbose=0, validation_data=(X_SP[:, :3], LABELS)),
        "X_val has 3 features")
    expect(lw.ValidationError, lambda: net().predict(X_SP[:0]), "empty")
    expect(lw.ValidationError, lambda: net().fit(X_SP, LABELS[:10], epochs=1, verbose=0),
           "same number of samples", f"{N} and 10")


def test_a_sparse_matrix_where_only_dense_input_is_taken_says_to_densify():
    model = net()
    msg = expect(lw.ValidationError, lambda: lw.explain.explain(model, "ce", X_SP[:4], LABELS[:4]),
                 "scipy.sparse", "toarray()")
    assert "dtype object" not in msg
    if hasattr(sp, "coo_array"):
        one_d = sp.coo_array(np.array([0.0, 1.0, 0.0]))
        if one_d.ndim == 1:
            expect(lw.ValidationError, lambda: model.predict(one_d), "2-D")
