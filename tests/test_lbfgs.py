"""fit_lbfgs: full-batch L-BFGS over the flat parameter vector (issue 14, item 2).

The objective f(θ) = L(θ) + ½λ‖W‖² and its gradient against central differences and against
plain NumPy; the optimum against closed forms (least squares, ridge) and scikit-learn's
LogisticRegression; f and ∇f against scikit-learn's MLPRegressor and MLPClassifier at the
same θ, and whole runs against MLPRegressor(solver="lbfgs") started from the same weights.
"""

from __future__ import annotations

import builtins
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import lbfgs

pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parents[1]


def data(n=40, n_in=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    y = X @ rng.standard_normal(n_in) + 0.3 + 0.1 * rng.standard_normal(n)
    return X, y


def central_differences(fun, theta, eps=1e-6):
    """∂f/∂θ_i ≈ (f(θ + εe_i) − f(θ − εe_i)) / 2ε for every i."""
    g = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = eps
        g[i] = (fun(theta + e)[0] - fun(theta - e)[0]) / (2 * eps)
    return g


def dense_W(model):
    return [layer.W for layer in model.layers if isinstance(layer, lw.Dense)]


# -- the objective --------------------------------------------------------------------------
CASES = [                     # (loss, activation, n_out, targets)
    ("mse", "tanh", 2, "real"),
    ("mse", "relu", 1, "real"),
    ("ce", "sigmoid", 3, "labels"),
    ("ce", "gelu", 3, "onehot"),
    ("bce", "softplus", 1, "binary"),
    ("bce", "elu", 3, "multilabel"),
]


def targets(kind, n, n_out, rng):
    if kind == "real":
        return rng.standard_normal((n, n_out)) if n_out > 1 else rng.standard_normal(n)
    if kind == "labels":
        return rng.integers(0, n_out, n)
    if kind == "onehot":
        return np.eye(n_out)[rng.integers(0, n_out, n)]
    if kind == "binary":
        return rng.integers(0, 2, n).astype(np.float64)
    return rng.integers(0, 2, (n, n_out)).astype(np.float64)


@pytest.mark.parametrize(("loss", "activation", "n_out", "kind"), CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_the_gradient_matches_central_differences(loss, activation, n_out, kind, weighted):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 4))
    y = targets(kind, 12, n_out, rng)
    w = rng.uniform(0, 3, 12) if weighted else None
    model = lw.mlp([4, 5, 3, n_out], activation=activation, dtype=np.float64, rng=2,
                   bias_init="normal:0.5")
    fun = lbfgs.objective(model, X, y, loss, l2=0.3, sample_weight=w)
    theta = fun.theta0 + 0.1 * rng.standard_normal(fun.theta0.size)
    f, g = fun(theta)
    numeric = central_differences(fun, theta)
    assert np.abs(g - numeric).max() <= 1e-7 * max(1.0, np.abs(g).max())
    assert f == fun(theta)[0]                           # a function of θ alone


def test_the_objective_equals_a_plain_numpy_computation():
    """f = Σ_b w_b ½‖a_b − y_b‖² / Σ_b w_b + ½λ Σ ‖W‖², the biases (and LayerNorm's γ, β)
    not penalised; ∇f's weight part carries λW, its bias part none."""
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    w = rng.uniform(0.5, 2, 9)
    model = lw.mlp([3, 4, 2], activation="tanh", norm="layer", dtype=np.float64, rng=0,
                   bias_init="normal:1")
    model.layers[1].gamma[...] = 3.0                    # large γ: a penalty on it would show
    fun = lbfgs.objective(model, X, Y, "mse", l2=0.7, sample_weight=w)
    f, g = fun(fun.theta0)
    A = model.predict(X)
    expected = (w * 0.5 * ((A - Y) ** 2).sum(axis=1)).sum() / w.sum() \
        + 0.5 * 0.7 * sum((W ** 2).sum() for W in dense_W(model))
    assert f == pytest.approx(expected, rel=1e-13)
    plain = lbfgs.objective(model, X, Y, "mse", sample_weight=w)(fun.theta0)[1]
    penalty = np.zeros_like(g)
    for p, (a, b) in zip(model.parameters(), _ranges(model)):
        if p.name.endswith(".W"):
            penalty[a:b] = 0.7 * p.value.ravel()
    np.testing.assert_allclose(g - plain, penalty, rtol=0, atol=1e-15)


