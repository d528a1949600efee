"""`layerwise train DATA` with its defaults against scikit-learn baselines, on the same splits.

For each dataset and split seed s the test rows are those of ``layerwise train DATA
--split-seed s`` (digits and MNIST have an official test split: there s is ``--seed``). The
command itself is run (``layerwise.cli.main`` into a temporary run directory, with only
``--split-seed``/``--seed``, ``--quiet`` and ``--no-plots`` added, or the options of
``--args``); its saved model is then scored on the test rows here. On the same training rows
(validation rows included: the baselines use all of them) and the same test rows:

- classification: LogisticRegression and MLPClassifier (scikit-learn's defaults, more
  iterations), each after a StandardScaler fitted on the training rows; accuracy.
- regression: LinearRegression and MLPRegressor likewise; R².

``--inner`` replaces every test set by a 20% hold-out of its training rows (the test rows are
never read): that is how the defaults were chosen, so the reported test numbers were not tuned
on. Prints a Markdown table of mean ± standard deviation over the seeds.

    python benchmarks/bench_tables.py                      # wine, breast-cancer, diabetes, digits
    python benchmarks/bench_tables.py --mnist              # and MNIST (minutes; no baselines)
    python benchmarks/bench_tables.py --inner --args "--batch-size 16"   # try a rule
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import layerwise as lw
from layerwise import cli, runs

TABLES = ("wine", "breast-cancer", "diabetes", "digits")


def splits(name: str, seed: int, inner: bool) -> tuple[np.ndarray, ...]:
    """(X_train, y_train, X_test, y_test) exactly as ``layerwise train NAME --split-seed
    seed`` takes them; with ``inner`` the test set is a 20% hold-out of those training rows."""
    data = lw.datasets.load(name)
    Xtr, ytr, Xte, yte = runs.train_and_test(data, 0.2, seed)
    if inner:
        tr, va = runs.split(len(Xtr), 0.2, 1000 + seed)
        Xtr, ytr, Xte, yte = Xtr[tr], ytr[tr], Xtr[va], ytr[va]
    return Xtr, ytr, Xte, yte, data.task


def score(task: str, y: np.ndarray, pred: np.ndarray) -> float:
    """Accuracy, or R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)², computed here from the predictions."""
    if task == "classification":
        return float(np.mean(pred == y))
    y, pred = y.astype(np.float64).ravel(), pred.astype(np.float64).ravel()
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def run_layerwise(name: str, seed: int, inner: bool, extra: list[str], official: bool
                  ) -> tuple[float, float, int]:
    Xtr, ytr, Xte, yte, task = splits(name, seed, inner)
    with tempfile.TemporaryDirectory() as tmp:
        source = name
        if inner:                  # the CLI sees the inner split as the data's own test split
            source = str(Path(tmp) / f"{name}.npz")
            np.savez(source, X=Xtr, y=ytr, X_test=Xte, y_test=yte)
        seed_opt = ["--seed", str(seed)] if official else ["--split-seed", str(seed)]
        argv = ["train", source, *seed_opt, "--out", f"{tmp}/run", "--quiet", "--no-plots",
                *extra]
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            status = cli.main(argv)
        seconds = time.perf_counter() - t0
        if status:
            raise SystemExit(f"layerwise {' '.join(argv)} failed with status {status}")
        model = lw.load(f"{tmp}/run/model.lw")
        epochs = model.metadata["config"]["epochs_run"]
    pred = model.predict_classes(Xte) if task == "classification" else model.predict(Xte)
    return score(task, yte, pred), seconds, epochs


def run_baselines(name: str, seed: int, inner: bool) -> dict[str, float]:
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    Xtr, ytr, Xte, yte, task = splits(name, seed, inner)
    if task == "classification":
        models = {"LogisticRegression": LogisticRegression(max_iter=5000),
                  "MLPClassifier": MLPClassifier(max_iter=2000, random_state=seed)}
    else:
        models = {"LinearRegression": LinearRegression(),
                  "MLPRegressor": MLPRegressor(max_iter=2000, random_state=seed)}
    out = {}
    for label, est in models.items():
        pipe = make_pipeline(StandardScaler(), est)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # convergence warnings at max_iter
            pipe.fit(Xtr, ytr)
        out[label] = score(task, yte, pipe.predict(Xte))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="split seeds 0..S-1 (default 5)")
    p.add_argument("--data", default=",".join(TABLES), help="comma-separated dataset names")
    p.add_argument("--mnist", action="store_true", help="add MNIST (slow)")
    p.add_argument("--inner", action="store_true",
                   help="score on a hold-out of the training rows, never the test rows")
    p.add_argument("--args", default="", help="extra options for layerwise train")
    p.add_argument("--no-baselines", action="store_true")
    a = p.parse_args()
    names = [n for n in a.data.split(",") if n] + (["mnist"] if a.mnist else [])
    extra = shlex.split(a.args)
    print(f"layerwise train DATA {' '.join(extra)}; seeds 0..{a.seeds - 1}"
          f"{'; inner hold-out of the training rows' if a.inner else ''}\n")
    print("| data | metric | layerwise (defaults) | epochs | seconds | baselines |")
    print("|---|---|---|---|---|---|")
    paired: list[str] = []
    for name in names:
        official = lw.datasets.load(name).X_test is not None
        res, secs, eps, base = [], [], [], {}
        for s in range(a.seeds):
            r, t, e = run_layerwise(name, s, a.inner, extra, official)
            res.append(r), secs.append(t), eps.append(e)
            if not a.no_baselines and name != "mnist":   # scikit-learn on MNIST: hours
                for k, v in run_baselines(name, s, a.inner).items():
                    base.setdefault(k, []).append(v)
        task = splits(name, 0, a.inner)[4]
        metric, f = ("accuracy", lambda v: f"{100 * np.mean(v):.2f} ± {100 * np.std(v):.2f}") \
            if task == "classification" else ("R²", lambda v: f"{np.mean(v):.3f} ± {np.std(v):.3f}")
        baselines = "; ".join(f"{k} {f(v)}" for k, v in base.items())
        print(f"| {name} | {metric} | {f(res)} | {np.mean(eps):.0f} | {np.mean(secs):.1f} | "
              f"{baselines} |", flush=True)
        # the same splits for all: the paired difference's standard error says whether a gap
        # between the means is more than the splits' noise
        scale = 100 if task == "classification" else 1
        for k, v in base.items():
            d = scale * (np.asarray(res) - np.asarray(v))
            se = np.std(d, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            paired.append(f"{name}: layerwise − {k} = {d.mean():+.3g} ± {se:.2g} "
                          f"(paired over {len(d)} splits, ± one standard error)")
    if paired:
        print("\n" + "\n".join(paired))


if __name__ == "__main__":
    main()
