"""Data larger than memory: memory-mapped arrays read in bounded pieces.

A ``.npy`` file opened with ``np.load(path, mmap_mode="r")`` (what ``datasets.read_npy(...,
mmap=True)`` and ``layerwise train X.npy,y.npy`` do) is an array whose rows stay on disk until
they are touched. ``fit`` reads only each batch's rows (``np.take`` into its batch buffer), but
every page it touches stays mapped, and so counts in the process's resident memory (RSS), until
the mapping is told to drop it: after a full epoch the whole file would be resident. So

- whole-array passes (the finiteness check, scaling statistics) read ``CHUNK_BYTES`` of rows at a
  time and drop the pages after each chunk (``madvise(MADV_DONTNEED)``: the kernel's page cache
  keeps them, only this process's mapping lets go, and a later read maps them again);
- the training loop, and reads of scattered rows (validation rows, ``Rows``), drop them every
  ``CHUNK_BYTES`` of mapped memory (:class:`PageBudget`). What a row maps is more than its own
  bytes: the kernel maps the whole page-cache folio a fault lands in, up to ``FOLIO_BYTES``
  (2 MiB, a huge page, on Linux 6 with large folios), so each scattered row counts that much;
- a memory-mapped array is never converted or copied whole: its dtype must already be the
  model's (a float32 file for a float32 model), else ``fit`` refuses it and says how to convert.

Peak RSS is then the batch buffers, the model and about ``CHUNK_BYTES``, whatever the file's size
(``benchmarks/bench_out_of_core.py`` measures it).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import ValidationError

#: ``.npy`` files of at least this many bytes of floats are memory-mapped by the data loaders
#: (``datasets.read_npy(..., mmap=True)``); smaller ones are read into memory, where every
#: code path (copies, whole-array statistics) costs little
MAP_BYTES = 64 << 20

#: the most one read of a row may map: a 2 MiB folio (Linux maps whole page-cache folios on a
#: fault, and large folios reach the PMD size), plus the row's own bytes
FOLIO_BYTES = 2 << 20

#: bytes of rows a streaming pass reads before it drops the pages (and the training loop's
#: batches may map before it does): 32 MiB bounds RSS while keeping reads large
CHUNK_BYTES = 32 << 20


def mapping(A: Any) -> mmap.mmap | None:
    """The ``mmap`` behind ``A`` (a ``np.memmap``, or any view or ``np.asarray`` of one), or
    None for an array in memory."""
    while A is not None:
        mm = getattr(A, "_mmap", None)
        if isinstance(mm, mmap.mmap):
            return mm
        A = getattr(A, "base", None)
    return None


def release(mm: mmap.mmap | None) -> None:
    """Drop this process's resident pages of the mapping ``mm`` (the data stay in the file and
    in the kernel's page cache; the next access maps them again). No-op where the platform has
    no ``madvise``."""
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def chunk_rows(A: Any, chunk_bytes: int | None = None) -> int:
    """Rows of ``A`` in about ``chunk_bytes`` (default ``CHUNK_BYTES``; at least one)."""
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    row = A.dtype.itemsize * int(np.prod(A.shape[1:], dtype=np.int64))
    return max(1, chunk_bytes // max(row, 1))


def chunks(A: Any, chunk_bytes: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of ``A`` in consecutive pieces of about ``chunk_bytes``; for a
    memory-mapped ``A`` the pieces' pages are dropped after each one (bounded RSS)."""
    mm = mapping(A)
    step = chunk_rows(A, chunk_bytes)
    try:
        for s in range(0, A.shape[0], step):
            yield s, A[s:s + step]
            release(mm)
    finally:
        release(mm)


