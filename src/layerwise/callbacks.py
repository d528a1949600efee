"""Callbacks: what ``fit`` calls at the start, after each step and epoch, and at the end,
with ``TrainState`` (the model, optimizer and loop position) and ``History`` (one value per
epoch and metric). Stateful callbacks give their state to checkpoints (``state_dict``) and take
it back on resume (``load_state_dict``), checked before anything changes.

``EarlyStopping`` (with restoring the best weights), ``ReduceLROnPlateau``, ``GradientNorms``
(the gradient-flow picture) and ``ModelCheckpoint`` are the package's own; a callback of yours
subclasses ``Callback`` and overrides the hooks it needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._utils import positive_int
from .errors import ValidationError

if TYPE_CHECKING:
    from . import losses as losses_mod
    from . import optimizers as optimizers_mod
    from .network import Sequential


class History:
    """Per-epoch records of a ``fit``: ``history["loss"]``, ``history["val_loss"]``, …

    Keys: ``loss`` and the metrics on the training batches: ``accuracy`` (argmax accuracy)
    when the targets are labels or one-hot rows, whatever the loss (CE, BCE, MSE); for BCE
    with one output, σ > ½ against y > ½; for multi-label 0/1 targets ``subset_accuracy``
    (whole row right) and ``label_accuracy`` (each label) instead. Validation adds the loss
    and ``evaluate``'s metrics (MSE, MAE, R² too for regression losses),
    ``val_``-prefixed ones when there is validation data, ``lr``, ``seconds`` and ``threads``
    (the BLAS thread count in force at the end of the epoch; 0 without threadpoolctl).
    ``thread_choices`` lists every measurement of ``fit(threads="auto")``: the step it ended
    at, why it ran ("start", "drift", "periodic", "resumed"), the mean µs per step with each
    count, and the count kept.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.thread_choices: list[dict[str, Any]] = []

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": list(self.epoch), **{k: list(v) for k, v in self.history.items()}}

    def __repr__(self) -> str:
        last = {k: round(v[-1], 5) for k, v in self.history.items()}
        return f"History(epochs={len(self)}, last={last})"


@dataclass
class TrainState:
    """What callbacks see and may change during ``fit``."""

    model: Sequential
    optimizer: optimizers_mod.Optimizer
    loss: losses_mod.Loss
    history: History
    base_lr: float
    epochs: int
    lr_factor: float = 1.0          # multiplies the scheduled rate (ReduceLROnPlateau lowers it)
    epoch: int = 0
    has_validation: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    rank: int = 0                   # data-parallel fit (comm=): this process's rank, of ranks;
    ranks: int = 1                  # callbacks run on every rank, only rank 0 writes files


class Callback:
    """Hooks called by ``fit``. Set ``state.model.stop_training = True`` to stop early.

    A callback that keeps state across epochs returns it from ``state_dict`` and takes it back
    in ``load_state_dict``, so that checkpoints hold it and a resumed run continues exactly.
    """

    #: True for a callback whose ``on_batch_end`` only reads the model: ``fit`` then keeps its
    #: cached parameter norm between steps (a callback that may edit parameters resets it)
    reads_only: ClassVar[bool] = False

    def state_dict(self) -> dict[str, Any]:
        """The callback's state: JSON values (numbers, strings, lists, dicts, None) and NumPy
        arrays as top-level values. Stateless callbacks return {}."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` returned (from a checkpoint: check every value)."""
        if state:
            raise ValidationError(f"{type(self).__name__} has no state to restore; received "
                                  f"{sorted(state)}.")

    def on_train_begin(self, state: TrainState) -> None:
        """Called once before the first epoch."""

    def on_batch_end(self, state: TrainState, loss: float) -> None:
        """Called after every optimizer step with the batch loss; gradients are still in place.

        Only callbacks that override this hook are called per batch, so it costs nothing
        otherwise.
        """

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        """Called after each epoch with that epoch's logs (loss, metrics, val_*, lr, seconds).

        A callback may add or replace entries of ``logs`` (e.g. metrics in other units): the
        history and the printed epoch line record ``logs`` once every callback has run, so
        ``state.history`` holds the epochs before this one.
        """

    def on_train_end(self, state: TrainState) -> None:
        """Called once after the last epoch (also after an early stop)."""


