"""Losses: ``forward(pred, target) -> float`` and ``backward() -> dL/dpred``.

Every loss returns a Python float and a gradient already divided by the batch size, so the
network's backward pass needs no further scaling. Reductions (as in docs/ARCHITECTURE.md):

- ``MSE``: the textbook L = ½‖a − y‖² per sample, summed over outputs, averaged over the batch.
- ``MAE``, ``Huber``, ``BinaryCrossEntropy``: averaged over every element (batch and outputs),
  as PyTorch and Keras do.
- ``CrossEntropy``: −Σ_k y_k log softmax(z)_k per sample, averaged over the batch.
- ``Poisson``: e^z − y·z + y·log y − y per output on log-means z, summed over outputs,
  averaged over the batch (scikit-learn's half Poisson deviance).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, TypeAlias

import numpy as np

from ._utils import (
    as_array,
    buffer,
    cast_float,
    fraction,
    lookup,
    positive_float,
    require_finite,
)
from .errors import ValidationError


class Loss:
    """Base class. Subclasses implement ``forward`` and ``backward``."""

    kind: ClassVar[str] = "loss"
    #: "classification" or "regression": decides metrics and target preparation.
    task: ClassVar[str] = "regression"
    #: whether 1-D integer labels are turned into one-hot rows for a network with >= 2
    #: outputs (MSE and BCE: the textbook's quadratic cost on one-hot targets)
    takes_labels: ClassVar[bool] = False

    def __init__(self) -> None:
        self._buf: dict[str, np.ndarray] = {}

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def fresh(self) -> Loss:
        """A new loss with the same settings and no buffers, rebuilt from ``config()``.

        ``forward`` writes into buffers the loss owns, so ``evaluate`` computes with a fresh
        one: threads evaluating at once, or while ``fit`` trains with this loss, share nothing.
        A subclass whose constructor ``config()`` cannot rebuild gets a deep copy instead.
        """
        try:
            return type(self)(**self.config())
        except TypeError:
            return copy.deepcopy(self)

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        return self.forward(pred, target)

    def per_sample(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Each row's loss l_b, shape (B,), such that ``forward`` = mean_b l_b (float64)."""
        raise NotImplementedError

    def weighted(self, pred: np.ndarray, target: np.ndarray, w: np.ndarray) -> float:
        """L = (1/B) Σ_b w_b l_b. Call after ``forward``; scale ``backward()``'s rows by w_b."""
        return float(self.per_sample(pred, target) @ w) / len(w)

    def prepare_target(self, y: Any, n_out: int, dtype: Any) -> np.ndarray:
        """Validate targets for a network with ``n_out`` outputs and convert them once, up front.

        Regression losses take float targets of shape (N, n_out); a 1-D y is accepted when
        n_out == 1. Losses with ``takes_labels`` (MSE, BCE) also take integer class labels
        (N,) for a network with n_out >= 2 outputs, as one-hot rows: only then, since a 1-D
        target for one output is a regression (or binary) target as it stands.
        """
        y = as_array(y, "y")
        if y.dtype.kind not in "biuf":
            raise ValidationError(
                f"{type(self).__name__} needs numeric targets; received dtype {y.dtype}. "
                "Convert labels to numbers first."
            )
        if self.takes_labels and y.ndim == 1 and n_out >= 2 and y.dtype.kind in "iu":
            if y.size and (y.min() < 0 or y.max() >= n_out):
                raise ValidationError(
                    f"{type(self).__name__} takes integer labels 0..{n_out - 1} as one-hot "
                    f"targets for a network with {n_out} outputs; received labels from "
                    f"{y.min()} to {y.max()}. Give the last layer as many outputs as there are "
                    "classes."
                )
            return np.eye(n_out, dtype=dtype)[y]             # row b: e_{y_b}
        if y.ndim == 1 and n_out == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != n_out:
            raise ValidationError(
                f"{type(self).__name__} expects targets of shape (N, {n_out}) to match the "
                f"network's {n_out} outputs; received shape {y.shape}."
                + (" For class labels use loss='ce'." if y.ndim == 1 else "")
            )
        y = cast_float(y, dtype, "y")
        require_finite(y, "y")
        return y

    def output_transform(self, out: np.ndarray) -> np.ndarray:
        """Map network outputs to predictions (probabilities for classification losses)."""
        return out

    def config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class MSE(Loss):
    """Mean squared error, textbook form: L = (1/B) Σ_b ½‖a_b − y_b‖², dL/da = (a − y)/B.

    Note PyTorch's ``MSELoss`` averages over outputs too and has no ½: for n outputs,
    torch_mse = (2/n)·L.
    """

    kind = "mse"
    takes_labels = True

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        D = buffer(self._buf, "D", pred.shape[0], pred.shape[1:], pred.dtype)
        np.subtract(pred, target, out=D)                    # a − y
        self._D, self._B = D, pred.shape[0]
        return 0.5 * float(np.vdot(D, D)) / self._B         # ½‖a − y‖² / B

    def backward(self) -> np.ndarray:
        self._D *= 1.0 / self._B                             # dL/da = (a − y)/B
        return self._D

    def per_sample(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        d = np.asarray(pred, np.float64) - target
        return 0.5 * (d * d).sum(axis=1)                     # ½‖a_b − y_b‖²


class MAE(Loss):
    """Mean absolute error over all elements: L = mean |a − y|, dL/da = sign(a − y)/N."""

    kind = "mae"

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        D = buffer(self._buf, "D", pred.shape[0], pred.shape[1:], pred.dtype)
        np.subtract(pred, target, out=D)
        self._D = D
        return float(np.abs(D).mean())

    def backward(self) -> np.ndarray:
        D = self._D
        np.sign(D, out=D)
        D *= 1.0 / D.size                                     # sign(a − y)/N
        return D

    def per_sample(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(pred, np.float64) - target).mean(axis=1)


class Huber(Loss):
    """Huber loss over all elements, d = a − y:  ½d² if |d| ≤ δ else δ(|d| − ½δ).

    dL/da = clip(d, −δ, δ)/N. Matches ``torch.nn.HuberLoss(delta)``.
    """

    kind = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.delta = positive_float("Huber delta", delta)

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        D = buffer(self._buf, "D", pred.shape[0], pred.shape[1:], pred.dtype)
        np.subtract(pred, target, out=D)
        self._D = D
        absd = np.abs(D)
        quad = np.minimum(absd, self.delta)                  # L = ½q² + δ(|d| − q), q = min(|d|, δ)
        return float((0.5 * quad * quad + self.delta * (absd - quad)).mean())

    def backward(self) -> np.ndarray:
        D = self._D
        np.clip(D, -self.delta, self.delta, out=D)
        D *= 1.0 / D.size                                     # clip(d, −δ, δ)/N
        return D

    def per_sample(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        absd = np.abs(np.asarray(pred, np.float64) - target)
        quad = np.minimum(absd, self.delta)
        return (0.5 * quad * quad + self.delta * (absd - quad)).mean(axis=1)

    def config(self) -> dict[str, Any]:
        return {"delta": self.delta}


class Poisson(Loss):
    """Poisson loss with a log link, for counts and rates: the network outputs z = log μ.

        L = (1/B) Σ_b Σ_k [ e^z − y·z + y·log y − y ],   dL/dz = (e^z − y)/B

    Half the Poisson deviance, summed over outputs and averaged over the batch, as
    scikit-learn's ``MLPRegressor(loss="poisson")`` (y·log y − y, 0 for y = 0, only makes the
    perfect prediction's loss 0; it leaves the gradient alone). The fused form never divides
    by μ. Predictions are μ = e^z (``output_transform``); targets must be >= 0.
    """

    kind = "poisson"

    def prepare_target(self, y: Any, n_out: int, dtype: Any) -> np.ndarray:
        y = super().prepare_target(y, n_out, dtype)
        if y.size and y.min() < 0:
            raise ValidationError(
                f"the Poisson loss needs targets >= 0 (counts or rates); received a minimum of "
                f"{y.min()}. Use loss='mse' for targets that can be negative."
            )
        return y

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        self._pred, self._y = pred, target
        return float(self.per_sample(pred, target).sum()) / len(pred)

    def backward(self) -> np.ndarray:
        pred = self._pred
        G = buffer(self._buf, "G", pred.shape[0], pred.shape[1:], pred.dtype)
        with np.errstate(over="ignore"):
            np.exp(pred, out=G)                               # μ = e^z
        G -= self._y                                          # μ − y
        G *= 1.0 / len(G)                                     # dL/dz = (μ − y)/B
        return G

    def per_sample(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        z, y = np.asarray(pred, np.float64), np.asarray(target, np.float64)
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
        with np.errstate(over="ignore"):
            out: np.ndarray = (np.exp(z) - y * z + ylogy - y).sum(axis=1)
        return out

    def output_transform(self, out: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.exp(out)                                # μ = e^z


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy over all elements, for one or several independent binary outputs.

    ``from_logits=True`` (default) takes logits z and fuses the sigmoid, stable for any |z|:

        L = mean( max(z, 0) − z·y + log(1 + e^(−|z|)) ),   dL/dz = (σ(z) − y)/N

    ``from_logits=False`` takes probabilities p, clipped to [ε, 1 − ε] with ε = 1e−7:

        L = −mean( y log p + (1 − y) log(1 − p) ),   dL/dp = (p − y) / (p(1 − p)) / N

    (zero where p was clipped). Targets are 0/1 labels or probabilities in [0, 1].
    """

    kind = "bce"
    task = "classification"
    takes_labels = True
    eps = 1e-7

    def __init__(self, from_logits: bool = True, sum_outputs: bool = False) -> None:
        super().__init__()
        self.from_logits = bool(from_logits)
        # sum_outputs: L = (1/B) Σ_b Σ_k ℓ_bk, summed over the outputs (labels) instead of
        # averaged, as scikit-learn's MLPClassifier for multi-label targets (and Nielsen's
        # cross-entropy): the gradient is K times the mean's
        self.sum_outputs = bool(sum_outputs)

    def prepare_target(self, y: Any, n_out: int, dtype: Any) -> np.ndarray:
        y = super().prepare_target(y, n_out, dtype)
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValidationError(
                "BinaryCrossEntropy expects targets in [0, 1] (0/1 labels or probabilities); "
                f"received values from {y.min()} to {y.max()}. For several classes use loss='ce'."
            )
        return y

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        self._pred, self._y = pred, target
        if self.from_logits:
            z = pred
            L = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
        else:
            p = np.clip(pred, self.eps, 1 - self.eps)
            L = -(target * np.log(p) + (1 - target) * np.log1p(-p))
        return float(L.sum() / len(L) if self.sum_outputs else L.mean())

    def backward(self) -> np.ndarray:
        pred, y = self._pred, self._y
        G = buffer(self._buf, "G", pred.shape[0], pred.shape[1:], pred.dtype)
        if self.from_logits:
            with np.errstate(over="ignore"):
                np.negative(pred, out=G)
                np.exp(G, out=G)
            G += 1
            np.reciprocal(G, out=G)                           # σ(z)
            G -= y                                            # σ(z) − y
        else:
            p = np.clip(pred, self.eps, 1 - self.eps)
            np.divide(p - y, p * (1 - p), out=G)              # (p − y)/(p(1 − p))
            G[(pred < self.eps) | (pred > 1 - self.eps)] = 0  # the clip's derivative
        G *= 1.0 / (len(G) if self.sum_outputs else G.size)  # dL/dz = (σ(z) − y)/B or /(B·K)
        return G

    def per_sample(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        z = np.asarray(pred, np.float64)
        if self.from_logits:
            L = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
        else:
            p = np.clip(z, self.eps, 1 - self.eps)
            L = -(target * np.log(p) + (1 - target) * np.log1p(-p))
        return L.sum(axis=1) if self.sum_outputs else L.mean(axis=1)

    def output_transform(self, out: np.ndarray) -> np.ndarray:
        if not self.from_logits:
            return out
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-out))

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"from_logits": self.from_logits}
        if self.sum_outputs:                  # only when set: files stay readable as before
            config["sum_outputs"] = True
        return config


def log_softmax(Z: np.ndarray) -> np.ndarray:
    """log softmax(z)_k = z_k − max z − log Σ_j e^(z_j − max z), row-wise and stable."""
    S = Z - Z.max(axis=1, keepdims=True)
    S -= np.log(np.exp(S).sum(axis=1, keepdims=True))
    return S


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    E /= E.sum(axis=1, keepdims=True)
    return E


class CrossEntropy(Loss):
    """Softmax cross-entropy on logits, averaged over the batch.

    With targets t (one-hot, soft, or integer labels turned into one-hot) and
    optional label smoothing ε, t ← (1 − ε)t + ε/K:

        L = −(1/B) Σ_b Σ_k t_bk log softmax(z_b)_k
        dL/dz = (softmax(z) · Σ_k t_k − t) / B          (= (softmax(z) − t)/B for one-hot t)

    Matches ``torch.nn.CrossEntropyLoss(label_smoothing=ε)``.
    """

    kind = "ce"
    task = "classification"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self._key: tuple[Any, ...] = ()
        self.label_smoothing = fraction("label_smoothing", label_smoothing, upper_open=False)

    def prepare_target(self, y: Any, n_out: int, dtype: Any) -> np.ndarray:
        y = as_array(y, "y")
        if y.ndim == 2 and y.shape[1] == n_out and y.dtype.kind in "biuf":
            y = cast_float(y, dtype, "y")                   # one-hot or soft targets
            require_finite(y, "y")
            return y
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            y = y.reshape(-1)
            if y.dtype.kind == "f" and y.size and not np.all(y == np.round(y)):
                raise ValidationError(
                    "CrossEntropy expects integer class labels or one-hot targets; received "
                    "non-integer float labels. For real-valued targets use loss='mse'."
                )
            if y.dtype.kind not in "biuf":
                raise ValidationError(
                    f"CrossEntropy expects integer class labels 0..{n_out - 1}; received dtype "
                    f"{y.dtype}. Map labels to integers first, e.g. with "
                    "np.unique(y, return_inverse=True)."
                )
            require_finite(y, "y")
            if y.size and (y.min() < 0 or y.max() >= n_out):   # checked before any cast
                raise ValidationError(
                    f"CrossEntropy expects labels in 0..{n_out - 1} for a network with {n_out} "
                    f"outputs; received labels from {y.min()} to {y.max()}. Give the "
                    "last layer as many outputs as there are classes."
                )
            return y.astype(np.int64)
        raise ValidationError(
            f"CrossEntropy expects integer labels of shape (N,) or one-hot targets of shape "
            f"(N, {n_out}); received shape {y.shape}."
        )

    def _views(self, pred: np.ndarray) -> None:
        B, K = pred.shape
        self._P = buffer(self._buf, "P", B, (K,), pred.dtype)      # e^(z − m), then dL/dz
        self._m = buffer(self._buf, "m", B, (1,), pred.dtype)      # row maxima (fallback)
        self._s = buffer(self._buf, "s", B, (), pred.dtype)        # row sums Σ_k e^(z_k − m)
        self._rowsK = np.arange(B) * K                             # flat index of row starts
        self._idx = np.empty(B, dtype=np.int64)
        self._ones = np.ones(B, dtype=pred.dtype)                  # sums over the batch as dots
        self._ones_K = np.ones(K, dtype=pred.dtype)                # sums over classes as dots
        # a row sum below this has lost precision to underflow: shift that batch row by row
        self._tiny = float(np.finfo(pred.dtype).tiny / np.finfo(pred.dtype).eps)
        self._key = (pred.shape, pred.dtype)

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        """L = (1/B) Σ_b [log s_b − Σ_k t_bk (z_bk − m)],  s_b = Σ_k e^(z_bk − m).

        This is −Σ_k t_k log softmax(z)_k in log-sum-exp form. The shift m is the batch's
        largest logit (one reduction, so no e^z overflows); if some row lies so far below it
        that its sum underflows, every row is shifted by its own maximum instead.
        """
        B = pred.shape[0]
        if (pred.shape, pred.dtype) != self._key:
            self._views(pred)
        self._t = target
        zy = self._shift_exp(pred, target, pred.max())
        if self._s.min() < self._tiny:
            np.max(pred, axis=1, keepdims=True, out=self._m)
            zy = self._shift_exp(pred, target, self._m)
        s = self._s
        if target.ndim == 1:
            logs = np.dot(np.log(s), self._ones)                   # Σ_b log s_b
        else:
            logs = np.vdot(self._T.sum(axis=1), np.log(s))         # Σ_b (Σ_k t_bk) log s_b
        return float(logs - zy) / B

    def _shift_exp(self, pred: np.ndarray, target: np.ndarray, m: Any) -> Any:
        """P = e^(z − m), s = row sums of P; returns Σ_b Σ_k t_bk (z_bk − m)."""
        P = self._P
        K = pred.shape[1]
        eps = self.label_smoothing
        np.subtract(pred, m, out=P)                                # z − m
        if target.ndim == 1:                                       # labels: t = one-hot(y)
            idx = self._idx
            np.add(self._rowsK, target, out=idx)
            zy = np.dot(P.ravel().take(idx), self._ones)           # Σ_b (z_by − m)
            if eps:                                                # smoothing: + ε/K Σ_k (z_k − m)
                zy = (1 - eps) * zy + eps / K * P.sum()
        else:                                                      # one-hot or soft targets
            self._T = T = self._smoothed(target, K) if eps else target
            zy = np.vdot(T, P)                                     # Σ_b Σ_k t_bk (z_bk − m)
        np.exp(P, out=P)
        np.dot(P, self._ones_K, out=self._s)                       # s = Σ_k e^(z_k − m) = P·1
        return zy

    def _smoothed(self, T: np.ndarray, K: int) -> np.ndarray:
        eps = self.label_smoothing
        return (1 - eps) * T + eps / K                             # t ← (1 − ε)t + ε/K

    def backward(self) -> np.ndarray:
        """dL/dz = (softmax(z) · Σ_k t_k − t) / B, written over the forward's buffer."""
        P, s, t = self._P, self._s, self._t
        B, K = P.shape
        eps = self.label_smoothing
        np.divide(1.0 / B, s, out=s)
        # s[:, None] is taken here, not cached: a cached view of s would come back from
        # copy.deepcopy or pickle as a separate array, and the gradient would use stale sums
        P *= s[:, None]                                            # softmax(z) / B = P/(B s)
        if t.ndim == 1:                                            # integer labels: t one-hot
            P.ravel()[self._idx] -= (1 - eps) / B                  #   − (1 − ε) onehot / B
            if eps:
                P -= eps / (K * B)                                 #   − ε/(K B)
        else:
            T = self._T
            P *= T.sum(axis=1, keepdims=True)                      # softmax · Σ_k t_k / B
            P -= T * (1.0 / B)                                     #   − t / B
        return P

    def per_sample(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        logp = log_softmax(np.asarray(pred, np.float64))
        K = logp.shape[1]
        if target.ndim == 1:
            T = np.zeros_like(logp)
            T[np.arange(len(T)), target] = 1.0
        else:
            T = np.asarray(target, np.float64)
        if self.label_smoothing:
            T = self._smoothed(T, K)
        return -(T * logp).sum(axis=1)                     # −Σ_k t_k log softmax(z)_k

    def output_transform(self, out: np.ndarray) -> np.ndarray:
        return softmax(out)

    def config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing}


LOSSES: dict[str, type[Loss]] = {
    "mse": MSE,
    "mean_squared_error": MSE,
    "squared_error": MSE,
    "mae": MAE,
    "l1": MAE,
    "mean_absolute_error": MAE,
    "huber": Huber,
    "poisson": Poisson,
    "bce": BinaryCrossEntropy,
    "binary_crossentropy": BinaryCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "ce": CrossEntropy,
    "cross_entropy": CrossEntropy,
    "crossentropy": CrossEntropy,
    "categorical_crossentropy": CrossEntropy,
}


#: What a loss argument takes: a registered name ("ce", "mse", …) or a Loss instance.
LossLike: TypeAlias = str | Loss


def get(loss: LossLike) -> Loss:
    """A loss from its name ("mse", "mae", "huber", "bce", "ce", …) or an instance (as is)."""
    if isinstance(loss, Loss):
        return loss
    return lookup(LOSSES, loss, "loss")()


def from_config(kind: str, config: dict[str, Any]) -> Loss:
    """Rebuild a loss from its ``kind`` and ``config()`` (used by model files)."""
    return LOSSES[kind](**config)
