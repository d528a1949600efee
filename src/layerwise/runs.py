"""What ``layerwise train`` does around ``fit``, as a library: usable from Python.

The command line parses options and prints; everything here is plain functions of arrays,
datasets and paths, raising ``LayerwiseError``\\ s:

- the test split: the data's own, or a seeded random fraction (``train_and_test``);
- the defaults that follow the number of training rows (``train_defaults``);
- targets as the loss trains on them (``targets_for``) and the preprocessing fitted on the
  training rows only (``prepare``), with ``TargetUnits``, the callback that records a
  regression's history in the targets' own units;
- run directories: a fresh name, an exclusive lock, no overwriting of a finished run, atomic
  files (``fresh_run_dir``, ``open_run_dir``, ``write_file``, ``write_history``).

    >>> data = lw.datasets.load("wine")
    >>> X_train, y_train, X_test, y_test = runs.train_and_test(data, 0.2, seed=0)
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .callbacks import Callback, EarlyStopping, History
from .errors import BusyError, ValidationError
from .network import Sequential
from .training import evaluate_arrays

if TYPE_CHECKING:
    from .datasets import Dataset
    from .optimizers import Optimizer

__all__ = ["ENSEMBLE", "RUN_FILES", "SMALL_DATA", "WEIGHT_DECAYS", "TargetUnits", "fresh_run_dir",
           "open_run_dir", "prepare", "select_weight_decay", "size_rule", "split", "targets_for",
           "train_and_test",
           "train_defaults", "write_file", "write_history"]


# -- the test split ----------------------------------------------------------------------------
def split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of range(n) into (train, test) increasing index arrays: the
    first round(n·fraction) (at least 1) of ``default_rng(seed).permutation(n)`` test."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def train_and_test(data: Dataset, fraction: float, seed: int,
                   meta: dict[str, Any] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test): the data's official test split, else ``split``.

    ``meta`` (a saved model's metadata) reproduces the split its training run used: its
    ``test_split`` and ``split_seed``, or for models saved before ``split_seed`` existed, its
    ``seed`` (which then seeded the split).
    """
    from .outofcore import as_rows  # memory-mapped X: Rows, so X[rows] reads nothing
    if data.X_test is not None and data.y_test is not None:
        return as_rows(data.X_train), data.y_train, as_rows(data.X_test), data.y_test
    if meta is not None:
        fraction = meta.get("test_split", fraction)
        seed = meta.get("split_seed", meta.get("seed", seed))
    if not 0 < fraction < 1:
        raise ValidationError(f"test_split must be in (0, 1) for data without a test set; "
                              f"received {fraction}.")
    tr, te = split(len(data.X_train), fraction, seed)
    X = as_rows(data.X_train)
    return X[tr], data.y_train[tr], X[te], data.y_train[te]


# -- defaults that follow the data's size ------------------------------------------------------
SMALL_DATA = 2_000       # training rows (after the test split) below which a table is "small"
WEIGHT_DECAYS = (1e-4, 1e-2, 1e-1)   # small data: the one with the best validation loss
ENSEMBLE = 5               # small data: networks averaged (lw.ensemble)


def size_rule(n: int) -> str:
    return f"N = {n:,} training rows {'<' if n < SMALL_DATA else '>='} {SMALL_DATA:,}"


def train_defaults(n: int) -> dict[str, Any]:
    """The training settings for N training rows (validation rows included, test rows not).

    Large data (N >= 2,000: digits' 3,823, MNIST's 60,000): SGD with momentum 0.9 and a cosine
    decay over a fixed 20 epochs (batch 64, label smoothing 0.1, 10% validation, no weight
    decay): from 2,000 rows that is 560 steps or more, and on digits it beat the small-data
    recipe on held-out training rows (98.9% against 98.5%).

    Small data (N < 2,000: wine's 142 rows, diabetes' 354): an epoch is a handful of steps and
    a 128-unit layer has more weights than there are rows, so a fixed short schedule under- or
    overfits depending on N. Instead: Adam at 1e-3 (its steps do not depend on the gradient's
    scale, so one rate suits every table), batch 32 (several steps per epoch even for a hundred
    rows), a constant rate, up to 500 epochs, stopped when the validation loss (20% of the
    rows) has not improved for 20 epochs, with the best epoch's weights restored; no label
    smoothing; and the L2 weight decay among ``WEIGHT_DECAYS`` whose run reaches the lowest
    validation loss (a tuple here: the command line tries each). Then a refit: the final model
    trains afresh on all training rows, validation rows included, for the chosen run's best
    epoch count. A fifth of a small table is too much to leave out of the final model: on
    hold-outs of the training rows (benchmarks/bench_tables.py --inner, 20 seeds) the refit
    raised wine from 96.6% to 97.1%, breast cancer from 97.6% to 97.7% and diabetes' R² from
    0.485 to 0.496.
    ``lr`` is not set: the optimizer's own default (1e-3 for Adam, 0.1 or 0.01 for SGD).
    """
    if n >= SMALL_DATA:
        return {"optimizer": "sgd", "weight_decay": 0.0, "schedule": "cosine", "epochs": 20,
                "batch_size": 64, "label_smoothing": 0.1, "validation_split": 0.1,
                "early_stopping": None, "refit": False, "ensemble": 1}
    return {"optimizer": "adam", "weight_decay": WEIGHT_DECAYS, "schedule": "constant",
            "epochs": 500,
            "batch_size": 32, "label_smoothing": 0.0, "validation_split": 0.2,
            "early_stopping": 20, "refit": True, "ensemble": ENSEMBLE}


