"""Metrics: accuracy, MSE, MAE, R², confusion matrix, and the set ``evaluate`` reports per loss."""

from __future__ import annotations

from typing import Any

import numpy as np


def labels_from_outputs(out: np.ndarray, loss: Any) -> np.ndarray:
    """Predicted labels from network outputs: argmax for CrossEntropy, threshold for BCE."""
    if getattr(loss, "kind", None) == "bce":
        threshold = 0.0 if loss.from_logits else 0.5         # σ(z) > ½  ⇔  z > 0
        return (out > threshold).astype(np.int64)
    return np.asarray(out).argmax(axis=1)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of predictions equal to the targets (element-wise for multi-label 0/1 arrays).

    ``y_true`` may be labels (N,) or one-hot (N, K) compared with labels (N,).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == 2 and y_pred.ndim == 1:
        y_true = y_true.argmax(axis=1)
    return float(np.mean(y_true == y_pred))


def mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean squared error over all elements (scikit-learn's convention, no ½)."""
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.mean(d * d))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over all elements."""
    return float(np.mean(np.abs(np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64))))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination R² = 1 − SS_res / SS_tot, averaged over outputs."""
    yt = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
    yp = np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    ss_res = ((yt - yp) ** 2).sum(axis=0)
    ss_tot = ((yt - yt.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                          np.where(ss_res == 0, 1.0, 0.0))
    return float(scores.mean())


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None
                     ) -> np.ndarray:
    """C[i, j] = number of samples of true class i predicted as class j."""
    y_true = np.asarray(y_true, np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, np.int64).reshape(-1)
    K = n_classes or int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
    C = np.zeros((K, K), dtype=np.int64)
    np.add.at(C, (y_true, y_pred), 1)
    return C


def is_one_hot(T: np.ndarray) -> bool:
    """Whether every row of T (N, K), K >= 2, is a one-hot vector: exactly one 1, the rest 0."""
    T = np.asarray(T)
    return bool(T.ndim == 2 and T.shape[1] >= 2 and np.all((T == 0) | (T == 1))
                and np.all(T.sum(axis=1) == 1))


def classification_kind(loss: Any, target: np.ndarray) -> str | None:
    """How outputs are scored against prepared targets, decided by the targets themselves:

    - ``"argmax"``: one class per sample (integer labels or one-hot rows), whatever the loss
      (CrossEntropy, BCE with one output per class, MSE on one-hot targets): "accuracy" =
      mean(argmax a == label). CrossEntropy is always scored so (soft targets: their argmax).
    - ``"threshold"``: BCE with one output: "accuracy" = mean((σ(z) > ½) == (y > ½)).
    - ``"multilabel"``: BCE on rows with any number of ones (or probabilities, taken as
      y > ½): "subset_accuracy" (every label of the row right) and "label_accuracy" (the
      fraction of single labels right), never a bare "accuracy".
    - None: regression targets, no accuracy.
    """
    target = np.asarray(target)
    if loss.kind == "ce":
        return "argmax"
    if loss.kind == "bce":
        if target.ndim == 2 and target.shape[1] == 1:
            return "threshold"
        return "argmax" if is_one_hot(target) else "multilabel"
    return "argmax" if is_one_hot(target) else None


def _threshold(loss: Any) -> float:
    return 0.0 if getattr(loss, "from_logits", False) else 0.5      # σ(z) > ½  ⇔  z > 0


def for_loss(loss: Any, out: np.ndarray, target: np.ndarray, kind: str | None = "auto"
             ) -> dict[str, float]:
    """The metrics reported for ``loss`` on outputs ``out`` (N, n_out) and prepared targets.

    Classification metrics follow :func:`classification_kind` (``kind="auto"`` decides it
    from ``target``; ``fit`` passes the kind of its training targets so that every epoch
    reports the same names): "accuracy", or "subset_accuracy" and "label_accuracy" for
    multi-label targets. Regression losses also report MSE, MAE and R² (over all elements).
    ``target`` is as prepared by ``loss.prepare_target`` (labels or one-hot).
    """
    if kind == "auto":
        kind = classification_kind(loss, target)
    out = np.asarray(out)
    metrics: dict[str, float] = {}
    if kind == "argmax":
        labels = target if target.ndim == 1 else np.asarray(target).argmax(axis=1)
        metrics["accuracy"] = accuracy(labels, out.argmax(axis=1))
    elif kind in ("threshold", "multilabel"):
        right = (out > _threshold(loss)) == (target > 0.5)       # (N, K): each label right
        if kind == "threshold":
            metrics["accuracy"] = float(np.mean(right))
        else:
            metrics["subset_accuracy"] = float(np.mean(right.all(axis=1)))   # whole row right
            metrics["label_accuracy"] = float(np.mean(right))                # per label
    if loss.task != "classification":
        pred = loss.output_transform(out)           # the predictions (Poisson: μ = e^z)
        metrics.update(mse=mse(target, pred), mae=mae(target, pred), r2=r2(target, pred))
    return metrics
