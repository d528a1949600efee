"""The ``layerwise`` command line: train, evaluate, predict, info, export, gradcheck, explain.

Every subcommand turns a ``LayerwiseError`` (bad data, bad option, damaged model file) into one
line on stderr, ``layerwise: error: …``, and exit status 2; argparse does the same for unknown
options. Heavy modules (datasets, plots, matplotlib) load only when a subcommand needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from . import runs
from ._utils import format_seconds, install_hint, require_finite
from .errors import LayerwiseError

if TYPE_CHECKING:
    from .datasets import Dataset
    from .network import Sequential

EXAMPLES = """\
examples:
  layerwise train                                   # MLP on the bundled digits, writes runs/…
  layerwise train mnist --layers 800 --epochs 20    # MNIST (local files or downloaded)
  layerwise train data.csv --target price --loss mse --layers 64,64
  layerwise evaluate runs/digits-…/model.lw digits
  layerwise predict runs/digits-…/model.lw new.csv --output predictions.csv --proba
  layerwise info runs/digits-…/model.lw
  layerwise gradcheck --layers 16,16 --activation tanh --loss ce
  layerwise explain --layers 32,32,32,32,32,32 --activation sigmoid --init normal digits \\
      --plot explain.png                            # a deep sigmoid net: vanishing gradients
"""


EVALUATE_EXAMPLES = """\
examples:
  layerwise evaluate runs/digits-…/model.lw digits        # the model's test split of digits
  layerwise evaluate runs/data-…/model.lw new.csv         # every row; columns matched by name
  layerwise evaluate model.lw new.csv --by-position       # columns in file order, target last
"""

PREDICT_EXAMPLES = """\
examples:
  layerwise predict runs/data-…/model.lw new.csv                      # CSV to the terminal
  layerwise predict runs/data-…/model.lw new.csv --output pred.csv    # or to a file
  layerwise predict runs/digits-…/model.lw X.npy --proba --output p.npy
"""

INFO_EXAMPLES = """\
examples:
  layerwise info runs/digits-…/model.lw    # layers, loss, classes and the training settings
"""


EXPORT_EXAMPLES = """\
examples:
  layerwise export runs/digits-…/model.lw digits.onnx        # then serve it with ONNX Runtime
  layerwise export model.lw model.onnx --opset 13 --force    # an older opset, replacing the file