def _ranges(model):
    start = 0
    for p in model.parameters():
        yield start, start + p.value.size
        start += p.value.size


def test_integer_sample_weights_equal_repeated_rows():
    X, y = data(10)
    w = np.array([1, 2, 0, 1, 3, 1, 1, 2, 1, 1])
    model = lw.mlp([3, 4, 1], activation="tanh", dtype=np.float64, rng=0)
    weighted = lbfgs.objective(model, X, y, "mse", l2=0.1, sample_weight=w)
    repeated = lbfgs.objective(model, np.repeat(X, w, axis=0), np.repeat(y, w), "mse", l2=0.1)
    theta = weighted.theta0 + 0.05
    (f1, g1), (f2, g2) = weighted(theta), repeated(theta)
    assert f1 == pytest.approx(f2, rel=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)


# -- the optimum ---------------------------------------------------------------------------
@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_a_linear_model_reaches_the_least_squares_or_ridge_solution(l2):
    """No hidden layer, MSE: the minimiser of (1/2N)Σ‖Wx + b − y‖² + ½λ‖W‖² with b free is
    W = (X̄ᵀX̄/N + λI)⁻¹ X̄ᵀȲ/N on centred data, b = ȳ − W x̄ (normal equations)."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 4)) * [1, 2, 0.5, 3] + 1.5
    Y = X @ rng.standard_normal((4, 2)) + rng.standard_normal((60, 2))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    W = np.linalg.solve(Xc.T @ Xc / 60 + l2 * np.eye(4), Xc.T @ Yc / 60).T
    b = Y.mean(0) - W @ X.mean(0)
    model = lw.Sequential(lw.Dense(4, 2, rng=0)).astype(np.float64)
    res = lw.fit_lbfgs(model, X, Y, "mse", l2=l2, tol=1e-10)
    assert res.converged and 0 < res.n_iter <= 200 and res.n_fun >= res.n_iter
    # scipy's default ftol (f's relative decrease below 2.2e-9 ends the run, as in
    # scikit-learn) stops before gtol=1e-10: f is optimal to ~ftol, θ to ~√ftol
    f_star = lbfgs.objective(model, X, Y, "mse", l2=l2)(np.concatenate([W.ravel(), b]))[0]
    assert f_star <= res.loss <= f_star * (1 + 1e-8)
    np.testing.assert_allclose(model.layers[0].W, W, rtol=0, atol=1e-4)
    np.testing.assert_allclose(model.layers[0].b, b, rtol=0, atol=1e-4)
    assert isinstance(model.loss, lw.MSE)


def test_float32_and_float64_models_reach_the_same_optimum():
    X, y = data(50)
    models = {dt: lw.mlp([3, 6, 1], activation="tanh", dtype=dt, rng=0)
              for dt in (np.float32, np.float64)}
    results = {dt: lw.fit_lbfgs(m, X, y, "mse", l2=0.01, tol=1e-6) for dt, m in models.items()}
    assert models[np.float32].dtype == np.float32 and models[np.float64].dtype == np.float64
    assert all(p.value.dtype == np.float32 for p in models[np.float32].parameters())
    assert results[np.float32].loss == pytest.approx(results[np.float64].loss, rel=1e-3)
    np.testing.assert_allclose(models[np.float32].predict(X), models[np.float64].predict(X),
                               atol=2e-2)


@pytest.mark.sklearn
@pytest.mark.parametrize("classes", [2, 3])
def test_a_linear_classifier_equals_logistic_regression(classes):
    """LogisticRegression minimises C·Σ_b log-loss_b + ½‖w‖² (intercept free): divided by
    C·N that is our f with λ = 1/(C·N), BCE on one logit (2 classes) or CE on K (multinomial)."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(120, 4, n_informative=3, n_redundant=0, n_classes=classes,
                               n_clusters_per_class=1, random_state=0)
    C = 0.5
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
    n_out, loss = (1, "bce") if classes == 2 else (classes, "ce")
    model = lw.Sequential(lw.Dense(4, n_out, rng=0)).astype(np.float64)
    res = lw.fit_lbfgs(model, X, y.astype(float) if classes == 2 else y, loss,
                       l2=1 / (C * len(X)), tol=1e-10, max_iter=1000)
    assert res.converged, res.message
    fun = lbfgs.objective(model, X, y.astype(float) if classes == 2 else y, loss,
                          l2=1 / (C * len(X)))
    f_ref = fun(np.concatenate([ref.coef_.ravel(), ref.intercept_]))[0]
    assert res.loss == pytest.approx(f_ref, rel=1e-8)   # both within scipy's ftol of f*
    np.testing.assert_allclose(model.layers[0].W, ref.coef_, rtol=0, atol=2e-4)
    np.testing.assert_allclose(model.layers[0].b, ref.intercept_, rtol=0, atol=2e-4)


