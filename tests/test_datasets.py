"""Bundled UCI digits: the official split, dtypes, value range, class balance."""

from __future__ import annotations

import numpy as np

import layerwise as lw


def test_load_digits_official_split():
    Xtr, ytr, Xte, yte = lw.datasets.load_digits()
    assert Xtr.shape == (3823, 64) and Xte.shape == (1797, 64)
    assert ytr.shape == (3823,) and yte.shape == (1797,)
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert Xtr.min() == 0 and Xtr.max() == 16                  # raw 4×4 block pixel counts
    assert set(np.unique(ytr)) == set(range(10)) == set(np.unique(yte))
    # class counts of optdigits.tra as listed in optdigits.names
    assert np.bincount(ytr)[:5].tolist() == [376, 389, 380, 389, 387]
    # first training row as in optdigits.tra
    assert Xtr[0, :8].tolist() == [0, 1, 6, 15, 12, 1, 0, 0] and ytr[0] == 0


def test_load_digits_returns_fresh_arrays():
    a = lw.datasets.load_digits()[0]
    a[0, 0] = 99
    assert lw.datasets.load_digits()[0][0, 0] == 0