"""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other error of the command, with a
    pointer to the subcommand's --help (instead of the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"layerwise: error: {message}; see '{self.prog} --help'.\n")


class CLIError(LayerwiseError):
    """A problem with the command's arguments, already in the command's words (its flags):
    reported like any LayerwiseError, one line and exit status 2."""


class Interrupted(Exception):
    """Ctrl-C during training: the checkpoint is written; reported with how to resume, 130."""


# -- the library's words on the command line ----------------------------------------------------
# Library messages are written for Python callers (``target='bp'``, ``clip_norm=1``); on the
# command line they name its flags instead. This table is the one place that maps them, so
# each message is written once, in the library.
FLAGS = {"data_dir": "--data-dir", "target": "--target", "task": "--task",
         "clip_norm": "--clip-norm", "rng": "--seed", "epochs": "--epochs",
         "batch_size": "--batch-size", "validation_split": "--validation-split",
         "lr": "--lr", "bias_init": "--bias-init", "init": "--init"}
LITERAL_FLAGS = {"header=False": "--no-header", "dtype=np.float64": "--dtype float64"}
_API_ARGUMENT = re.compile(r"\b(" + "|".join(FLAGS) + r")=('[^']*'|\"[^\"]*\"|[^\s,;)]+)")


def in_flags(message: str) -> str:
    """``message`` with the library's ``name=value`` replaced by the command's ``--flag value``
    (e.g. ``target='bp'`` by ``--target bp``, ``header=False`` by ``--no-header``)."""
    for api, words in LITERAL_FLAGS.items():
        message = message.replace(api, words)

    def flag(m: re.Match[str]) -> str:
        value = m.group(2)
        if value[:1] in ("'", '"'):
            value = shlex.quote(value[1:-1])
        return f"{FLAGS[m.group(1)]} {value}"
    return _API_ARGUMENT.sub(flag, message)


# -- argument parsing ---------------------------------------------------------------------------
def _names(registry: str, drop: tuple[str, ...] = ()) -> str:
    """The names a registry accepts, for --help: one per class (the first of its aliases), so
    a new activation, loss, optimizer, schedule or dataset shows up without an edit here."""
    from importlib import import_module
    if registry == "datasets":
        return ", ".join(import_module(".datasets", __package__).NAMES)
    table = {"activations": "ACTIVATIONS", "losses": "LOSSES", "optimizers": "OPTIMIZERS",
             "schedules": "SCHEDULES"}[registry]
    entries = getattr(import_module(f".{registry}", __package__), table)
    first: dict[Any, str] = {}
    for name, cls in entries.items():
        first.setdefault(cls, name)
    return ", ".join(n for n in first.values() if n not in drop)


def _int_list(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 128,64; received {text!r}") from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive; received {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; received {text!r}"
                                         ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; received {text!r}")
    return value


def _network_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network")
    g.add_argument("--layers", type=_int_list, default=[128], metavar="N,N,…",
                   help="hidden layer sizes (default 128)")
    g.add_argument("--activation", default="relu",
                   help=f"hidden activation: {_names('activations', drop=('identity', 'softmax'))}")
    g.add_argument("--output", "--output-activation", dest="output_activation", default=None,
                   metavar="ACTIVATION",
                   help="output activation. Classification: softmax (the only one for ce, "
                        "fused with the loss: the default), sigmoid (bce's, fused with the "
                        "loss: the default), and for --loss mse sigmoid (the default: the "
                        "textbook's sigmoid network with the quadratic cost on one-hot "
                        "targets), softmax or identity. Regression: any activation (default "
                        "identity: linear outputs)")
    g.add_argument("--init", default=None, metavar="NAME[:NUMBER]",
                   help="weight initialiser: a name (he_normal, xavier, lecun, normal, …) or "
                        "normal:STD, uniform:LIMIT, constant:VALUE, e.g. normal:1.0 "
                        "(default: he_normal for ReLU-like, xavier otherwise)")
    g.add_argument("--bias-init", default=None, metavar="NAME[:NUMBER]",
                   help="bias initialiser: zeros (default), normal:STD, uniform:LIMIT, "
                        "constant:VALUE")
    g.add_argument("--norm", default=None, choices=("layer", "batch"),
                   help="normalisation after each hidden layer, before its activation: layer "
                        "(LayerNorm) or batch (BatchNorm, running statistics in inference); "
                        "default none")
    g.add_argument("--loss", default="auto",
                   help=f"{_names('losses')} (default: ce for classes, mse for "
                        "regression). On classes, bce and mse train one output per class on "
                        "one-hot targets and report argmax accuracy")
    g.add_argument("--seed", type=int, default=0,
                   help="random seed of the weights, validation rows and shuffling, >= 0 "
                        "(default 0)")


def _data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default=None, help="folder holding MNIST-style IDX files")
    g.add_argument("--target", default=None, help="CSV target column (default: the last)")
    g.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                   help="override the task inferred from the targets")
    g.add_argument("--no-header", action="store_true",
                   help="the CSV has no header row: every row is data; its columns are named "
                        "col1, col2, … (for --target) and a model's features are taken by "
                        "position")


def _by_position_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by-position", action="store_true",
                   help="take CSV columns in file order instead of matching them to the "
                        "model's feature names (a CSV to evaluate then has its target in "
                        "--target or the last column)")


def _parser() -> argparse.ArgumentParser:
    from ._version import __version__
    p = _Parser(
        prog="layerwise", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train and inspect feedforward neural networks with explicit, layer-by-layer "
                    "backpropagation.",
        epilog=EXAMPLES)
    p.add_argument("--version", action="version", version=f"layerwise {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train an MLP and write a run directory",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Train a multilayer perceptron on DATA and write the model, "
                                   "history, config and plots to a run directory.")
    t.add_argument("data", nargs="?", default="digits",
                   help=f"{_names('datasets')} (default digits), or a "
                        ".csv / .npz / 'X.npy,y.npy' / folder path")
    _network_options(t)
    _data_options(t)
    g = t.add_argument_group(
        "training", "Options marked (auto) default by the number N of training rows (after the "
        "test split): below 2,000 rows (small tables) adam, lr 1e-3, constant rate, batch 32, "
        "up to 500 epochs, 20%% validation, early stopping after 20 epochs restoring the best "
        "weights, no label smoothing, and the weight decay among 1e-4, 1e-2, 1e-1 with the "
        "lowest validation loss, then a refit on all training rows for the best epoch count; "
        "from 2,000 rows sgd with momentum 0.9, lr 0.1 (0.01 for "
        "regression), cosine over 20 epochs, batch 64, 10%% validation, label smoothing 0.1, no "
        "weight decay. Options given on the command line always win.")
    g.add_argument("--optimizer", default=None,
                   help=f"{_names('optimizers')} (auto: adam for small data, else sgd)")
    g.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.1 for sgd, 1e-3 otherwise; 0.01 for sgd "
                        "on regression and on mse classification with --output identity)")
    g.add_argument("--recipe", default=None, metavar="NAME",
                   help="a classic published MNIST experiment's settings: "
                        f"{', '.join(_recipe_names())} (`layerwise recipes` lists them with "
                        "their sources); every option given on the command line overrides "
                        "the recipe's, and the data defaults to the recipe's (mnist)")
    g.add_argument("--plain", action="store_true",
                   help="plain mini-batch SGD exactly as written, W ← W − lr·dW: sgd, momentum "
                        "0, constant rate, no label smoothing, weight decay, early stopping, "
                        "validation rows or clipping, and no choice by the data's size "
                        f"({_flags_text(PLAIN)}; lr 0.1, or 0.01 for regression); options "
                        "given on the command line still win; the settings it implies are "
                        "printed and saved in config.json")
    g.add_argument("--momentum", type=float, default=None,
                   help="SGD/RMSprop momentum (0.9; 0 with --plain)")
    g.add_argument("--weight-decay", type=float, default=None,
                   help="L2 weight decay, on the weights only (auto: for small data the one of "
                        "1e-4, 1e-2, 1e-1 with the lowest validation loss, else 0)")
    g.add_argument("--decay-biases", action="store_true",
                   help="apply the weight decay to the biases too (as torch.optim given every "
                        "parameter); by default only weights decay, as the textbook's L2 and "
                        "scikit-learn's alpha")
    g.add_argument("--schedule", default=None,
                   help=f"learning-rate schedule: {_names('schedules')} (auto: "
                        "constant for small data, else cosine)")
    g.add_argument("--epochs", type=int, default=None,
                   help="passes over the data, at most (auto: 500 for small data, else 20)")
    g.add_argument("--batch-size", type=int, default=None,
                   help="samples per step (auto: 32 for small data, else 64)")
    g.add_argument("--dropout", type=float, default=0.0, help="dropout after hidden layers")
    g.add_argument("--label-smoothing", type=float, default=None,
                   help="cross-entropy label smoothing (auto: 0 for small data, else 0.1)")
    g.add_argument("--validation-split", type=float, default=None,
                   help="fraction of the training rows held out for validation, a random "
                        "sample drawn with --seed, the same rows as the API's "
                        "fit(validation_split=F, rng=SEED) (auto: 0.2 for small data, else 0.1)")
    g.add_argument("--validation-rows", type=int, default=None, metavar="N",
                   help="hold out the LAST N training rows in file order instead (the rest "
                        "trains), e.g. 10000 for Nielsen's MNIST 50,000/10,000 split; the API's "
                        "fit(validation_split=N) with an int")
    g.add_argument("--test-split", type=float, default=0.2,
                   help="test fraction for data without a test set (default 0.2)")
    g.add_argument("--split-seed", type=int, default=0,
                   help="seed of that test split, >= 0 (default 0); independent of --seed, so "
                        "runs with different --seed are tested on the same rows")
    g.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation loss and "
                        "restore the best epoch's weights (auto: 20 for small data, else off; "
                        "0: off)")
    g.add_argument("--ensemble", type=_positive_int, default=None, metavar="K",
                   help="train K networks alike from different initial weights (seeds drawn "
                        "from --seed) and save them as one network that outputs the mean of "
                        "their outputs (lw.ensemble; the history and curves are the first "
                        "one's) (auto: 5 for small data, else 1)")
    g.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,
                   help="after early stopping has chosen the epochs (and the weight decay) on "
                        "the validation rows, train the final model afresh on all training "
                        "rows, validation rows included, for that many epochs (auto: on for "
                        "small data, else off)")
    g.add_argument("--scaling", choices=["auto", "standard", "minmax", "image", "none"],
                   default="auto",
                   help="input preprocessing fitted on the training rows: standard or minmax "
                        "per feature, image (every pixel divided by one factor: 255 for uint8 "
                        "images, else the training rows' largest |x|), none (default: image "
                        "for IDX files and image arrays, standard for tables and digits)")
    g.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="float32 (default, fast) or float64: for values beyond float32's "
                        "range (about 3.4e38) or a more precise gradient check")
    g.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="run directory (default runs/<data>-<timestamp>)")
    g.add_argument("--clip-norm", type=float, default=None, metavar="C",
                   help="clip gradients to global norm C before each update")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help="also write RUN_DIR/checkpoint.lw every STEPS batches (Ctrl-C always "
                        "writes it; it is removed when training finishes)")
    g.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue an interrupted run from RUN_DIR/checkpoint.lw with the "
                        "settings in RUN_DIR/config.json (other options are ignored)")
    g.add_argument("--threads", default="auto", metavar="N|auto",
                   help="BLAS threads for training: auto (default) times one and all threads "
                        "on the first steps and keeps the faster, again when step times "
                        "drift; N forces N threads (exactly reproducible on any load)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--no-plots", action="store_true", help="do not draw PNG plots")

    e = sub.add_parser("evaluate", help="loss and metrics of a saved model on DATA",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=EVALUATE_EXAMPLES,
                       description="Loss and metrics of a saved model on DATA: on its test "
                                   "split when DATA is what the model was trained on, else on "
                                   "every row.")
    e.add_argument("model", help="model file (.lw)")
    e.add_argument("data", help="dataset name or path, as for train")
    _data_options(e)
    _by_position_option(e)

    pr = sub.add_parser("predict", help="predictions of a saved model for raw inputs",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog=PREDICT_EXAMPLES,
                        description="Predictions of a saved model for raw inputs (the model "
                                    "applies its own preprocessing).")
    pr.add_argument("model", help="model file (.lw)")
    pr.add_argument("input", help="inputs: .csv (header row naming the model's features; "
                                  "other columns but the target are refused), .npy or .npz "
                                  "(key X)")
    pr.add_argument("--output", default=None,
                    help="write to FILE (.csv or .npy) instead of printing CSV")
    pr.add_argument("--proba", action="store_true", help="class probabilities instead of labels")
    pr.add_argument("--no-header", action="store_true",
                    help="the CSV has no header row: every row is data, columns by position")
    _by_position_option(pr)

    i = sub.add_parser("info", help="a saved model's layers and training configuration",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=INFO_EXAMPLES,
                       description="A saved model's layers, loss, classes and training "
                                   "configuration.")
    i.add_argument("model", help="model file (.lw)")

    x = sub.add_parser("export", help="write a saved model as ONNX, for ONNX Runtime",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=EXPORT_EXAMPLES,
                       description="Write a saved model as an ONNX file: input X (N, features), "
                                   "outputs 'output' (the network's), and for classifiers "
                                   "'label' and 'probabilities' (needs the onnx package).")
    x.add_argument("model", help="model file (.lw)")
    x.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    x.add_argument("--opset", type=int, default=None,
                   help="ONNX opset, 13 up to the newest the installed onnx knows (default 17)")
    x.add_argument("--no-labels", action="store_true",
                   help="only the network's output: no 'label' and 'probabilities' outputs")
    x.add_argument("--force", action="store_true", help="replace OUT.onnx if it exists")

    sub.add_parser("recipes", help="the classic MNIST experiments --recipe runs",
                   description="The classic published MNIST experiments `layerwise train "
                               "--recipe NAME` reproduces: settings, conversions, sources.")

    for name, text in (("gradcheck", "compare backprop gradients with finite differences"),
                       ("explain", "one batch forward and backward, layer by layer")):
        c = sub.add_parser(name, help=text, epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description=text + ". Give a saved MODEL, or build a fresh network "
                                              "from --layers/--activation/--loss.")
        c.add_argument("args", nargs="*", metavar="[MODEL] [DATA]",
                       help="an optional model file, then the data (default: the data the "
                            "model was trained on; digits for a fresh network)")
        _network_options(c)
        _data_options(c)
        _by_position_option(c)
        c.add_argument("--batch-size", type=int, default=8 if name == "gradcheck" else 64,
                       help="samples in the batch")
        if name == "explain":
            c.add_argument("--plot", default=None, metavar="FILE.png", help="draw the report")
    return p


# -- shared helpers -----------------------------------------------------------------------------
def _load_data(source: str, args: argparse.Namespace, dtype: Any = np.float32) -> Dataset:
    from .datasets import load
    task = None if args.task == "auto" else args.task
    return load(source, data_dir=args.data_dir, target=args.target, task=task,
                header=not getattr(args, "no_header", False), dtype=dtype)


def _use_model_target(args: argparse.Namespace, model: Sequential, source: str) -> None:
    """A CSV's target is the model's target column (by name), unless --target says otherwise
    or columns are taken by position (then it is the last column, as in train)."""
    name = model.metadata.get("target_name")
    if (args.target is None and isinstance(name, str) and source.lower().endswith(".csv")
            and not args.by_position and not args.no_header):
        args.target = name


def _few(names: list[str], k: int = 10) -> str:
    """A list of names for a message, the first ``k`` of a long one."""
    return str(names) if len(names) <= k else f"{names[:k]} … ({len(names)} in all)"


def _feature_columns(names: list[str] | None, model: Sequential, what: str,
                     by_position: bool, ignore: str | None = None) -> list[int] | None:
    """The file's column indices in the model's feature order, matched by name; None means
    take the columns as they are (by position: asked for, or no names on one side).

    Refuses, naming them, model features missing from the file and file columns the model
    does not know (``ignore``, the model's target column, may be present).
    """
    expected = model.metadata.get("feature_names")
    if by_position or names is None or not isinstance(expected, list) or not all(
            isinstance(n, str) for n in expected):
        return None
    repeated = sorted({n for n in expected if expected.count(n) > 1})
    if repeated:
        raise CLIError(f"the model's feature names repeat ({repeated}), so {what}'s columns "
                       "cannot be matched by name; pass --by-position to take them in order.")
    missing = [n for n in expected if n not in names]
    unexpected = [n for n in names if n not in expected and n != ignore]
    if missing or unexpected:
        raise CLIError(f"{what}: the columns must be the model's features, matched by name; "
                       f"missing {_few(missing)}, unexpected {_few(unexpected)} (the model's "
                       f"features: {_few(expected)}); rename or drop columns, or pass "
                       "--by-position to take the columns in file order.")
    return [names.index(n) for n in expected]


def _map_classes(y: np.ndarray, data: Dataset, model: Sequential) -> np.ndarray:
    """Re-express the dataset's labels in the model's class order (names saved at training)."""
    classes = model.metadata.get("classes")
    if data.task != "classification":
        return y
    n_model = len(classes) if classes else model.metadata.get("n_classes")
    if data.classes is not None and data.classes == [str(k) for k in range(len(data.classes))] \
            and n_model and len(data.classes) != n_model:
        raise CLIError(f"the data has {len(data.classes)} classes (one-hot columns or labels) "
                       f"but the model was trained on {n_model}; use data with the model's "
                       "classes.")
    if classes is None or data.classes is None:
        return y
    index = {str(name): k for k, name in enumerate(classes)}    # the data's names are text
    unknown = sorted({data.classes[k] for k in np.unique(y)} - set(index))
    if unknown:
        raise CLIError(f"labels {unknown} were not among the classes seen in training "
                       f"({classes}); evaluate on data with the same classes.")
    lookup = np.array([index.get(name, -1) for name in data.classes])
    return lookup[y]


def _check_features(model: Sequential, X: np.ndarray, what: str) -> None:
    if model.n_in is not None and X.shape[1] != model.n_in:
        raise CLIError(f"{what} has {X.shape[1]} features but the model expects {model.n_in}; "
                       "use data with the same columns as in training.")


def _load_model(path: str) -> Sequential:
    from .io import load
    return load(path)


ACCURACIES = ("accuracy", "subset_accuracy", "label_accuracy")


def _metrics_row(result: dict[str, float]) -> dict[str, str]:
    """A table row: the loss, then the accuracies (classification, whatever the loss: an MSE
    classifier's MSE, MAE and R² on one-hot rows are left out) or MSE, MAE and R²."""
    loss = result["loss"]
    out = {"loss": f"{loss:.4f}" if abs(loss) < 1e6 else f"{loss:.4g}"}
    shown = [k for k in ACCURACIES if k in result] or ["mse", "mae", "r2"]
    for key in shown:
        if key in result:
            out[key] = f"{result[key]:.2%}" if key in ACCURACIES else f"{result[key]:.4g}"
    return out


def _table(rows: dict[str, dict[str, str]]) -> str:
    cols = list(next(iter(rows.values())))
    head = ["", *cols]
    body = [[name, *(r.get(c, "") for c in cols)] for name, r in rows.items()]
    widths = [max(len(row[c]) for row in [head, *body]) for c in range(len(head))]
    fmt = lambda row: "  ".join(  # noqa: E731
        cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(head), *map(fmt, body)])


# -- train --------------------------------------------------------------------------------------
# Classification: the output activations each loss can train, the first being the default.
# ce and bce fuse their softmax or sigmoid into the loss (stable on logits), so the network
# itself ends with the Dense layer; mse trains the activation's outputs on one-hot targets.
CLASS_OUTPUTS = {"ce": ("softmax",), "bce": ("sigmoid",),
                 "mse": ("sigmoid", "softmax", "identity")}


def _resolve_loss(args: argparse.Namespace, task: str) -> Any:
    """The loss for --loss on a ``task``, checking --output against it: on classification
    data --output is set to the activation used (CLASS_OUTPUTS' default when not given)."""
    import layerwise as lw
    name = args.loss
    if name == "auto":
        name = "ce" if task == "classification" else "mse"
    loss = lw.losses.get(name)
    if isinstance(loss, lw.CrossEntropy):
        loss = lw.CrossEntropy(label_smoothing=getattr(args, "label_smoothing", 0.0))
    if task == "classification" and loss.kind not in CLASS_OUTPUTS:
        raise CLIError(f"loss {name!r} is for regression but the data is a classification "
                       f"task; use --loss ce, bce or mse, or --task regression.")
    if task != "classification" and loss.task == "classification":
        raise CLIError(f"loss {name!r} is for classification but the data is a {task} task; "
                       f"use --loss mse or --task classification.")
    if task == "classification":
        allowed = CLASS_OUTPUTS[loss.kind]
        given = args.output_activation
        if given is None:
            args.output_activation = allowed[0]
        elif str(given).lower() not in allowed:
            why = {"ce": "cross-entropy applies the softmax itself, fused with the loss",
                   "bce": "binary cross-entropy applies the sigmoid itself, fused with the loss",
                   "mse": "the quadratic cost trains on the output activation's values"}
            fix = (f"drop --output (or give --output {allowed[0]})" if len(allowed) == 1
                   else f"use --output {', '.join(allowed[:-1])} or {allowed[-1]}")
            other = " or --loss mse for a sigmoid or linear output" if loss.kind != "mse" else ""
            raise CLIError(f"--output {given} does not go with --loss {name} on classes: "
                           f"{why[loss.kind]}; {fix}{other}.")
        else:
            args.output_activation = str(given).lower()
    args.output_layer = _output_layer(args.output_activation, loss)
    return loss


def _output_layer(activation: Any, loss: Any) -> str | None:
    """The activation layer the network ends with (``_build`` reads it from
    ``args.output_layer``): none where the loss fuses it (softmax for ce, sigmoid for bce on
    logits) or for identity outputs."""
    if loss.kind in ("ce", "bce") or activation is None or str(activation).lower() == "identity":
        return None
    return str(activation)


def _check_size(sizes: list[int], dtype: Any) -> None:
    """Refuse, before allocating anything, a network whose training state cannot fit in memory.

    Parameters: Σ (n_in + 1)·n_out over the Dense layers. Training holds four copies of them
    (weights, gradients, and up to two optimizer moments), so the estimate is
    4 · n_params · itemsize bytes, compared with the machine's physical memory.
    """
    n_params = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))    # Python ints: exact
    need = 4 * n_params * np.dtype(dtype).itemsize
    from ._utils import physical_memory
    have = physical_memory() or 64 * 1024**3        # 64 GiB when the platform does not say
    if need > have:
        raise CLIError(f"--layers {','.join(map(str, sizes[1:-1]))} makes a network of "
                       f"{n_params:,} parameters, which needs about {need / 1024**3:,.1f} GiB to "
                       f"train (weights, gradients and optimizer state) but this machine has "
                       f"{have / 1024**3:,.1f} GiB; use smaller layers.")


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise CLIError(f"--seed must be a non-negative integer; received {seed}, so pass e.g. "
                       "--seed 0.")


