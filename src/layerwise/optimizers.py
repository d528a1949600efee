"""Gradient-descent optimizers over ``model.parameters()``, updating values in place.

``fit`` calls ``guarded_step``: no update may leave a NaN or infinite parameter or state. Before
each step a bound on the size of every number it will compute is worked out from scalars
(‖g‖, ‖W‖ and bounds on the state's size carried from step to step, a few float operations);
when that bound is far below the dtype's largest value the step cannot overflow and runs as is.
Otherwise (a huge learning rate, parameters near overflow, an optimizer without a bound) the
step runs on a copy-protected path: parameters and state are copied, the step runs, and if
anything became non-finite they are put back bit for bit and ``DivergenceError`` is raised.

Each follows ``torch.optim``'s update rule (the same formulas, defaults and first step), so that
runs agree with PyTorch to float64 precision; where an equivalent order of operations takes fewer
passes over the parameters, it is used (SGD and Adam fuse their updates into BLAS axpy/axpby
calls for large buffers, see :mod:`layerwise._blas`). State (momentum, moments) is allocated
once, at the first ``step``, and updated in place afterwards; no step allocates an array.

Weight decay applies to the weights only (``decay_biases=False``, the default), as the
textbook's L2 penalty ½λ‖W‖², scikit-learn's ``alpha`` and Keras' kernel regularisers do:
the ranges a ``Param`` lists in ``no_decay`` (the biases) get the plain update. Within fit's
one flat buffer they are a few short slices (one per layer), so the decay stays one vectorised
pass and the biases are then put right in a handful of tiny copies. ``decay_biases=True``
decays every parameter, as ``torch.optim`` with ``weight_decay`` on all parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, TypeAlias

import numpy as np

from ._blas import axpby, axpy
from ._utils import is_finite, lookup, positive_float
from .errors import DivergenceError, ValidationError
from .layers import Param, ParamList


class Optimizer:
    """Base class: ``step(params)`` applies one update using each ``param.grad``."""

    kind: ClassVar[str] = "optimizer"
    # State arrays the overflow bound tracks: "norm" (‖a‖₂) or "peak" (max aᵢ of a non-negative
    # accumulator of squares). Subclasses without a bound (``_bound`` returns inf) leave it empty.
    _tracked: ClassVar[dict[str, str]] = {}
    weight_decay: float = 0.0
    decay_biases: bool = False         # weight decay on the biases too (torch.optim's way)
    # (the state list, the arrays it was last checked against): valid while it is that list
    _seen: tuple[Any, ...] = ()

    def __init__(self, lr: float) -> None:
        self.lr = positive_float("learning rate lr", lr)
        self.t = 0                                   # steps taken
        self.state: list[dict[str, np.ndarray]] = []
        # upper bounds on ‖W‖ ("w") and on the tracked state; None: measure them again.
        # _limit, _grow, _tiny: the dtype's constants for them, set when they are measured.
        self._bounds: dict[str, float] | None = None
        self._limit, self._grow, self._tiny = 0.0, 1.0, 0.0

    def _fresh(self, params: Sequence[Param]) -> bool:
        """Whether the next step starts new state (first step, or other parameters). The
        arrays found to match the state are remembered, so the steady state (the same arrays
        every step) costs a few identity checks."""
        seen = self._seen
        if seen and seen[0] is self.state and len(seen[1]) == len(params) and all(
                p.value is v for p, v in zip(params, seen[1])):
            return False
        fresh = len(self.state) != len(params) or any(
            s["_shape"].shape != p.value.shape or s["_shape"].dtype != p.value.dtype
            for s, p in zip(self.state, params)
        )
        self._seen = () if fresh else (self.state, tuple(p.value for p in params))
        return fresh

    def step(self, params: Sequence[Param]) -> None:
        """One update of every parameter from its ``grad``, unchecked (see ``guarded_step``).

        ``model.parameters()`` (a ``ParamList`` of views of the model's flat buffer) is
        stepped as that one buffer, as ``fit`` steps it: the same numbers, in a few calls.
        """
        params = _flat(params)
        self._step(params, self._fresh(params))

    def _step(self, params: Sequence[Param], fresh: bool) -> None:
        if fresh:
            self.state = [self._init_state(p) for p in params]
            self.t = 0                               # new parameters: start from step one
        self._bounds = None                          # guarded_step sets them after the step
        self.t += 1
        exempt = not self.decay_biases and self.weight_decay   # biases skip weight decay
        for p, s in zip(params, self.state):
            self._update(p.value, p.grad, s, p.no_decay if exempt else ())

    def guarded_step(self, params: Sequence[Param], grad_norm: float) -> None:
        """``step``, guaranteed to leave parameters and state finite, or to change nothing.

        ``grad_norm`` must be an upper bound of the gradients' global norm ‖g‖ (finite).
        In the steady state the bounds carried from the last step give, in a few float
        operations, a bound on every number this step computes (``_bound``); when it is far
        below the dtype's largest value, the step runs as a plain ``step``. Otherwise the
        bounds are measured afresh (one dot per array), and if even those do not prove the
        step safe, parameters and state are copied first: if the step leaves a NaN or an
        infinity anywhere, both are restored bit for bit and ``DivergenceError`` is raised.
        """
        params = _flat(params)
        fresh = self._fresh(params)
        if type(self).step is not Optimizer.step:        # a subclass with its own step: check
            self._checked_step(params, fresh)
            return
        b = self._bounds
        if b is not None and not fresh and "w" in b:     # the steady state: scalars only
            peak, new = self._bound(b, grad_norm, self.t + 1)
            if peak < self._limit:
                self._step(params, False)
                self._bounds = new
                return
        fi = np.finfo(params[0].value.dtype)
        self._limit = float(fi.max) / 16             # margin for rounding inside the bounds
        self._grow = 1 + 8 * float(fi.eps)           # one step's rounding, folded into bounds
        self._tiny = float(fi.tiny)
        t = 1 if fresh else self.t + 1
        for refresh in (False, True):                # the carried bounds may just be loose
            peak, new = self._bound(self._measure(params, fresh, refresh), grad_norm, t)
            if peak < self._limit:
                self._step(params, fresh)
                self._bounds = new
                return
        self._checked_step(params, fresh)

    def forget_param_norm(self) -> None:
        """Parameters were changed outside ``step``: measure ‖W‖ again before the next one."""
        if self._bounds is not None:
            self._bounds.pop("w", None)

    def _measure(self, params: Sequence[Param], fresh: bool, refresh: bool) -> dict[str, float]:
        """Bounds for the state the next step starts from: the carried ones, and measured
        norms (or maxima) for those unknown, or for all with ``refresh``."""
        b = {} if self._bounds is None or fresh or refresh else dict(self._bounds)
        for key, how in self._tracked.items():
            if key in b:
                continue
            arrays = [] if fresh else [s[key] for s in self.state if key in s]  # fresh: zeros
            b[key] = _norm(arrays) if how == "norm" else max(
                (float(a.max()) for a in arrays if a.size), default=0.0)
        if "w" not in b:
            b["w"] = _norm([p.value for p in params])
        self._bounds = b
        return b

    def _bound(self, b: dict[str, float], G: float, t: int) -> tuple[float, dict[str, float]]:
        """(bound on |every number the next step computes|, bounds after it), from the bounds
        ``b`` before it, ‖g‖ ≤ G and step number t; the new bounds include ``self._grow``
        for rounding. The base class knows no bound: every step is checked."""
        return math.inf, {}

    def _checked_step(self, params: Sequence[Param], fresh: bool) -> None:
        """Copy, step, check; restore the copies and raise if anything became non-finite."""
        values = [p.value.copy() for p in params]
        state, t = self.state, self.t
        saved = [{k: a.copy() for k, a in s.items() if not k.startswith(("_", "tmp"))}
                 for s in state]
        if type(self).step is Optimizer.step:
            self._step(params, fresh)
        else:
            self.step(params)
        if all(is_finite(p.value) for p in params) and all(
                is_finite(a) for s in self.state for k, a in s.items()
                if not k.startswith(("_", "tmp"))):
            return
        for p, v in zip(params, values):
            p.value[...] = v
        self.state, self.t = state, t
        for s, copies in zip(state, saved):
            for k, a in copies.items():
                s[k][...] = a
        dtype = params[0].value.dtype
        raise DivergenceError(
            f"the update with learning rate {self.lr:g} would have made parameters or "
            f"optimizer state NaN or infinite (beyond {dtype}'s largest value "
            f"{float(np.finfo(dtype).max):.3g}), so it was not applied"
        )

    def _init_state(self, p: Param) -> dict[str, np.ndarray]:
        # "_shape" is a 0-stride view used only to notice a changed parameter layout or dtype.
        return {"_shape": np.broadcast_to(np.zeros((), p.value.dtype), p.value.shape),
                "tmp": np.zeros_like(p.value)}

    def _update(self, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray],
                skip: tuple[tuple[int, int], ...]) -> None:
        """Update ``w`` in place from ``g``; the ``skip`` ranges of w.reshape(-1) (biases,
        when they are not decayed) take no weight decay."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The optimizer's state as named arrays ``"<param index>.<name>"`` (for checkpoints);
        scratch buffers are left out."""
        return {f"{i}.{k}": v for i, s in enumerate(self.state) for k, v in s.items()
                if not k.startswith(("_", "tmp"))}

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue the updates exactly: the kind and settings
        (for the record), the step count ``t``, the current learning rate ``lr`` (as scheduled)
        and, as top-level NumPy arrays, ``state_arrays()``. JSON values otherwise."""
        return {"kind": self.kind, "config": self.config(), "t": self.t, "lr": self.lr,
                **self.state_arrays()}

    def load_state_dict(self, state: dict[str, Any], params: Sequence[Param]) -> None:
        """Take back what ``state_dict`` gave, for ``params`` (the parameters it was written
        for: same shapes, same order). Everything is checked before anything changes."""
        t, lr = state.get("t"), state.get("lr")
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= 1 << 53:
            raise ValidationError(f"the optimizer's step count t must be an integer in "
                                  f"[0, 2**53]; received {t!r}.")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
                or lr <= 0:
            raise ValidationError(f"the optimizer's learning rate lr must be a finite positive "
                                  f"number; received {lr!r}.")
        fresh = [self._init_state(p) for p in _flat(params)]
        for i, s in enumerate(fresh):
            for k in s:
                if k.startswith(("_", "tmp")):
                    continue
                a = state.get(f"{i}.{k}")
                if not isinstance(a, np.ndarray) or a.shape != s[k].shape:
                    raise ValidationError(
                        f"the optimizer state {i}.{k} is missing or has the wrong shape; the "
                        "checkpoint was written for other parameters or another optimizer."
                    )
                s[k][...] = a
        self.state, self.t, self.lr = fresh, t, float(lr)
        self._bounds = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _flat(params: Sequence[Param]) -> Sequence[Param]:
    """``params`` as the one flat Param they are views of (``ParamList.flat``), if they are."""
    flat = params.flat() if isinstance(params, ParamList) else None
    return params if flat is None else [flat]


def _undecay(gd: np.ndarray, g: np.ndarray, skip: tuple[tuple[int, int], ...]) -> None:
    """gd = ∇W + λW everywhere; put back gd = ∇b on the ``skip`` ranges (the biases): one short
    copy per layer, so the decay itself stays one pass over the whole buffer."""
    if skip:
        if gd.ndim != 1:                                   # views: parameters are contiguous
            gd, g = gd.reshape(-1), g.reshape(-1)
        for a, b in skip:
            gd[a:b] = g[a:b]


def _norm(arrays: Sequence[np.ndarray]) -> float:
    """√(Σ a²) over the arrays: one BLAS dot each (inf if the squares overflow, which only
    makes a bound fail safe)."""
    total = 0.0
    for a in arrays:
        v = a.reshape(-1)
        total += float(np.dot(v, v))
    return math.sqrt(total)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

        g ← ∇W + λW                      (weight_decay λ, coupled L2 as in torch.optim.SGD;
                                          biases: g ← ∇b unless decay_biases=True)
        v ← μv + (1 − τ)g                (momentum μ, dampening τ; v = g at the first step)
        g ← g + μv  (Nesterov)  or  g ← v
        W ← W − η g
    """

    kind = "sgd"
    _tracked: ClassVar[dict[str, str]] = {"v": "norm"}

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0,
                 decay_biases: bool = False) -> None:
        super().__init__(lr)
        self.decay_biases = bool(decay_biases)
        self.momentum = positive_float("momentum", momentum, allow_zero=True)
        self.weight_decay = positive_float("weight_decay", weight_decay, allow_zero=True)
        self.dampening = positive_float("dampening", dampening, allow_zero=True)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValidationError(
                "Nesterov momentum needs momentum > 0 and dampening = 0; received "
                f"momentum={momentum}, dampening={dampening}."
            )

    def _init_state(self, p: Param) -> dict[str, np.ndarray]:
        s = super()._init_state(p)
        if self.momentum:
            s["v"] = np.zeros_like(p.value)
        if self.nesterov:
            s["tmp2"] = np.zeros_like(p.value)
        return s

    def _update(self, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray],
                skip: tuple[tuple[int, int], ...]) -> None:
        tmp = s["tmp"]
        if self.weight_decay:
            np.multiply(w, self.weight_decay, out=tmp)
            tmp += g                                       # g ← ∇W + λW
            _undecay(tmp, g, skip)                         # biases: g ← ∇b
            g = tmp
        if self.momentum:
            v = s["v"]
            if self.t == 1:
                v[...] = g                                 # v = g at the first step
            else:
                # v ← μv + (1 − τ)g in one BLAS axpby. Its NumPy fallback scales g in tmp when
                # τ ≠ 0, even if g is tmp: g is needed again only by Nesterov, where τ = 0.
                axpby(1 - self.dampening, g, self.momentum, v, tmp)
            if self.nesterov:
                g2 = s["tmp2"]
                np.multiply(v, self.momentum, out=g2)
                g2 += g                                    # g ← g + μv
                g = g2
            else:
                g = v                                      # g ← v
        axpy(-self.lr, g, w, tmp)                          # W ← W − η g, one BLAS axpy

    def _bound(self, b: dict[str, float], G: float, t: int) -> tuple[float, dict[str, float]]:
        # The triangle inequality on each line of _update, with ‖·‖₂ ≥ every |element|:
        # ‖∇W + λW‖ ≤ S, then ‖v‖ ≤ μ‖v‖ + max(|1 − τ|, 1)·S (v = g at the first step), the
        # direction ≤ S + μ‖v‖ (Nesterov) or ‖v‖, and ‖W − η·direction‖ ≤ ‖W‖ + η·direction.
        # Every intermediate (λW, μv, (1 − τ)g, η·direction) is at most max(S, W).
        Wn, mu = b["w"], self.momentum
        S = G + self.weight_decay * Wn
        if mu:
            V = mu * b["v"] + max(abs(1 - self.dampening), 1.0) * S
            S = S + mu * V if self.nesterov else V
            W = Wn + self.lr * S
            return max(S, W), {"w": W * self._grow, "v": V * self._grow}
        W = Wn + self.lr * S
        return max(S, W), {"w": W * self._grow}

    def config(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay, "dampening": self.dampening,
                "decay_biases": self.decay_biases}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``:

        g ← ∇W + λW                         (weight_decay λ, coupled L2; biases: g ← ∇b
                                             unless decay_biases=True)
        m ← β₁m + (1 − β₁)g,   v ← β₂v + (1 − β₂)g²
        W ← W − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
    """

    kind = "adam"
    decoupled: ClassVar[bool] = False
    _tracked: ClassVar[dict[str, str]] = {"m": "norm", "v": "peak"}

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decay_biases: bool = False
                 ) -> None:
        super().__init__(lr)
        self.decay_biases = bool(decay_biases)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValidationError(f"Adam betas must each be in [0, 1); received {betas!r}.")
        self.betas = (float(b1), float(b2))
        self.eps = positive_float("eps", eps)
        self.weight_decay = positive_float("weight_decay", weight_decay, allow_zero=True)

    def _init_state(self, p: Param) -> dict[str, np.ndarray]:
        s = super()._init_state(p)
        s["m"] = np.zeros_like(p.value)
        s["v"] = np.zeros_like(p.value)
        if self.weight_decay and not self.decoupled:
            s["tmp_g"] = np.zeros_like(p.value)
        if self.weight_decay and self.decoupled and p.no_decay:   # the biases' new values
            s["tmp_b"] = np.zeros(sum(b - a for a, b in p.no_decay), p.value.dtype)
        return s

    def _update(self, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray],
                skip: tuple[tuple[int, int], ...]) -> None:
        b1, b2 = self.betas
        m, v, tmp = s["m"], s["v"], s["tmp"]
        keep = 1.0                                         # W's factor in the last update
        if self.weight_decay:
            if self.decoupled:
                keep = 1 - self.lr * self.weight_decay     # AdamW: W ← W(1 − ηλ), fused below
            else:
                gd = s["tmp_g"]
                np.multiply(w, self.weight_decay, out=gd)
                gd += g                                    # g ← ∇W + λW
                _undecay(gd, g, skip)                      # biases: g ← ∇b
                g = gd
        # The moving averages and the step are BLAS axpby calls for large buffers, one pass
        # each (see layerwise._blas); tmp is their scratch on the NumPy path.
        axpby(1 - b1, g, b1, m, tmp)                       # m ← β₁m + (1 − β₁)g
        np.multiply(g, g, out=tmp)
        axpby(1 - b2, tmp, b2, v, tmp)                     # v ← β₂v + (1 − β₂)g²
        # W ← W − η m̂ / (√v̂ + ε) with m̂ = m / (1 − β₁ᵗ), v̂ = v / c², c = √(1 − β₂ᵗ),
        # computed as W − (η c / (1 − β₁ᵗ)) · m / (√v + c ε): the same value, one pass fewer.
        c = math.sqrt(1 - b2**self.t)
        np.sqrt(v, out=tmp)
        tmp += c * self.eps                                # √v + c ε
        np.divide(m, tmp, out=tmp)
        a = -self.lr * c / (1 - b1**self.t)
        if keep != 1 and skip:
            # AdamW, biases not decayed: the one fused pass gives them (1 − ηλ)b + a·u; adding
            # back ηλ·b, kept from before it, makes that b + a·u. Two short ops per layer.
            sb = s.get("tmp_b")                            # sized by _init_state, or here
            if sb is None:                                 # if decay_biases changed since
                sb = s["tmp_b"] = np.zeros(sum(hi - lo for lo, hi in skip), w.dtype)
            wf = w if w.ndim == 1 else w.reshape(-1)
            lam = 1 - keep
            k = 0
            for lo, hi in skip:
                np.multiply(wf[lo:hi], lam, out=sb[k:k + hi - lo])          # ηλ·b
                k += hi - lo
            axpby(a, tmp, keep, w, tmp)                    # W ← (1 − ηλ)W + a·u
            k = 0
            for lo, hi in skip:
                wf[lo:hi] += sb[k:k + hi - lo]             # b ← b + a·u: no decay
                k += hi - lo
        else:
            axpby(a, tmp, keep, w, tmp)

    def _bound(self, b: dict[str, float], G: float, t: int) -> tuple[float, dict[str, float]]:
        b1, b2 = self.betas
        Wn, lam = b["w"], self.weight_decay
        D = G if self.decoupled else G + lam * Wn         # ‖g‖ after coupled weight decay
        M = b1 * b["m"] + (1 - b1) * D                    # ‖m‖
        V = b2 * b["v"] + (1 - b2) * D * D                # max vᵢ (vᵢ ≤ its old max or gᵢ²)
        c = math.sqrt(1 - b2**t)
        ce = c * self.eps
        if ce < self._tiny:                               # might round to 0: m/(√v + 0) = 0/0
            return math.inf, {}
        ce *= 2 - self._grow                              # ≤ c ε as the dtype rounds it
        U = M / ce                                        # ‖m / (√v + cε)‖ ≤ ‖m‖ / cε
        step = self.lr * c / (1 - b1**t) * U
        keep = abs(1 - self.lr * lam) if self.decoupled else 1.0
        if not self.decay_biases:                         # biases keep the factor 1
            keep = max(keep, 1.0)
        W = keep * Wn + step
        g = self._grow
        return max(D * D, lam * Wn, M, V, math.sqrt(V) + ce, U, step, W), {
            "m": M * g, "v": V * g, "w": W * g}

    def config(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay, "decay_biases": self.decay_biases}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``:
    W ← W(1 − ηλ) before the Adam step (biases keep b unless decay_biases=True).
    Default λ = 0.01."""

    kind = "adamw"
    decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, decay_biases: bool = False
                 ) -> None:
        super().__init__(lr, betas, eps, weight_decay, decay_biases)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``:

        g ← ∇W + λW                      (biases: g ← ∇b unless decay_biases=True)
        s ← αs + (1 − α)g²;  centered: ḡ ← αḡ + (1 − α)g, d = √(s − ḡ²) + ε, else d = √s + ε
        momentum μ > 0:  u ← μu + g/d, W ← W − ηu;   else W ← W − η g/d
    """

    kind = "rmsprop"
    _tracked: ClassVar[dict[str, str]] = {"sq": "peak", "gavg": "norm", "u": "norm"}

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 decay_biases: bool = False) -> None:
        super().__init__(lr)
        self.decay_biases = bool(decay_biases)
        if not 0 <= alpha < 1:
            raise ValidationError(f"RMSprop alpha must be in [0, 1); received {alpha!r}.")
        self.alpha = float(alpha)
        self.eps = positive_float("eps", eps)
        self.weight_decay = positive_float("weight_decay", weight_decay, allow_zero=True)
        self.momentum = positive_float("momentum", momentum, allow_zero=True)
        self.centered = bool(centered)

    def _init_state(self, p: Param) -> dict[str, np.ndarray]:
        s = super()._init_state(p)
        s["sq"] = np.zeros_like(p.value)
        s["tmp2"] = np.zeros_like(p.value)
        if self.centered:
            s["gavg"] = np.zeros_like(p.value)
        if self.momentum:
            s["u"] = np.zeros_like(p.value)
        return s

    def _update(self, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray],
                skip: tuple[tuple[int, int], ...]) -> None:
        a = self.alpha
        sq, tmp, d = s["sq"], s["tmp"], s["tmp2"]
        if self.weight_decay:
            np.multiply(w, self.weight_decay, out=tmp)
            tmp += g                                       # g ← ∇W + λW
            _undecay(tmp, g, skip)                         # biases: g ← ∇b
            g = tmp
        sq *= a
        np.multiply(g, g, out=d)
        d *= 1 - a
        sq += d                                            # s ← αs + (1 − α)g²
        if self.centered:
            gavg = s["gavg"]
            np.subtract(g, gavg, out=d)
            d *= 1 - a
            gavg += d                                      # ḡ ← ḡ + (1 − α)(g − ḡ)
            np.multiply(gavg, gavg, out=d)
            np.subtract(sq, d, out=d)
            # s ≥ ḡ² in exact arithmetic, but rounding can make s − ḡ² slightly negative
            # when the gradient barely varies; √ of that would be NaN (as in torch.optim).
            np.maximum(d, 0, out=d)
            np.sqrt(d, out=d)                              # d = √(s − ḡ²)
        else:
            np.sqrt(sq, out=d)                             # d = √s
        d += self.eps
        np.divide(g, d, out=d)                             # g/d
        if self.momentum:
            u = s["u"]
            u *= self.momentum
            u += d                                         # u ← μu + g/d
            d = u
            np.multiply(d, self.lr, out=tmp)
            w -= tmp                                       # W ← W − ηu
        else:
            d *= self.lr
            w -= d                                         # W ← W − η g/d

    def _bound(self, b: dict[str, float], G: float, t: int) -> tuple[float, dict[str, float]]:
        a, mu, lam, Wn = self.alpha, self.momentum, self.weight_decay, b["w"]
        D = G + lam * Wn                                   # ‖∇W + λW‖
        S = a * b["sq"] + (1 - a) * D * D                  # max sᵢ
        A = a * b["gavg"] + (1 - a) * D                    # ‖ḡ‖ (0 when not centered)
        if self.eps < self._tiny:                          # ε might round to 0: g/0
            return math.inf, {}
        e = self.eps * (2 - self._grow)                    # d ≥ ε as the dtype rounds it
        Q = D / e                                          # ‖g / d‖
        U = mu * b["u"] + Q if mu else Q                   # ‖u‖ (u ← μu + g/d)
        W = Wn + self.lr * U
        peak = max(D * D, lam * Wn, S, A * A, math.sqrt(S) + e, Q, U, self.lr * U, W)
        g = self._grow
        return peak, {"sq": S * g, "gavg": A * g, "u": U * g, "w": W * g}

    def config(self) -> dict[str, Any]:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum": self.momentum,
                "centered": self.centered, "decay_biases": self.decay_biases}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop,
}


#: What an optimizer argument takes: a registered name ("sgd", "adam", …) or an instance.
OptimizerLike: TypeAlias = str | Optimizer


def get(opt: OptimizerLike, **kwargs: Any) -> Optimizer:
    """An optimizer from its name ("sgd", "adam", "adamw", "rmsprop") or an instance (as is)."""
    if isinstance(opt, Optimizer):
        return opt
    return lookup(OPTIMIZERS, opt, "optimizer")(**kwargs)
