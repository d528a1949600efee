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
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

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
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import activations as activations_mod
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from . import schedules as schedules_mod
from ._blas import check_threads
from ._utils import as_float_dtype, exclusive, fraction, lookup, per_layer
from .callbacks import Callback, TrainState
from .errors import BusyError, ConfigError, LayerwiseError, ValidationError
from .layers import Dense, Layer
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


class _Progress(Callback):
    """Record the curves and apply scikit-learn's stopping rule after every epoch.

    Training stops once the monitored quantity (the training loss, or the validation score
    with ``early_stopping``) has not improved by ``tol`` for more than ``patience`` epochs in
    a row, as in ``MLPClassifier``. With ``early_stopping`` the best epoch's parameters are put
    back at the end.
    """

    def __init__(self, *, tol: float | None, patience: int, early_stopping: bool,
                 val_score: Callable[[TrainState, dict[str, float]], float],
                 best_loss: float, verbose: int, first_iteration: int = 0) -> None:
        self.tol, self.patience, self.early_stopping = tol, patience, early_stopping
        self.first_iteration = first_iteration   # epochs before this call (warm start)
        self.val_score, self.best_loss, self.verbose = val_score, best_loss, verbose
        self.losses: list[float] = []
        self.val_losses: list[float] = []
        self.val_scores: list[float] = []
        self.best_score = -math.inf
        self.best_params: list[np.ndarray] | None = None
        self.count = 0
        self.stopped = False                 # by the rule above, not by reaching max_epochs

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        loss = logs["loss"]
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
            state.model.stop_training = self.stopped = True
            if self.verbose:
                what = "Validation score" if self.early_stopping else "Training loss"
                print(f"{what} did not improve more than tol={self.tol:f} for "
                      f"{self.patience} consecutive epochs. Stopping.")

    def on_train_end(self, state: TrainState) -> None:
        if self.early_stopping and self.best_params is not None:
            for p, best in zip(state.model.parameters(), self.best_params):
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