def require_finite(A: Any, name: str, columns: Any = None) -> None:
    """``_utils.require_finite`` as a streaming pass (bounded memory for a memory-mapped
    ``A``): the error gives the count of NaN or infinite values and the first one's row (of
    the whole array) and column."""
    from ._utils import is_finite, where_in
    if A.dtype.kind != "f":
        return
    first: np.ndarray | None = None
    count = 0
    for s, part in chunks(A):
        if is_finite(part):                     # min and max propagate NaN and ±inf
            continue
        bad = ~np.isfinite(part)
        count += int(bad.sum())
        if first is None:
            first = np.argwhere(bad)[0]
            first[0] += s
            if isinstance(A, Rows):                 # the row of the array the rows are of
                first[0] = A.rows[first[0]]
    if first is not None:
        raise ValidationError(
            f"{name} contains {count} NaN or infinite values"
            f"{where_in(first, A.ndim, columns, None)}; remove or impute them first."
        )


def check_dtype(A: np.ndarray, dtype: Any, name: str) -> None:
    """Refuse a memory-mapped ``A`` whose dtype is not ``dtype``: converting it would copy the
    whole file into memory, the one thing a memory map is for avoiding."""
    dt = np.dtype(dtype)
    if A.dtype != dt:
        raise ValidationError(
            f"{name} is memory-mapped with dtype {A.dtype}, but the model computes in {dt}; a "
            f"memory-mapped array is read in place, one batch of rows at a time, and never "
            f"converted whole (that would load the whole file). Save the file as {dt} (convert "
            f"it in chunks: out = np.lib.format.open_memmap('X32.npy', mode='w+', dtype="
            f"np.{dt}, shape=X.shape); out[s:e] = X[s:e] for row ranges s:e), or build the "
            f"model in {A.dtype} if it is a float dtype (model.astype(np.{A.dtype}))."
        )


def moments(A: Any, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and (population) standard deviation of ``A``'s ``rows`` (all rows when
    None), in float64, as one streaming pass of chunks merged with Chan et al.'s update::

        n = n_a + n_b,  δ = mean_b − mean_a
        mean = mean_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n,  std = √(M2/n)

    Each chunk's own mean and M2 are exact two-pass sums, so the result agrees with
    ``A[rows].mean(0)``, ``.std(0)`` to rounding without ever holding more than a chunk.
    """
    if rows is not None:
        A = Rows(A, rows)                       # scattered rows: read within the page budget
    n_rows = A.shape[0]
    step = chunk_rows(A, CHUNK_BYTES // 4)      # float64 copies of a quarter chunk of rows
    d = int(np.prod(A.shape[1:], dtype=np.int64))
    n, mean, M2 = 0, np.zeros(d), np.zeros(d)
    mm = mapping(A)
    for s in range(0, n_rows, step):
        part = A[s:s + step]
        C = np.array(part, dtype=np.float64).reshape(len(part), d)   # a copy: C -= mb
        release(mm)
        nb = len(C)
        mb = C.mean(axis=0)
        C -= mb
        M2b = np.einsum("ij,ij->j", C, C)               # Σ (x − mean_b)² per feature
        total = n + nb
        delta = mb - mean
        mean += delta * (nb / total)
        M2 += M2b + delta ** 2 * (n * nb / total)
        n = total
    return mean, np.sqrt(M2 / max(n, 1))


def is_large(X: Any) -> bool:
    """Whether ``X`` is memory-mapped or ``Rows``: what must be read in chunks, never whole."""
    return isinstance(X, Rows) or mapping(X) is not None


def as_rows(X: Any) -> Any:
    """A memory-mapped ``X`` as ``Rows`` of all its rows (so that ``X[rows]`` selects rows
    without reading them); anything else as it is."""
    return Rows(X, np.arange(X.shape[0])) if mapping(X) is not None else X


def feature_stats(X: Any, method: str, full_scale: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale) per feature of ``preprocessing.Standardize.fit``'s ``method`` as one
    streaming pass over ``X`` (bounded memory): "standard" the mean and standard deviation
    (:func:`moments`), "minmax" the minimum and max − min, "image" 0 and ``full_scale`` (or the
    largest |x|), "none" 0 and 1. Standardize.fit then maps zero scales to 1."""
    d = X.shape[1]
    if method == "standard":
        return moments(X)
    if method == "none" or (method == "image" and full_scale is not None):
        return np.zeros(d), np.full(d, 1.0 if method == "none" else float(full_scale or 1.0))
    lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
    for _, part in chunks(X):
        lo = np.minimum(lo, part.min(axis=0))
        hi = np.maximum(hi, part.max(axis=0))
    if method == "minmax":
        return lo, hi - lo
    top = float(max(np.abs(lo).max(initial=0.0), np.abs(hi).max(initial=0.0)))
    return np.zeros(d), np.full(d, top)                 # image: one scale, the largest |x|


