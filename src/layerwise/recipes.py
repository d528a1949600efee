"""The classic MNIST experiments as named recipes: ``layerwise train --recipe NAME``.

Each recipe is the published setting written as ``layerwise train`` options (the attribute
names of the parsed command line), with the published result and its source. Where the source
states a setting, the recipe uses it; where the source's convention differs from ours, the
recipe converts and ``conversions`` says how, one line each. Where the source leaves a training
setting out (the 1998 and 2003 tables give the architecture, the loss and the error), the
recipe's choice is listed in ``ours``, so nobody mistakes it for the published one.

Every recipe sets every option the size-based defaults would otherwise choose (``PLAIN_KEYS``):
a recipe never adapts to the data. Options given on the command line override the recipe's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["RECIPES", "Recipe", "get", "names"]

# What --plain and the size-based defaults set: a recipe must set each of them itself.
PLAIN_KEYS = ("optimizer", "momentum", "schedule", "label_smoothing", "weight_decay",
              "early_stopping", "epochs", "batch_size", "refit", "ensemble")
# ... and which rows validate: a fraction (validation_split) or the last N (validation_rows)
VALIDATION_KEYS = ("validation_split", "validation_rows")

# MNIST's 60,000 training images: Nielsen trains on the first 50,000 and keeps the last
# 10,000 for validation (mnist_loader.py); ours takes the last N rows of the file alike.
NIELSEN_TRAIN = 50_000


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    source: str                       # where the published number comes from
    published: str                    # the published result, as stated there
    published_accuracy: float         # in percent, for the comparison table
    settings: dict[str, Any]          # layerwise train options (dest names)
    conversions: tuple[str, ...] = ()  # the source's convention → ours, one line each
    ours: tuple[str, ...] = ()        # settings the source does not give: our choices
    data: str = "mnist"


_SGD = {"optimizer": "sgd", "momentum": 0.0, "schedule": "constant", "label_smoothing": 0.0,
        "early_stopping": 0, "refit": False, "ensemble": 1, "dropout": 0.0, "scaling": "image"}

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        name="nielsen-ch1",
        title="Nielsen ch. 1: 784-30-10 sigmoid network, quadratic cost, plain SGD",
        source="M. Nielsen, Neural Networks and Deep Learning, ch. 1 (network.py)",
        published="about 95.4% test accuracy at its best epoch of 30 (95.42%)",
        published_accuracy=95.42,
        settings={**_SGD, "layers": [30], "activation": "sigmoid", "loss": "mse",
                  "output_activation": "sigmoid", "init": "normal:1.0",
                  "bias_init": "normal:1.0", "lr": 3.0, "weight_decay": 0.0,
                  "decay_biases": False, "epochs": 30, "batch_size": 10,
                  "validation_rows": 10_000},
        conversions=(
            "cost: his C = (1/2n) Σ‖y − a‖² with the step (η/m) Σ ∇C_x is our MSE "
            "(1/B) Σ ½‖a − y‖², so η = 3.0 carries over unchanged",
            "data: he trains on the first 50,000 training images and holds out the last "
            "10,000: --validation-rows 10000",
            "pixels: his inputs are the pixels / 255: --scaling image",
        ),
    ),
    Recipe(
        name="nielsen-ch3",
        title="Nielsen ch. 3: 784-30-10, cross-entropy on sigmoid outputs, L2 λ = 5.0",
        source="M. Nielsen, Neural Networks and Deep Learning, ch. 3 (network2.py)",
        published="about 96.5% test accuracy",
        published_accuracy=96.5,
        settings={**_SGD, "layers": [30], "activation": "sigmoid", "loss": "bce",
                  "output_activation": "sigmoid", "init": "lecun_normal",
                  "bias_init": "normal:1.0", "lr": 5.0, "weight_decay": 1e-5,
                  "decay_biases": False, "epochs": 30, "batch_size": 10,
                  "validation_rows": 10_000},
        conversions=(
            "cost: his cross-entropy sums the 10 outputs' terms, our bce averages them, so "
            "the gradient is 10x smaller and η = 0.5 becomes --lr 5.0",
            "L2: his step w ← (1 − ηλ/n)·w − η·∇ with λ = 5.0, n = 50,000 is our coupled "
            "decay (1 − lr·wd)·w with lr·wd = ηλ/n, so --weight-decay 0.5·5/(5.0·50,000) = 1e-5, "
            "on the weights only (his L2 leaves the biases alone: no --decay-biases)",
            "init: his default_weight_initializer, W ~ N(0, 1/n_in) and b ~ N(0, 1): "
            "--init lecun_normal --bias-init normal:1.0",
            "data: the first 50,000 training images, as in ch. 1: --validation-rows 10000",
        ),
    ),
    Recipe(
        name="lecun-300",
        title="LeCun et al. 1998: 784-300-10, mean squared error",
        source="Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, Gradient-based learning applied "
               "to document recognition, Proc. IEEE 1998, fig. 9: 2-layer NN, 300 hidden units",
        published="4.7% test error",
        published_accuracy=95.3,
        settings={**_SGD, "layers": [300], "activation": "tanh", "loss": "mse",
                  "output_activation": "sigmoid", "init": "lecun_normal", "bias_init": "zeros",
                  "lr": 1.0, "weight_decay": 0.0, "decay_biases": False, "epochs": 20,
                  "batch_size": 10, "validation_split": 0.0},
        ours=("tanh hidden units (their sigmoid is a scaled tanh), sigmoid outputs on one-hot "
              "targets, LeCun's N(0, 1/n_in) weights, plain SGD at lr 1.0 with batch 10 for 20 "
              "epochs on all 60,000 training images: the paper gives the architecture, the "
              "loss and the error, not these",),
    ),
    Recipe(
        name="lecun-300-100",
        title="LeCun et al. 1998: 784-300-100-10, mean squared error",
        source="Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, Gradient-based learning applied "
               "to document recognition, Proc. IEEE 1998, fig. 9: 3-layer NN, 300+100 hidden "
               "units",
        published="3.05% test error",
        published_accuracy=96.95,
        settings={**_SGD, "layers": [300, 100], "activation": "tanh", "loss": "mse",
                  "output_activation": "sigmoid", "init": "lecun_normal", "bias_init": "zeros",
                  "lr": 1.0, "weight_decay": 0.0, "decay_biases": False, "epochs": 20,
                  "batch_size": 10, "validation_split": 0.0},
        ours=("as lecun-300, with a second hidden layer of 100 units",),
    ),
    Recipe(
        name="simard-800",
        title="Simard et al. 2003: 784-800-10, cross-entropy, no distortions",
        source="P. Simard, D. Steinkraus, J. Platt, Best practices for convolutional neural "
               "networks applied to visual document analysis, ICDAR 2003, table 1: 2-layer "
               "MLP, 800 hidden units, cross-entropy, no distortion",
        published="1.6% test error",
        published_accuracy=98.4,
        settings={**_SGD, "layers": [800], "activation": "sigmoid", "loss": "ce",
                  "output_activation": "softmax", "init": "xavier_uniform",
                  "bias_init": "zeros", "lr": 0.1, "momentum": 0.9, "schedule": "cosine",
                  "weight_decay": 0.0, "decay_biases": False, "epochs": 30, "batch_size": 32,
                  "validation_split": 0.0},
        ours=("sigmoid hidden units with Glorot's uniform weights, SGD with momentum 0.9 at lr "
              "0.1, cosine decay over 30 epochs, batch 32, on all 60,000 training images: the "
              "paper gives the architecture, the loss and the error, not these",),
    ),
)}


def names() -> list[str]:
    return list(RECIPES)


def get(name: str) -> Recipe:
    """The recipe called ``name``; a clear error listing the names otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; the recipes are {', '.join(RECIPES)} "
                          "(`layerwise recipes` lists them with their sources).") from None