# -- scikit-learn's MLP: the same f and ∇f, the same run -----------------------------------
def _sklearn_at(est, model, X, Y, sample_weight=None):
    """scikit-learn's f and ∇f (its private _loss_grad_lbfgs) at the model's parameters,
    the gradient laid out as ours (per layer W (n_out, n_in), then b)."""
    Ws = dense_W(model)
    bs = [layer.b for layer in model.layers if isinstance(layer, lw.Dense)]
    est.coefs_ = [W.T.copy() for W in Ws]
    est.intercepts_ = [b.copy() for b in bs]
    units = [Ws[0].shape[1]] + [W.shape[0] for W in Ws]
    activations = [X] + [None] * len(Ws)
    deltas = [None] * len(Ws)
    coef_grads = [np.empty((a, b)) for a, b in zip(units, units[1:])]
    intercept_grads = [np.empty(b) for b in units[1:]]
    packed = np.hstack([c.ravel() for c in est.coefs_ + est.intercepts_])
    f, g = est._loss_grad_lbfgs(packed, X, Y, sample_weight, activations, deltas, coef_grads,
                                intercept_grads)
    ours, start, sizes = [], 0, [W.size for W in Ws]
    coef_parts, bias_parts = [], []
    for (a, b), n in zip(zip(units, units[1:]), sizes):
        coef_parts.append(g[start:start + n].reshape(a, b).T.ravel())
        start += n
    for b in units[1:]:
        bias_parts.append(g[start:start + b])
        start += b
    for c, b in zip(coef_parts, bias_parts):
        ours += [c, b]
    return f, np.concatenate(ours)


def _fitted(est, X, Y):
    """A scikit-learn MLP set up for _loss_grad_lbfgs (one lbfgs iteration to build it)."""
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.set_params(max_iter=1).fit(X, Y)
    return est


@pytest.mark.sklearn
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("weighted", [False, True])
def test_f_and_gradient_equal_mlp_regressor(activation, weighted):
    from sklearn.neural_network import MLPRegressor
    ours = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "identity"}
    X, y = data(30, 4, seed=5)
    w = np.random.default_rng(6).uniform(0.2, 3, 30) if weighted else None
    alpha = 0.3
    est = _fitted(MLPRegressor(hidden_layer_sizes=(5, 3), activation=activation,
                               solver="lbfgs", alpha=alpha, random_state=0), X, y)
    model = lw.mlp([4, 5, 3, 1], activation=ours[activation], dtype=np.float64, rng=1,
                   bias_init="normal:0.3")
    n = len(X) if w is None else w.sum()
    fun = lbfgs.objective(model, X, y, "mse", l2=alpha / n, sample_weight=w)
    f, g = fun(fun.theta0)
    f_ref, g_ref = _sklearn_at(est, model, X, y[:, None], w)
    assert f == pytest.approx(f_ref, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=0, atol=1e-10 * max(1.0, np.abs(g_ref).max()))


@pytest.mark.sklearn
def test_f_and_gradient_equal_mlp_classifier_multiclass():
    """Softmax cross-entropy (MLPClassifier's multi-class output) is our CE on logits."""
    from sklearn.neural_network import MLPClassifier
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((25, 3)), rng.integers(0, 3, 25)
    est = _fitted(MLPClassifier(hidden_layer_sizes=(4,), activation="tanh", solver="lbfgs",
                                alpha=0.2, random_state=0), X, y)
    model = lw.mlp([3, 4, 3], activation="tanh", dtype=np.float64, rng=1)
    fun = lbfgs.objective(model, X, y, "ce", l2=0.2 / len(X))
    f, g = fun(fun.theta0)
    f_ref, g_ref = _sklearn_at(est, model, X, np.eye(3)[y])
    assert f == pytest.approx(f_ref, rel=1e-10)
    np.testing.assert_allclose(g, g_ref, rtol=0, atol=1e-10)


