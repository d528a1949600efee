"""Hyper-parameter search with the scikit-learn estimators: processes (n_jobs) against BLAS
threads (n_threads) on the same cores.

GridSearchCV of LayerwiseClassifier on scikit-learn's digits (1,797 rows, 64 features, pixels
divided by 16), 3-fold, over hidden_layer_sizes x alpha, once per setting (interleaved,
--repeats times; the median is printed):

    python benchmarks/bench_search.py                   # n_jobs=2 x n_threads=1 vs 1 x 2
    python benchmarks/bench_search.py --settings 2x1 1x2 1x1 --repeats 3

A setting "PxT" is n_jobs=P (joblib's loky processes) and n_threads=T BLAS threads per fit.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from layerwise.sklearn import LayerwiseClassifier

GRID = {"hidden_layer_sizes": [(256,), (512,), (256, 256)], "alpha": [1e-4, 1e-2]}


def search(n_jobs: int, n_threads: int, X: np.ndarray, y: np.ndarray) -> tuple[float, Any]:
    est = LayerwiseClassifier(max_iter=20, batch_size=64, random_state=0, tol=None,
                              n_threads=n_threads)
    gs = GridSearchCV(est, GRID, cv=3, n_jobs=n_jobs)
    t0 = time.perf_counter()
    gs.fit(X, y)
    return time.perf_counter() - t0, gs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", nargs="+", default=["2x1", "1x2"])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    settings = [tuple(int(v) for v in s.split("x")) for s in args.settings]
    times: dict[tuple[int, ...], list[float]] = {s: [] for s in settings}
    best = {}
    search(1, 1, X[:200], y[:200])                     # warm up imports and the loky pool
    for _ in range(args.repeats):
        for s in settings:                              # interleaved
            seconds, gs = search(s[0], s[1], X, y)
            times[s].append(seconds)
            best[s] = (gs.best_params_, gs.best_score_)
    fits = len(GRID["hidden_layer_sizes"]) * len(GRID["alpha"]) * 3 + 1
    print(f"GridSearchCV, {fits} fits of 20 epochs on digits ({len(X)} rows), median of "
          f"{args.repeats}:")
    for s in settings:
        params, score = best[s]
        print(f"  n_jobs={s[0]} x n_threads={s[1]}: {statistics.median(times[s]):6.1f}s  "
              f"(runs {', '.join(f'{t:.1f}' for t in times[s])}); best {params} "
              f"cv accuracy {score:.4f}")


if __name__ == "__main__":
    main()