def _build(args: argparse.Namespace, n_in: int, n_out: int, dtype: Any) -> Sequential:
    import layerwise as lw
    _check_size([n_in, *args.layers, n_out], dtype)
    # the output layer _resolve_loss chose for --loss and --output
    output = getattr(args, "output_layer", args.output_activation)
    return lw.mlp([n_in, *args.layers, n_out], activation=args.activation,
                  output=output, init=args.init,
                  bias_init=getattr(args, "bias_init", None) or "zeros",
                  dropout=getattr(args, "dropout", 0.0), dtype=dtype, rng=args.seed,
                  norm=getattr(args, "norm", None))


def _optimizer(args: argparse.Namespace, task: str = "classification") -> Any:
    import layerwise as lw
    name = args.optimizer.lower()
    # SGD's 0.1 suits cross-entropy and bounded (sigmoid, softmax) outputs; squared errors of
    # unbounded outputs (regression, or mse on classes with --output identity) need smaller steps.
    bounded = task == "classification" and \
        str(getattr(args, "output_activation", None)).lower() != "identity"
    default_lr = (0.1 if bounded else 0.01) if name == "sgd" else 1e-3
    lr = args.lr if args.lr is not None else default_lr
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": args.weight_decay,
                              "decay_biases": bool(getattr(args, "decay_biases", False))}
    if name in ("sgd", "rmsprop"):
        kwargs["momentum"] = args.momentum
    elif name == "adamw" and args.weight_decay == 0:
        kwargs["weight_decay"] = 0.01
    return lw.optimizers.get(name, **kwargs)


