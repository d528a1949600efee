"""layerwise: feedforward neural networks with explicit, layer-by-layer backpropagation.

    forward   Z = A_prev @ W.T + b,  A = f(Z)
    backward  dZ = dA ⊙ f′(Z),  dW = dZ.T @ A_prev,  db = Σ_batch dZ,  dA_prev = dZ @ W

Quick start::

    import layerwise as lw
    Xtr, ytr, Xte, yte = lw.datasets.load_digits()
    model = lw.mlp([64, 128, 10])
    model.fit(Xtr / 16, ytr, loss="ce", optimizer=lw.Adam(1e-3), epochs=30, batch_size=64, rng=0)
    model.evaluate(Xte / 16, yte)

The layers, losses, optimizers and the network load with the package; the training loop and
callbacks, model files, datasets, gradient checks, metrics, plots and explain load on first use,
so ``import layerwise`` costs little more than ``import numpy``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import initializers, schedules
from ._version import __version__
from .activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .errors import (
    BusyError,
    ConfigError,
    DataError,
    DivergenceError,
    LayerwiseError,
    ModelFileError,
    TrainingInterrupted,
    ValidationError,
)
from .gradcheck import GradcheckReport, gradcheck
from .layers import Dense, Dropout, Layer, Param
from .losses import MAE, MSE, BinaryCrossEntropy, CrossEntropy, Huber, Loss, Poisson
from .network import Sequential, ensemble, mlp
from .normalization import BatchNorm, LayerNorm
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .preprocessing import Standardize
from .schedules import Constant, CosineDecay, ExponentialDecay, Schedule, StepDecay

if TYPE_CHECKING:
    from . import datasets, metrics
    from .callbacks import (
        Callback,
        EarlyStopping,
        GradientNorms,
        History,
        ModelCheckpoint,
        ReduceLROnPlateau,
    )
    from .io import load
    from .lbfgs import LbfgsResult, fit_lbfgs

# name -> module that defines it, imported on first access (PEP 562)
_LAZY = {
    "datasets": "", "metrics": "", "training": "", "callbacks": "", "io": "", "explain": "",
    "plots": "", "onnx_export": "",                    # onnx_export needs the onnx package
    "outofcore": "",                                   # memory-mapped data: Rows, ...
    "load": "io",
    "fit_lbfgs": "lbfgs", "LbfgsResult": "lbfgs",
    **{name: "callbacks" for name in ("Callback", "EarlyStopping", "GradientNorms", "History",
                                     "ModelCheckpoint", "ReduceLROnPlateau")},
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'layerwise' has no attribute {name!r}")
    module = _LAZY[name]
    if not module:                                     # a submodule itself
        value = importlib.import_module(f".{name}", __name__)
    else:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ELU",
    "GELU",
    "MAE",
    "MSE",
    "SGD",
    "Adam",
    "AdamW",
    "BatchNorm",
    "BinaryCrossEntropy",
    "BusyError",
    "Callback",
    "ConfigError",
    "Constant",
    "CosineDecay",
    "CrossEntropy",
    "DataError",
    "Dense",
    "DivergenceError",
    "Dropout",
    "EarlyStopping",
    "ExponentialDecay",
    "GradcheckReport",
    "GradientNorms",
    "History",
    "Huber",
    "Identity",
    "Layer",
    "LayerNorm",
    "LayerwiseError",
    "LbfgsResult",
    "LeakyReLU",
    "Loss",
    "ModelCheckpoint",
    "ModelFileError",
    "Optimizer",
    "Param",
    "Poisson",
    "RMSprop",
    "ReLU",
    "ReduceLROnPlateau",
    "Schedule",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Standardize",
    "StepDecay",
    "Tanh",
    "TrainingInterrupted",
    "ValidationError",
    "__version__",
    "datasets",
    "ensemble",
    "fit_lbfgs",
    "gradcheck",
    "initializers",
    "load",
    "metrics",
    "mlp",
    "outofcore",
    "schedules",
]
