"""scikit-learn estimators: ``LayerwiseClassifier`` and ``LayerwiseRegressor``.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` that train
a ``layerwise`` network (float32 by default) and add what MLP users keep asking for: dropout,
a validation loss recorded beside the training loss, ``warm_start`` and ``partial_fit`` that keep
the optimizer's state (Adam's moments, SGD's velocity), ``sample_weight`` and ``class_weight``,
multi-label classification and multi-output regression, a choice of initialiser per layer, and
the fitted network itself as ``model_`` (a :class:`layerwise.Sequential` with ``save``).
:func:`save` writes a fitted estimator, or a pipeline of scalers ending in one, as a model file
that takes raw rows (``model_.save`` writes the network alone, without the pipeline's scalers).

This is the only module of the package that imports scikit-learn; ``import layerwise`` does not
load it. The estimators follow scikit-learn's contract: ``__init__`` only stores its arguments,
every fitted attribute ends in ``_``, and the estimators work in ``Pipeline``, ``GridSearchCV``,
``cross_val_score(n_jobs=...)``, ``clone`` and ``pickle``.

Same ``random_state`` (an int), same data: bit-identical results. Continuing is exact too: with a
constant learning rate, ``fit`` for 5 epochs and then a ``warm_start=True`` fit for 5 more gives
the same network, bit for bit, as one 10-epoch fit, and ``partial_fit`` once per epoch on the
full data gives the same network as ``fit`` for that many epochs (stopping rules aside).
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import numpy as np

from ._utils import install_hint

try:
    import sklearn
except ImportError as exc:
    raise ImportError(f"layerwise.sklearn needs scikit-learn, which is not installed; "
                      f"{install_hint('scikit-learn', 'sklearn')}.") from exc
else:
    # validate_data and the estimator tags (__sklearn_tags__) arrived in scikit-learn 1.6;
    # pyproject's sklearn extra asks for the same
    SKLEARN_MIN = (1, 6)
    if tuple(int(n) for n in re.findall(r"\d+", sklearn.__version__)[:2]) < SKLEARN_MIN:
        raise ImportError(
            f"layerwise.sklearn needs scikit-learn >= {'.'.join(map(str, SKLEARN_MIN))} (it "
            f"uses validate_data and __sklearn_tags__); found {sklearn.__version__}; "
            f"{install_hint(repr('scikit-learn>=1.6'), 'sklearn')}.")
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
)
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import activations as activations_mod
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from . import schedules as schedules_mod
from ._blas import check_threads
from ._utils import as_float_dtype, exclusive, fraction, is_sparse, lookup, per_layer
from .callbacks import Callback, TrainState
from .errors import BusyError, ConfigError, DivergenceError, LayerwiseError, ValidationError
from .layers import Dense, Layer, Param
from .network import Sequential, mlp
from .normalization import NORMS
from .preprocessing import Standardize
from .training import fit as _train

if TYPE_CHECKING:
    from .initializers import InitLike

__all__ = ["LayerwiseClassifier", "LayerwiseRegressor", "save", "to_model"]

#: activation and init take one value for every hidden layer, or one per layer (init: one
#: more, for the output layer; None there means the activation's default initialiser)
ActivationSpec: TypeAlias = \
    "activations_mod.ActivationLike | Sequence[activations_mod.ActivationLike]"
InitSpec: TypeAlias = "InitLike | Sequence[InitLike | None] | None"


def _one_fit_at_a_time(fit: Callable[..., Any]) -> Callable[..., Any]:
    """Hold the estimator for the whole of a fit or partial_fit: another one, from any thread,
    raises ``BusyError`` at once. (A first fit builds a new ``model_``, which the model's own
    guard in ``layerwise.training.fit`` could not see; the estimator's attributes would mix.)
    Inference needs no lock: ``predict`` shares no buffer with training."""
    @functools.wraps(fit)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        refuse = lambda: BusyError(  # noqa: E731
            f"this {type(self).__name__} is already being trained by another fit or "
            "partial_fit (in another thread); two at once would mix their networks and "
            "fitted attributes. Wait for it to finish, or fit a copy: sklearn.base.clone(est).")
        with exclusive(self, refuse):
            return fit(self, *args, **kwargs)
    return guarded


class InvalidParameter(ValidationError, InvalidParameterError):
    """A constructor argument outside its ``_parameter_constraints``: scikit-learn's
    ``InvalidParameterError`` (so its users' handlers catch it) and layerwise's
    ``ValidationError`` at once."""


def _param_error(exc: LayerwiseError) -> ValidationError:
    """Invalid constructor arguments are ValueErrors, as in scikit-learn."""
    return ValidationError(str(exc))


def _seed_sequence(random_state: Any) -> np.random.SeedSequence:
    """A SeedSequence from scikit-learn's random_state (None, int, RandomState) or a Generator."""
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValidationError(
                f"random_state must be a non-negative int, a RandomState or None; received "
                f"{random_state!r}."
            )
        return np.random.SeedSequence(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(int(random_state.randint(np.iinfo(np.int32).max)))
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(2**63)))
    raise ValidationError(
        f"random_state must be None, an int, a numpy RandomState or Generator; received "
        f"{type(random_state).__name__}."
    )


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can store it (model files keep metadata as JSON), else its repr."""
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name                         # dtype=np.float32 -> "float32"
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


class _Offset(schedules_mod.Schedule):
    """A schedule read ``offset`` epochs later: partial_fit steps it once per call."""

    kind = "offset"

    def __init__(self, schedule: schedules_mod.Schedule, offset: int) -> None:
        self.schedule, self.offset = schedule, offset

    def __call__(self, epoch: int, base_lr: float) -> float:
        return self.schedule(epoch + self.offset, base_lr)


class _InvScaling(schedules_mod.Schedule):
    """scikit-learn's ``learning_rate="invscaling"``: η_t = η₀ / (t + 1)^power_t, t the
    training samples seen before the epoch (``t_``), updated once per epoch."""

    kind = "invscaling"

    def __init__(self, t0: int, n: int, power_t: float) -> None:
        self.t0, self.n, self.power_t = t0, n, power_t

    def __call__(self, epoch: int, base_lr: float) -> float:
        return base_lr / (self.t0 + epoch * self.n + 1) ** self.power_t


class _L2Penalty(Callback):
    """The L2 term scikit-learn adds to each batch's loss: ½·α·‖W‖²/B for a batch of B rows
    (weights only, as they were before the step). An epoch's loss weighs each batch's by B/n,
    so the epoch gets ½·α·Σ_batches ‖W‖² / n. Only reads the model."""

    reads_only = True

    def __init__(self, alpha: float, n: float) -> None:
        self.alpha, self.n = alpha, n             # n: the rows (their sum of weights)
        self.sq, self.total = 0.0, 0.0
        self.flat: Param | None = None

    @staticmethod
    def weights_sq(flat: Param) -> float:
        """‖W‖² from the model's one flat buffer θ: ‖θ‖² minus its biases' (the no_decay
        ranges), a few BLAS calls whatever the depth."""
        v = flat.value
        return float(np.vdot(v, v)) - sum(float(np.vdot(v[a:b], v[a:b]))
                                          for a, b in flat.no_decay)

    def on_train_begin(self, state: TrainState) -> None:
        self.flat = state.model.flat_parameters()[0]          # what fit trains
        self.sq, self.total = self.weights_sq(self.flat), 0.0

    def on_batch_end(self, state: TrainState, loss: float) -> None:
        assert self.flat is not None
        self.total += self.sq                      # the batch just done saw these weights
        self.sq = self.weights_sq(self.flat)

    def take(self) -> float:
        """The epoch's penalty, ½·α·Σ‖W‖²/n; starts the next epoch's sum."""
        out, self.total = 0.5 * self.alpha * self.total / self.n, 0.0
        return out


class _Progress(Callback):
    """Record the curves and apply scikit-learn's stopping rule after every epoch.

    The loss recorded is scikit-learn's: the network's training loss times ``loss_scale``
    (regression: 1/n_outputs, scikit-learn averaging the squared error over outputs) plus the
    L2 penalty. Training stops once the monitored quantity (that loss, or the validation score
    with ``early_stopping``) has not improved by ``tol`` for more than ``patience`` epochs in
    a row, as in ``MLPClassifier``; with ``adaptive`` (SGD's ``learning_rate="adaptive"``) the
    rate is divided by 5 instead, until it is at most 1e-6. With ``early_stopping`` the best
    epoch's parameters are put back at the end.
    """

    def __init__(self, *, tol: float | None, patience: float, early_stopping: bool,
                 val_score: Callable[[TrainState, dict[str, float]], float],
                 best_loss: float, verbose: int, first_iteration: int = 0,
                 adaptive: bool = False, lr_factor: float = 1.0, count: int = 0,
                 penalty: _L2Penalty | None = None, loss_scale: float = 1.0) -> None:
        self.tol, self.patience, self.early_stopping = tol, patience, early_stopping
        self.first_iteration = first_iteration   # epochs before this call (warm start)
        self.val_score, self.best_loss, self.verbose = val_score, best_loss, verbose
        self.adaptive, self.lr_factor, self.count = adaptive, lr_factor, count
        self.penalty, self.loss_scale = penalty, loss_scale
        self.losses: list[float] = []
        self.val_losses: list[float] = []
        self.val_scores: list[float] = []
        self.best_score = -math.inf
        self.best_params: list[np.ndarray] | None = None
        self.stopped = False                 # by the rule above, not by reaching max_iter

    def on_train_begin(self, state: TrainState) -> None:
        state.lr_factor = self.lr_factor     # an adaptive rate lowered by an earlier fit

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        loss = logs["loss"] * self.loss_scale + (self.penalty.take() if self.penalty else 0.0)
        self.losses.append(loss)
        if self.verbose:                     # scikit-learn's lines, word for word
            print(f"Iteration {self.first_iteration + len(self.losses)}, loss = {loss:.8f}")
        if "val_loss" in logs:
            self.val_losses.append(logs["val_loss"])
            self.val_scores.append(self.val_score(state, logs))
            if self.verbose and self.early_stopping:
                print(f"Validation score: {self.val_scores[-1]:f}")
        tol = self.tol if self.tol is not None else -math.inf
        if self.early_stopping:
            score = self.val_scores[-1]
            self.count = self.count + 1 if score < self.best_score + tol else 0
            if score > self.best_score:
                self.best_score = score
                self.best_params = [p.value.copy() for p in state.model.parameters()]
        else:
            self.count = self.count + 1 if loss > self.best_loss - tol else 0
        self.best_loss = min(self.best_loss, loss)
        if self.tol is not None and self.count > self.patience:
            what = "Validation score" if self.early_stopping else "Training loss"
            msg = (f"{what} did not improve more than tol={self.tol:f} for {self.patience} "
                   "consecutive epochs.")
            lr = state.optimizer.lr
            if self.adaptive and lr > 1e-6:                  # SGD "adaptive": η ← η/5
                state.lr_factor /= 5.0
                state.optimizer.lr = lr / 5.0
                self.lr_factor, self.count = state.lr_factor, 0
                if self.verbose:
                    print(f"{msg} Setting learning rate to {lr / 5.0:f}")
                return
            state.model.stop_training = self.stopped = True
            if self.verbose:
                print(f"{msg} Learning rate too small. Stopping." if self.adaptive
                      else f"{msg} Stopping.")

    def on_train_end(self, state: TrainState) -> None:
        self.restore_best(state.model)

    def restore_best(self, model: Sequential) -> None:
        """With early stopping, put back the parameters of the best validation score."""
        if self.early_stopping and self.best_params is not None:
            for p, best in zip(model.parameters(), self.best_params):
                p.value[...] = best


def _compact(model: Sequential) -> Sequential:
    """A copy of ``model`` without its batch buffers or cached inputs, for pickling.

    Layers are rebuilt from ``config()`` and ``arrays()`` (the model-file contract); dropout
    generators keep their state (shared generators stay shared), so training continues exactly.
    """
    memo: dict[int, Any] = {}
    layers: list[Layer] = []
    for layer in model.layers:
        # the model-file contract: settings, then arrays; generators are carried over as they are
        dt = next((a.dtype for a in layer.arrays().values()), model.dtype)
        new = type(layer).from_config(layer.config(), dt)
        new.set_arrays(layer.arrays())
        if isinstance(getattr(layer, "rng", None), np.random.Generator):
            new.rng = copy.deepcopy(layer.rng, memo)  # type: ignore[attr-defined]
        layers.append(new)
    out = Sequential(layers)
    loss = model.loss
    if loss is not None:
        out.loss = losses_mod.from_config(loss.kind, loss.config()) \
            if losses_mod.LOSSES.get(loss.kind) is type(loss) else copy.deepcopy(loss)
    out.metadata = copy.deepcopy(model.metadata)
    return out



def _not_lbfgs(estimator: Any) -> bool:
    """partial_fit exists only for the stochastic solvers, as in scikit-learn."""
    return getattr(estimator, "solver", None) != "lbfgs"


#: scikit-learn's activation names beside layerwise's ("logistic" is the sigmoid)
_SKLEARN_ACTIVATIONS = {"logistic": "sigmoid"}
#: the solvers: scikit-learn's three, and layerwise's other optimizers by name
SOLVERS = ("lbfgs", "sgd", "adam", *(n for n in optimizers_mod.OPTIMIZERS if n not in
                                      ("sgd", "adam")))


class _LayerwiseBase(BaseEstimator):
    """Shared machinery; see LayerwiseClassifier and LayerwiseRegressor for the parameters."""

    _task = "regression"

    # scikit-learn's MLP parameters with its constraints (checked by _validate_params at fit),
    # then layerwise's extras, which their own code checks at fit ("no_validation" here)
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 0, None, closed="left")],
        "activation": "no_validation",          # a name, an activation, or one per layer
        "solver": [StrOptions(set(SOLVERS)), optimizers_mod.Optimizer],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state", np.random.Generator],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        # layerwise's extras
        "loss": "no_validation",
        "output_activation": "no_validation",
        "dropout": "no_validation",
        "norm": [StrOptions(set(NORMS)), None],
        "init": "no_validation",
        "schedule": "no_validation",
        "dtype": "no_validation",
        "n_threads": "no_validation",
    }

    # the constructor arguments, set by the subclasses' __init__ (typed here for mypy)
    hidden_layer_sizes: Any
    activation: Any
    solver: Any
    alpha: float
    batch_size: int | str
    learning_rate: str
    learning_rate_init: float
    power_t: float
    max_iter: int
    shuffle: bool
    random_state: Any
    tol: float | None
    verbose: int | bool
    warm_start: bool
    momentum: float
    nesterovs_momentum: bool
    early_stopping: bool
    validation_fraction: float
    beta_1: float
    beta_2: float
    epsilon: float
    n_iter_no_change: int | float
    max_fun: int
    loss: Any
    output_activation: Any
    dropout: Any
    norm: str | None
    init: Any
    schedule: Any
    dtype: Any
    n_threads: Any

    # -- settings -------------------------------------------------------------------------------
    def _model_dtype(self) -> np.dtype[Any]:
        try:
            return as_float_dtype(self.dtype)
        except ConfigError as exc:
            raise _param_error(exc) from None

    def _hidden(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, (int, np.integer)) else sizes
        try:
            out = list(sizes)
        except TypeError:
            out = [None]
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                   for s in out):
            raise ValidationError(
                f"hidden_layer_sizes must be positive integers, e.g. (100,) or (256, 128), or () "
                f"for no hidden layer; received {self.hidden_layer_sizes!r}."
            )
        return [int(s) for s in out]

    def _activation_layer(self, act: Any) -> Layer:
        """A fresh activation layer (each owns its buffers) from a name or an instance."""
        if isinstance(act, str):
            act = _SKLEARN_ACTIVATIONS.get(act, act)
        try:
            a = activations_mod.get(act)
        except ConfigError as exc:
            raise _param_error(exc) from None
        return type(a)(**a.config())

    def _network(self, n_in: int, n_out: int) -> dict[str, Any]:
        """The validated network settings: layer sizes, the activation layer after each Dense
        layer (None for none), dropout per hidden layer, initialiser per Dense layer, dtype."""
        hidden = self._hidden()
        acts = per_layer("activation", self.activation, len(hidden), self._activation_layer)
        out_act = None if self.output_activation is None else \
            self._activation_layer(self.output_activation)
        return {"sizes": [n_in, *hidden, n_out], "activations": [*acts, out_act],
                "dropout": per_layer("dropout", self.dropout, len(hidden),
                                      lambda p: fraction("dropout", p)),
                "init": per_layer("init", self.init, len(hidden) + 1, lambda i: i),
                "norm": self._norm(), "dtype": self._model_dtype()}

    def _norm(self) -> type[Layer] | None:
        """The normalisation layer class after each hidden Dense layer (``norm``), or None."""
        if self.norm is None:
            return None
        try:
            return lookup(NORMS, self.norm, "norm")
        except ConfigError as exc:
            raise _param_error(exc) from None

    @staticmethod
    def _signature(net: dict[str, Any]) -> dict[str, Any]:
        """What must stay the same for warm_start and partial_fit to continue a network."""
        return {"sizes": net["sizes"], "activations": [repr(a) for a in net["activations"]],
                "dropout": net["dropout"], "dtype": str(net["dtype"]),
                # only when set: estimators pickled before norm existed continue as they were
                **({} if net["norm"] is None else {"norm": net["norm"].kind})}

    @staticmethod
    def _build(net: dict[str, Any], rng: np.random.Generator) -> Sequential:
        """``lw.mlp`` with the validated settings: Dense (→ norm) → activation (→ Dropout) per
        hidden layer, then Dense (→ output activation)."""
        acts = net["activations"]
        try:
            return mlp(net["sizes"], activation=acts[:-1], output=acts[-1], init=net["init"],
                       dropout=net["dropout"], norm=net["norm"], dtype=net["dtype"], rng=rng)
        except ConfigError as exc:
            raise _param_error(exc) from None

    def _make_optimizer(self, rows: float) -> optimizers_mod.Optimizer:
        """The solver as a layerwise optimizer. ``alpha`` becomes coupled L2 weight decay
        λ = α/B on the weights only: scikit-learn adds α·W to the batch's summed gradient and
        divides both by the batch's size B (its sum of sample weights, when weighted), so per
        mean gradient the decay is α/B. ``rows``: B, the batch size times the mean weight."""
        opt = self.solver
        if isinstance(opt, optimizers_mod.Optimizer):
            return copy.deepcopy(opt)            # never train the caller's instance
        lr, decay = float(self.learning_rate_init), float(self.alpha) / rows
        betas, eps = (float(self.beta_1), float(self.beta_2)), float(self.epsilon)
        if opt == "sgd":
            mu = float(self.momentum)
            return optimizers_mod.SGD(lr, momentum=mu, nesterov=bool(self.nesterovs_momentum)
                                      and mu > 0, weight_decay=decay)
        if opt == "adam":
            return optimizers_mod.Adam(lr, betas=betas, eps=eps, weight_decay=decay)
        if opt == "adamw":                       # decoupled: W ← W − η·α·W, α as given
            return optimizers_mod.AdamW(lr, betas=betas, eps=eps, weight_decay=float(self.alpha))
        return optimizers_mod.get(opt, lr=lr, eps=eps, weight_decay=decay)

    def _batch_size(self, n: int) -> int:
        """scikit-learn's rule: "auto" is min(200, n); a larger size is clipped to n, with
        scikit-learn's warning."""
        bs = self.batch_size
        if isinstance(bs, str):
            return min(200, n)
        if bs > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped", UserWarning, stacklevel=4)
        return int(min(bs, n))

    def _check_params(self, partial: bool) -> None:
        """scikit-learn's parameter checks (``_parameter_constraints``), then the extras'."""
        try:
            self._validate_params()
        except InvalidParameterError as exc:
            raise InvalidParameter(str(exc)) from None
        if partial and self.solver == "lbfgs":
            raise ValidationError("partial_fit is not available for solver='lbfgs'; use "
                                  "solver='sgd' or 'adam'.")
        if partial and self.early_stopping:
            raise ValidationError("partial_fit does not support early_stopping=True: it trains "
                                  "one epoch on the data it is given. Set early_stopping=False.")
        if self.schedule is not None and self.learning_rate != "constant":
            raise ValidationError(
                f"pass either schedule={self.schedule!r} (layerwise's schedules) or "
                f"learning_rate={self.learning_rate!r} (scikit-learn's), not both; leave "
                "learning_rate='constant' to use a schedule.")
        if self.early_stopping and not self.validation_fraction > 0:
            raise ValidationError("early_stopping needs validation_fraction > 0; received "
                                  f"{self.validation_fraction!r}.")
        check_threads(self.n_threads, "n_threads")

    # -- targets (the subclasses say how y becomes network targets) ----------------------------
    def _loss_and_outputs(self, y: np.ndarray) -> tuple[losses_mod.Loss, int]:
        raise NotImplementedError

    def _prepare_y(self, y: Any, first: bool, partial: bool, classes: Any) -> np.ndarray:
        raise NotImplementedError

    def _val_score(self, Xv: np.ndarray, Yv: np.ndarray
                   ) -> Callable[[TrainState, dict[str, float]], float]:
        return lambda state, logs: logs["val_r2"]

    def _loss_scale(self, loss: losses_mod.Loss, n_out: int) -> float:
        """Network loss → scikit-learn's reported loss (see LayerwiseRegressor)."""
        return 1.0

    def _sample_weight(self, sample_weight: Any, X: np.ndarray, Y: np.ndarray, partial: bool
                       ) -> np.ndarray | None:
        """Validated per-sample weights (float64), or None."""
        if sample_weight is None:
            return None
        sw: np.ndarray = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                              ensure_non_negative=True)
        return sw

    # -- fitting --------------------------------------------------------------------------------
    @_one_fit_at_a_time
    def _fit(self, X: Any, y: Any, sample_weight: Any = None, *, partial: bool = False,
             classes: Any = None, X_val: Any = None, y_val: Any = None) -> Any:
        self._check_params(partial)
        dtype = self._model_dtype()
        fitted = hasattr(self, "model_")
        first = not fitted if partial else not (self.warm_start and fitted)
        X, y = validate_data(self, X, y, reset=first, dtype=dtype, multi_output=True,
                             y_numeric=self._task == "regression", accept_sparse="csr")
        Y = self._prepare_y(y, first, partial, classes)
        sw = self._sample_weight(sample_weight, X, Y, partial)
        loss, n_out = self._loss_and_outputs(Y)
        net = self._network(X.shape[1], n_out)
        signature = self._signature(net)
        if first:
            init_seq, shuffle_seq = _seed_sequence(self.random_state).spawn(2)
            self.model_ = self._build(net, np.random.default_rng(init_seq))
            self.optimizer_: optimizers_mod.Optimizer | None = None
            self.rng_ = np.random.default_rng(shuffle_seq)
            self.loss_curve_: list[float] = []
            self.validation_loss_curve_: list[float] | None = None
            self.validation_scores_: list[float] | None = None
            self.best_loss_: float | None = math.inf
            self._best_loss = math.inf
            self.best_validation_score_: float | None = None
            self._no_improvement_count = 0
            self._lr_factor = 1.0
            self.t_ = 0
            self._network_signature = signature
        else:
            old = self._network_signature
            if signature != old:
                changed = ", ".join(f"{k} from {old.get(k)} to {signature.get(k)}"
                                    for k in {**old, **signature}
                                    if signature.get(k) != old.get(k))
                raise ValidationError(
                    f"warm_start and partial_fit continue the same network, but the network "
                    f"changed: {changed}. Set warm_start=False (or use a new estimator) to "
                    "start afresh."
                )
        self.n_layers_ = len(net["sizes"])
        self.n_outputs_ = n_out
        self.out_activation_ = self._out_activation(loss)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, sw, loss)
        else:
            self._fit_stochastic(X, Y, sw, loss, partial, X_val, y_val)
        self.model_.metadata = self._metadata()
        return self

    def _fit_lbfgs(self, X: np.ndarray, Y: np.ndarray, sw: np.ndarray | None,
                   loss: losses_mod.Loss) -> None:
        """Full-batch L-BFGS over the flat parameter vector (``layerwise.lbfgs``), minimising
        f = mean loss + ½·(α/n)·‖W‖² with scikit-learn's options (n: the rows, or the sum of
        the sample weights). ``loss_`` and ``loss_curve_`` (f per iteration) are reported as
        scikit-learn reports them (``_loss_scale`` on the loss part)."""
        from .lbfgs import fit_lbfgs

        l2 = float(self.alpha) / (X.shape[0] if sw is None else float(sw.sum()))
        scale = self._loss_scale(loss, self.n_outputs_)
        model = self.model_

        def reported(f: float) -> float:
            pen = 0.5 * l2 * _L2Penalty.weights_sq(model.flat_parameters()[0])   # ½λ‖W‖²
            return (f - pen) * scale + pen

        curve: list[float] = []
        dtype = model.dtype
        try:
            # in float64 whatever the model's dtype: a float32 f is noisy at 1e-7 relative,
            # which fails L-BFGS's line search well before a small tol (ABNORMAL); the
            # result is rounded back into the model's dtype
            model.astype(np.float64)
            result = fit_lbfgs(model, X.astype(np.float64, copy=False),
                               Y if Y.dtype.kind != "f" else Y.astype(np.float64, copy=False),
                               loss=loss, l2=l2, max_iter=int(self.max_iter),
                               max_fun=int(self.max_fun),
                               tol=0.0 if self.tol is None else float(self.tol),
                               sample_weight=sw, threads=self.n_threads,
                               callback=lambda it, f: curve.append(reported(f)))
        except DivergenceError as exc:
            self.n_iter_ = len(curve)
            self.loss_curve_.extend(curve)
            raise _diverged(exc) from None
        except ConfigError as exc:                        # dropout, batch norm: not for L-BFGS
            raise _param_error(exc) from None
        finally:
            model.astype(dtype)
        self.n_iter_ = int(result.n_iter)
        self.t_ += X.shape[0] * self.n_iter_
        self.loss_curve_.extend(curve)
        self.loss_ = reported(float(result.loss))
        self.best_loss_ = min(self.loss_curve_, default=self.loss_)
        if not result.converged and self.tol is not None:   # (tol=None: run max_iter)
            # scikit-learn's category, so its users' filters apply
            warnings.warn(
                f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                f"({result.message}). Increase the number of iterations (max_iter="
                f"{int(self.max_iter)}) or of function evaluations (max_fun="
                f"{int(self.max_fun)}), or scale the data.", ConvergenceWarning, stacklevel=4)

    def _fit_stochastic(self, X: np.ndarray, Y: np.ndarray, sw: np.ndarray | None,
                        loss: losses_mod.Loss, partial: bool, X_val: Any, y_val: Any) -> None:
        """Mini-batch training with ``layerwise.training.fit`` and scikit-learn's stopping
        rule, learning-rate rules and reported loss (``_Progress``)."""
        Xv = Yv = None
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise ValidationError("pass both X_val and y_val, or neither.")
            Xv = validate_data(self, X_val, reset=False, dtype=self.model_.dtype,
                               accept_sparse="csr")
            Yv = self._prepare_y(np.asarray(y_val), False, True, None)
        elif self.early_stopping:
            X, Y, Xv, Yv, sw = self._hold_out(X, Y, sw)
        batch_size = self._batch_size(X.shape[0])
        # with sample weights scikit-learn divides by the batch's sum of weights: B·mean(w)
        w_mean = 1.0 if sw is None or not sw.mean() > 0 else float(sw.mean())
        self._sync_optimizer(batch_size * w_mean)
        assert self.optimizer_ is not None
        sgd = self.solver == "sgd"
        penalty = _L2Penalty(float(self.alpha), X.shape[0] * w_mean) \
            if self.alpha > 0 and isinstance(self.solver, str) and self.solver != "adamw" \
            else None
        progress = _Progress(
            tol=None if partial else self.tol, patience=self.n_iter_no_change,
            early_stopping=bool(self.early_stopping) and Xv is not None,
            val_score=self._val_score(Xv, Yv) if Xv is not None and Yv is not None
            else lambda s, g: math.nan,
            # (estimators pickled before _best_loss existed kept it in best_loss_)
            best_loss=getattr(self, "_best_loss", self.best_loss_ if self.best_loss_ is not None
                              else math.inf), verbose=int(self.verbose),
            first_iteration=len(self.loss_curve_),
            adaptive=sgd and self.learning_rate == "adaptive",
            # (scikit-learn: a fit starts a new optimizer at learning_rate_init; partial_fit
            # continues the one it has)
            lr_factor=getattr(self, "_lr_factor", 1.0) if sgd and partial else 1.0,
            count=getattr(self, "_no_improvement_count", 0),
            penalty=penalty, loss_scale=self._loss_scale(loss, self.n_outputs_))
        if sgd and self.learning_rate == "invscaling":
            schedule: schedules_mod.Schedule = _InvScaling(self.t_, X.shape[0], float(self.power_t))
        else:
            try:
                schedule = schedules_mod.get(self.schedule, int(self.max_iter))
            except LayerwiseError as exc:
                raise _param_error(exc) from None
            if partial:                          # one epoch per call: step the schedule along
                schedule = _Offset(schedule, len(self.loss_curve_))
        self.optimizer_.lr = self._base_lr()       # fit's schedules start from this rate
        diverged = None
        try:
            _train(self.model_, X, Y, loss=loss, optimizer=self.optimizer_,
                   epochs=1 if partial else int(self.max_iter), batch_size=batch_size,
                   validation_data=None if Xv is None else (Xv, Yv), rng=self.rng_,
                   callbacks=[*([penalty] if penalty else []), progress], verbose=0,
                   schedule=schedule, shuffle=bool(self.shuffle), sample_weight=sw,
                   train_metrics=False, threads=self.n_threads)   # n_threads: see fit's threads
        except DivergenceError as exc:
            # as scikit-learn: the epoch that diverged counts, with a NaN loss and score;
            # the parameters are those of the last finite step (the step guard's promise)
            diverged = exc
            progress.losses.append(math.nan)
            if Xv is not None:
                progress.val_losses.append(math.nan)
                progress.val_scores.append(math.nan)
            progress.restore_best(self.model_)
        self.n_iter_ = len(progress.losses)
        self.t_ += X.shape[0] * self.n_iter_
        self.loss_curve_.extend(progress.losses)
        self.loss_ = self.loss_curve_[-1]
        # as scikit-learn: with early stopping the validation score rules, and best_loss_ is
        # None; the lowest training loss is still used to continue (partial_fit, warm_start)
        self._best_loss = progress.best_loss
        self.best_loss_ = None if progress.early_stopping else progress.best_loss
        self._no_improvement_count = progress.count
        self._lr_factor = progress.lr_factor
        if Xv is not None:
            self.validation_loss_curve_ = (self.validation_loss_curve_ or []) + progress.val_losses
            self.validation_scores_ = (self.validation_scores_ or []) + progress.val_scores
            finite = [s for s in progress.val_scores if not math.isnan(s)]
            self.best_validation_score_ = max(finite) if finite else math.nan
        if diverged is not None and not progress.early_stopping:
            raise _diverged(diverged)
        if diverged is not None:            # as scikit-learn: finish, with the scores recorded
            kept = "the best validation score's" if progress.best_params else \
                "the last finite step's (no epoch had a finite validation score)"
            warnings.warn(f"training diverged in epoch {self.n_iter_} ({diverged}); "
                          f"{kept} parameters are kept.", ConvergenceWarning, stacklevel=4)
        elif not partial and not progress.stopped and self.n_iter_ == int(self.max_iter) \
                and self.tol is not None:          # (tol=None: all max_iter epochs asked for)
            # scikit-learn's words and category, so its users' warning filters apply too
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({int(self.max_iter)}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=4)

    def _out_activation(self, loss: losses_mod.Loss) -> str:
        """scikit-learn's name for the output function: "softmax" (cross-entropy over classes),
        "logistic" (binary or multi-label: sigmoid), "exp" (Poisson), "identity" (regression;
        or the name of the output activation given)."""
        if loss.kind == "ce":
            return "softmax"
        if loss.kind == "bce":
            return "logistic"
        if loss.kind == "poisson":
            return "exp"
        out = getattr(self, "output_activation", None)
        return "identity" if out is None else str(out)

    def _base_lr(self) -> float:
        opt = self.solver
        return float(opt.lr if isinstance(opt, optimizers_mod.Optimizer)
                     else self.learning_rate_init)

    def _sync_optimizer(self, rows: float) -> None:
        """Keep the optimizer (and its state) unless its kind or settings other than the
        learning rate and weight decay changed; a new learning rate applies from now on, and
        so does a new decay α/B (a partial_fit chunk of another size changes B)."""
        new = self._make_optimizer(rows)
        old = getattr(self, "optimizer_", None)
        free = {"lr": 0, "weight_decay": 0}
        if old is not None and type(new) is type(old) and \
                {**new.config(), **free} == {**old.config(), **free}:
            old.weight_decay = new.weight_decay
        else:
            self.optimizer_ = new

    def _hold_out(self, X: np.ndarray, Y: np.ndarray, sw: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Hold out ``validation_fraction`` of the rows (stratified for single-label classes,
        as scikit-learn), drawn with the estimator's generator."""
        from sklearn.model_selection import train_test_split

        stratify = self._stratify(Y)
        seed = int(self.rng_.integers(np.iinfo(np.int32).max))
        arrays = [X, Y] if sw is None else [X, Y, sw]
        try:
            parts = train_test_split(*arrays, test_size=float(self.validation_fraction),
                                     random_state=seed, stratify=stratify)
        except ValueError as exc:
            raise ValidationError(
                f"early_stopping could not hold out validation_fraction="
                f"{self.validation_fraction} of {X.shape[0]} samples: {exc}"
            ) from None
        if len(parts[1]) < 2 or len(parts[0]) < 1:
            raise ValidationError(
                f"The validation set is too small: validation_fraction="
                f"{self.validation_fraction} of {X.shape[0]} samples leaves {len(parts[1])} for "
                "validation. Increase validation_fraction or the size of your dataset, or set "
                "early_stopping=False."
            )
        Xt, Xv, Yt, Yv = parts[:4]
        swt = parts[4] if sw is not None else None
        return Xt, Yt, Xv, Yv, swt

    def _stratify(self, Y: np.ndarray) -> np.ndarray | None:
        return None

    def _metadata(self) -> dict[str, Any]:
        names = getattr(self, "feature_names_in_", None)
        return {
            "task": self._task,
            "estimator": type(self).__name__,
            "feature_names": None if names is None else [str(n) for n in names],
            "params": {k: _jsonable(v) for k, v in self.get_params().items()},
        }

    # -- inference ------------------------------------------------------------------------------
    def _outputs(self, X: Any) -> np.ndarray:
        """Network outputs for X; float32 work, returned in the wider of the model's and X's
        float dtype (float32 in, float32 out)."""
        check_is_fitted(self)
        model = self.model_                     # one network throughout, even if a fit in
        dtype = model.dtype                     # another thread replaces model_ meanwhile
        other = np.float64 if dtype == np.float32 else np.float32
        X = validate_data(self, X, reset=False, dtype=[dtype, other], accept_sparse="csr")
        out_dtype = np.promote_types(dtype, X.dtype)
        out = model.predict(X.astype(dtype) if is_sparse(X) else
                            np.ascontiguousarray(X, dtype=dtype),
                            threads=check_threads(self.n_threads, "n_threads"))
        return out.astype(out_dtype, copy=False)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices in scikit-learn's layout, (n_in, n_out) per layer: views of W.T."""
        check_is_fitted(self)
        return [layer.W.T for layer in self.model_.layers if isinstance(layer, Dense)]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors, (n_out,) per layer."""
        check_is_fitted(self)
        return [layer.b for layer in self.model_.layers if isinstance(layer, Dense)]

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Estimators pickled before they took scikit-learn's parameter names (issue 14) load
        with their settings under the new names, and every newer parameter at its default, so
        that ``get_params``, ``repr`` and a refit work; the network predicts as before."""
        if "max_epochs" in state or "optimizer" in state:
            state = dict(state)
            for old, new in (("optimizer", "solver"), ("max_epochs", "max_iter"),
                             ("nesterov", "nesterovs_momentum")):
                if old in state:
                    state[new] = state.pop(old)
            lr = state.pop("learning_rate", 1e-3)
            state["learning_rate_init"], state["learning_rate"] = lr, "constant"
            # the old coupled decay λ on the mean gradient is scikit-learn's α/B
            decay, bs = state.pop("weight_decay", None), state.get("batch_size", "auto")
            epochs = len(state.get("loss_curve_") or [])
            n = state.get("t_", 0) // epochs if epochs else 200
            rows = bs if not isinstance(bs, str) else max(1, min(200, n))
            state["alpha"] = 0.0 if decay is None else float(decay) * rows
            for name, p in inspect.signature(type(self).__init__).parameters.items():
                if name != "self" and name not in state:
                    state[name] = p.default
        super().__setstate__(state)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if isinstance(state.get("model_"), Sequential):
            state["model_"] = _compact(state["model_"])     # no batch buffers, no cached inputs
        return state


def _diverged(exc: DivergenceError) -> ValidationError:
    """scikit-learn's error for a fit whose parameters became NaN or infinite, with ours."""
    return ValidationError(
        "Solver produced non-finite parameter weights. The input data may contain large values "
        f"and need to be preprocessed. ({exc}) The estimator keeps the parameters of the last "
        "finite step.")


class LayerwiseClassifier(ClassifierMixin, _LayerwiseBase):
    """Multi-layer perceptron classifier trained with layerwise (a faster ``MLPClassifier``).

    Takes every parameter of scikit-learn's ``MLPClassifier`` with the same default and
    meaning (the differences are listed in docs/sklearn.md), and layerwise's extras after them.
    Binary targets train one logistic output (binary cross-entropy), multiclass targets a
    softmax over one output per class (cross-entropy), and a 0/1 indicator matrix y of shape
    (n_samples, n_labels) trains one independent logistic output per label (multi-label, the
    labels' losses summed). ``score(X, y)`` is scikit-learn's ``accuracy_score`` of
    ``predict``: for multi-label targets the subset accuracy (every label of a row right).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units per hidden layer; ``()`` gives a linear model (logistic regression).
    activation : str or sequence of str, default="relu"
        Hidden activation: scikit-learn's "identity", "logistic", "tanh", "relu", or
        layerwise's "sigmoid" (= "logistic"), "gelu", "leaky_relu", "elu", "softplus"; or one
        per hidden layer.
    solver : {"lbfgs", "sgd", "adam", "adamw", "rmsprop"} or layerwise Optimizer, default="adam"
        "lbfgs": full-batch L-BFGS (scipy) over the flat parameter vector. "sgd": momentum
        SGD. "adam": Adam with ``beta_1``, ``beta_2``, ``epsilon``. "adamw" and "rmsprop" are
        layerwise's. An Optimizer instance is copied and used with its own settings
        (``learning_rate_init``, ``momentum``, ``beta_*``, ``epsilon`` and ``alpha`` are then
        ignored).
    alpha : float, default=1e-4
        L2 penalty on the weights (never the biases), scaled as scikit-learn scales it:
        ½·α·‖W‖² is added to the summed loss of each batch of B rows, so the mean gradient
        gets α·W/B (for "lbfgs" B = n). For "adamw", α is the decoupled decay (W ← W − η·α·W).
    batch_size : int or "auto", default="auto"
        Rows per step; "auto" is ``min(200, n_samples)``, a size above n_samples is clipped.
        Not used by "lbfgs".
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        "sgd" only, as scikit-learn: "invscaling" sets η = learning_rate_init / (t + 1)^power_t
        after every epoch (t: samples seen, ``t_``); "adaptive" divides η by 5 whenever the
        stopping rule would stop, until η <= 1e-6.
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs per ``fit`` ("sgd", "adam"), or L-BFGS iterations.
    shuffle : bool, default=True
        Reshuffle the rows every epoch.
    random_state : int, RandomState, Generator or None, default=None
        Seeds the initial weights, dropout masks, shuffling and the validation split.
    tol : float or None, default=1e-4
        Smallest improvement of the loss (or validation score) that counts, and L-BFGS's
        ``gtol``; None (layerwise's) trains for all ``max_iter`` epochs.
    verbose : bool or int, default=False
        Print scikit-learn's "Iteration N, loss = ..." line per epoch.
    warm_start : bool, default=False
        Continue from the previous ``fit``: same network, optimizer state and shuffling
        generator (scikit-learn starts a new optimizer; layerwise keeps Adam's moments and
        SGD's velocity, so that 5 + 5 warm-started epochs equal 10).
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
        "sgd" only.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for single-label
        targets), stop when the validation accuracy has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and keep the best epoch's weights. Without it, training
        stops on the same rule applied to the training loss. Not used by "lbfgs".
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's (and AdamW's; RMSprop's ``epsilon``).
    n_iter_no_change : int or np.inf, default=10
        Epochs without improvement before stopping.
    max_fun : int, default=15000
        "lbfgs" only: the most loss evaluations.
    loss : {"auto", "ce", "bce"} or layerwise Loss, default="auto"
        layerwise's: "auto" is "bce" for binary and multi-label targets and "ce" for
        multiclass (scikit-learn's log-loss). "ce" on binary targets trains two softmax
        outputs; an instance such as ``lw.CrossEntropy(label_smoothing=0.1)`` is used as given.
    output_activation : None
        The classifier trains on logits (the loss fuses the softmax or sigmoid), so this must
        stay None; it exists for symmetry with LayerwiseRegressor.
    dropout : float or sequence of float, default=0.0
        Dropout rate after each hidden activation, or one per hidden layer.
    norm : {"layer", "batch"} or None, default=None
        Normalisation after each hidden Dense layer, before its activation: ``LayerNorm`` or
        ``BatchNorm`` (whose training batches need at least 2 rows).
    init : str, callable, None or sequence, default="xavier_uniform"
        Weight initialiser, or one per Dense layer (the hidden layers, then the output layer):
        "xavier_uniform" (Glorot uniform, close to MLPClassifier's), "he_normal",
        "lecun_normal", …, a callable ``(shape, rng, dtype) -> array``, or None for the
        activation's default. Biases start at zero.
    schedule : str, layerwise Schedule or None, default=None
        layerwise's schedules over the epochs of each ``fit`` ("step", "exponential",
        "cosine" over ``max_iter``, or an instance), with ``learning_rate="constant"``.
        ``partial_fit`` steps it once per call.
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into ``sample_weight``.
    dtype : float32 or float64, default=np.float32
        Precision of the network (scikit-learn uses X's dtype); inputs are converted once and
        outputs keep it when X has it.
    n_threads : int, "auto" or None, default=None
        BLAS threads for training and prediction. None or "auto": one thread for small
        networks; for larger ones the first steps are timed with one thread and with all, and
        the faster is kept (see ``layerwise.training.fit``'s ``threads``). An int forces that
        count, which large networks need for bit-identical results between runs.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (``arange(n_labels)`` for multi-label targets).
    model_ : layerwise.Sequential
        The trained network; ``model_.save(path)`` writes a model file (no pickle).
    optimizer_ : layerwise.Optimizer or None
        The optimizer with its state, kept by ``warm_start`` and ``partial_fit`` (None for
        "lbfgs").
    rng_ : numpy.random.Generator
        The shuffling generator, continued by ``warm_start`` and ``partial_fit``.
    loss_ : float
        scikit-learn's loss after the last epoch or L-BFGS iteration: the training loss plus
        the L2 penalty.
    loss_curve_ : list of float
        ``loss_`` per epoch, over every ``fit``/``partial_fit`` since initialisation
        ("sgd", "adam").
    validation_loss_curve_ : list of float or None
        Validation loss per epoch (with ``early_stopping`` or ``X_val``), else None.
    validation_scores_ : list of float or None
        Validation accuracy per epoch (subset accuracy for multi-label), else None.
    best_loss_ : float or None
        Lowest ``loss_`` seen; None with ``early_stopping`` (as scikit-learn).
    best_validation_score_ : float or None
        Best validation accuracy of the last fit with validation data.
    out_activation_ : str
        The output function in scikit-learn's words: "softmax" or "logistic".
    n_iter_ : int
        Epochs (or L-BFGS iterations) run by the last ``fit``; 1 after ``partial_fit``.
    t_ : int
        Training samples seen (sum over epochs).
    n_layers_, n_outputs_ : int
        Layers counting input and output (as in scikit-learn), network outputs.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X had string column names.
    coefs_, intercepts_ : list of ndarray
        Views of the weights in scikit-learn's (n_in, n_out) layout, and the biases.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from layerwise.sklearn import LayerwiseClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = LayerwiseClassifier(hidden_layer_sizes=(128,), dropout=0.1, random_state=0)
    >>> clf.fit(X / 16, y).score(X / 16, y) > 0.95
    True
    """

    _task = "classification"

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: ActivationSpec = "relu", *,
                 solver: str | optimizers_mod.Optimizer = "adam", alpha: float = 1e-4,
                 batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 1e-3, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: Any = None, tol: float | None = 1e-4,
                 verbose: int | bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int | float = 10,
                 max_fun: int = 15000,
                 loss: losses_mod.LossLike = "auto",
                 output_activation: activations_mod.ActivationLike | None = None,
                 dropout: float | Sequence[float] = 0.0, norm: str | None = None,
                 init: InitSpec = "xavier_uniform", schedule: schedules_mod.ScheduleLike = None,
                 class_weight: Any = None, dtype: Any = np.float32,
                 n_threads: int | str | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.loss = loss
        self.output_activation = output_activation
        self.dropout = dropout
        self.norm = norm
        self.init = init
        self.schedule = schedule
        self.class_weight = class_weight
        self.dtype = dtype
        self.n_threads = n_threads

    _parameter_constraints: ClassVar[dict[str, Any]] = {
        **_LayerwiseBase._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, X_val: Any = None,
            y_val: Any = None) -> LayerwiseClassifier:
        """Train the network on (X, y) for up to ``max_iter`` epochs (or L-BFGS iterations).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multi-label classification.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight per sample, rescaled to mean 1 (times ``class_weight``).
        X_val, y_val : array-like, optional
            Validation data: its loss and accuracy are recorded every epoch, and
            ``early_stopping`` monitors it instead of holding out part of X. (In a Pipeline,
            X_val does not pass through the preceding steps.)

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, X_val=X_val, y_val=y_val)

    @available_if(_not_lbfgs)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
                    ) -> LayerwiseClassifier:
        """Train one epoch on (X, y), continuing the network, optimizer state and shuffling.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional
            Rescaled to mean 1 within this call.
        classes : array-like of shape (n_classes,)
            Every class that will ever appear; required on the first call.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, partial=True, classes=classes)

    # -- targets --------------------------------------------------------------------------------
    def _prepare_y(self, y: Any, first: bool, partial: bool, classes: Any) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                          "change the shape of y to (n_samples,), for example using ravel().",
                          DataConversionWarning, stacklevel=4)
            y = y.ravel()
        check_classification_targets(y)
        kind = type_of_target(y)
        multilabel = kind == "multilabel-indicator"
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValidationError(
                f"LayerwiseClassifier supports binary, multiclass and multi-label (0/1 indicator) "
                f"targets; y is {kind}. Fit one estimator per output for multiclass-multioutput."
            )
        if first:
            if multilabel:
                found = np.arange(y.shape[1])
            elif partial:
                if classes is None:
                    raise ValidationError(
                        "classes must be passed on the first call to partial_fit: every class "
                        "that will appear, e.g. partial_fit(X, y, classes=np.unique(y_all))."
                    )
                found = unique_labels(classes)
            else:
                found = unique_labels(y)
            if len(found) < 2:
                raise ValidationError(
                    f"LayerwiseClassifier needs samples of at least 2 classes; y has only one "
                    f"class: {found[0] if len(found) else None!r}."
                )
            self.classes_ = found
            self._multilabel = multilabel
        elif not partial and not multilabel and not np.array_equal(unique_labels(y),
                                                                   self.classes_):
            # scikit-learn's rule and words: a warm start keeps the classes exactly
            raise ValidationError(
                f"warm_start can only be used where `y` has the same classes as in the previous "
                f"call to fit. Previously got {self.classes_}, `y` has {unique_labels(y)}")
        elif partial and classes is not None and not multilabel and not np.array_equal(
                unique_labels(classes), self.classes_):
            raise ValidationError(
                f"classes={unique_labels(classes).tolist()} is not the same as on the first call "
                f"to partial_fit, {self.classes_.tolist()}; pass the same classes (or none) on "
                "later calls, or start a new estimator."
            )
        elif multilabel != self._multilabel or (multilabel and y.shape[1] != len(self.classes_)):
            expected = f"a 0/1 indicator of shape (n_samples, {len(self.classes_)})" \
                if self._multilabel else "class labels of shape (n_samples,)"
            raise ValidationError(
                f"y must keep the form of the first fit, {expected}; received {kind} targets "
                f"of shape {y.shape}."
            )
        if multilabel:
            return np.ascontiguousarray(y, dtype=np.int64)
        unknown = np.setdiff1d(unique_labels(y), self.classes_)
        if len(unknown):
            raise ValidationError(
                f"y has classes not in classes_ {self.classes_.tolist()}: {unknown.tolist()}. "
                "A warm start or partial_fit cannot add classes; pass every class on the first "
                "partial_fit call (classes=...) or fit afresh."
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _loss_and_outputs(self, Y: np.ndarray) -> tuple[losses_mod.Loss, int]:
        if self.output_activation is not None:
            raise ValidationError(
                "LayerwiseClassifier trains on logits (its losses fuse the softmax or sigmoid), "
                f"so output_activation must be None; received {self.output_activation!r}."
            )
        K = len(self.classes_)
        loss = self.loss
        if isinstance(loss, losses_mod.Loss):
            loss = copy.deepcopy(loss)
        elif loss == "auto":
            # multi-label: the labels' losses summed, as MLPClassifier's (averaged, each
            # label's gradient was K times smaller); one binary output: the same either way
            loss = losses_mod.BinaryCrossEntropy(sum_outputs=bool(self._multilabel)) \
                if self._multilabel or K == 2 else losses_mod.CrossEntropy()
        elif loss in ("ce", "bce"):
            loss = losses_mod.get(loss)
        else:
            raise ValidationError(
                f"loss must be 'auto', 'ce', 'bce' or a layerwise classification loss; received "
                f"{self.loss!r}."
            )
        if isinstance(loss, losses_mod.CrossEntropy):
            if self._multilabel:
                raise ValidationError(
                    "loss='ce' needs one label per sample; y is a multi-label indicator. Use "
                    "loss='auto' or 'bce'."
                )
            self._binary_logit = False
            return loss, K
        if isinstance(loss, losses_mod.BinaryCrossEntropy):
            if not loss.from_logits:
                raise ValidationError(
                    "LayerwiseClassifier feeds logits to the loss; use "
                    "BinaryCrossEntropy(from_logits=True)."
                )
            if not self._multilabel and K > 2:
                raise ValidationError(
                    f"loss='bce' fits binary or multi-label targets; y has {K} classes. Use "
                    "loss='auto' or 'ce'."
                )
            self._binary_logit = not self._multilabel
            return loss, 1 if self._binary_logit else K
        raise ValidationError(
            f"LayerwiseClassifier needs a classification loss (CrossEntropy or "
            f"BinaryCrossEntropy); received {type(loss).__name__}. Use LayerwiseRegressor."
        )

    def _sample_weight(self, sample_weight: Any, X: np.ndarray, Y: np.ndarray, partial: bool
                       ) -> np.ndarray | None:
        sw = super()._sample_weight(sample_weight, X, Y, partial)
        if self.class_weight is not None:
            if partial and isinstance(self.class_weight, str):
                raise ValidationError(
                    "class_weight='balanced' is not supported by partial_fit (one batch's class "
                    "frequencies are not the data's); pass a dict, e.g. from "
                    "sklearn.utils.class_weight.compute_class_weight on all labels."
                )
            if not (isinstance(self.class_weight, Mapping) or self.class_weight == "balanced"):
                raise ValidationError(
                    f"class_weight must be None, 'balanced' or a dict {{class: weight}}; "
                    f"received {self.class_weight!r}."
                )
            labels = Y if self._multilabel else self.classes_[Y]
            cw = compute_sample_weight(self.class_weight, labels)
            sw = cw if sw is None else sw * cw
        if sw is None:
            return None
        if not partial and not self._multilabel:
            alive = np.unique(Y[sw > 0])
            if len(alive) == 1:
                raise ValidationError(
                    f"only one class ({self.classes_[alive[0]]!r}) has non-zero sample weight; "
                    "a classifier needs samples of at least two classes to learn from."
                )
        if sw.size and np.all(sw == sw[0]):
            return None                     # equal weights: the unweighted loss, exactly
        return sw

    def _stratify(self, Y: np.ndarray) -> np.ndarray | None:
        return None if self._multilabel else Y      # (multi-label rows are not stratified)

    def _val_score(self, Xv: np.ndarray, Yv: np.ndarray
                   ) -> Callable[[TrainState, dict[str, float]], float]:
        if not self._multilabel:
            return lambda state, logs: logs["val_accuracy"]

        def subset_accuracy(state: TrainState, logs: dict[str, float]) -> float:
            pred = state.model.predict(Xv) > 0           # logit > 0  ⇔  p > ½
            return float(np.mean(np.all(pred == (Yv > 0), axis=1)))
        return subset_accuracy

    def _metadata(self) -> dict[str, Any]:
        meta = super()._metadata()
        meta["classes"] = _jsonable(self.classes_.tolist())
        meta["n_classes"] = len(self.classes_)
        meta["multilabel"] = bool(self._multilabel)
        return meta

    # -- inference ------------------------------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        """Logits: shape (n_samples,) for binary targets (> 0 means ``classes_[1]``), else
        (n_samples, n_classes) or (n_samples, n_labels)."""
        Z = self._outputs(X)
        if self._multilabel or len(self.classes_) > 2:
            return Z
        return Z[:, 0] if self._binary_logit else Z[:, 1] - Z[:, 0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes); per-label probabilities for multi-label."""
        Z = self._outputs(X)
        if self._multilabel:
            return _sigmoid(Z)
        if self._binary_logit:
            p = _sigmoid(Z[:, 0])
            return np.column_stack([1 - p, p])
        return losses_mod.softmax(Z)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of ``predict_proba``, computed stably from the logits."""
        Z = self._outputs(X)
        if self._multilabel:
            return -np.logaddexp(0, -Z)
        if self._binary_logit:
            z = Z[:, 0]
            return np.column_stack([-np.logaddexp(0, z), -np.logaddexp(0, -z)])
        return losses_mod.log_softmax(Z)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (n_samples,), or a 0/1 matrix (n_samples, n_labels) for multi-label."""
        Z = self._outputs(X)
        if self._multilabel:
            return (Z > 0).astype(np.int64)
        if self._binary_logit:
            return self.classes_[(Z[:, 0] > 0).astype(np.int64)]
        return self.classes_[Z.argmax(axis=1)]

    def to_onnx(self, path: Any = None, **kwargs: Any) -> Any:
        """The fitted network as an ONNX model (``onnx.ModelProto``), written to ``path`` if
        given: outputs "output" (logits), "label" (classes_) and "probabilities" (as
        ``predict_proba``); ``kwargs`` as :func:`layerwise.onnx_export.export`."""
        from .onnx_export import export
        return export(to_model(self), path, **kwargs)



def _sigmoid(Z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        out: np.ndarray = 1 / (1 + np.exp(-Z))
    return out


class LayerwiseRegressor(RegressorMixin, _LayerwiseBase):
    """Multi-layer perceptron regressor trained with layerwise (a faster ``MLPRegressor``).

    Takes every parameter of scikit-learn's ``MLPRegressor`` with the same default and meaning
    (the differences are listed in docs/sklearn.md), and layerwise's extras after them.
    y of shape (n_samples,) trains one output; (n_samples, n_targets) trains one per target.
    Targets are used as given: scale them (e.g. ``TransformedTargetRegressor`` with a
    ``StandardScaler``) when they are far from unit size.

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, \
momentum, nesterovs_momentum, validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, \
max_fun, dropout, norm, init, schedule, dtype, n_threads
        As for :class:`LayerwiseClassifier`.
    loss : {"squared_error", "poisson", "mae", "huber"} or layerwise Loss, \
default="squared_error"
        "squared_error" (also "mse") trains on ½‖ŷ − y‖² per sample, summed over targets and
        averaged over the batch, as scikit-learn's gradient; ``loss_`` reports it averaged
        over targets too, as scikit-learn does. "poisson": half the Poisson deviance with a
        log link, for counts (y >= 0): the network outputs log μ, ``predict`` gives μ.
        "mae" and "huber" (layerwise's) average over every element.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its R² has not improved by
        ``tol`` for ``n_iter_no_change`` epochs, keeping the best epoch's weights.
    output_activation : str or None, default=None
        layerwise's: an activation after the output layer: None (identity), or e.g.
        "sigmoid" for targets in (0, 1), "softplus" for positive targets.

    Attributes
    ----------
    model_, optimizer_, rng_, loss_, loss_curve_, validation_loss_curve_, best_loss_, n_iter_, \
t_, n_layers_, n_outputs_, n_features_in_, feature_names_in_, coefs_, intercepts_
        As for :class:`LayerwiseClassifier`.
    out_activation_ : str
        "identity", "exp" (Poisson), or the output activation's name.
    validation_scores_ : list of float or None
        Validation R² per epoch (with ``early_stopping`` or ``X_val``), else None.
    best_validation_score_ : float or None
    """

    _task = "regression"

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: ActivationSpec = "relu", *,
                 solver: str | optimizers_mod.Optimizer = "adam", alpha: float = 1e-4,
                 batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 1e-3, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: Any = None, tol: float | None = 1e-4,
                 verbose: int | bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int | float = 10,
                 max_fun: int = 15000,
                 loss: losses_mod.LossLike = "squared_error",
                 output_activation: activations_mod.ActivationLike | None = None,
                 dropout: float | Sequence[float] = 0.0, norm: str | None = None,
                 init: InitSpec = "xavier_uniform", schedule: schedules_mod.ScheduleLike = None,
                 dtype: Any = np.float32, n_threads: int | str | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.loss = loss
        self.output_activation = output_activation
        self.dropout = dropout
        self.norm = norm
        self.init = init
        self.schedule = schedule
        self.dtype = dtype
        self.n_threads = n_threads

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, X_val: Any = None,
            y_val: Any = None) -> LayerwiseRegressor:
        """Train the network on (X, y) for up to ``max_iter`` epochs (or L-BFGS iterations).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight per sample, rescaled to mean 1.
        X_val, y_val : array-like, optional
            Validation data, recorded every epoch and monitored by ``early_stopping``.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, X_val=X_val, y_val=y_val)

    @available_if(_not_lbfgs)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> LayerwiseRegressor:
        """Train one epoch on (X, y), continuing the network, optimizer state and shuffling.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, partial=True)

    def _prepare_y(self, y: Any, first: bool, partial: bool, classes: Any) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim not in (1, 2):
            raise ValidationError(
                f"y must have shape (n_samples,) or (n_samples, n_targets); received {y.shape}."
            )
        if first:
            self._y_1d = y.ndim == 1
        return y.reshape(len(y), -1)

    def _loss_and_outputs(self, Y: np.ndarray) -> tuple[losses_mod.Loss, int]:
        try:
            loss = copy.deepcopy(self.loss) if isinstance(self.loss, losses_mod.Loss) else \
                losses_mod.get(self.loss)
        except ConfigError as exc:
            raise _param_error(exc) from None
        if loss.task != "regression":
            raise ValidationError(
                f"LayerwiseRegressor needs a regression loss ('squared_error', 'poisson', "
                f"'mae', 'huber'); received {self.loss!r}. Use LayerwiseClassifier for classes."
            )
        if loss.kind == "poisson" and self.output_activation is not None:
            raise ValidationError(
                "loss='poisson' has its own output function (the network outputs log μ and "
                f"predictions are μ = exp of it); output_activation must be None; received "
                f"{self.output_activation!r}.")
        return loss, Y.shape[1]

    def _loss_scale(self, loss: losses_mod.Loss, n_out: int) -> float:
        """scikit-learn reports the squared error averaged over outputs, ½·mean((y − ŷ)²),
        while its gradient (and layerwise's MSE) sums over them: loss_ = MSE / n_outputs."""
        return 1.0 / n_out if loss.kind == "mse" else 1.0

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets) like y in fit."""
        out = self._outputs(X)
        if self.out_activation_ == "exp":                # Poisson: the network gives log μ
            out = losses_mod.Poisson().output_transform(out)
        return out[:, 0] if self._y_1d else out

    def to_onnx(self, path: Any = None, **kwargs: Any) -> Any:
        """The fitted network as an ONNX model (``onnx.ModelProto``), written to ``path`` if
        given: output "output" of shape (N, n_outputs) ("prediction" = e^output as well for
        loss='poisson'); ``kwargs`` as :func:`layerwise.onnx_export.export`."""
        from .onnx_export import export
        return export(to_model(self), path, **kwargs)



# -- a fitted estimator or pipeline as one model file ---------------------------------------------
SUPPORTED = ("a fitted LayerwiseClassifier or LayerwiseRegressor; a Pipeline of StandardScaler "
             "and MinMaxScaler steps ending in one; or either of these as the regressor of a "
             "TransformedTargetRegressor whose transformer is a StandardScaler or MinMaxScaler")


def _refuse(what: str) -> ValidationError:
    return ValidationError(
        f"layerwise.sklearn.save cannot fold {what} into a layerwise model file. It supports "
        f"{SUPPORTED}. Save such a pipeline with pickle or joblib instead, or apply the other "
        "steps yourself before predicting with the saved network.")


def _scaler_affine(scaler: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A fitted StandardScaler or MinMaxScaler as float64 (offset, scale) such that
    ``scaler.transform(X) = (X − offset) / scale``, Standardize's form."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    if type(scaler) not in (StandardScaler, MinMaxScaler):   # (a subclass may transform otherwise)
        raise _refuse(f"{where} ({type(scaler).__name__})")
    if not hasattr(scaler, "n_features_in_"):
        raise ValidationError(f"{where} ({type(scaler).__name__}) is not fitted; fit the "
                              "pipeline first, e.g. pipe.fit(X, y).")
    n = int(scaler.n_features_in_)
    if isinstance(scaler, StandardScaler):
        # transform: (X − mean_) / scale_, each part only when switched on (mean_ is computed
        # even with with_mean=False; scale_ is 1 for constant features, never 0)
        offset = np.asarray(scaler.mean_, np.float64) if scaler.with_mean else np.zeros(n)
        scale = np.asarray(scaler.scale_, np.float64) if scaler.with_std else np.ones(n)
        return offset, scale
    if scaler.clip:
        raise _refuse(f"{where} (MinMaxScaler with clip=True: clipping to feature_range is not "
                      "an affine map)")
    # transform: X·scale_ + min_ = (X − (−min_ / scale_)) / (1 / scale_)
    s, m = np.asarray(scaler.scale_, np.float64), np.asarray(scaler.min_, np.float64)
    return -m / s, 1 / s


def _parts(obj: Any, where: str) -> tuple[list[tuple[str, Any]], _LayerwiseBase, Any]:
    """(input scalers in order as (name, scaler), the layerwise estimator, the target scaler
    or None) of a fitted estimator, Pipeline or TransformedTargetRegressor."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import Pipeline

    if isinstance(obj, _LayerwiseBase):
        if not hasattr(obj, "model_"):
            raise ValidationError(f"{where} ({type(obj).__name__}) is not fitted; call fit "
                                  "before saving it.")
        return [], obj, None
    if isinstance(obj, Pipeline):
        steps = [(name, step) for name, step in obj.steps if step not in (None, "passthrough")]
        if not steps:
            raise _refuse(f"{where}, a Pipeline without steps,")
        *inputs, (name, last) = steps
        for n, step in inputs:
            _scaler_affine(step, f"the Pipeline step {n!r}")      # refuses what it cannot fold
        scalers, estimator, y_scaler = _parts(last, f"the Pipeline's last step {name!r}")
        return [*inputs, *scalers], estimator, y_scaler
    if isinstance(obj, TransformedTargetRegressor):
        if not hasattr(obj, "regressor_"):
            raise ValidationError(f"{where} (TransformedTargetRegressor) is not fitted; call "
                                  "fit before saving it.")
        scalers, estimator, y_scaler = _parts(obj.regressor_, "its regressor")
        if not isinstance(estimator, LayerwiseRegressor) or y_scaler is not None or \
                getattr(estimator, "out_activation_", None) == "exp":     # (Poisson: e^z last)
            raise _refuse(f"{where} (a TransformedTargetRegressor around "
                          f"{type(obj.regressor_).__name__})")
        transformer = obj.transformer_
        _scaler_affine(transformer, f"{where}'s transformer")     # (func= gives another type)
        return scalers, estimator, transformer
    raise _refuse(f"{where} ({type(obj).__name__})")


