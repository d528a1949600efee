"""Gradient checking: analytic gradients from backward against central finite differences.

For every parameter element θ_i (and every input element):

    numeric_i = (L(θ + ε e_i) − L(θ − ε e_i)) / 2ε          error O(ε²)

and the report gives, per parameter, the relative error of the whole gradient

    rel = max_i |analytic_i − numeric_i| / max(max_i |analytic_i|, max_i |numeric_i|, floor)

which is ~1e-9 or smaller in float64 for a correct backward and O(1) for a wrong one. ``floor``
is the gradient size below which differences are rounding noise (10·machine-ε·max(1, |L|)/ε/tol),
so a parameter whose true gradient is zero does not fail on noise. The check
runs on a float64 copy of the model, so the model passed in is never changed.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from . import losses as losses_mod
from ._utils import as_float_dtype, as_generator

if TYPE_CHECKING:
    from .network import Sequential


class GradcheckReport:
    """Result of :func:`gradcheck`.

    Attributes
    ----------
    passed : bool
        Every relative error is at most ``tol``.
    max_rel_error : dict[str, float]
        Per parameter name (``"0.W"``, …) and ``"input"`` for dL/dX.
    tol : float
    """

    def __init__(self, max_rel_error: dict[str, float], tol: float,
                 checked: dict[str, int] | None = None) -> None:
        self.max_rel_error = max_rel_error
        self.tol = tol
        self.checked = checked or {}

    @property
    def passed(self) -> bool:
        return all(e <= self.tol for e in self.max_rel_error.values())

    @property
    def worst(self) -> float:
        return max(self.max_rel_error.values(), default=0.0)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        width = max((len(k) for k in self.max_rel_error), default=5)
        lines = [f"{'parameter'.ljust(width)}  {'max rel error':>13}  elements  result"]
        for k, e in self.max_rel_error.items():
            ok = "ok" if e <= self.tol else "FAIL"
            lines.append(f"{k.ljust(width)}  {e:13.3e}  {self.checked.get(k, 0):8d}  {ok}")
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"gradient check {verdict} (tolerance {self.tol:.1e})")
        return "\n".join(lines)


def _restore_rngs(model: Sequential, states: list[Any]) -> None:
    """Put every layer's random generator back, so dropout draws the same mask each forward."""
    for layer, st in zip(model.layers, states):
        if st is not None:
            layer.rng.bit_generator.state = st  # type: ignore[attr-defined]


def gradcheck(model: Sequential, loss: Any, X: Any, y: Any, eps: float = 1e-6,
              dtype: Any = np.float64, tol: float = 1e-6, training: bool = False,
              max_elements: int | None = 200, rng: Any = 0) -> GradcheckReport:
    """Compare every parameter's analytic gradient, and dL/dX, with central differences.

    Parameters
    ----------
    model : Sequential
        Left unchanged: the check runs on a copy cast to ``dtype``.
    loss : str or Loss
    X, y : arrays
        A batch and its targets. X may be a scipy.sparse matrix (the model's first layer a
        Dense layer): "input" then checks dL/dX at its stored values.
    eps : float
        Finite-difference step.
    dtype : float64 (default) or float32
        float32 needs a larger eps and tol (e.g. 1e-2 and 1e-2).
    tol : float
        Largest relative error that passes.
    training : bool
        Run layers in training mode (dropout with one fixed mask).
    max_elements : int or None
        Check at most this many randomly chosen elements per array (None: all of them).
    rng : seed for that choice.

    Returns
    -------
    GradcheckReport
    """
    dt = as_float_dtype(dtype)
    net = copy.deepcopy(model).astype(dt)
    L = losses_mod.get(copy.deepcopy(loss) if not isinstance(loss, str) else loss)
    Xc = net.check_input(X).copy()              # dense, or CSR for scipy.sparse X
    Y = L.prepare_target(y, net.n_out or Xc.shape[1], dt)
    rng_states = [getattr(layer, "rng", None) for layer in net.layers]
    states = [g.bit_generator.state if g is not None else None for g in rng_states]
    pick = as_generator(rng)

    def objective() -> float:
        _restore_rngs(net, states)
        return L.forward(net.forward(Xc, training=training), Y)

    L0 = objective()
    dX = net.backward(L.backward()).copy()
    # Below this size a gradient is indistinguishable from rounding noise in the differences:
    # noise ≈ 10·machine-ε·max(1, |L|)/eps, and we ask noise/scale ≤ tol.
    floor = 10 * np.finfo(dt).eps * max(1.0, abs(L0)) / eps / tol
    targets: list[tuple[str, np.ndarray, np.ndarray]] = [
        (p.name, p.value, p.grad.copy()) for p in net.parameters()]
    if isinstance(Xc, np.ndarray):
        targets.append(("input", Xc, dX))
    else:                       # sparse X: dL/dX at the stored values, perturbed in Xc.data
        rows = np.repeat(np.arange(Xc.shape[0]), np.diff(Xc.indptr))
        targets.append(("input", Xc.data, dX[rows, Xc.indices]))
    errors: dict[str, float] = {}
    checked: dict[str, int] = {}
    for name, value, analytic in targets:
        flat, a_flat = value.reshape(-1), analytic.reshape(-1)
        idx = np.arange(flat.size)
        if max_elements is not None and flat.size > max_elements:
            idx = np.sort(pick.choice(flat.size, size=max_elements, replace=False))
        numeric = np.empty(len(idx))
        for j, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + eps
            up = objective()
            flat[i] = old - eps
            down = objective()
            flat[i] = old
            numeric[j] = (up - down) / (2 * eps)            # central difference
        a = a_flat[idx].astype(np.float64)
        scale = max(np.abs(a).max(initial=0.0), np.abs(numeric).max(initial=0.0), floor)
        errors[name] = float(np.abs(a - numeric).max(initial=0.0) / scale)
        checked[name] = len(idx)
    return GradcheckReport(errors, tol, checked)