class _Monitor(Callback):
    """Shared logic: watch one logged quantity for improvement (min for losses, max otherwise)."""

    def __init__(self, monitor: str, min_delta: float, mode: str) -> None:
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        if mode not in ("auto", "min", "max"):
            raise ValidationError(f"mode must be 'auto', 'min' or 'max'; received {mode!r}.")
        self.mode = mode
        self.best = math.inf

    def on_train_begin(self, state: TrainState) -> None:
        if self.monitor.startswith("val_") and not state.has_validation:
            raise ValidationError(
                f"{type(self).__name__} monitors {self.monitor!r} but fit has no validation data; "
                "pass validation_data=(X_val, y_val) or validation_split=0.1, or monitor='loss'."
            )
        self.best = math.inf

    def state_dict(self) -> dict[str, Any]:
        return {"best": _json_float(self.best)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = _state_float(state, "best", self)

    def _sign(self) -> float:
        maximize = self.mode == "max" or (self.mode == "auto" and not self.monitor.endswith(
            "loss") and not self.monitor.endswith(("mse", "mae")))
        return -1.0 if maximize else 1.0

    def _value(self, logs: dict[str, float]) -> float:
        if self.monitor not in logs:
            raise ValidationError(
                f"{type(self).__name__} monitors {self.monitor!r}, which is not logged; "
                f"available: {sorted(logs)}."
            )
        return self._sign() * logs[self.monitor]


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best=True`` the parameters of the best epoch are put back at the end.
    """

    def __init__(self, patience: int = 5, monitor: str = "val_loss", min_delta: float = 0.0,
                 restore_best: bool = True, mode: str = "auto") -> None:
        super().__init__(monitor, min_delta, mode)
        self.patience = positive_int("patience", patience)
        self.restore_best = restore_best
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self._best_params: list[np.ndarray] | None = None
        self._wait = 0

    def on_train_begin(self, state: TrainState) -> None:
        super().on_train_begin(state)
        self._wait, self.best_epoch, self.stopped_epoch, self._best_params = 0, -1, None, None

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        v = self._value(logs)
        if v < self.best - self.min_delta:
            self.best, self.best_epoch, self._wait = v, state.epoch, 0
            if self.restore_best:
                self._best_params = [p.value.copy() for p in state.model.parameters()]
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = state.epoch
            state.model.stop_training = True

    def state_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {**super().state_dict(), "wait": self._wait,
                             "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch}
        d.update({f"best_param.{i}": a for i, a in enumerate(self._best_params or [])})
        return d

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = _state_float(state, "best", self)
        wait = _state_int(state, "wait", self)
        best_epoch = _state_int(state, "best_epoch", self, low=-1)
        stopped = None if state.get("stopped_epoch") is None else _state_int(
            state, "stopped_epoch", self)
        arrays = [state[f"best_param.{i}"] for i in range(len(state))
                  if f"best_param.{i}" in state]
        if not all(isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size and
                   np.isfinite(a).all() for a in arrays):
            raise ValidationError("EarlyStopping's saved best parameters are not finite arrays.")
        self.best, self._wait, self.best_epoch, self.stopped_epoch = best, wait, best_epoch, stopped
        self._best_params = arrays or None

    def on_train_end(self, state: TrainState) -> None:
        if self.restore_best and self._best_params is not None:
            own = state.model.parameters()
            if [a.shape for a in self._best_params] != [p.value.shape for p in own]:
                raise ValidationError("EarlyStopping's best parameters (from a checkpoint) do "
                                      "not fit this model's parameters.")
            for p, best in zip(state.model.parameters(), self._best_params):
                p.value[...] = best


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    Improvement means a relative decrease of more than ``threshold`` (PyTorch's default 'rel'
    mode); after ``patience`` epochs without one, lr ← max(lr · factor, min_lr). Works on top
    of a schedule: it scales whatever the schedule gives.
    """

    def __init__(self, factor: float = 0.1, patience: int = 10, monitor: str = "val_loss",
                 min_lr: float = 0.0, threshold: float = 1e-4, mode: str = "auto") -> None:
        super().__init__(monitor, 0.0, mode)
        if not 0 < factor < 1:
            raise ValidationError(f"factor must be in (0, 1); received {factor!r}.")
        self.factor = float(factor)
        self.patience = positive_int("patience", patience)
        self.min_lr = float(min_lr)
        self.threshold = float(threshold)
        self._wait = 0

    def on_train_begin(self, state: TrainState) -> None:
        super().on_train_begin(state)
        self._wait = 0

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait": self._wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best, wait = _state_float(state, "best", self), _state_int(state, "wait", self)
        self.best, self._wait = best, wait

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        v = self._value(logs)
        better = v < self.best - abs(self.best) * self.threshold if math.isfinite(self.best) \
            else True
        if better:
            self.best, self._wait = v, 0
            return
        self._wait += 1
        if self._wait > self.patience:
            lr = max(state.optimizer.lr * self.factor, self.min_lr)
            state.lr_factor *= lr / state.optimizer.lr
            state.optimizer.lr = lr
            self._wait = 0


class GradientNorms(Callback):
    """Record each parameter's gradient norm ‖dW‖_F, averaged over the batches of every epoch.

    After training, ``norms[name]`` is a list with one value per epoch (names as in
    ``model.parameters()``: ``"0.W"``, ``"0.b"``, …): the gradient-flow picture.
    """

    reads_only = True

    def __init__(self) -> None:
        self.norms: dict[str, list[float]] = {}
        self._sums: dict[str, float] = {}
        self._count = 0

    def on_train_begin(self, state: TrainState) -> None:
        self.norms = {p.name: [] for p in state.model.parameters()}
        self._sums, self._count = dict.fromkeys(self.norms, 0.0), 0

    def state_dict(self) -> dict[str, Any]:
        return {"norms": self.norms, "sums": self._sums, "count": self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        norms, sums = state.get("norms"), state.get("sums")
        count = _state_int(state, "count", self)
        if not (isinstance(norms, dict) and isinstance(sums, dict) and set(norms) == set(sums)
                and all(isinstance(v, list) and all(_is_number(x) for x in v)
                        for v in norms.values()) and all(map(_is_number, sums.values()))):
            raise ValidationError("GradientNorms' saved state must map each parameter name to a "
                                  "list of norms and a running sum.")
        self.norms = {k: [float(x) for x in v] for k, v in norms.items()}
        self._sums, self._count = {k: float(v) for k, v in sums.items()}, count

    def on_batch_end(self, state: TrainState, loss: float) -> None:
        for p in state.model.parameters():
            g = p.grad.reshape(-1)
            self._sums[p.name] += float(np.sqrt(np.dot(g, g)))    # ‖dW‖_F
        self._count += 1

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        for name, total in self._sums.items():
            self.norms[name].append(total / max(self._count, 1))
        self._sums, self._count = dict.fromkeys(self._sums, 0.0), 0


class ModelCheckpoint(Callback):
    """Save the model after each epoch, or only when ``monitor`` improves (``save_best_only``).

    ``path`` may contain ``{epoch}`` (1-based), e.g. ``"ckpt-{epoch:03d}.lw"``.
    """

    def __init__(self, path: str, monitor: str = "val_loss", save_best_only: bool = True,
                 mode: str = "auto") -> None:
        self.path = str(path)
        self._monitor = _Monitor(monitor, 0.0, mode)
        self.save_best_only = save_best_only

    def on_train_begin(self, state: TrainState) -> None:
        if self.save_best_only:
            self._monitor.on_train_begin(state)

    def state_dict(self) -> dict[str, Any]:
        return self._monitor.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._monitor.load_state_dict(state)

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        if self.save_best_only:
            v = self._monitor._value(logs)
            if not v < self._monitor.best:
                return
            self._monitor.best = v
        if state.rank == 0:                 # data-parallel: one file, written by rank 0
            state.model.save(self.path.format(epoch=state.epoch + 1))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _json_float(x: float) -> float | None:
    """JSON has no infinity: a best value not yet seen (±inf) is stored as None."""
    return x if math.isfinite(x) else None


def _state_float(state: dict[str, Any], key: str, cb: Callback) -> float:
    v = state.get(key)
    if v is None:
        return math.inf
    if not _is_number(v):
        raise ValidationError(f"{type(cb).__name__}'s saved {key} must be a finite number or "
                              f"null; received {v!r}.")
    return float(v)


def _state_int(state: dict[str, Any], key: str, cb: Callback, low: int = 0) -> int:
    v = state.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValidationError(f"{type(cb).__name__}'s saved {key} must be an integer >= {low}; "
                              f"received {v!r}.")
    return v