class PageBudget:
    """Drops a memory map's resident pages once scattered row reads may have mapped
    ``CHUNK_BYTES``: each row counts its bytes plus ``FOLIO_BYTES`` (what a fault may map), so a
    training run's RSS stays below about ``CHUNK_BYTES`` plus one batch's rows of folios,
    however many batches it reads and however large the file."""

    def __init__(self, mm: mmap.mmap, row_bytes: int) -> None:
        self.mm, self.row_bytes = mm, row_bytes
        self.mapped = 0

    def rows_per_chunk(self) -> int:
        """Scattered rows that fit in the budget (at least one)."""
        return max(1, CHUNK_BYTES // (self.row_bytes + FOLIO_BYTES))

    def touch(self, rows: int) -> None:
        """Count ``rows`` scattered rows read; drop the pages once the budget is spent."""
        self.mapped += rows * (self.row_bytes + FOLIO_BYTES)
        if self.mapped >= CHUNK_BYTES:
            release(self.mm)
            self.mapped = 0

    def gather(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``X[idx]``, read a budget's worth of rows at a time (dropping the pages between)."""
        out = np.empty((len(idx), *X.shape[1:]), dtype=X.dtype)
        step = self.rows_per_chunk()
        for s in range(0, len(idx), step):
            np.take(X, idx[s:s + step], axis=0, out=out[s:s + step])
            self.touch(len(out[s:s + step]))
        return out


class Rows:
    """The rows ``rows`` of a 2-D ``X`` (typically memory-mapped), read only when used: a
    training, validation or test subset of a file that ``X[rows]`` would copy whole into memory.

    ``fit``, ``predict`` and ``evaluate`` take it as X: ``fit`` reads each batch's rows from
    ``X`` itself (sample k is row ``rows[k]``), ``predict`` and ``evaluate`` a slice at a time.
    Slicing (``R[s:e]``) returns those rows as a new array; indexing with an integer array
    returns a ``Rows`` of the selected rows (nothing is read). ``fit`` holds out a memory-mapped
    X's validation rows as one.
    """

    X: np.ndarray
    rows: np.ndarray

    def __init__(self, X: Any, rows: Any) -> None:
        if isinstance(X, Rows):                         # rows of rows: one level
            X, rows = X.X, X.rows[np.asarray(rows)]
        if not isinstance(X, np.ndarray) or X.ndim != 2:
            raise ValidationError(f"Rows takes a 2-D array (n_samples, n_features), e.g. "
                                  f"np.load(path, mmap_mode='r'); received "
                                  f"{type(X).__name__} of shape {np.shape(X)}.")
        rows = np.asarray(rows)
        if rows.ndim != 1 or rows.dtype.kind not in "iu" or (rows.size and (
                rows.min() < 0 or rows.max() >= X.shape[0])):
            raise ValidationError(f"Rows takes a 1-D array of row numbers in [0, {X.shape[0]}); "
                                  f"received {rows.dtype} of shape {rows.shape}"
                                  + (f" from {rows.min()} to {rows.max()}" if rows.size and
                                     rows.dtype.kind in "iu" else "") + ".")
        self.X, self.rows = X, rows.astype(np.intp)
        self.shape = (len(rows), *X.shape[1:])
        self.dtype, self.ndim = X.dtype, X.ndim
        self.pages = PageBudget(mm, X.dtype.itemsize * int(np.prod(X.shape[1:]))) if (
            mm := mapping(X)) is not None else None

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Rows({len(self.rows)} of {self.X.shape[0]} rows, {self.X.shape[1]} features)"

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, slice):
            return Rows(self, key)
        if self.pages is not None:
            return self.pages.gather(self.X, self.rows[key])
        return self.X[self.rows[key]]