@pytest.mark.sklearn
def test_a_run_follows_mlp_regressor_lbfgs_from_the_same_weights():
    """MLPRegressor(solver="lbfgs", warm_start=True) given our starting weights makes the
    same scipy call on the same f: the same iterations, evaluations and optimum."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    X, y = data(40, 3, seed=8)
    model = lw.mlp([3, 6, 1], activation="tanh", dtype=np.float64, rng=3)
    est = _fitted(MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs",
                               alpha=1e-2, random_state=0, warm_start=True, tol=1e-5), X, y)
    est.coefs_ = [W.T.copy() for W in dense_W(model)]
    est.intercepts_ = [layer.b.copy() for layer in model.layers if isinstance(layer, lw.Dense)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.set_params(max_iter=25).fit(X, y)
    res = lw.fit_lbfgs(model, X, y, "mse", l2=1e-2 / len(X), max_iter=25, tol=1e-5)
    assert res.n_iter == est.n_iter_
    assert res.loss == pytest.approx(est.loss_, rel=1e-8)
    for W, c in zip(dense_W(model), est.coefs_):
        np.testing.assert_allclose(W, c.T, rtol=0, atol=1e-6)


# -- the stopping rules --------------------------------------------------------------------
def test_max_iter_and_max_fun_are_honoured():
    X, y = data(40)
    for max_iter in (1, 3, 7):
        res = lw.fit_lbfgs(lw.mlp([3, 8, 1], rng=0, dtype=np.float64), X, y, "mse",
                           max_iter=max_iter, tol=0.0)
        assert res.n_iter == max_iter and not res.converged
        assert "ITERATIONS REACHED LIMIT" in res.message
    for max_fun in (1, 5, 12):
        res = lw.fit_lbfgs(lw.mlp([3, 8, 1], rng=0, dtype=np.float64), X, y, "mse",
                           max_fun=max_fun, tol=0.0)
        # checked after each iteration: the last line search may run past it (scipy's limit
        # of 20 evaluations per search)
        assert max_fun <= res.n_fun <= max_fun + 20 and not res.converged
        assert "EVALUATIONS EXCEEDS LIMIT" in res.message


def test_tol_stops_early_at_a_small_gradient():
    X, y = data(40)
    loose, tight = (lw.mlp([3, 8, 1], rng=0, dtype=np.float64) for _ in range(2))
    r_loose = lw.fit_lbfgs(loose, X, y, "mse", tol=1e-2, max_iter=500)
    r_tight = lw.fit_lbfgs(tight, X, y, "mse", tol=1e-7, max_iter=500)
    assert r_loose.converged and r_loose.n_iter < r_tight.n_iter
    fun = lbfgs.objective(loose, X, y, "mse")
    assert np.abs(fun(fun.theta0)[1]).max() <= 1e-2       # scipy's gtol: max |g_i| <= tol
    assert r_tight.loss < r_loose.loss


def test_the_callback_sees_every_iteration_and_can_stop_the_run():
    X, y = data(40)
    seen = []
    res = lw.fit_lbfgs(lw.mlp([3, 8, 1], rng=0), X, y, "mse", max_iter=6, tol=0.0,
                       callback=lambda i, f: seen.append((i, f)))
    assert [i for i, _ in seen] == list(range(1, 7))
    assert seen[-1][1] == res.loss and all(b[1] <= a[1] for a, b in zip(seen, seen[1:]))
    stop = lw.fit_lbfgs(lw.mlp([3, 8, 1], rng=0), X, y, "mse", callback=lambda i, f: i == 2)
    assert stop.n_iter == 2 and not stop.converged


# -- edge shapes ---------------------------------------------------------------------------
def test_one_row_and_one_feature():
    model = lw.Sequential(lw.Dense(1, 1, rng=0)).astype(np.float64)
    res = lw.fit_lbfgs(model, [[2.0]], [3.0], "mse", tol=1e-10)
    assert res.converged and res.loss < 1e-12
    assert model.predict([[2.0]])[0, 0] == pytest.approx(3.0, abs=1e-6)
    clf = lw.mlp([1, 3, 2], rng=0)
    lw.fit_lbfgs(clf, [[0.5]], [1], "ce", max_iter=50)
    assert clf.predict_classes([[0.5]])[0] == 1


# -- failures ------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"max_iter": 0}, lw.ValidationError, "max_iter must be a positive integer"),
    ({"max_iter": 2.5}, lw.ValidationError, "max_iter must be a positive integer"),
    ({"max_fun": -1}, lw.ValidationError, "max_fun must be a positive integer"),
    ({"l2": -0.1}, lw.ValidationError, "l2 must be a finite number >= 0"),
    ({"l2": np.nan}, lw.ValidationError, "l2 must be a finite number >= 0"),
    ({"tol": -1e-4}, lw.ValidationError, "tol must be a finite number >= 0"),
    ({"tol": "small"}, lw.ValidationError, "tol must be a number"),
    ({"callback": 3}, lw.ConfigError, "callback must be a function"),
    ({"threads": 0}, lw.ValidationError, "threads must be 'auto'"),
    ({"loss": "nope"}, lw.ConfigError, "unknown loss 'nope'"),
    ({"sample_weight": [1.0, 2.0]}, lw.ValidationError, "one value per training sample"),
    ({"sample_weight": -np.ones(20)}, lw.ValidationError, "non-negative"),
])
def test_bad_arguments_are_refused_clearly(kwargs, error, words):
    X, y = data(20)
    model = lw.mlp([3, 4, 1], rng=0)
    before = model.flat_parameters()[0].value.copy()
    kwargs = {"loss": "mse", **kwargs}
    with pytest.raises(error, match=words):
        lw.fit_lbfgs(model, X, y, **kwargs)
    np.testing.assert_array_equal(model.flat_parameters()[0].value, before)


def test_bad_data_gets_fits_messages():
    X, y = data(20)
    model = lw.mlp([3, 4, 1], rng=0)
    bad = X.copy()
    bad[4, 1] = np.nan
    for args, words in (((bad, y), r"X contains 1 NaN or infinite values \(first in row 4"),
                        ((X[:, :2], y), "X has 2 features but the model expects 3"),
                        ((X, y[:5]), "same number of samples; received 20 and 5"),
                        ((X[0], y), "X must be 2-D"),
                        ((X, np.c_[y, y]), r"expects targets of shape \(N, 1\)")):
        with pytest.raises(lw.ValidationError, match=words):
            lw.fit_lbfgs(model, *args, "mse")
    with pytest.raises(lw.ConfigError, match="trains a layerwise Sequential"):
        lw.fit_lbfgs("model", X, y, "mse")
    with pytest.raises(lw.ValidationError, match="no Dense layer"):
        lw.fit_lbfgs(lw.Sequential(lw.ReLU()), X, y, "mse")


def test_layers_that_are_random_or_stateful_in_training_are_refused():
    X, y = data(20)
    with pytest.raises(lw.ConfigError, match=r"Dropout\(p=0.2\).*dropout=0"):
        lw.fit_lbfgs(lw.mlp([3, 4, 1], dropout=0.2, rng=0), X, y, "mse")
    with pytest.raises(lw.ConfigError, match=r"BatchNorm.*LayerNorm"):
        lw.fit_lbfgs(lw.mlp([3, 4, 1], norm="batch", rng=0), X, y, "mse")
    res = lw.fit_lbfgs(lw.mlp([3, 4, 1], dropout=0.0, norm="layer", rng=0), X, y, "mse",
                       max_iter=5)
    assert res.n_iter == 5


def test_a_model_of_mixed_dtypes_is_refused():
    X, y = data(20)
    model = lw.mlp([3, 4, 1], rng=0)
    model.layers[0].astype(np.float64)
    with pytest.raises(lw.ValidationError, match=r"one dtype.*astype"):
        lw.fit_lbfgs(model, X, y, "mse")


def test_a_non_finite_start_is_a_divergence_that_changes_nothing():
    X, y = data(20)
    model = lw.mlp([3, 4, 1], rng=0, dtype=np.float64)
    before = model.flat_parameters()[0].value.copy()
    with pytest.raises(lw.DivergenceError, match=r"loss became inf at evaluation 1 of f, after 0 "
                       r"L-BFGS iterations.*keeps its starting parameters.*Standardise"):
        lw.fit_lbfgs(model, X * 1e300, y, "mse")
    np.testing.assert_array_equal(model.flat_parameters()[0].value, before)


class NaNAfter(lw.MSE):
    """MSE whose value becomes NaN from the ``n``-th forward pass on."""

    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, pred, target):
        self.calls += 1
        return super().forward(pred, target) if self.calls < self.n else float("nan")


def test_a_divergence_midway_keeps_the_best_parameters_seen():
    X, y = data(30)
    model = lw.mlp([3, 5, 1], rng=0, dtype=np.float64)
    seen = []
    with pytest.raises(lw.DivergenceError, match=r"loss became nan at evaluation 6 of f"):
        lw.fit_lbfgs(model, X, y, NaNAfter(6), callback=lambda i, f: seen.append(f))
    kept = lbfgs.objective(model, X, y, "mse")
    f_kept = kept(kept.theta0)[0]
    assert seen and f_kept <= min(seen)                 # at least as good as every iterate
    assert np.isfinite(f_kept)


def test_ctrl_c_keeps_the_best_parameters_seen():
    X, y = data(30)
    model = lw.mlp([3, 5, 1], rng=0, dtype=np.float64)
    seen = []

    def interrupt(i, f):
        seen.append(f)
        if i == 3:
            raise KeyboardInterrupt

    with pytest.raises(lw.TrainingInterrupted, match="after 3 L-BFGS iterations"):
        lw.fit_lbfgs(model, X, y, "mse", callback=interrupt)
    kept = lbfgs.objective(model, X, y, "mse")
    assert kept(kept.theta0)[0] == pytest.approx(min(seen), rel=1e-12)


def test_a_second_fit_of_the_same_model_meanwhile_is_refused():
    X, y = data(20)
    model = lw.mlp([3, 4, 1], rng=0)

    def nested(i, f):
        lw.fit_lbfgs(model, X, y, "mse")

    with pytest.raises(lw.BusyError, match="already being trained"):
        lw.fit_lbfgs(model, X, y, "mse", callback=nested)
    with pytest.raises(lw.BusyError):
        lw.fit_lbfgs(model, X, y, "mse",
                     callback=lambda i, f: model.fit(X, y, loss="mse", verbose=0))


# -- packaging -----------------------------------------------------------------------------
def test_without_scipy_the_error_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.split(".")[0] == "scipy":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    X, y = data(20)
    with pytest.raises(ImportError) as exc:
        lw.fit_lbfgs(lw.mlp([3, 4, 1], rng=0), X, y, "mse")
    assert "needs scipy" in str(exc.value)
    assert "pip install scipy" in str(exc.value) and "'.[lbfgs]'" in str(exc.value)


def test_the_lbfgs_extra_brings_scipy_and_the_users_extra_includes_it():
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(r.startswith("scipy>=") for r in extras["lbfgs"])
    assert "lbfgs" in extras["full"][0]


def test_fit_lbfgs_loads_on_first_use():
    assert lw.fit_lbfgs is lbfgs.fit_lbfgs and lw.LbfgsResult is lbfgs.LbfgsResult
    code = "import sys, layerwise; print('layerwise.lbfgs' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "bce", "ce"])
def test_every_loss_lowers_f_on_a_forced_thread_count(loss):
    """Non-smooth losses (MAE, Huber's kink) run too; L-BFGS may end them on a line search."""
    rng = np.random.default_rng(9)
    X = rng.standard_normal((30, 3)).astype(np.float32)
    y = rng.integers(0, 2, 30) if loss == "ce" else rng.integers(0, 2, 30).astype(np.float32)
    model = lw.mlp([3, 4, 2 if loss == "ce" else 1], rng=0)
    start = lbfgs.objective(model, X, y, loss)
    f0 = start(start.theta0)[0]
    res = lw.fit_lbfgs(model, X, y, loss, max_iter=20, threads=1)
    assert res.loss < f0 and res.n_iter <= 20
