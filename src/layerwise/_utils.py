"""Small helpers shared by several modules: random generators, dtypes, buffers, validation."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, ValidationError

if TYPE_CHECKING:                      # np.random costs ~15 ms to import: only when needed
    RngLike = int | np.random.Generator | None
else:
    RngLike = Any
DTypes = (np.float32, np.float64)


def install_hint(package: str, extra: str) -> str:
    """How to install an optional dependency. layerwise is installed from its project folder,
    not from a package registry, so an extra cannot be asked for by the package's name: name
    the dependency itself, or the project folder with the extra."""
    return f"pip install {package} (or, in the layerwise project folder, pip install '.[{extra}]')"


def as_generator(rng: RngLike) -> np.random.Generator:
    """Return a ``np.random.Generator`` from an int seed, a Generator, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng < 0:
        raise ConfigError(f"rng must be a seed >= 0 (or a Generator, or None); received {rng}. "
                          "Pass e.g. rng=0.")
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ConfigError(
        "rng must be an int seed, a numpy.random.Generator or None; received "
        f"{type(rng).__name__}. Pass e.g. rng=0 for reproducible results."
    )


def lookup(registry: dict[str, Any], name: Any, what: str) -> Any:
    """Find ``name`` (case-insensitive, '-' or '_') in a registry, or say which names exist."""
    key = str(name).lower().replace("-", "_")
    if key not in registry:
        raise ConfigError(f"unknown {what} {name!r}; expected one of {sorted(registry)}.")
    return registry[key]


def as_float_dtype(dtype: Any) -> np.dtype[Any]:
    """Check that ``dtype`` is float32 or float64 and return it as a ``np.dtype``."""
    if dtype is None:
        raise ConfigError("dtype must be float32 or float64; received None.")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ConfigError(f"dtype must be float32 or float64; received {dtype!r}.") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ConfigError(
            f"dtype must be float32 or float64; received {dt}. "
            "Use dtype=np.float32 (fast, the default) or np.float64 (for gradient checks)."
        )
    return dt


def buffer(store: dict[str, np.ndarray], key: str, B: int, tail: tuple[int, ...], dtype: Any
           ) -> np.ndarray:
    """A C-contiguous (B, *tail) view of a buffer kept in ``store``, grown only when too small.

    Buffers are sized for the largest batch seen; a short last batch uses ``buf[:B]``, which is
    still contiguous, so steady-state training allocates nothing.
    """
    buf = store.get(key)
    if buf is None or buf.shape[0] < B or buf.shape[1:] != tail or buf.dtype != dtype:
        buf = np.empty((B, *tail), dtype=dtype)
        store[key] = buf
    return buf[:B]


def physical_memory() -> int | None:
    """This machine's RAM in bytes, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(what: str, n_bytes: int, fix: str) -> None:
    """Refuse, before allocating, ``n_bytes`` that exceed this machine's RAM (allocating first
    would fail with a MemoryError, or succeed lazily and be killed when the pages are written)."""
    ram = physical_memory()
    if n_bytes > (ram if ram is not None else np.iinfo(np.intp).max):
        have = f"this machine's {ram / 2**30:.1f} GiB of memory" if ram else "what NumPy can hold"
        raise ValidationError(f"{what} needs {n_bytes:.3g} bytes, more than {have}; {fix}")


def positive_int(name: str, value: Any) -> int:
    """Validate a strictly positive integer argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValidationError(
            f"{name} must be a positive integer; received {value!r}. Pass e.g. {name}=32."
        )
    return int(value)


def finite_float(name: str, value: Any) -> float:
    """Validate a finite number (any sign)."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} must be a finite number; received {value!r}.") from exc
    if not np.isfinite(v):
        raise ValidationError(f"{name} must be a finite number; received {value!r}.")
    return v


def is_finite(A: np.ndarray) -> bool:
    """Whether every value of ``A`` is finite (min and max propagate NaN and ±inf; no copy)."""
    return not A.size or bool(np.isfinite(A.min()) and np.isfinite(A.max()))


def where_in(first: np.ndarray, ndim: int, columns: Any, first_line: int | None) -> str:
    """' (first in row 3, column 'a')' for the first bad cell, index ``first`` of ``argwhere``;
    a file's line (``first_line``: the line of row 0) rather than a row when the data came from
    a file, since that is what the user can look up."""
    row = int(first[0])
    where = f" (first in row {row}" if first_line is None else f" (first on line {row + first_line}"
    if ndim == 2:
        j = int(first[1])
        where += (f", column {columns[j]!r}" if columns is not None and j < len(columns)
                  else f", column {j}")
    return where + ")"


def require_finite(A: np.ndarray, name: str, columns: Any = None, first_line: int | None = None
                   ) -> None:
    """Raise if ``A`` holds NaN or infinite values, with their count and the first row (or the
    file line, ``first_line`` being row 0's) and column (named from ``columns`` when known)."""
    from . import outofcore
    if outofcore.mapping(A) is not None:        # memory-mapped: a streaming pass, bounded RSS
        outofcore.require_finite(A, name, columns)
        return
    # min and max propagate NaN and ±inf and allocate nothing; the mask is built only to report
    if A.dtype.kind == "f" and not is_finite(A):
        bad = ~np.isfinite(A)
        where = where_in(np.argwhere(bad)[0], A.ndim, columns, first_line)
        raise ValidationError(
            f"{name} contains {int(bad.sum())} NaN or infinite values{where}; "
            "remove or impute them first."
        )


def format_seconds(seconds: float) -> str:
    """A duration for people, three significant digits: '41.2 ms' under 0.1 s, then '0.412s',
    '18.7s', and whole seconds from 100 s ('548s')."""
    if seconds < 0.1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g}s" if seconds < 100 else f"{seconds:.0f}s"


def positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Validate a finite float that is > 0 (or >= 0 with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} must be a number; received {value!r}.") from exc
    ok = np.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValidationError(f"{name} must be a finite number {bound}; received {value!r}.")
    return v


def fraction(name: str, value: Any, *, upper_open: bool = True) -> float:
    """Validate a number in [0, 1) (or [0, 1])."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} must be a number in [0, 1); received {value!r}.") from exc
    if not (0.0 <= v < 1.0 if upper_open else 0.0 <= v <= 1.0):
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValidationError(f"{name} must be in {interval}; received {value!r}.")
    return v


def as_array(x: Any, name: str) -> np.ndarray:
    """``np.asarray`` whose failures (ragged lists, odd objects) are ValidationErrors."""
    try:
        return np.asarray(x)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(f"{name} must be an array of numbers; could not convert it: {exc}"
                              ) from None


def cast_float(A: np.ndarray, dtype: Any, name: str, columns: Any = None,
               first_line: int | None = None) -> np.ndarray:
    """C-contiguous ``A`` in float ``dtype``, refusing values too large for it (not NaN/inf:
    ``require_finite`` reports those); the error names the first such row (or file line,
    ``first_line`` being row 0's) and column (``columns``: the column names, when known)."""
    dt = np.dtype(dtype)
    if A.dtype.kind in "fiu" and A.size and (A.dtype.kind != "f" or A.dtype.itemsize >
                                             dt.itemsize):
        with np.errstate(invalid="ignore"):
            big = max(abs(float(A.min())), abs(float(A.max())))
        if math.isfinite(big) and big > float(np.finfo(dt).max):
            first = np.argwhere(np.abs(A) > float(np.finfo(dt).max))
            where = where_in(first[0], A.ndim, columns, first_line) if A.ndim and len(first) \
                else ""
            raise ValidationError(
                f"{name} holds values up to {big:.3g}{where}, too large for {dt} (at most "
                f"{float(np.finfo(dt).max):.3g}); scale the data down or use float64 "
                "(dtype=np.float64)."
            )
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(A, dtype=dt)


def as_input(X: Any, n_in: int | None, dtype: Any, name: str = "X") -> np.ndarray:
    """Validate a 2-D numeric, finite input and return it C-contiguous in ``dtype``.

    Copies only when the dtype or memory layout differs. A scipy.sparse ``X`` is refused here,
    saying how to densify it; ``as_sparse_input`` is the check of the entry points that take it.
    """
    if is_sparse(X):
        raise ValidationError(
            f"{name} is a scipy.sparse {type(X).__name__}, which only a model's fit, predict and "
            f"evaluate take (with a Dense first layer); pass a dense array here, e.g. "
            f"{name}.toarray() (on a slice of rows, if the whole matrix is too large)."
        )
    from . import outofcore
    if isinstance(X, outofcore.Rows):           # rows of a (memory-mapped) array, not copied
        as_input(X.X[:1], n_in, X.dtype, name)  # shape, features (dtype: checked just below)
        outofcore.check_dtype(X.X, dtype, name)
        outofcore.require_finite(X, name)
        return X  # type: ignore[return-value]  # sliced as an array is (predict, evaluate)
    try:
        A = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} must be a 2-D numeric array; could not convert it: {exc}"
                              ) from exc
    if A.dtype.kind not in "biuf":
        raise ValidationError(
            f"{name} must be numeric (int or float); received dtype {A.dtype}. "
            "Encode text or categorical columns as numbers first."
        )
    if A.ndim != 2:
        hint = (" Reshape a single sample with X.reshape(1, -1) or a single feature with "
                "X.reshape(-1, 1)." if A.ndim == 1 else
                " Flatten images first, e.g. X.reshape(len(X), -1).")
        raise ValidationError(
            f"{name} must be 2-D with shape (n_samples, n_features); received shape {A.shape}."
            + hint
        )
    if A.shape[0] == 0:
        raise ValidationError(f"{name} is empty (shape {A.shape}); pass at least one sample.")
    if n_in is not None and A.shape[1] != n_in:
        raise ValidationError(
            f"{name} has {A.shape[1]} features but the model expects {n_in}; pass data with "
            f"{n_in} columns or build the model's first layer with n_in={A.shape[1]}."
        )
    if outofcore.mapping(A) is not None:        # memory-mapped: used in place, never copied
        outofcore.check_dtype(A, dtype, name)
        outofcore.require_finite(A, name)
        return A
    A = cast_float(A, dtype, name)
    require_finite(A, name)
    return A


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a scipy.sparse matrix or array, told by its class's module, so that
    dense input never imports scipy (an optional dependency)."""
    return type(X).__module__.startswith("scipy.sparse")


def as_sparse_input(X: Any, n_in: int | None, dtype: Any, name: str = "X") -> Any:
    """Validate a scipy.sparse ``X`` as ``as_input`` validates a dense one (2-D, numeric,
    rows, ``n_in`` features, finite values that fit ``dtype``) and return it as CSR with
    ``dtype`` values, without ever densifying it.

    CSR is what row batches need (``X[idx]`` copies only the rows' stored values): CSC, COO,
    LIL, DOK and BSR are converted once (COO's repeated entries add up). Converting or casting
    copies the stored values (nnz of them); a CSR ``X`` already in ``dtype`` is returned as is.
    """
    shape = tuple(X.shape)
    if len(shape) != 2:
        raise ValidationError(
            f"{name} must be 2-D with shape (n_samples, n_features); received a scipy.sparse "
            f"{type(X).__name__} of shape {shape}. Reshape it with {name}.reshape(1, -1).")
    if X.dtype.kind not in "biuf":
        raise ValidationError(f"{name} must be numeric (int or float); received a scipy.sparse "
                              f"matrix of dtype {X.dtype}.")
    if shape[0] == 0:
        raise ValidationError(f"{name} is empty (shape {shape}); pass at least one sample.")
    if n_in is not None and shape[1] != n_in:
        raise ValidationError(
            f"{name} has {shape[1]} features but the model expects {n_in}; pass data with "
            f"{n_in} columns or build the model's first layer with n_in={shape[1]}."
        )
    A = X.tocsr()                                   # no copy when X is CSR already
    data, dt = A.data, np.dtype(dtype)

    def where(k: int) -> str:                       # stored value k's row and column
        row = int(np.searchsorted(A.indptr, k, side="right")) - 1
        return where_in(np.array([row, A.indices[k]]), 2, None, None)

    if data.dtype.kind == "f" and not is_finite(data):
        bad = ~np.isfinite(data)
        raise ValidationError(f"{name} contains {int(bad.sum())} NaN or infinite values"
                              f"{where(int(np.argmax(bad)))}; remove or impute them first.")
    top = float(np.finfo(dt).max)
    if data.dtype.kind == "f" and data.size and max(-float(data.min()), float(data.max())) > top:
        k = int(np.argmax(np.abs(data) > top))
        raise ValidationError(
            f"{name} holds values up to {float(np.abs(data).max()):.3g}{where(k)}, too large for "
            f"{dt} (at most {top:.3g}); scale the data down or use float64 (dtype=np.float64).")
    if data.dtype == dt:
        return A
    return type(A)((data.astype(dt), A.indices, A.indptr), shape=A.shape)


# Objects held by ``exclusive``, each with the token of its holder. Kept here, not on the
# objects: a lock attribute would make models and estimators unpicklable and un-deep-copyable.
_HELD: weakref.WeakKeyDictionary[Any, object] = weakref.WeakKeyDictionary()
_HELD_GUARD = threading.Lock()


@contextlib.contextmanager
def exclusive(obj: Any, refuse: Callable[[], Exception]) -> Iterator[None]:
    """Hold ``obj`` for one caller at a time (any thread); a second caller gets ``refuse()``
    raised at once instead of waiting.

    Released on every way out, exceptions and KeyboardInterrupt included; a refused caller
    releases nothing, since only the holder's token may.
    """
    token = object()
    try:
        with _HELD_GUARD:
            if obj in _HELD:
                raise refuse()
            _HELD[obj] = token
        yield
    finally:
        with _HELD_GUARD:
            if _HELD.get(obj) is token:
                del _HELD[obj]


def per_layer(name: str, value: Any, n: int, check: Callable[[Any], Any]) -> list[Any]:
    """One value for each of ``n`` layers: a sequence of exactly n values (each checked), or
    one value given to every layer (checked once per layer, so each gets a fresh object)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValidationError(
                f"{name} has {len(value)} entries but the network has {n} layers it applies to; "
                f"give one value, or a list of {n}."
            )
        return [check(v) for v in value]
    return [check(value) for _ in range(n)]
