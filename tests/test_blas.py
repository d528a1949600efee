"""The fused vector updates of ``layerwise._blas``: BLAS axpy/axpby and their NumPy fallback."""

from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest

import layerwise as lw
from layerwise import _blas
from layerwise.training import train_step

SIZES = [1, 7, _blas.MIN_SIZE - 1, _blas.MIN_SIZE, 3 * _blas.MIN_SIZE + 5]


def _reference(a: float, x: np.ndarray, b: float, y: np.ndarray) -> np.ndarray:
    """a·x + b·y in float64 (exact enough to judge float32 results)."""
    return a * x.astype(np.float64) + b * y.astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("path", ["auto", "numpy"])
def test_axpy_and_axpby_compute_the_update(n: int, dtype: type, path: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "numpy":
        monkeypatch.setattr(_blas, "_funcs", None)        # as when no bundled BLAS is found
    rng = np.random.default_rng(n)
    x, y0 = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    x0, tmp = x.copy(), np.empty_like(y0)
    rtol = 1e-6 if dtype == np.float32 else 1e-14

    y = y0.copy()
    _blas.axpy(-0.3, x, y, tmp)
    np.testing.assert_allclose(y, _reference(-0.3, x, 1.0, y0), rtol=rtol, atol=rtol)
    for a in (1.0, 0.7):
        y = y0.copy()
        _blas.axpby(a, x, 0.9, y, tmp)
        np.testing.assert_allclose(y, _reference(a, x, 0.9, y0), rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(x, x0)                   # x is only read


def test_numpy_path_matches_separate_numpy_calls_bit_for_bit(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Without BLAS the results are those of the plain NumPy expressions, to the last bit."""
    monkeypatch.setattr(_blas, "_funcs", None)
    rng = np.random.default_rng(0)
    x, y0 = rng.normal(size=100_000).astype(np.float32), rng.normal(size=100_000).astype(np.float32)
    y, tmp = y0.copy(), np.empty_like(y0)
    _blas.axpy(-0.1, x, y, tmp)
    np.testing.assert_array_equal(y, y0 - x * np.float32(0.1))
    y = y0.copy()
    _blas.axpby(1.0, x, 0.9, y, tmp)
    np.testing.assert_array_equal(y, y0 * np.float32(0.9) + x)
    y, expected = y0.copy(), y0 * np.float32(0.9) + x * np.float32(0.5)
    _blas.axpby(0.5, x, 0.9, y, x)                           # scratch may be x itself
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("case", ["strided", "mixed dtype", "read-only"])
def test_arrays_blas_cannot_take_use_numpy(case: str) -> None:
    """Non-contiguous, mixed-dtype or read-only arrays never reach BLAS (the pointer arithmetic
    would be wrong); the NumPy path handles or refuses them as NumPy does."""
    n = 2 * _blas.MIN_SIZE
    x = np.ones(2 * n, dtype=np.float32)
    y = np.zeros(n, dtype=np.float32)
    if case == "strided":
        assert _blas._blas("axpy", x[::2], y) is None
        _blas.axpy(2.0, x[::2], y, np.empty_like(y))
        np.testing.assert_array_equal(y, 2.0)
    elif case == "mixed dtype":
        assert _blas._blas("axpy", x[:n].astype(np.float64), y) is None
    else:
        y.flags.writeable = False
        assert _blas._blas("axpy", x[:n], y) is None
        with pytest.raises(ValueError, match="read-only"):
            _blas.axpy(2.0, x[:n], y, np.empty_like(y))


def test_bundled_openblas_is_found_and_is_numpys_own_instance() -> None:
    """When NumPy ships an OpenBLAS, the updates use it, and it is the very library NumPy loaded
    (one thread pool), not a second copy."""
    if not _blas._candidates():
        pytest.skip("this NumPy does not bundle OpenBLAS; the NumPy path is used")
    funcs = _blas._load()
    assert funcs is not None, f"bundled OpenBLAS not usable: {_blas._candidates()}"
    threadpoolctl = pytest.importorskip("threadpoolctl")
    ours = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas" and any(
        os.path.samefile(i["filepath"], c) for c in _blas._candidates())]
    assert len(ours) == 1, f"NumPy's OpenBLAS is loaded {len(ours)} times: {ours}"
    # The limit threadpoolctl sets on NumPy's library is what our handle reads: one instance.
    lib = ctypes.CDLL(ours[0]["filepath"])
    names = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
             "scipy_openblas_get_num_threads", "openblas_get_num_threads")
    get_threads = next(f for f in (getattr(lib, n, None) for n in names) if f is not None)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert get_threads() == 1
    assert get_threads() == ours[0]["num_threads"]


OPTIMIZERS = {
    "sgd": lambda: lw.SGD(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3),
    "adam": lambda: lw.Adam(lr=1e-3, weight_decay=1e-3),
    "adamw": lambda: lw.AdamW(lr=1e-3, weight_decay=0.1),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizers_with_and_without_blas_train_the_same(name: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A network big enough for the BLAS path: 20 steps agree with the NumPy path to float64
    rounding (SGD with momentum, dampening and weight decay; Adam; AdamW)."""
    def run(min_size: int) -> np.ndarray:
        monkeypatch.setattr(_blas, "MIN_SIZE", min_size)
        model = lw.mlp([100, 400, 10], activation="relu", rng=0, dtype=np.float64)
        opt = OPTIMIZERS[name]()
        loss = lw.CrossEntropy()
        rng = np.random.default_rng(1)
        X = rng.normal(size=(32, 100))
        y = loss.prepare_target(rng.integers(0, 10, 32), 10, np.float64)
        for _ in range(20):
            train_step(model, loss, opt, X, y)
        return model.flat_parameters()[0].value.copy()

    assert lw.mlp([100, 400, 10]).n_params() > _blas.MIN_SIZE
    np.testing.assert_allclose(run(1), run(1 << 62), rtol=1e-12, atol=1e-14)


def _blas_threads() -> int:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return max(i["num_threads"] for i in threadpoolctl.threadpool_info()
               if i["user_api"] == "blas")


@pytest.mark.parametrize(("sizes", "small"), [([64, 32, 10], True), ([256, 512, 10], False)])
def test_fit_trains_small_networks_with_one_blas_thread(sizes: list[int], small: bool) -> None:
    """Below SMALL_MACS multiply-adds per batch fit runs on one BLAS thread (a second one only
    adds waiting); larger networks keep the default; the setting is restored afterwards."""
    before = _blas_threads()
    seen: list[int] = []

    class Probe(lw.Callback):
        def on_epoch_end(self, state: lw.callbacks.TrainState, logs: dict[str, float]) -> None:
            seen.append(_blas_threads())

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, sizes[0])).astype(np.float32), rng.integers(0, 10, 64)
    macs = 64 * sum(a * b for a, b in zip(sizes, sizes[1:]))
    assert (macs <= _blas.SMALL_MACS) == small
    lw.mlp(sizes, rng=0).fit(X, y, epochs=1, batch_size=64, callbacks=[Probe()], verbose=0)
    assert seen == [1 if small else before]
    assert _blas_threads() == before