def select_weight_decay(build: Callable[[], Sequential],
                        optimizer: Callable[[float], Optimizer], X: np.ndarray, Y: np.ndarray,
                        candidates: Sequence[float], *, patience: int | None,
                        **fit_kwargs: Any) -> tuple[float, int, dict[str, float]]:
    """The weight decay, among ``candidates``, whose training run reaches the lowest
    validation loss; that run's best epoch (1-based, the one early stopping restores); and
    each candidate's best validation loss, keyed by ``f"{wd:g}"``.

    Each run is a fresh ``build()`` (same seed: same initial weights) trained with
    ``optimizer(wd)`` and ``fit_kwargs`` (which must hold out validation rows:
    ``validation_split=``), stopped after ``patience`` epochs without a lower validation loss
    (None: all epochs). Small tables differ in how much regularisation they need (a noisy
    regression such as diabetes wants 0.1, wine or digits 1e-4), and the validation rows are
    the only honest judge. Ties go to the earlier candidate.
    """
    best: dict[str, float] = {}
    epochs: dict[str, int] = {}
    for wd in candidates:
        stop = [EarlyStopping(patience)] if patience else []
        history = build().fit(X, Y, optimizer=optimizer(wd), callbacks=stop, verbose=0,
                              **fit_kwargs)
        val = history["val_loss"]
        best[f"{wd:g}"] = min(val)
        epochs[f"{wd:g}"] = int(np.argmin(val)) + 1
    chosen = min(candidates, key=lambda wd: best[f"{wd:g}"])
    return chosen, epochs[f"{chosen:g}"], best