RESUMABLE = ("data", "layers", "activation", "output_activation", "init", "bias_init", "norm",
             "loss",
             "seed", "decay_biases",
             "split_seed",
             "data_dir", "target", "task", "optimizer", "lr", "momentum", "weight_decay",
             "schedule", "epochs", "batch_size", "dropout", "label_smoothing",
             "validation_split", "validation_rows", "test_split", "early_stopping", "scaling",
             "dtype", "clip_norm", "checkpoint_every", "quiet", "no_plots", "no_header",
             "threads", "plain", "plain_implied", "refit", "ensemble",
             "recipe")


def _resume_args(args: argparse.Namespace) -> argparse.Namespace:
    """The settings of the run in RUN_DIR (from its config.json), to continue it."""
    run_dir = Path(args.resume)
    config_path, checkpoint = run_dir / "config.json", run_dir / "checkpoint.lw"
    if not checkpoint.exists():
        raise CLIError(f"{run_dir} has no checkpoint.lw to resume from; it is written when "
                       "training is interrupted (Ctrl-C) or every --checkpoint-every STEPS, and "
                       "removed when training finishes.")
    try:
        saved = json.loads(config_path.read_text())["args"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CLIError(f"cannot read the run's settings from {config_path} ({exc}).") from None
    merged = argparse.Namespace(**{k: saved.get(k, getattr(args, k, None)) for k in RESUMABLE})
    if "split_seed" not in saved:                    # a run from before --split-seed: its
        merged.split_seed = merged.seed              # test split was seeded by --seed
    merged.refit = False     # a refit's choice is made before its config.json is written
    if "ensemble" not in saved:                      # a run from before --ensemble: one net
        merged.ensemble = 1
    if "decay_biases" not in saved:                  # a run from before --decay-biases: its
        merged.decay_biases = True                   # weight decay included the biases
    merged.out, merged.resume = str(run_dir), str(checkpoint)
    return merged


def _check_inits(args: argparse.Namespace) -> None:
    """Refuse an --init or --bias-init outside the grammar, before anything is loaded."""
    from . import initializers
    for option, value, resolve in (("--init", args.init, initializers.get),
                                   ("--bias-init", getattr(args, "bias_init", None),
                                    initializers.get_bias)):
        if value is not None:
            try:
                resolve(value)
            except LayerwiseError as exc:
                raise CLIError(f"{option}: {exc}") from None


def _check_train_args(args: argparse.Namespace) -> None:
    """Refuse bad numbers before anything is loaded or written."""
    from ._blas import check_threads
    from ._utils import fraction, positive_float, positive_int
    # None: not given (chosen later by train_defaults from the data's size, or unused)
    if args.validation_rows is not None:             # the last N rows: an int split
        n = positive_int("--validation-rows", args.validation_rows)
        if args.validation_split not in (None, n):   # (a resumed run saved both)
            raise CLIError(f"--validation-split {args.validation_split} and --validation-rows "
                           f"{n} both choose the validation rows; give one: a fraction (a "
                           "random sample) or a number of rows (the last ones).")
        args.validation_split = n
    elif args.validation_split is not None and args.validation_split >= 1:
        raise CLIError(f"--validation-split is a fraction in [0, 1) of the training rows, "
                       f"held out at random; received {args.validation_split:g}. For the last "
                       "N rows in file order (e.g. 50,000 training and 10,000 validation), "
                       f"pass --validation-rows N instead.")
    checks: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
        ("epochs", positive_int, {}), ("batch_size", positive_int, {}),
        ("validation_split", fraction, {}), ("dropout", fraction, {}),
        ("label_smoothing", fraction, {"upper_open": False}),
        ("weight_decay", positive_float, {"allow_zero": True}), ("lr", positive_float, {}),
        ("clip_norm", positive_float, {}), ("checkpoint_every", positive_int, {}),
        ("early_stopping", lambda name, v: v if v == 0 else positive_int(name, v), {})]
    for name, check, options in checks:
        if name == "validation_split" and args.validation_rows is not None:
            continue                                 # an int: checked above
        if getattr(args, name) is not None:
            check("--" + name.replace("_", "-"), getattr(args, name), **options)
    args.threads = check_threads(args.threads, "--threads")     # None: auto
    _check_inits(args)
    _check_seed(args.seed)
    if args.split_seed < 0:
        raise CLIError(f"--split-seed must be a non-negative integer; received "
                       f"{args.split_seed}, so pass e.g. --split-seed 0.")


def _flag_text(key: str, value: Any) -> str:
    """``--batch-size 32``, ``--layers 300,100``, the data as itself; a switch as
    ``--refit`` / ``--no-refit``, or ``--decay-biases`` / nothing (it has no "no" form)."""
    flag = key.replace("_", "-")
    if key == "data":
        return str(value)
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}" if key == "refit" else ""
    if isinstance(value, list):
        return f"--{flag} {','.join(map(str, value))}"
    return f"--{flag} {_auto_text(value)}"


#: --plain: plain SGD exactly as written, for every option the command line leaves unset. It
#: sets every key of train_defaults, so nothing is chosen by the data's size; early stopping 0
#: is off (None would let the small-data default turn it on with --validation-split).
PLAIN = {"optimizer": "sgd", "momentum": 0.0, "schedule": "constant", "label_smoothing": 0.0,
         "weight_decay": 0.0, "validation_split": 0.0, "early_stopping": 0, "epochs": 20,
         "batch_size": 64, "refit": False, "ensemble": 1}


def _recipe_names() -> list[str]:
    from .recipes import names
    return names()


def given_options(argv: Sequence[str] | None) -> set[str]:
    """The options (their dest names) given on the ``train`` command line, told apart from
    argparse's defaults by parsing again with every default suppressed."""
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices["train"]._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command"}


def apply_recipe(args: argparse.Namespace) -> dict[str, Any]:
    """With --recipe NAME, set every option of the recipe that the command line did not give
    (the data too, when not given); return the settings so set. Before --plain and the
    size-based defaults: a recipe sets all they would. A resumed run has its settings back
    from config.json already, so nothing is applied again."""
    if not args.recipe or args.resume:
        return {}
    from .recipes import VALIDATION_KEYS, get
    recipe = get(args.recipe)
    given: set[str] = getattr(args, "given", set())
    applied: dict[str, Any] = {}
    if "data" not in given:
        args.data = applied["data"] = recipe.data
    for key, value in recipe.settings.items():
        # the validation rows are one choice, a fraction or a count: either given wins
        if key in given or (key in VALIDATION_KEYS and given & set(VALIDATION_KEYS)):
            continue
        setattr(args, key, list(value) if isinstance(value, list) else value)
        applied[key] = value
    return applied


def _recipe_info(args: argparse.Namespace) -> dict[str, Any] | None:
    """What config.json and the run's first lines say of its recipe: the source, the
    published result, the recipe's settings and those the command line changed."""
    if not args.recipe:
        return None
    from .recipes import get
    r = get(args.recipe)
    over = {k: getattr(args, k) for k, v in r.settings.items()
            if getattr(args, k, None) is not None and getattr(args, k) != v}
    return {"name": r.name, "data": r.data, "title": r.title, "source": r.source,
            "published": r.published,
            "published_accuracy": r.published_accuracy, "settings": r.settings,
            "conversions": list(r.conversions), "ours": list(r.ours), "overridden": over}


def _cmd_recipes(args: argparse.Namespace) -> int:
    from .recipes import RECIPES
    for r in RECIPES.values():
        print(f"{r.name}: {r.title}\n  published: {r.published} ({r.source})\n"
              f"  layerwise train --recipe {r.name}   # = {r.data} "
              + " ".join(t for k, v in r.settings.items() if (t := _flag_text(k, v))))
        for line in r.conversions:
            print(f"  conversion: {line}")
        for line in r.ours:
            print(f"  not in the source, our choice: {line}")
    return 0


def apply_plain(args: argparse.Namespace) -> dict[str, Any]:
    """With --plain, set every option in ``PLAIN`` that the command line left unset (None),
    before the size-based defaults run; return the settings so implied (a resumed run's are
    in its config). Without --plain, only the momentum's default, 0.9."""
    if not args.plain:
        if args.momentum is None:
            args.momentum = 0.9
        return {}
    if getattr(args, "plain_implied", None) is not None:     # resumed: set when it began
        return dict(args.plain_implied)
    implied = {}
    for key, value in PLAIN.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
            implied[key] = value
    args.plain_implied = implied
    return implied


def plain_lr(args: argparse.Namespace, task: str, implied: dict[str, Any]) -> None:
    """With --plain and no --lr, fix the optimizer's default rate (SGD: 0.1, 0.01 for
    regression) as a setting --plain implies, so it is printed and saved like the others.
    After the loss is resolved: the default can depend on the output layer."""
    if args.plain and args.lr is None:
        args.lr = implied["lr"] = _optimizer(args, task).lr
        args.plain_implied = implied


