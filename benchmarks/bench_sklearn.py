"""LayerwiseClassifier against scikit-learn's MLPClassifier: 5-fold accuracy and fit time.

Both estimators take the same parameters (LayerwiseClassifier is a drop-in), so both get the
same dict inside ``make_pipeline(StandardScaler(), estimator)``: one hidden layer of 100 ReLU
units, the solver (``--solver``, Adam by default, learning rate 1e-3), batches of 200, at most
200 epochs, scikit-learn's stopping rule (tol=1e-4 for 10 epochs) and alpha=1e-4, each with its
own initialisation. MLPClassifier computes in float64 (the data's dtype), LayerwiseClassifier
in float32, its default.

Both run with one BLAS thread (``--blas-threads``, through threadpoolctl): LayerwiseClassifier
does so by itself for networks this small, and MLPClassifier is held to it so that a busy
machine, where a second BLAS thread waits for a free core at every step, does not slow it down
(``--blas-threads 0`` leaves each library's default).

The folds are the same 5 stratified folds (shuffled with seed 0) for both, and the two fit
alternately, fold by fold, taking turns at going first, so a machine that slows down or speeds
up in the middle of the run affects both alike. A run is a whole cross-validation with
``random_state=s`` for both (s = 0, 1, …, ``--seeds`` runs), because one seed moves accuracy
by a few tenths of a percent either way. Accuracy is the mean over all runs and folds; fit
time is the sum of a run's five ``fit`` calls (``time.perf_counter`` around ``fit``), the
median over runs; epochs (or L-BFGS iterations) is the mean per fit.

    python benchmarks/bench_sklearn.py                 # digits and breast-cancer, 5 seeds
    python benchmarks/bench_sklearn.py --solver lbfgs --seeds 10 --json out.json

Targets (issue 5): accuracy at least MLPClassifier's, and fit at least 3x faster.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import layerwise as lw
from layerwise.sklearn import LayerwiseClassifier

PARAMS: dict[str, Any] = {"hidden_layer_sizes": (100,), "activation": "relu",
                          "learning_rate_init": 1e-3, "max_iter": 200, "batch_size": 200,
                          "tol": 1e-4, "n_iter_no_change": 10, "alpha": 1e-4}
DATASETS = {"digits": load_digits, "breast-cancer": load_breast_cancer}
ESTIMATORS = {"MLPClassifier": MLPClassifier, "LayerwiseClassifier": LayerwiseClassifier}
SPEEDUP_TARGET = 3.0


def run(X: np.ndarray, y: np.ndarray, seeds: int, solver: str) -> dict[str, dict[str, Any]]:
    """Cross-validate both estimators once per seed, alternating fits fold by fold: mean
    accuracy, median summed fit time, mean epochs, per estimator."""
    cv = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(X, y))
    out = {name: {"estimator": name, "fold_accuracies": [], "fit_seconds_all": [],
                  "epochs_all": []} for name in ESTIMATORS}
    turn = 0
    for seed in range(seeds):
        summed = dict.fromkeys(ESTIMATORS, 0.0)
        for train, test in cv:
            names = list(ESTIMATORS)[::1 if turn % 2 == 0 else -1]     # who goes first
            turn += 1
            for name in names:
                pipe = make_pipeline(StandardScaler(), ESTIMATORS[name](
                    **PARAMS, solver=solver, random_state=seed))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)   # at max_iter
                    t0 = time.perf_counter()
                    pipe.fit(X[train], y[train])
                    summed[name] += time.perf_counter() - t0
                out[name]["fold_accuracies"].append(float(pipe.score(X[test], y[test])))
                out[name]["epochs_all"].append(int(pipe[-1].n_iter_))
        for name in ESTIMATORS:
            out[name]["fit_seconds_all"].append(summed[name])
    for r in out.values():
        accs = r["fold_accuracies"]
        r.update(accuracy=float(np.mean(accs)),
                 accuracy_sem=float(np.std(accs) / np.sqrt(len(accs))),
                 fit_seconds=statistics.median(r["fit_seconds_all"]),
                 epochs=float(np.mean(r["epochs_all"])))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated names")
    p.add_argument("--seeds", type=int, default=5, help="cross-validation runs (seeds 0, 1, …)")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads for both estimators; 0 keeps each library's default")
    p.add_argument("--solver", default="adam", choices=["adam", "sgd", "lbfgs"],
                   help="the solver both estimators use (default adam)")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    args = p.parse_args(argv)
    limits = threadpool_limits(args.blas_threads, user_api="blas") if args.blas_threads else None

    import sklearn
    print(f"layerwise {lw.__version__}, scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    print(f"5-fold CV, StandardScaler + MLP 100 ReLU, solver {args.solver} (lr 1e-3), batch "
          f"200, <= 200 epochs, tol 1e-4 / 10 epochs, alpha 1e-4; {args.seeds} seeds, "
          f"{args.blas_threads or 'default'} BLAS thread(s);\n"
          "accuracy = mean over seeds and folds; fit s = sum over the 5 folds, median over "
          "seeds\n")
    header = f"{'dataset':<14} {'estimator':<20} {'accuracy':>9} {'fit s':>8} {'epochs':>7}" \
             f" {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    results: list[dict[str, Any]] = []
    paired: list[str] = []
    ok = True
    for ds in args.datasets.split(","):
        X, y = DATASETS[ds](return_X_y=True)
        rows = run(X, y, args.seeds, args.solver)
        ref, ours = rows["MLPClassifier"], rows["LayerwiseClassifier"]
        speedup = ref["fit_seconds"] / ours["fit_seconds"]
        for name, r in rows.items():
            extra = f"{speedup:>8.1f}x" if r is ours else f"{'1.0x':>9}"
            print(f"{ds:<14} {name:<20} {r['accuracy']:>9.4f} {r['fit_seconds']:>8.3f} "
                  f"{r['epochs']:>7.1f} {extra}")
            results.append({"dataset": ds, **r})
        # The same seeds and folds for both, so compare fold by fold: the paired difference's
        # standard error says whether a gap in the means is more than the seeds' noise.
        diff = np.subtract(ours["fold_accuracies"], ref["fold_accuracies"])
        sem = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else math.nan
        paired.append(f"{ds:<14} layerwise − MLPClassifier accuracy, paired over "
                      f"{len(diff)} fits: {diff.mean():+.2%} ± {sem:.2%} (standard error)")
        results[-1]["paired_difference"] = {"mean": float(diff.mean()), "sem": sem}
        ok &= ours["accuracy"] >= ref["accuracy"] and speedup >= SPEEDUP_TARGET
    print()
    print("\n".join(paired))
    print(f"\ntargets (accuracy >= MLPClassifier's, fit >= {SPEEDUP_TARGET:g}x faster): "
          f"{'met' if ok else 'NOT met'}")
    if limits is not None:
        limits.restore_original_limits()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": datetime.now(timezone.utc).isoformat(), "results": results,
                       "solver": args.solver,
                       "blas_threads": args.blas_threads, "python": sys.version,
                       "machine": platform.machine()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
