"""Sparse input (issue 14, item 3): one epoch of ``fit`` and one ``predict`` on a scipy CSR
matrix, against the same rows densified and against scikit-learn's MLPClassifier on the same
CSR matrix (it takes sparse X too).

The data stand in for TF-IDF rows: N rows of D features with ``--per-row`` stored values each
at random columns (float32 values in [0, 1)), two classes at random (speed only: nothing is
learnt). The network is D → 100 ReLU → 2, Adam, batches of 200, one epoch, one BLAS thread.
MLPClassifier runs ``max_iter=1`` (one epoch) with the same recipe, in float64 as it does.
Rounds interleave the three, each round on a freshly built model; the median is reported.

    python benchmarks/bench_sparse.py                      # 4000 x 50000, 100 values per row
    python benchmarks/bench_sparse.py --rows 2000 --per-row 20 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

import layerwise as lw


def timed(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--features", type=int, default=50_000)
    ap.add_argument("--per-row", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-sklearn", action="store_true")
    args = ap.parse_args()
    n, d = args.rows, args.features
    X = sp.random(n, d, density=args.per_row / d, format="csr", random_state=0,
                  dtype=np.float32)
    y = np.random.default_rng(0).integers(0, 2, n)
    Xd = X.toarray()
    csr_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    print(f"X: {n} x {d}, {X.nnz} stored values: CSR {csr_bytes / 2**20:.1f} MiB, "
          f"dense {Xd.nbytes / 2**20:.0f} MiB")

    def layerwise_fit(data: object) -> lw.Sequential:
        model = lw.mlp([d, 100, 2], rng=0)
        model.fit(data, y, optimizer=lw.Adam(1e-3), epochs=1, batch_size=200, verbose=0,
                  rng=0, threads=1)
        return model

    fits: dict[str, list[float]] = {"layerwise, CSR": [], "layerwise, dense": []}
    predicts: dict[str, list[float]] = {"layerwise, CSR": [], "layerwise, dense": []}
    if not args.no_sklearn:
        from sklearn.neural_network import MLPClassifier
        fits["MLPClassifier, CSR"], predicts["MLPClassifier, CSR"] = [], []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)   # ConvergenceWarning: 1 epoch
        for _ in range(args.rounds):
            for name, data in (("layerwise, CSR", X), ("layerwise, dense", Xd)):
                t0 = time.perf_counter()
                model = layerwise_fit(data)
                fits[name].append(time.perf_counter() - t0)
                predicts[name].append(timed(lambda: model.predict(data, threads=1)))  # noqa: B023
            if not args.no_sklearn:
                clf = MLPClassifier((100,), solver="adam", batch_size=200, max_iter=1,
                                    random_state=0)
                fits["MLPClassifier, CSR"].append(timed(lambda: clf.fit(X, y)))  # noqa: B023
                predicts["MLPClassifier, CSR"].append(
                    timed(lambda: clf.predict_proba(X)))  # noqa: B023
    print(f"{'':20s}  {'fit, 1 epoch':>12s}  {'predict':>9s}")
    for name in fits:
        print(f"{name:20s}  {statistics.median(fits[name]):11.3f}s  "
              f"{statistics.median(predicts[name]):8.3f}s")


if __name__ == "__main__":
    main()
