"""How layerwise uses BLAS beyond ``np.dot``: fused vector updates and thread counts.

Fused in-place vector updates, ``y ← a·x + b·y``, go through the BLAS NumPy has already loaded.

NumPy has no fused multiply-add over arrays: ``W −= η·v`` costs two passes (η·v into a scratch
buffer, then the subtraction), each streaming the whole parameter buffer through memory. BLAS's
``axpy`` and ``axpby`` do it in one pass, on OpenBLAS's threads (BENCHMARKS.md measures the
gain with ``benchmarks/profile_step.py``).

The library called is the OpenBLAS that NumPy's own wheels bundle, opened from the same file, so
the loader hands back the instance NumPy already uses: one thread pool, which ``threadpoolctl``
limits as usual. A second BLAS (SciPy's, say) would bring its own pool and fight NumPy's for the
cores. When no bundled OpenBLAS is found (NumPy built against MKL, Accelerate or a system BLAS),
or for small arrays where a foreign call costs more than it saves, the same updates run as
NumPy calls. The two paths agree up to rounding: BLAS may fuse a·x + y into one FMA.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .layers import Dense

if TYPE_CHECKING:
    from .network import Sequential

#: arrays shorter than this take the NumPy path: below it the ctypes call (about 2 µs) costs
#: more than the pass it saves, since such arrays sit in cache.
MIN_SIZE = 1 << 15

_UNLOADED: Any = object()
_funcs: Any = _UNLOADED    # {(routine, dtype): ctypes function}, or None when unavailable


def _candidates() -> list[str]:
    """OpenBLAS files shipped inside the installed NumPy (wheels: numpy.libs, numpy/.dylibs)."""
    import glob  # only needed once, on first use

    root = os.path.dirname(np.__file__)
    found: list[str] = []
    for folder in (root + ".libs", os.path.join(root, ".dylibs"), root):
        found += sorted(glob.glob(os.path.join(folder, "*openblas*")))
    return [f for f in found if f.endswith((".so", ".dylib", ".dll")) or ".so." in f]


def _bind(lib: Any, name: str, int_t: Any, real_t: Any, scaled_y: bool) -> Any:
    fn = getattr(lib, name)
    fn.restype = None
    # cblas_?axpy(n, a, x, incx, y, incy); cblas_?axpby(n, a, x, incx, b, y, incy)
    fn.argtypes = ([int_t, real_t, ctypes.c_void_p, int_t]
                   + ([real_t] if scaled_y else []) + [ctypes.c_void_p, int_t])
    return fn


def _load() -> Any:
    """Find axpy/axpby for float32 and float64, check them on a small case, or give None."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, int_t in (("scipy_cblas_", "64_", ctypes.c_int64),
                                      ("cblas_", "64_", ctypes.c_int64),
                                      ("scipy_cblas_", "", ctypes.c_int),
                                      ("cblas_", "", ctypes.c_int)):
            try:
                funcs = {
                    (routine, np.dtype(dt)): _bind(lib, f"{prefix}{ch}{routine}{suffix}", int_t,
                                                   real_t, routine == "axpby")
                    for routine in ("axpy", "axpby")
                    for ch, dt, real_t in (("s", np.float32, ctypes.c_float),
                                           ("d", np.float64, ctypes.c_double))
                }
            except AttributeError:
                continue
            if _works(funcs):
                return funcs
    return None


def _works(funcs: Any) -> bool:
    """A wrong integer width or calling convention shows up here rather than in training."""
    for dt in (np.float32, np.float64):
        x = np.arange(1, 6, dtype=dt)
        y = np.full(5, 2, dtype=dt)
        funcs["axpby", np.dtype(dt)](5, 3.0, x.ctypes.data, 1, 0.5, y.ctypes.data, 1)
        funcs["axpy", np.dtype(dt)](5, -1.0, x.ctypes.data, 1, y.ctypes.data, 1)
        if not np.array_equal(y, 2 * x + 1):              # (3x + 0.5·2) − x
            return False
    return True


def _blas(routine: str, x: np.ndarray, y: np.ndarray) -> Any:
    """The BLAS routine for these arrays, or None to use NumPy."""
    global _funcs
    if (y.size < MIN_SIZE or x.dtype != y.dtype or x.shape != y.shape
            or not (x.flags.c_contiguous and y.flags.c_contiguous and y.flags.writeable)):
        return None
    if _funcs is _UNLOADED:
        _funcs = _load()
    return None if _funcs is None else _funcs.get((routine, y.dtype))


def axpy(a: float, x: np.ndarray, y: np.ndarray, tmp: np.ndarray) -> None:
    """y ← a·x + y, in place. ``tmp`` (shaped like y) is scratch for the NumPy path."""
    fn = _blas("axpy", x, y)
    if fn is not None:
        fn(y.size, a, x.ctypes.data, 1, y.ctypes.data, 1)
        return
    np.multiply(x, a, out=tmp)
    y += tmp


def axpby(a: float, x: np.ndarray, b: float, y: np.ndarray, tmp: np.ndarray) -> None:
    """y ← a·x + b·y, in place. ``tmp`` (shaped like y) is scratch for the NumPy path; it may
    be ``x`` itself when x is not needed afterwards (x is then overwritten by a·x)."""
    fn = _blas("axpby", x, y)
    if fn is not None:
        fn(y.size, a, x.ctypes.data, 1, b, y.ctypes.data, 1)
        return
    if b != 1:
        y *= b
    if a == 1:
        y += x
    else:
        np.multiply(x, a, out=tmp)
        y += tmp


# -- threads ------------------------------------------------------------------------------------
#: Below this many multiply-adds per batch (B·Σ n_in·n_out), a second BLAS thread costs more than
#: it saves, and on a busy machine it can make every step wait milliseconds for a core (digits
#: trained 17x slower with another process on the second core): small networks train and
#: predict with one BLAS thread.
SMALL_MACS = 1 << 22
_controller: Any = None
# The limit is process-wide (it sets the BLAS library's thread count) while threadpoolctl
# restores, on exit, the count it saw on entry. Overlapping limits from several threads would
# then leave one thread for good (A in, B in and sees A's 1, A out, B out restores 1), so one
# thread at a time holds the limit; others run under it while it lasts.
_limit_held = threading.Lock()


def threads_for(model: Sequential, batch: int) -> contextlib.AbstractContextManager[Any]:
    """A context with one BLAS thread when ``model`` is small for batches of ``batch`` rows,
    else the library's default. Needs threadpoolctl (a dependency of layerwise and of
    scikit-learn); without it, nothing is changed. Safe to enter from several threads at once:
    the first applies the limit (to the whole process) and restores the count it found when it
    leaves; the others run under that limit while it lasts.
    """
    global _controller
    macs = batch * sum(layer.n_in * layer.n_out for layer in model.layers
                       if isinstance(layer, Dense))
    if macs > SMALL_MACS:
        return contextlib.nullcontext()
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
        except ImportError:
            return contextlib.nullcontext()
        _controller = ThreadpoolController()
    return _one_blas_thread()


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    if not _limit_held.acquire(blocking=False):     # another thread holds it: already in force
        yield
        return
    try:
        with _controller.limit(limits=1, user_api="blas"):   # set and restored in this thread
            yield
    finally:
        _limit_held.release()