class _LayerwiseBase(BaseEstimator):
    """Shared machinery; see LayerwiseClassifier and LayerwiseRegressor for the parameters."""

    _task = "regression"

    # the constructor arguments, set by the subclasses' __init__ (typed here for mypy)
    hidden_layer_sizes: Any
    activation: Any
    output_activation: Any
    loss: Any
    optimizer: Any
    learning_rate: float
    momentum: float
    nesterov: bool
    weight_decay: float | None
    dropout: Any
    norm: str | None
    init: Any
    batch_size: int | str
    max_epochs: int
    schedule: Any
    early_stopping: bool
    validation_fraction: float
    n_iter_no_change: int
    tol: float | None
    warm_start: bool
    dtype: Any
    random_state: Any
    verbose: int
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
                f"hidden_layer_sizes must be positive integers, e.g. (100,) or (256, 128); "
                f"received {self.hidden_layer_sizes!r}."
            )
        return [int(s) for s in out]

    def _activation_layer(self, act: Any) -> Layer:
        """A fresh activation layer (each owns its buffers) from a name or an instance."""
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

    def _make_optimizer(self) -> optimizers_mod.Optimizer:
        opt = self.optimizer
        if isinstance(opt, optimizers_mod.Optimizer):
            return copy.deepcopy(opt)            # never train the caller's instance
        name = str(opt).lower()
        names = list(optimizers_mod.OPTIMIZERS)     # the registry: no edit here for a new one
        if name not in names:
            raise ValidationError(
                f"optimizer must be one of {names} or a layerwise Optimizer; received {opt!r}."
            )
        kw: dict[str, Any] = {"lr": self.learning_rate}
        if self.weight_decay is not None:
            kw["weight_decay"] = self.weight_decay
        if name == "sgd":
            kw.update(momentum=self.momentum, nesterov=self.nesterov and self.momentum > 0)
        return optimizers_mod.get(name, **kw)

    def _batch_size(self, n: int) -> int:
        bs = self.batch_size
        if isinstance(bs, str) and bs == "auto":
            return min(200, n)
        if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1:
            raise ValidationError(
                f"batch_size must be 'auto' or a positive integer; received {bs!r}."
            )
        return int(bs)

    def _check_training_params(self) -> None:
        for name in ("max_epochs", "n_iter_no_change"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValidationError(f"{name} must be a positive integer; received {v!r}.")
        if self.tol is not None and not (isinstance(self.tol, (int, float, np.number))
                                         and 0 <= self.tol < math.inf):
            raise ValidationError(
                f"tol must be a number >= 0, or None to train for max_epochs; received "
                f"{self.tol!r}."
            )
        if not 0 < float(self.validation_fraction) < 1:
            raise ValidationError(
                f"validation_fraction must be in (0, 1); received {self.validation_fraction!r}."
            )
        if not isinstance(self.verbose, (int, np.integer)):
            raise ValidationError(f"verbose must be an integer; received {self.verbose!r}.")
        check_threads(self.n_threads, "n_threads")

    # -- targets (the subclasses say how y becomes network targets) ----------------------------
    def _loss_and_outputs(self, y: np.ndarray) -> tuple[losses_mod.Loss, int]:
        raise NotImplementedError

    def _prepare_y(self, y: Any, first: bool, partial: bool, classes: Any) -> np.ndarray:
        raise NotImplementedError

    def _val_score(self, Xv: np.ndarray, Yv: np.ndarray
                   ) -> Callable[[TrainState, dict[str, float]], float]:
        return lambda state, logs: logs["val_r2"]

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
        dtype = self._model_dtype()
        self._check_training_params()
        fitted = hasattr(self, "model_")
        first = not fitted if partial else not (self.warm_start and fitted)
        X, y = validate_data(self, X, y, reset=first, dtype=dtype, multi_output=True,
                             y_numeric=self._task == "regression")
        Y = self._prepare_y(y, first, partial, classes)
        sw = self._sample_weight(sample_weight, X, Y, partial)
        loss, n_out = self._loss_and_outputs(Y)
        net = self._network(X.shape[1], n_out)
        signature = self._signature(net)
        if first:
            init_seq, shuffle_seq = _seed_sequence(self.random_state).spawn(2)
            self.model_ = self._build(net, np.random.default_rng(init_seq))
            self.optimizer_ = self._make_optimizer()
            self.rng_ = np.random.default_rng(shuffle_seq)
            self.loss_curve_: list[float] = []
            self.validation_loss_curve_: list[float] | None = None
            self.validation_scores_: list[float] | None = None
            self.best_loss_: float | None = math.inf
            self._best_loss = math.inf
            self.best_validation_score_: float | None = None
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
            self._sync_optimizer()

        Xv = Yv = None
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise ValidationError("pass both X_val and y_val, or neither.")
            Xv = validate_data(self, X_val, reset=False, dtype=dtype)
            Yv = self._prepare_y(np.asarray(y_val), False, True, None)
        elif self.early_stopping and not partial:
            X, Y, Xv, Yv, sw = self._hold_out(X, Y, sw)
        progress = _Progress(
            tol=None if partial else self.tol, patience=int(self.n_iter_no_change),
            early_stopping=bool(self.early_stopping) and Xv is not None and not partial,
            val_score=self._val_score(Xv, Yv) if Xv is not None and Yv is not None
            else lambda s, g: math.nan,
            # (estimators pickled before _best_loss existed kept it in best_loss_)
            best_loss=getattr(self, "_best_loss", self.best_loss_ if self.best_loss_ is not None
                              else math.inf), verbose=int(self.verbose),
            first_iteration=len(self.loss_curve_))
        try:
            schedule = schedules_mod.get(self.schedule, int(self.max_epochs))
        except LayerwiseError as exc:
            raise _param_error(exc) from None
        if partial:                              # one epoch per call: step the schedule along
            schedule = _Offset(schedule, len(self.loss_curve_))
        self.optimizer_.lr = self._base_lr()       # fit's schedules start from this rate
        batch_size = self._batch_size(len(X))
        history = _train(                          # n_threads: see fit's threads
            self.model_, X, Y, loss=loss, optimizer=self.optimizer_,
            epochs=1 if partial else int(self.max_epochs), batch_size=batch_size,
            validation_data=None if Xv is None else (Xv, Yv), rng=self.rng_,
            callbacks=[progress], verbose=0, schedule=schedule,      # progress prints
            sample_weight=sw, train_metrics=False, threads=self.n_threads)
        self.n_iter_ = len(history)
        if not partial and not progress.stopped and self.n_iter_ == int(self.max_epochs):
            # scikit-learn's words and category, so its users' warning filters apply too
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({int(self.max_epochs)}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=3)
        self.t_ += len(X) * self.n_iter_
        self.loss_curve_.extend(progress.losses)
        self.loss_ = self.loss_curve_[-1]
        # as scikit-learn: with early stopping the validation score rules, and best_loss_ is
        # None; the lowest training loss is still used to continue (partial_fit, warm_start)
        self._best_loss = progress.best_loss
        self.best_loss_ = None if progress.early_stopping else progress.best_loss
        if Xv is not None:
            self.validation_loss_curve_ = (self.validation_loss_curve_ or []) + progress.val_losses
            self.validation_scores_ = (self.validation_scores_ or []) + progress.val_scores
            self.best_validation_score_ = max(progress.val_scores)
        self.n_layers_ = len(net["sizes"])
        self.n_outputs_ = n_out
        self.out_activation_ = self._out_activation(loss)
        self.model_.metadata = self._metadata()
        return self

    def _out_activation(self, loss: losses_mod.Loss) -> str:
        """scikit-learn's name for the output function: "softmax" (cross-entropy over classes),
        "logistic" (binary or multi-label: sigmoid), "identity" (regression; or the name of
        the output activation given)."""
        if loss.kind == "ce":
            return "softmax"
        if loss.kind == "bce":
            return "logistic"
        out = getattr(self, "output_activation", None)
        return "identity" if out is None else str(out)

    def _base_lr(self) -> float:
        opt = self.optimizer
        return float(opt.lr if isinstance(opt, optimizers_mod.Optimizer) else self.learning_rate)

    def _sync_optimizer(self) -> None:
        """Keep the optimizer (and its state) unless its kind or settings other than the
        learning rate changed; a new learning rate applies from now on."""
        new = self._make_optimizer()
        old = self.optimizer_
        same = type(new) is type(old) and {**new.config(), "lr": 0} == {**old.config(), "lr": 0}
        if not same:
            self.optimizer_ = new

    def _hold_out(self, X: np.ndarray, Y: np.ndarray, sw: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Hold out ``validation_fraction`` of the rows (stratified for single-label classes),
        drawn with the estimator's generator."""
        from sklearn.model_selection import train_test_split

        stratify = None
        if self._task == "classification" and Y.ndim == 1:
            counts = np.bincount(Y.astype(np.int64))
            if counts[counts > 0].min() >= 2:
                stratify = Y
        seed = int(self.rng_.integers(np.iinfo(np.int32).max))
        arrays = [X, Y] if sw is None else [X, Y, sw]
        try:
            parts = train_test_split(*arrays, test_size=float(self.validation_fraction),
                                     random_state=seed, stratify=stratify)
        except ValueError as exc:
            raise ValidationError(
                f"early_stopping could not hold out validation_fraction="
                f"{self.validation_fraction} of {len(X)} samples: {exc}"
            ) from None
        if len(parts[1]) < 2 or len(parts[0]) < 1:
            raise ValidationError(
                f"The validation set is too small: validation_fraction="
                f"{self.validation_fraction} of {len(X)} samples leaves {len(parts[1])} for "
                "validation. Increase validation_fraction or the size of your dataset, or set "
                "early_stopping=False."
            )
        Xt, Xv, Yt, Yv = parts[:4]
        swt = parts[4] if sw is not None else None
        return Xt, Yt, Xv, Yv, swt

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
        X = validate_data(self, X, reset=False, dtype=[dtype, other])
        out_dtype = np.promote_types(dtype, X.dtype)
        out = model.predict(np.ascontiguousarray(X, dtype=dtype),
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

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if isinstance(state.get("model_"), Sequential):
            state["model_"] = _compact(state["model_"])     # no batch buffers, no cached inputs
        return state


class LayerwiseClassifier(ClassifierMixin, _LayerwiseBase):
    """Multi-layer perceptron classifier trained with layerwise (a faster ``MLPClassifier``).

    Binary targets train one logistic output (binary cross-entropy), multiclass targets a
    softmax over one output per class (cross-entropy), and a 0/1 indicator matrix y of shape
    (n_samples, n_labels) trains one independent logistic output per label (multi-label).
    ``score(X, y)`` is scikit-learn's ``accuracy_score`` of ``predict``: the fraction of
    samples whose class is right, and for multi-label targets the subset accuracy (every label
    of a row right; the network's history calls it ``subset_accuracy`` and the fraction of
    single labels right ``label_accuracy``).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units per hidden layer; ``()`` gives a linear model (logistic regression).
    activation : str or sequence of str, default="relu"
        Hidden activation ("relu", "tanh", "sigmoid", "gelu", "leaky_relu", "elu",
        "softplus", "identity"), or one per hidden layer.
    output_activation : None
        The classifier trains on logits (the loss fuses the softmax or sigmoid), so this must
        stay None; it exists for symmetry with LayerwiseRegressor.
    loss : {"auto", "ce", "bce"} or layerwise Loss, default="auto"
        "auto": "bce" for binary and multi-label targets, "ce" for multiclass. "ce" on binary
        targets trains two softmax outputs. An instance such as
        ``lw.CrossEntropy(label_smoothing=0.1)`` is used as given.
    optimizer : a name of ``layerwise.optimizers.OPTIMIZERS`` ("sgd", "adam", "adamw",
        "rmsprop") or a layerwise Optimizer, default="adam"
        An instance is copied and used with its own settings (``learning_rate``, ``momentum``
        and ``weight_decay`` are then ignored).
    learning_rate : float, default=1e-3
        Initial learning rate (scikit-learn's ``learning_rate_init``).
    momentum : float, default=0.9
        Momentum of "sgd" (ignored by the other optimizers).
    nesterov : bool, default=False
        Nesterov momentum for "sgd".
    weight_decay : float or None, default=None
        L2 weight decay; None keeps the optimizer's default (0, or 0.01 for "adamw").
        Coupled (added to the gradient) except for "adamw". On the weights only, not the
        biases, as scikit-learn's ``alpha`` (an Optimizer instance keeps its own
        ``decay_biases``).
    dropout : float or sequence of float, default=0.0
        Dropout rate after each hidden activation, or one per hidden layer.
    norm : {"layer", "batch"} or None, default=None
        Normalisation after each hidden Dense layer, before its activation: ``LayerNorm`` or
        ``BatchNorm`` (whose training batches need at least 2 rows).
    init : str, callable, None or sequence, default="xavier_uniform"
        Weight initialiser, or one per Dense layer (the hidden layers, then the output layer):
        "xavier_uniform" (Glorot uniform, MLPClassifier's choice and the better one for the
        shallow networks scikit-learn-sized data calls for), "he_normal" (often better for deep
        ReLU networks), "lecun_normal", …, a callable ``(shape, rng, dtype) -> array``, or None
        for the activation's default (He for ReLU-like units, Glorot otherwise). Biases start
        at zero.
    batch_size : int or "auto", default="auto"
        Samples per step; "auto" is ``min(200, n_samples)``.
    max_epochs : int, default=200
        Epochs per ``fit`` call (scikit-learn's ``max_iter``).
    schedule : str, layerwise Schedule or None, default=None
        Learning-rate schedule over the epochs of each ``fit`` ("step", "exponential",
        "cosine" over ``max_epochs``, or an instance); None keeps the rate constant.
        ``partial_fit`` steps it once per call.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified), stop when the
        validation accuracy has not improved by ``tol`` for ``n_iter_no_change`` epochs, and
        keep the best epoch's weights. Without it, training stops on the same rule applied to
        the training loss, as in ``MLPClassifier``.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping`` is on.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    tol : float or None, default=1e-4
        Smallest improvement that counts; None trains for all ``max_epochs``.
    warm_start : bool, default=False
        Continue from the previous ``fit``: same network, same optimizer state, same shuffling
        generator.
    dtype : float32 or float64, default=np.float32
        Precision of the network; inputs are converted once and outputs keep it when X has it.
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into ``sample_weight``.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, dropout masks, shuffling and the validation split.
    verbose : int, default=0
        Print one line per epoch when > 0.
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
    optimizer_ : layerwise.Optimizer
        The optimizer with its state, kept by ``warm_start`` and ``partial_fit``.
    rng_ : numpy.random.Generator
        The shuffling generator, continued by ``warm_start`` and ``partial_fit``.
    loss_ : float
        Training loss of the last epoch.
    loss_curve_ : list of float
        Training loss per epoch, over every ``fit``/``partial_fit`` since initialisation.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch (with ``early_stopping`` or ``X_val``), else None.
    validation_scores_ : list of float or None
        Validation accuracy per epoch (subset accuracy for multi-label), else None.
    best_loss_ : float or None
        Lowest training loss seen; None with ``early_stopping`` (as scikit-learn).
    out_activation_ : str
        The output function in scikit-learn's words: "softmax" or "logistic".
    best_validation_score_ : float or None
        Best validation accuracy of the last fit with validation data.
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
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
                 output_activation: activations_mod.ActivationLike | None = None,
                 loss: losses_mod.LossLike = "auto",
                 optimizer: optimizers_mod.OptimizerLike = "adam", learning_rate: float = 1e-3,
                 momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float | None = None, dropout: float | Sequence[float] = 0.0,
                 norm: str | None = None, init: InitSpec = "xavier_uniform",
                 batch_size: int | str = "auto", max_epochs: int = 200,
                 schedule: schedules_mod.ScheduleLike = None,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float | None = 1e-4, warm_start: bool = False,
                 dtype: Any = np.float32, class_weight: Any = None, random_state: Any = None,
                 verbose: int = 0, n_threads: int | str | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output_activation = output_activation
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.norm = norm
        self.init = init
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.schedule = schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.dtype = dtype
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, X_val: Any = None,
            y_val: Any = None) -> LayerwiseClassifier:
        """Train the network on (X, y) for up to ``max_epochs`` epochs.

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


def _sigmoid(Z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        out: np.ndarray = 1 / (1 + np.exp(-Z))
    return out


class LayerwiseRegressor(RegressorMixin, _LayerwiseBase):
    """Multi-layer perceptron regressor trained with layerwise (a faster ``MLPRegressor``).

    y of shape (n_samples,) trains one output; (n_samples, n_targets) trains one per target.
    Targets are used as given: scale them (e.g. ``TransformedTargetRegressor`` with a
    ``StandardScaler``) when they are far from unit size.

    Parameters
    ----------
    hidden_layer_sizes, activation, optimizer, learning_rate, momentum, nesterov, weight_decay, \
dropout, norm, init, batch_size, max_epochs, schedule, n_iter_no_change, tol, warm_start, \
dtype, random_state, verbose, n_threads
        As for :class:`LayerwiseClassifier`.
    output_activation : str or None, default=None
        Activation after the output layer: None (identity), or e.g. "sigmoid" for targets in
        (0, 1), "softplus" for positive targets.
    loss : {"mse", "mae", "huber"} or layerwise Loss, default="mse"
        "mse" is ½‖ŷ − y‖² per sample (summed over targets) averaged over the batch; "mae" and
        "huber" average over every element.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its R² has not improved by
        ``tol`` for ``n_iter_no_change`` epochs, keeping the best epoch's weights.
    validation_fraction : float, default=0.1

    Attributes
    ----------
    model_, optimizer_, rng_, loss_, loss_curve_, validation_loss_curve_, best_loss_, n_iter_, \
t_, n_layers_, n_outputs_, n_features_in_, feature_names_in_, coefs_, intercepts_
        As for :class:`LayerwiseClassifier`.
    validation_scores_ : list of float or None
        Validation R² per epoch (with ``early_stopping`` or ``X_val``), else None.
    best_validation_score_ : float or None
    """

    _task = "regression"

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: ActivationSpec = "relu", *,
                 output_activation: activations_mod.ActivationLike | None = None,
                 loss: losses_mod.LossLike = "mse",
                 optimizer: optimizers_mod.OptimizerLike = "adam", learning_rate: float = 1e-3,
                 momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float | None = None, dropout: float | Sequence[float] = 0.0,
                 norm: str | None = None, init: InitSpec = "xavier_uniform",
                 batch_size: int | str = "auto", max_epochs: int = 200,
                 schedule: schedules_mod.ScheduleLike = None,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float | None = 1e-4, warm_start: bool = False,
                 dtype: Any = np.float32, random_state: Any = None, verbose: int = 0,
                 n_threads: int | str | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output_activation = output_activation
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.norm = norm
        self.init = init
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.schedule = schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, X_val: Any = None,
            y_val: Any = None) -> LayerwiseRegressor:
        """Train the network on (X, y) for up to ``max_epochs`` epochs.

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
                f"LayerwiseRegressor needs a regression loss ('mse', 'mae', 'huber'); received "
                f"{self.loss!r}. Use LayerwiseClassifier for classes."
            )
        return loss, Y.shape[1]

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets) like y in fit."""
        out = self._outputs(X)
        return out[:, 0] if self._y_1d else out


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
        if not isinstance(estimator, LayerwiseRegressor) or y_scaler is not None:
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