def to_model(estimator: Any) -> Sequential:
    """The network of a fitted estimator or pipeline as one ``Sequential`` taking raw rows.

    Leading StandardScaler/MinMaxScaler steps become a first ``Standardize`` layer,
    ``A = (X − offset) / scale`` (several compose: offset = o₁ + o₂·s₁, scale = s₁·s₂); a
    TransformedTargetRegressor's scaler becomes a last ``Standardize`` layer that undoes it,
    ``y = z·s + o = (z − (−o/s)) / (1/s)``. The estimator's network is copied, not changed.
    Anything else (PCA, ColumnTransformer, another final estimator, an unfitted step) raises a
    ``ValidationError`` that names it. Metadata: the estimator's (task, classes, n_classes,
    multilabel, params), the pipeline's input feature names, and the folded ``pipeline`` steps.

    Predictions equal the pipeline's to float32 rounding (the pipeline scales in float64 and
    then rounds to float32; the model scales in float32), not bit for bit.
    """
    scalers, est, y_scaler = _parts(estimator, "the estimator")
    model = _compact(est.model_)                       # a copy without buffers
    n_in, dtype = est.n_features_in_, model.dtype
    layers = list(model.layers)
    steps = [type(s).__name__ for _, s in scalers] + [type(est).__name__]
    if scalers:
        offset, scale = np.zeros(n_in), np.ones(n_in)
        for name, s in scalers:
            o, c = _scaler_affine(s, f"the Pipeline step {name!r}")
            if o.shape != (n_in,):
                raise ValidationError(
                    f"the Pipeline step {name!r} scales {o.size} features but the "
                    f"{type(est).__name__} takes {n_in}; refit the whole pipeline.")
            # ((X − offset) / scale − o) / c = (X − (offset + o·scale)) / (scale·c)
            offset, scale = offset + o * scale, scale * c
        method = "standard" if any(type(s).__name__ == "StandardScaler" for _, s in scalers) \
            else "minmax"
        layers.insert(0, Standardize(offset, scale, method=method, dtype=dtype))
    if y_scaler is not None:
        o, c = _scaler_affine(y_scaler, "the target transformer")
        if o.shape != (est.n_outputs_,):
            raise ValidationError(
                f"the target transformer scales {o.size} targets but the regressor predicts "
                f"{est.n_outputs_}; refit the TransformedTargetRegressor.")
        layers.append(Standardize(-o / c, 1 / c, method="inverse", dtype=dtype))
        steps.append(f"TransformedTargetRegressor({type(y_scaler).__name__})")
    out = Sequential(layers)
    out.loss = model.loss
    first = scalers[0][1] if scalers else est
    names = getattr(first, "feature_names_in_", None)   # the pipeline's input columns
    out.metadata = {**model.metadata, "feature_names":
                    None if names is None else [str(n) for n in names], "pipeline": steps}
    return out


def save(estimator: Any, path: Any) -> None:
    """Save a fitted estimator, or a pipeline of scalers ending in one, as a model file that
    takes raw rows: ``lw.load(path).predict`` and ``layerwise predict`` give the pipeline's
    predictions (to float32 rounding). See :func:`to_model` for what is folded and what is
    refused. ``estimator.model_.save(path)`` saves the network alone, without the scalers.

    Examples
    --------
    >>> pipe = make_pipeline(StandardScaler(), LayerwiseClassifier()).fit(X, y)  # doctest: +SKIP
    >>> save(pipe, "model.lw")          # then: layerwise predict model.lw raw.csv  # doctest: +SKIP
    """
    to_model(estimator).save(path)
