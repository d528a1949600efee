"""PNG plots of a training run (matplotlib, drawn off-screen; the ``plot`` extra installs it).

Every function draws one figure with labelled axes and writes it to ``path`` atomically. They use
``matplotlib.figure.Figure`` directly, so no GUI backend and no global pyplot state is involved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._utils import install_hint
from .errors import ConfigError

if TYPE_CHECKING:
    from .explain import Explanation


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float = 7.0, height: float = 4.5) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError(
            "plots need matplotlib, which is not installed; install it with "
            f"{install_hint('matplotlib', 'plot')}."
        ) from exc
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    """Write the figure atomically (temporary file, fsync, rename), never through a symlink."""
    from .io import atomic_write
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt))


def _epochs(n: int) -> np.ndarray:
    return np.arange(1, n + 1)


def _integer_epochs(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike[str]) -> None:
    """Loss, and accuracy (or multi-label subset and label accuracy) or MAE and R², per epoch:
    training against validation (each curve drawn when the history records it)."""
    keys = ["loss", *(m for m in ("accuracy", "subset_accuracy", "label_accuracy", "mae", "r2")
                      if m in history or f"val_{m}" in history)]
    labels = {"loss": "loss", "accuracy": "accuracy", "subset_accuracy": "subset accuracy",
              "label_accuracy": "label accuracy", "mae": "MAE", "r2": "R²"}
    fig = _figure(4 + 3.5 * len(keys) if len(keys) > 1 else 7, 4.5)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        label = labels[key]
        for name, marker, who in ((key, "o", "training"), (f"val_{key}", "s", "validation")):
            if name in history:
                ax.plot(_epochs(len(history[name])), history[name], marker=marker, ms=3,
                        label=f"{who} {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{label} per epoch")
        values = [v for k in (key, f"val_{key}") if k in history for v in history[k]]
        if key == "loss" and min(values) > 0 and max(values) / min(values) > 10:
            ax.set_yscale("log")
        _integer_epochs(ax)
        ax.grid(True, alpha=0.3)
        ax.legend()
    _save(fig, path)


def plot_gradient_flow(norms: Mapping[str, Sequence[float]], path: str | os.PathLike[str]
                       ) -> None:
    """Per-layer weight-gradient norms ‖dW‖_F over training, on a log scale."""
    fig = _figure()
    ax = fig.subplots()
    weights = {k: v for k, v in norms.items() if k.endswith(".W")} or dict(norms)
    for k, (name, values) in enumerate(weights.items()):
        ax.plot(_epochs(len(values)), values, marker="o", ms=3,
                label=f"‖dW_{k + 1}‖ (dense layer {k + 1}, model layer {name.split('.')[0]})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean ‖dW‖ over the epoch's batches")
    ax.set_title("gradient flow: weight-gradient norm per dense layer")
    _integer_epochs(ax)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_confusion_matrix(C: np.ndarray, path: str | os.PathLike[str],
                          classes: Sequence[str] | None = None, title: str = "confusion matrix"
                          ) -> None:
    """Counts of true class (rows) against predicted class (columns), with the counts written."""
    K = C.shape[0]
    size = min(4 + 0.45 * K, 14)
    fig = _figure(size + 1, size)
    ax = fig.subplots()
    im = ax.imshow(C, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8, label="samples")
    names = list(classes) if classes is not None else [str(k) for k in range(K)]
    ax.set_xticks(range(K), names, rotation=45 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(range(K), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(C) / max(C.sum(), 1)
    ax.set_title(f"{title} (accuracy {accuracy:.2%})")
    if K <= 20:
        threshold = C.max() / 2
        for i in range(K):
            for j in range(K):
                ax.text(j, i, str(C[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if C[i, j] > threshold else "black")
    _save(fig, path)


def plot_explanation(explanation: Explanation, path: str | os.PathLike[str]) -> None:
    """Norms of A, dZ and dW per layer (log scale), with flagged layers marked."""
    rows = explanation.layers
    fig = _figure(max(7, 1.2 * len(rows) + 3), 4.8)
    ax = fig.subplots()
    x = np.arange(len(rows))
    series = [("‖A_i‖ (activation)", [r.norms["A"] for r in rows]),
              ("‖dZ_i‖ (pre-activation gradient)", [r.norms["dZ"] for r in rows]),
              ("‖dW_i‖ (weight gradient)", [r.norms["dW"] for r in rows])]
    width = 0.27
    for k, (label, values) in enumerate(series):
        ax.bar(x + (k - 1) * width, np.maximum(values, 1e-30), width, label=label)
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{r.index}\n{r.activation}" + (f"\n{r.flag.split()[0]}" if r.flag else "")
                      for r in rows])
    for tick, r in zip(ax.get_xticklabels(), rows):
        if r.flag:
            tick.set_color("tab:red")
    ax.set_xlabel("dense layer i (input → output), its activation, and any flag")
    ax.set_ylabel("Frobenius norm (log scale)")
    ax.set_title(f"one batch forward and backward (B = {explanation.batch_size}, "
                 f"loss = {explanation.loss:.4g})")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=3, fontsize="small")
    _save(fig, path)
