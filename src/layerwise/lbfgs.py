"""Full-batch L-BFGS over the model's one flat parameter vector (scikit-learn's ``lbfgs``).

``Sequential.flat_parameters()`` keeps every weight and bias in one contiguous buffer θ, so
the whole network is one vector for ``scipy.optimize.minimize(method="L-BFGS-B")``. The
objective, on all N training rows at once::

    f(θ)  = L(θ) + ½λ Σ_i m_i θ_i²        L: the loss's mean over the rows (sample-weighted)
    ∇f(θ) = ∇L(θ) + λ m ⊙ θ                ∇L: one backward pass (``training.loss_and_gradient``)

where m_i = 0 on the biases' ranges of the buffer (``Param.no_decay``) and 1 on the weights:
L2 on the weights only, as scikit-learn's ``alpha`` (which the estimators pass as
λ = alpha / n_samples). scipy works in float64; a float32 model gets θ rounded into its buffer
at each evaluation and hands back f and ∇f as float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import losses as losses_mod
from ._blas import Threads, check_threads, is_small
from ._utils import install_hint, is_finite, positive_float, positive_int
from .errors import ConfigError, DivergenceError, TrainingInterrupted, ValidationError
from .layers import Dropout, Param
from .network import Sequential
from .normalization import BatchNorm
from .training import loss_and_gradient, one_fit_at_a_time, sample_weights, training_data

if TYPE_CHECKING:
    from .losses import LossLike


@dataclass(frozen=True)
class LbfgsResult:
    """What :func:`fit_lbfgs` did; the model holds the parameters it ended at.

    Attributes
    ----------
    n_iter : int
        L-BFGS iterations (scipy's ``nit``), at most ``max_iter``.
    n_fun : int
        Evaluations of f and ∇f (scipy's ``nfev``): full forward and backward passes.
    loss : float
        f at the returned parameters: the loss plus ½λ‖W‖².
    converged : bool
        scipy stopped because the projected gradient's largest component fell to ``tol``
        (or f stopped decreasing), not because ``max_iter`` or ``max_fun`` ran out or the line
        search failed (scipy's ``status == 0``).
    message : str
        scipy's reason for stopping.
    """

    n_iter: int
    n_fun: int
    loss: float
    converged: bool
    message: str


def _import_minimize() -> Callable[..., Any]:
    try:
        from scipy.optimize import minimize
    except ImportError as exc:
        raise ImportError(
            "fit_lbfgs needs scipy (scipy.optimize's L-BFGS-B), which is not installed; "
            f"install it with {install_hint('scipy', 'lbfgs')}.") from exc
    return minimize


def _check_deterministic(model: Sequential) -> None:
    """L-BFGS compares f at different θ, so f must be a function of θ alone: refuse layers
    whose training-mode forward pass is random (Dropout) or has side effects that depend on
    every evaluation (BatchNorm's running statistics, moved at each line-search trial)."""
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dropout) and layer.p > 0:
            raise ConfigError(
                f"layer {i} is Dropout(p={layer.p:g}), which draws a new random mask at each "
                "training-mode forward pass; L-BFGS needs the same f(θ) each time it "
                "evaluates θ. Build the model without dropout (dropout=0) or train it with "
                "fit and a stochastic optimizer (Adam, SGD).")
        if isinstance(layer, BatchNorm):
            raise ConfigError(
                f"layer {i} is BatchNorm, whose running statistics would move at every "
                "evaluation of L-BFGS's line search, trial points included. Use LayerNorm "
                "(norm='layer'), no normalisation, or fit with a stochastic optimizer.")


class Objective:
    """f(θ) and ∇f(θ) of a model on prepared data, for scipy: ``f, g = objective(theta)``.

        f(θ)  = L(θ) + ½λ Σ_i m_i θ_i²      m_i = 0 on the biases' ranges, 1 on the weights
        ∇f(θ) = ∇L(θ) + λ m ⊙ θ

    Each call copies θ (float64) into the model's flat buffer (rounding it to a float32
    model's dtype), runs ``training.loss_and_gradient`` on all rows and returns f as a float
    and ∇f as a new float64 array. It remembers the call with the lowest finite f
    (``best_f``, ``best_theta``), what the model keeps when a run is cut short. Build it with
    :func:`objective`, which checks the arguments.

    Raises
    ------
    DivergenceError
        When f or ∇f is NaN or infinite at θ.
    """

    def __init__(self, model: Sequential, flat: Param, loss: losses_mod.Loss, X: np.ndarray,
                 Y: np.ndarray, weights: np.ndarray | None, l2: float) -> None:
        self.model, self.flat, self.loss, self.X, self.Y = model, flat, loss, X, Y
        self.weights, self.l2 = weights, l2
        self.theta0 = flat.value.astype(np.float64)
        self.m = np.ones(self.theta0.size)      # m_i = 0 on the biases' ranges, 1 on weights
        for a, b in flat.no_decay:
            self.m[a:b] = 0.0
        self.evals = 0
        self.best_f, self.best_theta = math.inf, self.theta0.copy()
        self.threads: Threads | None = None     # fit_lbfgs times each call as one step

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        self.evals += 1
        np.copyto(self.flat.value, theta, casting="same_kind")   # θ in the model's dtype
        t0 = self.threads.start_step() if self.threads is not None else 0.0
        f = loss_and_gradient(self.model, self.loss, self.X, self.Y, self.weights)  # L(θ)
        if self.threads is not None:
            self.threads.end_step(t0)
        g = self.flat.grad.astype(np.float64)                   # ∇L(θ), a new array
        if self.l2:
            mt = self.m * theta                                 # the weights, biases zeroed
            f += 0.5 * self.l2 * float(mt @ theta)              # f = L + ½λ Σ m_i θ_i²
            g += self.l2 * mt                                   # ∇f = ∇L + λ m ⊙ θ
        if not math.isfinite(f):
            raise DivergenceError(f"f became {f}")
        if not is_finite(g):
            raise DivergenceError(f"the gradient became NaN or infinite (f = {f:.6g})")
        if f < self.best_f:
            self.best_f, self.best_theta = f, theta.copy()
        return f, g

    def keep_best(self) -> None:
        """Put the parameters of the call with the lowest f back into the model (the
        starting ones when no call gave a finite f)."""
        np.copyto(self.flat.value, self.best_theta, casting="same_kind")


def objective(model: Sequential, X: Any, y: Any, loss: LossLike = "ce", *, l2: float = 0.0,
              sample_weight: Any = None) -> Objective:
    """The function :func:`fit_lbfgs` minimises, checked and ready to call:
    ``f, g = objective(model, X, y, "mse", l2=1e-3)(theta)`` with θ a float64 vector laid
    out as ``model.flat_parameters()[0].value`` (``.theta0`` is the model's current θ).

    Arguments as for :func:`fit_lbfgs`. Calling it writes θ into the model's parameters.
    """
    if not isinstance(model, Sequential):
        raise ConfigError(f"fit_lbfgs trains a layerwise Sequential; received "
                          f"{type(model).__name__}. Build one with lw.mlp or lw.Sequential.")
    L = losses_mod.get(loss)
    l2 = positive_float("l2", l2, allow_zero=True)
    dtype = model.dtype
    X, Y = training_data(model, L, X, y)
    N = X.shape[0]
    weights = None if sample_weight is None else \
        sample_weights(sample_weight, N).astype(dtype)
    _check_deterministic(model)
    params = model.flat_parameters()
    if len(params) != 1:                    # only with parameters of several dtypes
        raise ValidationError(
            "fit_lbfgs needs every parameter in one dtype (one flat vector); the model mixes "
            f"{sorted({str(p.value.dtype) for p in params})}. Call model.astype(np.float32) "
            "or model.astype(np.float64) first.")
    return Objective(model, params[0], L, X, Y, weights, l2)


@one_fit_at_a_time
def fit_lbfgs(model: Sequential, X: Any, y: Any, loss: LossLike = "ce", *, l2: float = 0.0,
              max_iter: int = 200, max_fun: int = 15000, tol: float = 1e-4,
              sample_weight: Any = None,
              callback: Callable[[int, float], Any] | None = None,
              threads: int | str | None = "auto") -> LbfgsResult:
    """Train ``model`` on all of (X, y) at once with L-BFGS (scipy's L-BFGS-B, no bounds).

    Minimises f(θ) = L(θ) + ½·l2·‖W‖² over the flat parameter vector θ, where L is the
    loss's mean over the rows (weighted as ``fit`` weights it) and W every weight but not the
    biases (nor LayerNorm's γ, β), with the options scikit-learn's ``MLPRegressor`` and
    ``MLPClassifier`` pass for ``solver="lbfgs"``: ``maxiter=max_iter``, ``maxfun=max_fun``,
    ``gtol=tol``.

    Parameters
    ----------
    model : Sequential
        Trained in place, starting from its current parameters; float32 or float64. Layers
        must be deterministic in training mode: Dropout (p > 0) and BatchNorm are refused.
    X : array (N, n_in), or a scipy.sparse matrix (as for ``fit``: never densified)
    y : array
        As for ``fit`` (integer labels or one-hot for "ce"; (N, n_out) or (N,) otherwise).
    loss : str or Loss
        "ce" (the default, as ``fit``), "bce", "mse", … or an instance. L-BFGS assumes a
        smooth f: with "mae" (and "huber"'s kink) it may stop early on a failed line search.
    l2 : float
        λ ≥ 0, the coefficient of ½λ‖W‖² (scikit-learn's alpha divided by the number of
        samples, or by the sum of the sample weights, gives scikit-learn's penalty).
    max_iter : int
        Most L-BFGS iterations.
    max_fun : int
        Most evaluations of f and ∇f; scipy checks it after each iteration, so the last
        line search may go a few evaluations beyond it.
    tol : float
        Stop when every component of the gradient is at most ``tol`` in absolute value
        (scipy's ``gtol``), or f stops decreasing (relative change below scipy's ``ftol``).
    sample_weight : array (N,), optional
        Non-negative weight per row, rescaled to mean 1 as in ``fit``: L = (1/N) Σ_b w_b l_b.
    callback : callable, optional
        ``callback(iteration, loss)`` after every iteration (1-based; f at the new iterate).
        Returning True stops the run there (``converged`` is then False).
    threads : "auto", None or int
        BLAS threads, as for ``fit`` (each evaluation of f is one timed step).

    Returns
    -------
    LbfgsResult
        ``n_iter``, ``n_fun``, ``loss`` (f at the end), ``converged``, ``message``. The model
        holds scipy's final θ (rounded to its dtype), and ``model.loss`` the loss.

    Raises
    ------
    DivergenceError
        When f or ∇f is NaN or infinite at some θ; the model keeps the parameters of the
        evaluation with the lowest finite f (the starting ones if there was none).
    TrainingInterrupted
        On Ctrl-C; the model keeps the parameters of the evaluation with the lowest f.
    BusyError
        When another ``fit`` or ``fit_lbfgs`` of this model is running.
    ImportError
        When scipy is not installed.
    """
    max_iter = positive_int("max_iter", max_iter)
    max_fun = positive_int("max_fun", max_fun)
    tol = positive_float("tol", tol, allow_zero=True)
    if callback is not None and not callable(callback):
        raise ConfigError(f"callback must be a function callback(iteration, loss) or None; "
                          f"received {type(callback).__name__}.")
    setting = check_threads(threads)
    fun = objective(model, X, y, loss, l2=l2, sample_weight=sample_weight)
    minimize = _import_minimize()
    iterations = 0

    def each_iteration(intermediate_result: Any) -> None:
        nonlocal iterations
        iterations += 1
        if callback is not None and callback(iterations, float(intermediate_result.fun)) is True:
            raise StopIteration                             # scipy ends the run (status 99)

    def where() -> str:
        return f"at evaluation {fun.evals} of f, after {iterations} L-BFGS iterations"

    model.loss = fun.loss
    # as in fit: overflow surfaces as a non-finite f or ∇f (DivergenceError), so NumPy's own
    # floating-point warnings would only be noise before it
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"), \
            Threads(setting, is_small(model.macs() * fun.X.shape[0]), max_fun) as fun.threads:
        try:
            res = minimize(fun, fun.theta0, method="L-BFGS-B", jac=True,
                           callback=each_iteration,
                           options={"maxiter": max_iter, "maxfun": max_fun, "gtol": tol})
        except DivergenceError as exc:
            fun.keep_best()
            kept = (f"the parameters of the evaluation with the lowest f ({fun.best_f:.6g})"
                    if math.isfinite(fun.best_f) else "its starting parameters")
            raise DivergenceError(
                f"{exc} {where()}; training stopped and the model keeps {kept}. Standardise "
                "the inputs (e.g. StandardScaler) or raise l2.") from None
        except KeyboardInterrupt:
            fun.keep_best()
            raise TrainingInterrupted(
                f"interrupted {where()}; the model holds the parameters of the evaluation "
                "with the lowest f.") from None
        except BaseException:
            fun.keep_best()                                 # never a line-search trial point
            raise
        finally:
            fun.threads = None
    np.copyto(fun.flat.value, res.x, casting="same_kind")
    message = res.message.decode() if isinstance(res.message, bytes) else str(res.message)
    return LbfgsResult(n_iter=int(res.nit), n_fun=int(res.nfev), loss=float(res.fun),
                       converged=res.status == 0, message=message)
