"""A window into backpropagation: one batch forward and backward, layer by layer.

For each dense layer i (1 = closest to the input) it records, in the textbook's notation,

    forward    Z_i = W_i·A_{i−1} + b_i,   A_i = f_i(Z_i)
    backward   dZ_i = dA_i ⊙ f_i′(Z_i),   dW_i = dZ_i·A_{i−1}ᵀ,   db_i = Σ dZ_i,
               dX_i = W_iᵀ·dZ_i  (handed back as dA_{i−1})

the shapes and Frobenius norms of each array, the fraction of dead ReLU units (zero for every
sample of the batch) and the ratio ‖dW_i‖ / ‖dW_K‖ to the output layer's weight gradient, which
flags vanishing (< 1e−3) or exploding (> 1e3, or non-finite) gradients.

Every layer with parameters opens a row (with the layers without parameters after it, e.g. its
activation); for a layer other than Dense, W_i and b_i stand for its first and second
parameters (γ and β of a normalisation layer) and Z_i for its output.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import losses as losses_mod
from ._utils import as_input
from .errors import ValidationError
from .layers import Layer

if TYPE_CHECKING:
    from .network import Sequential

VANISHING = 1e-3
EXPLODING = 1e3
NAMES = ("A_prev", "Z", "A", "dA", "dZ", "dW", "db", "dX")


@dataclass
class LayerExplanation:
    """What one dense layer (and the activation after it) computed on the batch."""

    index: int
    activation: str
    shapes: dict[str, tuple[int, ...]]
    norms: dict[str, float]
    dead_fraction: float | None
    grad_ratio: float
    flag: str
    kind: str = "dense"         # the layer with parameters that opens the row


@dataclass
class Explanation:
    """The result of :func:`explain`; ``str()`` gives the table the CLI prints."""

    layers: list[LayerExplanation]
    loss: float
    batch_size: int

    @property
    def flags(self) -> dict[int, str]:
        return {r.index: r.flag for r in self.layers if r.flag}

    def __str__(self) -> str:
        head = ["layer", "f", "W_i shape", "‖A_i-1‖", "‖Z_i‖", "‖A_i‖", "‖dA_i‖", "‖dZ_i‖",
                "‖dW_i‖", "‖db_i‖", "‖dX_i‖", "dead", "dW ratio", "flag"]
        rows = [head]
        for r in self.layers:
            n = r.norms
            rows.append([
                str(r.index) if r.kind == "dense" else f"{r.index} {r.kind}", r.activation,
                "×".join(map(str, r.shapes["dW"])),
                *(f"{n[k]:.3g}" for k in NAMES),
                "-" if r.dead_fraction is None else f"{r.dead_fraction:.0%}",
                f"{r.grad_ratio:.3g}", r.flag or "ok",
            ])
        widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
        lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
        legend = (
            "forward  Z_i = W_i·A_i-1 + b_i,  A_i = f(Z_i)\n"
            "backward dZ_i = dA_i ⊙ f′(Z_i),  dW_i = dZ_i·A_i-1ᵀ,  db_i = Σ_batch dZ_i,  "
            "dX_i = W_iᵀ·dZ_i → dA_i-1\n"
            f"one batch of B = {self.batch_size}, loss = {self.loss:.6g}; norms are Frobenius; "
            f"dead = ReLU units zero for the whole batch; dW ratio = ‖dW_i‖/‖dW_K‖ "
            f"(vanishing < {VANISHING:g}, exploding > {EXPLODING:g})"
        )
        if any(r.kind != "dense" for r in self.layers):
            legend += ("\nrows of other layers: W_i, b_i are its first and second parameters "
                       "(γ, β of a normalisation), Z_i its output")
        verdict = ("gradients look healthy" if not self.flags else
                   "; ".join(f"layer {i}: {f}" for i, f in self.flags.items()))
        return "\n".join([legend, "", *lines, "", verdict])


def _norm(a: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64)))


def explain(model: Sequential, loss: Any, X: Any, y: Any) -> Explanation:
    """Run one batch (X, y) forward and backward through a copy of ``model`` and report it.

    Layers run in inference mode (no dropout), so the report is deterministic.
    """
    net = copy.deepcopy(model)
    L = losses_mod.get(loss).fresh()            # never the caller's loss (fit may be using it)
    A = as_input(X, net.n_in, net.dtype)
    Y = L.prepare_target(y, net.n_out or A.shape[1], net.dtype)
    if len(Y) != len(A):
        raise ValidationError(
            f"X and y must have the same number of samples; received {len(A)} and {len(Y)}."
        )
    groups: list[tuple[Layer, list[Layer]]] = []
    for layer in net.layers:
        if layer.trainable:                         # a layer with parameters opens a row
            groups.append((layer, []))
        elif groups:
            groups[-1][1].append(layer)
        else:
            A = layer.forward(A).copy()             # preprocessing before the first Dense
    if not groups:
        raise ValidationError("explain needs a model with at least one layer with parameters "
                              "(a Dense layer).")

    rec: list[dict[str, np.ndarray]] = []
    for first, after in groups:                     # forward, keeping copies of every array
        r = {"A_prev": A.copy()}
        Z = first.forward(A).copy()
        A = Z
        for layer in after:
            A = layer.forward(A).copy()
        r["Z"], r["A"] = Z, A
        rec.append(r)
    loss_value = L.forward(A, Y)
    dA = L.backward().copy()
    for (first, after), r in zip(reversed(groups), reversed(rec)):   # backward
        r["dA"] = dA
        for layer in reversed(after):
            dA = layer.backward(dA).copy()
        r["dZ"] = dA
        dX = first.backward(dA).copy()
        grads = [p.grad.copy() for p in first.params()]   # W, b (γ, β); none: zeros
        r["dW"] = grads[0]
        r["db"] = grads[1] if len(grads) > 1 else np.zeros(grads[0].shape[:1], grads[0].dtype)
        r["dX"] = dX
        dA = dX

    last = _norm(rec[-1]["dW"]) or 1e-300
    out = []
    for i, ((first, after), r) in enumerate(zip(groups, rec), start=1):
        norms = {k: _norm(r[k]) for k in NAMES}
        act = next((layer.kind for layer in after if layer.kind != "dropout"), "identity")
        dead = (float(np.mean(np.all(r["A"] <= 0, axis=0)))
                if act in ("relu",) else None)
        ratio = norms["dW"] / last
        flag = ""
        if not all(math.isfinite(v) for v in norms.values()) or ratio > EXPLODING:
            flag = "exploding gradient"
        elif ratio < VANISHING:
            flag = "vanishing gradient"
        out.append(LayerExplanation(i, act, {k: tuple(r[k].shape) for k in NAMES}, norms, dead,
                                    ratio, flag, first.kind))
    return Explanation(out, loss_value, len(Y))
