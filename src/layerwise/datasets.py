"""Datasets. The UCI optical digits ship inside the package, so no network is needed."""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The UCI optical recognition of handwritten digits set, with its official split.

    Alpaydin & Kaynak (1998), UCI Machine Learning Repository, doi:10.24432/C50P49, CC BY 4.0.
    8×8 images flattened to 64 features with raw pixel counts 0–16, ten classes.

    Returns
    -------
    X_train : float32 (3823, 64)
    y_train : int64 (3823,)
    X_test : float32 (1797, 64)
    y_test : int64 (1797,)
    """
    with resources.files("layerwise").joinpath("data/optdigits.npz").open("rb") as f, \
            np.load(f) as d:
        return (d["X_train"].astype(np.float32), d["y_train"].astype(np.int64),
                d["X_test"].astype(np.float32), d["y_test"].astype(np.int64))
