"""Learning-rate schedules: ``schedule(epoch, base_lr) -> lr`` for epoch = 0, 1, 2, …

``fit`` sets ``optimizer.lr = schedule(epoch, base_lr)`` before each epoch, where base_lr is the
optimizer's learning rate when ``fit`` starts. The closed forms match PyTorch's ``StepLR``,
``ExponentialLR`` and ``CosineAnnealingLR`` stepped once per epoch.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, TypeAlias

from ._utils import lookup, positive_float, positive_int
from .errors import ValidationError


class Schedule:
    """Base class: a function of the epoch index and the base learning rate.

    The built-in schedules keep no state (the rate follows from the epoch); a schedule that
    does (one reacting to the losses it has seen, say) returns it from ``state_dict`` and
    takes it back in ``load_state_dict``, as callbacks do, so checkpoints carry it.
    """

    kind: ClassVar[str] = "schedule"

    def __call__(self, epoch: int, base_lr: float) -> float:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The schedule's state as JSON values (numbers, strings, lists, dicts, None); the
        stateless built-in schedules return {}."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` returned (from a checkpoint: check every value)."""
        if state:
            raise ValidationError(f"{type(self).__name__} has no state to restore; received "
                                  f"{sorted(state)}.")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """η_e = η₀."""

    kind = "constant"

    def __call__(self, epoch: int, base_lr: float) -> float:
        return base_lr


class StepDecay(Schedule):
    """η_e = η₀ · γ^⌊e / step_size⌋ (PyTorch ``StepLR``)."""

    kind = "step"

    def __init__(self, step_size: int = 10, gamma: float = 0.1) -> None:
        self.step_size = positive_int("step_size", step_size)
        self.gamma = positive_float("gamma", gamma)

    def __call__(self, epoch: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)

    def config(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}


class ExponentialDecay(Schedule):
    """η_e = η₀ · γ^e (PyTorch ``ExponentialLR``)."""

    kind = "exponential"

    def __init__(self, gamma: float = 0.95) -> None:
        self.gamma = positive_float("gamma", gamma)

    def __call__(self, epoch: int, base_lr: float) -> float:
        return base_lr * self.gamma**epoch

    def config(self) -> dict[str, Any]:
        return {"gamma": self.gamma}


class CosineDecay(Schedule):
    """Linear warm-up, then cosine annealing to ``min_lr`` over the remaining epochs.

    For e < w (warm-up epochs):  η_e = η₀ (e + 1) / (w + 1)
    Afterwards, with T = epochs − w:  η_e = η_min + ½(η₀ − η_min)(1 + cos(π (e − w) / T))
    With w = 0 this is PyTorch's ``CosineAnnealingLR(T_max=epochs, eta_min=min_lr)``.
    """

    kind = "cosine"

    def __init__(self, epochs: int, warmup: int = 0, min_lr: float = 0.0) -> None:
        self.epochs = positive_int("epochs", epochs)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < epochs:
            raise ValidationError(
                f"warmup must be an integer in [0, epochs) = [0, {epochs}); received {warmup!r}."
            )
        self.warmup = warmup
        self.min_lr = positive_float("min_lr", min_lr, allow_zero=True)

    def __call__(self, epoch: int, base_lr: float) -> float:
        w = self.warmup
        if epoch < w:
            return base_lr * (epoch + 1) / (w + 1)
        T = self.epochs - w
        cos = math.cos(math.pi * min(epoch - w, T) / T)
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1 + cos)

    def config(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "warmup": self.warmup, "min_lr": self.min_lr}


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant, "step": StepDecay, "exponential": ExponentialDecay,
    "cosine": CosineDecay,
}


#: What a schedule argument takes: a registered name ("cosine", …), an instance, or None
#: (a constant rate).
ScheduleLike: TypeAlias = str | Schedule | None


def get(schedule: ScheduleLike, epochs: int) -> Schedule:
    """A schedule by name (cosine spans ``epochs``), an instance (as is), or None (constant)."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, Schedule):
        return schedule
    cls = lookup(SCHEDULES, schedule, "schedule")
    return CosineDecay(epochs) if cls is CosineDecay else cls()