def _flags_text(settings: dict[str, Any]) -> str:
    """``{"batch_size": 64}`` as the flags that say it: ``--batch-size 64``."""
    return ", ".join(t for k, v in settings.items() if (t := _flag_text(k, v)))


def _auto_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "/".join(f"{v:g}" for v in value) + " (by validation loss)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def apply_train_defaults(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Fill every training option left unset (None) from :func:`train_defaults`; return the
    options so chosen. Options given on the command line are kept as they are. Early stopping
    needs validation rows: with --validation-split 0 it stays off."""
    auto = {}
    for key, value in runs.train_defaults(n).items():
        if getattr(args, key, None) is None:
            if key in ("early_stopping", "refit") and not args.validation_split:
                continue
            setattr(args, key, value)
            auto[key] = value
    return {k: v for k, v in auto.items() if v is not None}


def _check_rows(n_train: int, n_test: int, validation_split: float | int) -> int:
    """Rows held out for validation (a fraction, or an int: --validation-rows); refuses splits
    that leave a set empty, before any statistics are fitted on it."""
    if n_train < 1:
        raise CLIError(f"--test-split leaves {n_train} of the {n_train + n_test} samples for "
                       "training; use a smaller --test-split.")
    if isinstance(validation_split, int) and validation_split and not 1 <= validation_split \
            < n_train:
        raise CLIError(f"--validation-rows {validation_split} holds out "
                       f"{validation_split} rows but there are {n_train} training rows, and "
                       f"at least one must train; choose at most {n_train - 1}.")
    if isinstance(validation_split, int):
        return validation_split
    n_val = round(n_train * validation_split) if validation_split else 0
    if validation_split and not 1 <= n_val < n_train:
        raise CLIError(f"--validation-split {validation_split} of the {n_train} training samples "
                       f"leaves {n_val} for validation and {n_train - n_val} for training; both "
                       "need at least one, so choose a fraction between "
                       f"{0.5 / n_train:.2g} and {(n_train - 0.5) / n_train:.4g}, or 0 for none.")
    return n_val


def _check_target_range(y: np.ndarray, loss: Any, dtype: Any, what: str) -> None:
    """Squared errors in the targets' units must fit the dtype: refuse targets whose loss
    ½(a − y)² would overflow to inf (|y| beyond √max / 2 of the dtype)."""
    if loss.kind != "mse" or y.dtype.kind != "f" or not y.size:
        return
    limit = float(np.sqrt(np.finfo(dtype).max)) / 2
    big = float(np.abs(y).max())
    if big > limit:
        fix = ("pass --dtype float64 or rescale the targets" if np.dtype(dtype) == np.float32
               else "rescale the targets (e.g. divide them by a power of ten)")
        raise CLIError(f"{what}: targets reach {big:.3g}, so their squared errors (the MSE "
                       f"loss) overflow {np.dtype(dtype)}, which allows targets up to "
                       f"{limit:.3g}; {fix}.")


def _cmd_train(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as cleanup:          # holds the run directory's lock
        return _train(args, cleanup)


def _train(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> int:
    import layerwise as lw

    from . import distributed
    from .network import check_ensemble
    from .outofcore import is_large
    from .preprocessing import Standardize
    from .training import validation_rows

    if args.resume:
        args = _resume_args(args)
    recipe = apply_recipe(args)
    recipe_info = _recipe_info(args)
    _check_train_args(args)

    comm = distributed.cli_comm(cleanup)         # under mpiexec -n R > 1: data-parallel
    dtype = np.dtype(args.dtype)
    data = _load_data(args.data, args, dtype)
    if recipe_info and data.task != "classification":
        raise CLIError(f"--recipe {args.recipe} trains a classifier ({recipe_info['data']}'s "
                       f"digits) but {args.data} is a {data.task} task; drop --recipe.")
    # before statistics spread a NaN; a CSV file's rows are named by their line in the file
    what = Path(args.data).name if data.first_line else args.data
    require_finite(data.X_train, f"{what}: X", data.feature_names, data.first_line)
    require_finite(data.y_train, f"{what}: y", first_line=data.first_line)   # regression
    if data.X_test is not None:
        require_finite(data.X_test, f"{args.data}: X_test")
    Xtr, ytr, Xte, yte = runs.train_and_test(data, args.test_split, args.split_seed)
    plain = apply_plain(args)                        # first: what it sets is not "auto"
    auto = apply_train_defaults(args, len(Xtr))
    try:
        n_val = _check_rows(len(Xtr), len(Xte), args.validation_split)
    except CLIError as exc:          # say where a recipe's row count came from
        if not {"validation_rows", "validation_split"} & set(recipe):
            raise
        raise CLIError(f"{str(exc).rstrip('.')} (--recipe {args.recipe} sets it for "
                       f"{recipe_info['data'] if recipe_info else 'its data'}; "
                       "give --validation-rows N or --validation-split F for this data)"
                       ) from None
    # The rows fit(validation_split=, rng=--seed) will hold out: the same function draws them
    # (a random sample for a fraction, the last N rows for --validation-rows N).
    fit_rows, val_rows = validation_rows(len(Xtr), args.validation_split or 0.0, args.seed)
    classify = data.task == "classification"
    _warn_forced_classes(args, data, what)
    loss = _resolve_loss(args, data.task)
    plain_lr(args, data.task, plain)
    _check_target_range(data.y_train, loss, dtype, args.data)
    if data.y_test is not None:
        _check_target_range(data.y_test, loss, dtype, f"{args.data} (test)")
    n_classes = len(data.classes) if classify and data.classes else int(ytr.max()) + 1
    n_out = (1 if loss.kind == "bce" and n_classes == 2 else n_classes) if classify else (
        1 if ytr.ndim == 1 else ytr.shape[1])
    scaling = data.scaling if args.scaling == "auto" else args.scaling
    if args.early_stopping and not n_val:
        raise CLIError("--early-stopping needs validation data; set --validation-split.")
    if args.refit and not (n_val and args.early_stopping):
        raise CLIError("--refit trains for the epoch count early stopping chose on the "
                       "validation rows; set --validation-split and --early-stopping, or pass "
                       "--no-refit.")
    x_scaler, y_scaler, Xs, Ytr = runs.prepare(Xtr, ytr, fit_rows, scaling, data.full_scale,
                                           loss, n_classes, classify, dtype)

    def trainee(net: Sequential) -> Sequential:
        """What trains: the network, behind the input scaler for memory-mapped data, which
        runs.prepare leaves unscaled (outofcore: each batch is scaled as it is read)."""
        return lw.Sequential([x_scaler, *net.layers]) if is_large(Xs) else net

    net = _build(args, Xtr.shape[1], n_out, dtype)
    if args.ensemble > 1:
        try:
            check_ensemble(net, args.ensemble)       # can K such networks be averaged?
        except lw.ValidationError as exc:
            if "ensemble" not in auto:
                raise CLIError(f"--ensemble {args.ensemble}: {exc}") from None
            args.ensemble = auto["ensemble"] = 1     # (a sigmoid output, a LayerNorm: one net)
    out = Path(args.out) if args.out else runs.fresh_run_dir(args.data)
    if comm is not None:                    # rank 0 writes the run directory, alone
        out = distributed.run_dir(comm, comm.bcast(out, root=0), cleanup)
        args.no_plots = args.no_plots or comm.Get_rank() != 0
    if not args.quiet and comm is not None:
        print(f"data-parallel over {comm.Get_size()} MPI processes: global batch "
              f"{args.batch_size}, {distributed.per_rank_batch(args.batch_size, comm.Get_size())}"
              " rows per process")
    if not args.quiet:
        print(f"{data!r}\n{len(Xtr) - n_val} training, {n_val} validation, {len(Xte)} test "
              f"samples; writing to {out}/")
        if is_large(Xtr):
            print(f"{what}: memory-mapped ({data.X_train.nbytes / 2**20:,.0f} MiB), read one "
                  f"batch of rows at a time and scaled as it is read")
        if recipe_info and data.name != recipe_info["data"]:
            print(f"note: --recipe {args.recipe} was published for {recipe_info['data']}; on "
                  f"{data.name} its published result is no yardstick")
        if recipe_info:
            print(f"recipe {args.recipe}: {recipe_info['title']}; published: "
                  f"{recipe_info['published']} ({recipe_info['source']})\n  settings: "
                  + (_flags_text(recipe) or "every one given on the command line")
                  + "".join(f"\n  conversion: {c}" for c in recipe_info["conversions"])
                  + "".join(f"\n  not in the source, our choice: {c}"
                            for c in recipe_info["ours"])
                  + (f"\n  overridden on the command line: {_flags_text(over)}"
                     if (over := recipe_info["overridden"]) else ""))
        if args.plain:
            print("plain SGD (--plain): "
                  + (_flags_text(plain) or "every setting given on the command line"))
        if auto:
            print(f"defaults for {runs.size_rule(len(Xtr))}: {_flags_text(auto)}")
        net.summary()
    choose_decay = isinstance(args.weight_decay, tuple)
    # an unknown optimizer is refused before the run directory exists
    _optimizer(argparse.Namespace(**{**vars(args), "weight_decay": 0.0}) if choose_decay
               else args, data.task)
    runs.open_run_dir(out, bool(args.resume), cleanup)
    selection = None
    if choose_decay and not n_val:          # nothing to choose on: the smallest decay
        args.weight_decay = args.weight_decay[0]
    elif choose_decay or args.refit:        # chosen on the validation rows' loss
        candidates = args.weight_decay if choose_decay else (args.weight_decay,)
        args.weight_decay, best_epoch, val_losses = runs.select_weight_decay(
            lambda: trainee(_build(args, Xs.shape[1], n_out, dtype)),
            lambda wd: _optimizer(argparse.Namespace(**{**vars(args), "weight_decay": wd}),
                                  data.task),
            Xs, Ytr, candidates, patience=args.early_stopping, loss=loss, epochs=args.epochs,
            batch_size=args.batch_size, validation_split=args.validation_split,
            schedule=args.schedule, rng=args.seed, clip_norm=args.clip_norm,
            threads=args.threads)
        # how the final run's settings were chosen; config.json's other fields are the
        # final run's own (after a refit: all rows, no validation, the chosen epochs)
        selection = {"val_loss": val_losses, "weight_decay": args.weight_decay,
                     "best_epoch": best_epoch, "refit": bool(args.refit),
                     "validation_split": args.validation_split, "validation_rows": n_val,
                     "early_stopping": args.early_stopping, "max_epochs": args.epochs}
        if not args.quiet and choose_decay:
            print("weight decay by best validation loss: " + ", ".join(
                f"{k} → {v:.4g}" for k, v in val_losses.items())
                + f"; training with {args.weight_decay:g}")
        if args.refit:
            # The final run: every training row, no validation rows, the chosen epoch count.
            # config.json records these settings, so --resume continues this run as it is.
            args.epochs, args.validation_split, args.early_stopping = best_epoch, 0.0, None
            args.validation_rows, n_val = None, 0
            fit_rows, val_rows = np.arange(len(Xtr)), np.arange(0)
            x_scaler, y_scaler, Xs, Ytr = runs.prepare(Xtr, ytr, fit_rows, scaling, data.full_scale,
                                                   loss, n_classes, classify, dtype)

    callbacks: list[Any] = [grads := lw.GradientNorms()]
    n_fit = len(Xtr) - n_val
    rows = np.concatenate([fit_rows, val_rows])     # training rows first, then validation
    inverse = None
    if y_scaler is not None:        # the saved model's last layer: y = ŷ·s + offset
        inverse = Standardize(-y_scaler.offset / y_scaler.scale, 1 / y_scaler.scale,
                              method="inverse", dtype=dtype)
        # first, so that early stopping watches the validation loss in the targets' units
        callbacks.insert(0, runs.TargetUnits(inverse, loss, Xs[rows], loss.prepare_target(
            ytr[rows], n_out, dtype), n_fit))
    if args.early_stopping:
        callbacks.append(stopper := lw.EarlyStopping(patience=args.early_stopping))
    opt = _optimizer(args, data.task)
    opt_settings = repr(opt)                         # before the schedule changes opt.lr
    settings = {k: getattr(args, k, None) for k in RESUMABLE}
    runs.write_file(out / "config.json", json.dumps({"args": settings}, indent=2) + "\n")
    # Ctrl-C always writes a checkpoint of the last completed step; --checkpoint-every adds
    # periodic ones (against crashes). It is removed once the final model is saved.
    checkpoint = out / "checkpoint.lw"
    # Up to 500 epochs of a few milliseconds each (small data, automatic --epochs): one bar per
    # epoch would be hundreds of lines, so the run reports when it stopped instead.
    verbose = 0 if args.quiet or ("epochs" in auto and len(Xtr) < runs.SMALL_DATA) else 1
    try:
        history = trainee(net).fit(Xs, Ytr, loss=loss, optimizer=opt,
                          epochs=args.epochs, batch_size=args.batch_size,
                          validation_split=args.validation_split, schedule=args.schedule,
                          rng=args.seed, callbacks=callbacks, verbose=verbose,
                          clip_norm=args.clip_norm, checkpoint=checkpoint,
                          checkpoint_every=args.checkpoint_every or "interrupt",
                          resume=args.resume, threads=args.threads, comm=comm)
    except lw.TrainingInterrupted:
        if comm is not None and comm.Get_rank() != 0:  # rank 0 says where its checkpoint is
            return 130
        raise Interrupted(f"interrupted; {checkpoint} holds the run up to the last completed "
                          f"step. Continue it with: layerwise train --resume "
                          f"{shlex.quote(str(out))}") from None

    if args.ensemble > 1:
        net = _ensemble(args, net, Xs, Ytr, fit_rows, val_rows, n_out, dtype, loss,
                        data.task, callbacks, trainee)

    # The saved model takes raw inputs: preprocessing first, target scaling undone last.
    layers = [x_scaler, *net.layers]
    if inverse is not None:
        layers.append(inverse)
    model = lw.Sequential(layers)
    model.loss = loss
    config = {
        "command": " ".join(shlex.quote(a) for a in ["layerwise", *sys.argv[1:]])
        if Path(sys.argv[0]).name in ("layerwise", "__main__.py") else None,
        "data": args.data, "task": data.task, "scaling": scaling,
        "layers": [Xtr.shape[1], *args.layers, n_out], "activation": args.activation,
        "output_activation": args.output_activation, "init": args.init,
        "bias_init": args.bias_init, "decay_biases": args.decay_biases, "loss": repr(loss),
        "optimizer": opt_settings, "schedule": args.schedule, "epochs": args.epochs,
        "epochs_run": len(history), "batch_size": args.batch_size, "dropout": args.dropout,
        "ensemble": args.ensemble,
        "validation_split": args.validation_split, "test_split": args.test_split,
        "early_stopping": args.early_stopping, "seed": args.seed,
        "split_seed": args.split_seed, "defaults": {
            "rule": runs.size_rule(len(Xtr)), **{k: _auto_text(v) for k, v in auto.items()}},
        "selection": selection,
        "plain": plain if args.plain else None,      # what --plain set (the rest was given)
        "recipe": recipe_info,
        "dtype": args.dtype,
        "target": args.target, "no_header": args.no_header, "data_dir": args.data_dir,
        "clip_norm": args.clip_norm,
        # BLAS threads: the setting, the count per epoch, and every measurement behind it
        "threads": {"setting": args.threads or "auto",
                    "per_epoch": [int(n) for n in history["threads"]],
                    "choices": history.thread_choices},
        "layerwise": lw.__version__, "args": settings,
    }
    model.metadata = {"task": data.task, "classes": data.classes, "seed": args.seed,
                      "split_seed": args.split_seed, "test_split": args.test_split,
                      "feature_names": data.feature_names, "target_name": data.target_name,
                      "n_classes": n_classes if classify else None, "config": config}
    model.save(out / "model.lw")
    checkpoint.unlink(missing_ok=True)               # the run is complete: nothing to resume

    table = {}
    table["train"] = _metrics_row(_evaluate(model, Xtr[fit_rows], ytr[fit_rows], loss,
                                            n_classes))
    if n_val:
        table["validation"] = _metrics_row(_evaluate(model, Xtr[val_rows], ytr[val_rows], loss,
                                                     n_classes))
    test = _evaluate(model, Xte, yte, loss, n_classes)
    table["test"] = _metrics_row(test)
    runs.write_history(out, history)
    runs.write_file(out / "config.json", json.dumps(config, indent=2) + "\n")
    if not args.no_plots:
        _plots(out, history, grads.norms, model, Xte, yte, data.classes, classify)
    print(_table(table))
    # the epochs' training time, as history.csv records it (also across a resumed run)
    seconds = max(sum(history["seconds"]), 1e-9)
    samples = len(history) * n_fit
    if selection and selection["refit"]:
        print(f"refit on all {n_fit} training rows for {args.epochs} epochs: the validation run "
              f"(weight decay {args.weight_decay:g}) had its lowest validation loss, "
              f"{selection['val_loss'][f'{args.weight_decay:g}']:.4g}, at that epoch")
    elif args.early_stopping and stopper.best_epoch >= 0:
        if stopper.stopped_epoch is None:       # ran to --epochs without a stop
            print(f"no early stop: the validation loss was still lowest at epoch "
                  f"{stopper.best_epoch + 1} of {args.epochs}, whose weights are kept")
        else:
            print(f"early stopping: the best validation loss was at epoch "
                  f"{stopper.best_epoch + 1}, whose weights are kept")
    if args.ensemble > 1:
        print(f"the model averages {args.ensemble} networks trained alike from different "
              "initial weights (the mean of their outputs); the history and curves are the "
              "first one's")
    print(f"{len(history)} epochs in {format_seconds(seconds)} ({samples / seconds:,.0f} "
          f"samples/s); run directory {out}/")
    return 0


def _ensemble(args: argparse.Namespace, first: Sequential, Xs: np.ndarray, Y: np.ndarray,
              fit_rows: np.ndarray, val_rows: np.ndarray, n_out: int, dtype: Any, loss: Any,
              task: str, callbacks: list[Any],
              trainee: Callable[[Sequential], Sequential] = lambda net: net) -> Sequential:
    """``--ensemble K``: K − 1 more networks trained as ``first`` was (same rows, validation
    rows, settings, stopping rule), each from its own initial weights and shuffling (seeds
    from SeedSequence([--seed, k])), then ``lw.ensemble``: one network outputting the mean."""
    import layerwise as lw

    from .runs import TargetUnits

    members = [first]
    for k in range(1, args.ensemble):
        init_seq, fit_seq = np.random.SeedSequence([args.seed, k]).spawn(2)
        net = _build(argparse.Namespace(**{**vars(args), "seed": np.random.default_rng(
            init_seq)}), Xs.shape[1], n_out, dtype)
        # the first network's callbacks that decide its weights, afresh: the validation
        # loss in the targets' units (TargetUnits is stateless), early stopping
        own: list[Any] = [cb for cb in callbacks if isinstance(cb, TargetUnits)]
        if args.early_stopping:
            own.append(lw.EarlyStopping(patience=args.early_stopping))
        held = len(val_rows) > 0
        try:
            trainee(net).fit(
                Xs[fit_rows], Y[fit_rows], loss=loss, optimizer=_optimizer(args, task),
                epochs=args.epochs, batch_size=args.batch_size,
                validation_data=(Xs[val_rows], Y[val_rows]) if held else None,
                schedule=args.schedule, rng=np.random.default_rng(fit_seq),
                callbacks=own, verbose=0, clip_norm=args.clip_norm, threads=args.threads,
                comm="auto")
        except lw.TrainingInterrupted:
            raise Interrupted(f"interrupted while training network {k + 1} of the "
                              f"--ensemble {args.ensemble}; no model was saved. Run the "
                              "command again (--ensemble 1 trains one network).") from None
        members.append(net)
    return lw.ensemble(members)


def _warn_forced_classes(args: argparse.Namespace, data: Dataset, what: str) -> None:
    """Warn when --task classification turns a numeric target with more distinct values than
    the task inference allows (datasets.MAX_CLASSES) into classes: most likely a quantity."""
    from .datasets import MAX_CLASSES
    classes = data.classes or []
    if args.task != "classification" or len(classes) <= MAX_CLASSES or not all(
            _is_float(c) for c in classes):
        return
    n, k = len(data.y_train), len(classes)
    print(f"layerwise: warning: --task classification makes {k} classes of the numbers in "
          f"{what}'s target{f' {data.target_name!r}' if data.target_name else ''} ({n} rows, "
          f"{n / k:.1f} per class): a target with more than {MAX_CLASSES} distinct numbers "
          "is usually a quantity, so drop --task to train a regression, unless these numbers "
          "are labels.", file=sys.stderr)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _evaluate(model: Sequential, X: np.ndarray, y: np.ndarray, loss: Any, n_classes: int
              ) -> dict[str, float]:
    return model.evaluate(X, runs.targets_for(loss, y, n_classes), loss=loss)


def _plots(out: Path, history: Any, norms: dict[str, list[float]], model: Sequential,
           X: np.ndarray, y: np.ndarray, classes: list[str] | None, classify: bool) -> None:
    from . import plots
    if not plots.available():
        print("warning: matplotlib is not installed, so no plots were drawn "
              f"({install_hint('matplotlib', 'plot')}).", file=sys.stderr)
        return
    plots.plot_history(history.history, out / "curves.png")
    plots.plot_gradient_flow(norms, out / "gradient_flow.png")
    K = model.n_out or 0
    if classify and K >= 2:                          # one class per sample: the argmax
        from .metrics import confusion_matrix
        C = confusion_matrix(y, model.predict(X).argmax(axis=1), K)
        plots.plot_confusion_matrix(C, out / "confusion_matrix.png", classes,
                                    title="test confusion matrix")


# -- evaluate, predict, info --------------------------------------------------------------------
def _cmd_evaluate(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    if model.loss is None:
        raise CLIError(f"{args.model} has no loss recorded; it was not saved by a training run.")
    _use_model_task(args, model)
    _use_model_target(args, model, args.data)
    data = _load_data(args.data, args, model.dtype)
    if data.first_line:                              # name the file's line, not a row
        require_finite(data.X_train, f"{Path(args.data).name}: X", data.feature_names,
                       data.first_line)
    meta = model.metadata if _same_source(model.metadata.get("config", {}).get("data"),
                                          args.data) else None
    if data.X_test is None and meta is None:
        X, y = data.X_train, data.y_train
    else:
        _, _, X, y = runs.train_and_test(data, 0.2, 0, meta)
    cols = _feature_columns(data.feature_names, model, args.data,
                            args.by_position or args.no_header)
    if cols is not None:
        X = X[:, cols]
    if data.first_line and model.n_in is not None and X.shape[1] == model.n_in - 1:
        raise CLIError(f"{args.data} has {model.n_in} columns, as many as the model's features, "
                       "so it has no target column (the last column was taken as the target); "
                       "evaluate compares predictions with targets, so add the target column "
                       "(last, or named by --target), or use layerwise predict for predictions "
                       "alone.")
    _check_features(model, X, args.data)
    y = _map_classes(y, data, model)
    _check_target_range(y, model.loss, model.dtype, args.data)
    n_classes = model.metadata.get("n_classes") or (model.n_out or 1)
    result = _evaluate(model, X, y, model.loss, n_classes)
    which = "test split" if data.X_test is not None or meta is not None else "all samples"
    print(f"{args.data} ({which}, {len(X)} samples)")
    print(_table({"evaluate": _metrics_row(result)}))
    return 0


def _use_model_task(args: argparse.Namespace, model: Sequential) -> None:
    """Read data with the task the model was trained for, unless --task says otherwise."""
    task = model.metadata.get("task")
    if args.task == "auto" and task in ("classification", "regression"):
        args.task = task
    elif task in ("classification", "regression") and args.task != task:
        raise CLIError(f"the model does {task} but --task {args.task} was given; drop --task "
                       "or use a model trained for that task.")


def _same_source(trained_on: str | None, source: str) -> bool:
    """Whether DATA names the data the model was trained on (same name, or the same file)."""
    if trained_on is None:
        return False
    if trained_on == source:
        return True
    a, b = Path(trained_on), Path(source)
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def _read_inputs(path: str, model: Sequential, args: argparse.Namespace) -> np.ndarray:
    from .datasets import read_npy, read_npz
    p = Path(path)
    if not p.exists():
        raise CLIError(f"no such input file {path!r}; pass a .csv, .npy or .npz file.")
    if p.suffix.lower() == ".npy":
        X = read_npy(p)
    elif p.suffix.lower() == ".npz":
        arrays = read_npz(p)
        if "X" not in arrays:
            raise CLIError(f"{path} has no array named X; it holds {sorted(arrays)}.")
        X = arrays["X"]
    elif p.suffix.lower() == ".csv":
        X = _read_csv_inputs(p, model, args)
    else:
        raise CLIError(f"cannot read inputs from {p.name!r}; expected .csv, .npy or .npz.")
    if X.ndim == 0:
        raise CLIError(f"{path} holds a single number (shape ()); expected one row per sample "
                       "and one column per feature.")
    if X.ndim == 1:
        X = X.reshape(1, -1) if model.n_in == X.size else X.reshape(-1, 1)
    if X.ndim > 2:
        X = X.reshape(len(X), -1)
    return X


def _read_csv_inputs(path: Path, model: Sequential, args: argparse.Namespace) -> np.ndarray:
    """The model's feature columns of a CSV, matched by name (the target column may be there
    too); by position with --by-position or --no-header, or when the model has no names."""
    from .datasets import read_csv
    names, columns = read_csv(path, header=not args.no_header)
    target = model.metadata.get("target_name")
    cols = _feature_columns(names, model, str(path), args.by_position or args.no_header,
                            ignore=target if isinstance(target, str) else None)
    if cols is None:
        cols = list(range(len(names)))
    for j in cols:
        column = columns[j]
        if isinstance(column, list):
            from .datasets import is_number_cell
            line = next(i for i, v in enumerate(column) if not is_number_cell(v))
            raise CLIError(f"{path}: every feature cell must be a number; column {names[j]!r} "
                           f"has {column[line]!r} on line {line + (1 if args.no_header else 2)}.")
    X = np.stack([columns[j] for j in cols], axis=1)
    require_finite(X, f"{path.name}: X", [names[j] for j in cols], 1 if args.no_header else 2)
    return X


def _cmd_predict(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    X = _read_inputs(args.input, model, args)
    _check_features(model, X, args.input)
    classes = model.metadata.get("classes")
    if model.loss is not None and model.loss.task != "classification" and \
            model.metadata.get("task") == "classification" and (model.n_out or 0) >= 2:
        # trained with a regression loss (mse) on one-hot targets: the class is the argmax
        if args.proba:
            raise CLIError(f"--proba needs a model trained with ce or bce; this one was "
                           f"trained with {model.loss.kind} on one-hot targets, so its outputs "
                           "are scores, not probabilities. Drop --proba for the labels.")
        best = model.predict(X).argmax(axis=1)
        _write_predictions((np.array(classes, dtype=object)[best] if classes else best)[:, None],
                           ["prediction"], args.output)
        return 0
    if model.loss is not None and model.loss.task == "classification":
        P = model.predict_proba(X)
        multilabel = model.metadata.get("multilabel") is True      # (scikit-learn's models)
        if P.shape[1] == 1 and not multilabel:      # one logit: P(class 1); show both classes
            P = np.column_stack([1 - P[:, 0], P[:, 0]])
        if args.proba:
            header = list(classes) if classes and len(classes) == P.shape[1] else [
                f"p{k}" for k in range(P.shape[1])]
            values: np.ndarray = P
        else:
            labels = model.predict_classes(X)
            if multilabel:                          # a 0/1 column per label, as scikit-learn
                header = [str(c) for c in classes] if classes else [
                    f"label{k}" for k in range(labels.shape[1])]
                _write_predictions(labels, header, args.output)
                return 0
            if labels.ndim > 1:
                labels = P.argmax(axis=1) if P.shape[1] > 1 else labels.reshape(len(labels))
            header = ["prediction"]
            values = (np.array(classes, dtype=object)[labels] if classes else labels)[:, None]
    else:
        if args.proba:
            raise CLIError("--proba needs a classification model; this one does regression.")
        values = model.predict(X)
        if model.loss is not None:                  # Poisson: the network gives log μ
            values = model.loss.output_transform(values)
        header = [model.metadata.get("target_name") or "prediction"] if values.shape[1] == 1 \
            else [f"y{k}" for k in range(values.shape[1])]
    _write_predictions(values, header, args.output)
    return 0


def _write_predictions(values: np.ndarray, header: list[str], output: str | None) -> None:
    """CSV to stdout, or to ``output`` (.csv, or .npy) written atomically."""
    if output is not None and output.lower().endswith(".npy"):
        from .io import atomic_write
        array = np.asarray(values if values.dtype != object else values.astype(str))
        atomic_write(output, lambda f: np.save(f, array, allow_pickle=False))
        return
    text = io.StringIO() if output else sys.stdout
    w = csv.writer(text, lineterminator="\n")
    w.writerow(header)
    for row in values:
        w.writerow([f"{v:.6g}" if isinstance(v, (float, np.floating)) else v for v in row])
    if output:
        assert isinstance(text, io.StringIO)
        runs.write_file(Path(output), text.getvalue())


def _cmd_info(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    print(f"{args.model}")
    model.summary()
    print(f"loss: {model.loss!r}")
    meta = dict(model.metadata)
    config = meta.pop("config", None)
    for key, value in meta.items():
        if value is not None:
            print(f"{key}: {value}")
    if config:
        print("training configuration:")
        for key, value in config.items():
            if key == "init" and value is None:
                value = "the default for each layer's activation (in the table above)"
            elif value is None:                      # an option that was not used
                continue
            print(f"  {key}: {value}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if os.path.lexists(out) and not args.force:
        raise CLIError(f"{out} already exists; pass --force to replace it, or choose another "
                       "OUT.onnx.")
    model = _load_model(args.model)
    try:
        from .onnx_export import export
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    proto = export(model, out, opset=args.opset, labels=not args.no_labels)
    names = ", ".join(o.name for o in proto.graph.output)
    print(f"wrote {out} (opset {proto.opset_import[0].version}; input X, outputs {names})")
    return 0


# -- gradcheck and explain ----------------------------------------------------------------------
def _model_and_batch(args: argparse.Namespace) -> tuple[Sequential, Any, np.ndarray, np.ndarray]:
    """The model (loaded or built from options), its loss, and a batch of DATA."""
    from .preprocessing import Standardize
    positional = list(args.args)
    if len(positional) > 2:
        raise CLIError(f"expected at most a MODEL and a DATA argument; received {positional}.")
    model_path = None
    if positional and (positional[0].endswith(".lw") or len(positional) == 2):
        model_path = positional.pop(0)
    _check_seed(args.seed)
    saved = _load_model(model_path) if model_path else None
    if positional:
        source = positional[0]
    elif saved is not None and model_path is not None:
        source = _trained_on(saved, model_path, args)
    else:
        source = "digits"
    if saved is not None:
        _use_model_task(args, saved)
        _use_model_target(args, saved, source)
    data = _load_data(source, args, np.float32 if saved is None else saved.dtype)
    if args.batch_size <= 0:
        raise CLIError(f"--batch-size must be positive; received {args.batch_size}.")
    rows = np.random.default_rng(args.seed).permutation(len(data.X_train))[:args.batch_size]
    X, y = data.X_train[rows], data.y_train[rows]
    if saved is not None:
        model = saved
        cols = _feature_columns(data.feature_names, model, source,
                                args.by_position or args.no_header)
        if cols is not None:
            X = X[:, cols]
        _check_features(model, X, source)
        loss = model.loss if model.loss is not None else _resolve_loss(args, data.task)
        y = _map_classes(y, data, model)
        n_classes = model.metadata.get("n_classes") or (model.n_out or 1)
    else:
        loss = _resolve_loss(args, data.task)
        n_classes = (len(data.classes) if data.classes else int(data.y_train.max()) + 1) \
            if data.task == "classification" else 1
        n_out = n_classes if data.task == "classification" else (
            1 if y.ndim == 1 else y.shape[1])
        if loss.kind == "bce" and n_classes == 2:
            n_out = 1
        scaler = Standardize.fit(data.X_train, data.scaling, full_scale=data.full_scale)
        net = _build(args, X.shape[1], n_out, np.float32)
        model = _sequential([scaler, *net.layers])
    return model, loss, X, runs.targets_for(loss, y, n_classes)


def _trained_on(model: Sequential, path: str, args: argparse.Namespace) -> str:
    """The data a saved model was trained on, as its run recorded it (with the run's
    --no-header and --data-dir); refused, saying to pass DATA, when it is not recorded or
    not found from here."""
    from .datasets import NAMES
    config = model.metadata.get("config")
    config = config if isinstance(config, dict) else {}
    data = config.get("data")
    usage = f"pass the data after the model: layerwise {args.command} {shlex.quote(path)} DATA"
    if not isinstance(data, str):
        raise CLIError(f"{path} does not record the data it was trained on; {usage}.")
    key = data.strip().lower().replace("_", "-")
    if key not in NAMES and not all(Path(p.strip()).expanduser().exists()
                                    for p in data.split(",")):
        raise CLIError(f"{path} was trained on {data!r}, which is not found from "
                       f"{os.getcwd()}; {usage}.")
    if config.get("no_header") is True:
        args.no_header = True
    if args.data_dir is None and isinstance(config.get("data_dir"), str):
        args.data_dir = config["data_dir"]
    return data


def _sequential(layers: list[Any]) -> Sequential:
    from .network import Sequential
    return Sequential(layers)


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import gradcheck
    model, loss, X, y = _model_and_batch(args)
    report = gradcheck(model, loss, X, y)
    print(f"gradient check of {len(model.parameters())} parameter arrays and dL/dX on a batch of "
          f"{len(X)}, float64, central differences")
    print(report)
    return 0 if report.passed else 1


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain
    model, loss, X, y = _model_and_batch(args)
    report = explain(model, loss, X, y)
    print(report)
    if args.plot:
        from . import plots
        if not plots.available():
            print("warning: matplotlib is not installed, so no plot was drawn "
                  f"({install_hint('matplotlib', 'plot')}).", file=sys.stderr)
        else:
            plots.plot_explanation(report, args.plot)
            print(f"plot written to {args.plot}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict, "info": _cmd_info,
    "gradcheck": _cmd_gradcheck, "explain": _cmd_explain, "recipes": _cmd_recipes,
    "export": _cmd_export,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``layerwise`` command; returns the exit status."""
    code = _main(argv)
    from .distributed import end_job
    end_job(code)                   # data-parallel: a rank that failed ends every rank
    return code


def _main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "train":
        args.given = given_options(argv)         # what a --recipe must not override
    try:
        return COMMANDS[args.command](args)
    except LayerwiseError as exc:         # the library's name=value in the command's --flags
        print(f"layerwise: error: {exc if isinstance(exc, CLIError) else in_flags(str(exc))}",
              file=sys.stderr)
        return 2
    except BrokenPipeError:                          # e.g. `layerwise predict … | head`
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"layerwise: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"layerwise: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("layerwise: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
