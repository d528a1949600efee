"""LayerwiseClassifier against scikit-learn's MLPClassifier: 5-fold accuracy and fit time.

Both estimators run inside ``make_pipeline(StandardScaler(), estimator)`` with the same recipe:
one hidden layer of 100 ReLU units, Adam with learning rate 1e-3, batches of 200, at most 200
epochs, and scikit-learn's stopping rule (stop when the training loss has not improved by
tol=1e-4 for 10 epochs), each with its own default initialisation. MLPClassifier keeps its
default L2 penalty alpha=1e-4 (per step about 5e-7·W at batch 200, negligible) and computes in
float64 (the data's dtype); LayerwiseClassifier computes in float32, its default.

Both run with one BLAS thread (``--blas-threads``, through threadpoolctl): LayerwiseClassifier
does so by itself for networks this small, and MLPClassifier is held to it so that a busy
machine, where a second BLAS thread waits for a free core at every step, does not slow it down
(``--blas-threads 0`` leaves each library's default, which on a loaded 2-CPU machine makes
MLPClassifier several times slower still).

The folds are the same 5 stratified folds (shuffled with seed 0) for both. One run is a whole
cross-validation with ``random_state=s`` for both estimators; the benchmark makes ``--seeds``
runs (s = 0, 1, …), because one seed moves accuracy by a few tenths of a percent either way.
Accuracy is the mean over all runs and folds; fit time is the sum of the five ``fit`` calls
measured by ``cross_validate`` (n_jobs=1, so no process competes), the median over runs; epochs
is the mean number of epochs per fit.

    python benchmarks/bench_sklearn.py                 # digits and breast-cancer, 5 seeds
    python benchmarks/bench_sklearn.py --seeds 10 --json out.json

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
import warnings
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import layerwise as lw
from layerwise.sklearn import LayerwiseClassifier

HIDDEN = (100,)
SETTINGS: dict[str, Any] = {"batch_size": 200, "tol": 1e-4, "n_iter_no_change": 10}
DATASETS = {"digits": load_digits, "breast-cancer": load_breast_cancer}
SPEEDUP_TARGET = 3.0


def estimator(name: str, seed: int) -> Any:
    """The two estimators, with the recipe above spelled out for each (both initialise with
    Glorot uniform, both default to it)."""
    if name == "MLPClassifier":
        return MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam",
                             learning_rate_init=1e-3, max_iter=200, random_state=seed,
                             **SETTINGS)
    return LayerwiseClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam",
                               learning_rate_init=1e-3, max_iter=200, init="xavier_uniform",
                               random_state=seed, **SETTINGS)


def run(name: str, X: np.ndarray, y: np.ndarray, seeds: int) -> dict[str, Any]:
    """Cross-validate once per seed: mean accuracy, median summed fit time, mean epochs."""
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    times, accs, epochs = [], [], []
    for seed in range(seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)    # MLP at max_iter
            res = cross_validate(make_pipeline(StandardScaler(), estimator(name, seed)), X, y,
                                 cv=cv, return_estimator=True, n_jobs=1)
        times.append(float(np.sum(res["fit_time"])))
        accs.extend(float(a) for a in res["test_score"])
        epochs.extend(p[-1].n_iter_ for p in res["estimator"])
    return {"estimator": name, "accuracy": float(np.mean(accs)), "fold_accuracies": accs,
            "accuracy_sem": float(np.std(accs) / np.sqrt(len(accs))),
            "fit_seconds": statistics.median(times), "fit_seconds_all": times,
            "epochs": float(np.mean(epochs))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated names")
    p.add_argument("--seeds", type=int, default=5, help="cross-validation runs (seeds 0, 1, …)")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads for both estimators; 0 keeps each library's default")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    args = p.parse_args(argv)
    limits = threadpool_limits(args.blas_threads, user_api="blas") if args.blas_threads else None

    import sklearn
    print(f"layerwise {lw.__version__}, scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    print("5-fold CV, StandardScaler + MLP 100 ReLU, Adam 1e-3, batch 200, <= 200 epochs, "
          f"tol 1e-4 / 10 epochs; {args.seeds} seeds, "
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
        rows = {name: run(name, X, y, args.seeds)
                for name in ("MLPClassifier", "LayerwiseClassifier")}
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
                       "blas_threads": args.blas_threads, "python": sys.version,
                       "machine": platform.machine()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