# -- targets and preprocessing -----------------------------------------------------------------
def targets_for(loss: Any, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Class labels as the loss trains on them: one-hot rows for BCE with more than two
    classes (one output per class; two classes: one output, y as 0/1), labels otherwise
    (CrossEntropy, and MSE, whose ``prepare_target`` makes integer labels one-hot)."""
    if loss.kind == "bce" and y.ndim == 1:
        return np.eye(n_classes, dtype=np.float32)[y] if n_classes > 2 else y.astype(np.float32)
    return y


def prepare(X: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, scaling: str,
            full_scale: Any, loss: Any, n_classes: int, classify: bool, dtype: Any
            ) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """Input scaling (and, for regression, target standardisation) fitted on the training
    rows ``fit_rows`` only, never the validation rows; returns both scalers (the target's None
    for classification and Poisson), the scaled inputs and the training targets, all rows.

    Memory-mapped ``X`` (``outofcore.Rows``) is not scaled: the statistics are one streaming
    pass, and the returned inputs are ``X`` itself, raw, so the caller trains the network
    behind ``x_scaler`` (``Sequential([x_scaler, *net.layers])``), which scales each batch."""
    from .outofcore import is_large
    from .preprocessing import Standardize
    x_scaler = Standardize.fit(X[fit_rows], scaling, dtype, full_scale=full_scale)
    Y = targets_for(loss, y, n_classes)
    y_scaler = None
    # regression: standardise targets too, except Poisson's counts, which must stay >= 0
    # (its network outputs log μ; the model file's loss maps them to μ)
    if not classify and loss.kind != "poisson":
        y_scaler = Standardize.fit(Y.reshape(len(Y), -1)[fit_rows], "standard", dtype)
        Y = y_scaler.transform(Y.reshape(len(Y), -1))
    return x_scaler, y_scaler, X if is_large(X) else x_scaler.transform(X), Y


class TargetUnits(Callback):
    """Records a regression's loss and metrics in the targets' own units.

    The network trains on standardised targets ŷ = (y − offset)/s; the table printed after
    training evaluates the saved model, whose last layer (``inverse``) maps back to y. So that
    history.csv, the curves and the epoch lines show the same units, each epoch's end evaluates
    the network followed by ``inverse`` on the training rows X[:n_fit] and the validation rows
    X[n_fit:] (``X`` already scaled, ``Y`` in the targets' units): loss, MSE, MAE and R²,
    replacing fit's figures (whose training loss is a running mean in standardised units).
    """

    def __init__(self, inverse: Any, loss: Any, X: np.ndarray, Y: np.ndarray, n_fit: int
                 ) -> None:
        self.inverse, self.loss, self.X, self.Y, self.n_fit = inverse, loss, X, Y, n_fit

    def on_epoch_end(self, state: Any, logs: dict[str, float]) -> None:
        X, Y, n_fit = self.X, self.Y, self.n_fit
        model = Sequential([*state.model.layers, self.inverse])    # shares the layers
        # (outofcore.Rows: a slice would read the rows into memory, an index selects them)
        head, tail = (slice(0, n_fit), slice(n_fit, None)) if isinstance(X, np.ndarray) else (
            np.arange(n_fit), np.arange(n_fit, len(X)))
        new = evaluate_arrays(model, self.loss, X[head], Y[:n_fit])
        if n_fit < len(X):
            val = evaluate_arrays(model, self.loss, X[tail], Y[n_fit:])
            new.update({f"val_{k}": v for k, v in val.items()})
        old = dict(logs)
        logs.clear()
        logs.update(new)
        for k, v in old.items():                # lr, seconds and anything else, after
            logs.setdefault(k, v)


# -- run directories ---------------------------------------------------------------------------
RUN_FILES = ("model.lw", "checkpoint.lw", "config.json", "history.csv", "history.json",
             "curves.png", "gradient_flow.png", "confusion_matrix.png")
# io.atomic_write's temporaries: ".<name>.<8 random characters>.tmp" (tempfile.mkstemp)
_OURS = "|".join(map(re.escape, RUN_FILES))
STALE_TMP = re.compile(rf"\.({_OURS})\.[a-z0-9_]{{8}}\.tmp")


def fresh_run_dir(data: str, root: str | Path = "runs") -> Path:
    """ROOT/<data>-<timestamp>, with -2, -3, … when a run already took that name."""
    base = f"{root}/{Path(data).stem or 'data'}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out, k = Path(base), 1
    while os.path.lexists(out):
        k += 1
        out = Path(f"{base}-{k}")
    return out


def open_run_dir(out: Path, resume: bool, cleanup: contextlib.ExitStack) -> None:
    """Create the run directory ``out`` and hold an exclusive lock on it until ``cleanup``
    closes.

    A second run into the same directory is refused while the first runs (``BusyError``),
    and so is a new run into a directory that already holds a model (nothing saved is
    replaced). Holding the lock, any temporary file of ours left there by a killed run is
    stale: remove it.
    """
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:                              # not POSIX: no lock
        fcntl = None  # type: ignore[assignment]
    if fcntl is not None:
        fd = os.open(out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        cleanup.callback(os.close, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)     # released when fd closes
        except BlockingIOError:
            raise BusyError(f"another layerwise train is writing to {out}/; wait for it to "
                            "finish or pick another run directory (--out).") from None
        except OSError:                              # a file system without locks: go on
            pass
    if not resume and os.path.lexists(out / "model.lw"):
        raise ValidationError(f"{out}/ already holds a trained model (model.lw); pick another "
                              "run directory (--out), or delete that directory first to "
                              "train it again.")
    for entry in os.scandir(out):
        if STALE_TMP.fullmatch(entry.name) and not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.path)


def write_file(path: Path, data: bytes | str) -> None:
    """Write a run file atomically (never through a symlink, never half-written)."""
    from .io import atomic_write
    raw = data.encode() if isinstance(data, str) else data
    atomic_write(path, lambda f: f.write(raw))


def write_history(out: Path, history: History) -> None:
    """history.json (every value) and history.csv (6 significant digits) in ``out``."""
    data = history.to_dict()
    write_file(out / "history.json", json.dumps(data, indent=2) + "\n")
    text = io.StringIO()
    w = csv.writer(text)
    keys = list(data)
    w.writerow(keys)
    for row in zip(*(data[k] for k in keys)):
        w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    write_file(out / "history.csv", text.getvalue())
