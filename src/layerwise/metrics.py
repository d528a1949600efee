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


def for_loss(loss: Any, out: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """The metrics reported for ``loss``: accuracy for classification; MSE, MAE, R² otherwise.

    ``target`` is as prepared by ``loss.prepare_target`` (labels or one-hot for CrossEntropy).
    """
    if loss.task == "classification":
        pred = labels_from_outputs(out, loss)
        t = target
        if loss.kind == "bce":
            t = (target > 0.5).astype(np.int64)
        return {"accuracy": accuracy(t, pred)}
    return {"mse": mse(target, out), "mae": mae(target, out), "r2": r2(target, out)}
