"""layerwise.sklearn: scikit-learn's estimator checks, exact continuation, and the MLP extras."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.datasets import load_digits, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_methods_subset_invariance,
    check_sample_weight_equivalence_on_dense_data,
    parametrize_with_checks,
)

import layerwise as lw
from layerwise.sklearn import LayerwiseClassifier, LayerwiseRegressor

# -- scikit-learn's own estimator checks ---------------------------------------------------------
# Every check runs on the defaults (float32) and on float64 instances. Two checks demand agreement
# to rtol=1e-7, below float32's rounding (~6e-8 per operation, ~1e-6 after a forward pass): they
# are expected to fail in float32 only, and pass in float64 (see the float64 instances, and
# test_float32_results_agree_to_float32_rounding for the float32 bound).
FLOAT32_ONLY = {
    "check_methods_subset_invariance": (
        "float32 BLAS: a row's logits depend on the batch they are computed in (GEMV for one "
        "row, GEMM kernels for several) at float32 rounding level, ~1e-6 relative, above the "
        "check's atol=rtol=1e-7 (it can pass by luck, as the regressor's often does here); "
        "passes on the float64 instances."
    ),
    "check_sample_weight_equivalence_on_dense_data": (
        "float32 rounding: integer weights and repeated rows give the same objective and, with "
        "the full batch this check's 15 rows use, the same steps, but sums in another order "
        "round differently (~1e-7 relative) and 200 epochs carry it above the check's "
        "rtol=1e-7; passes on the float64 instances."
    ),
}
# the same check on the same rows given as a CSR matrix
FLOAT32_ONLY["check_sample_weight_equivalence_on_sparse_data"] = \
    FLOAT32_ONLY["check_sample_weight_equivalence_on_dense_data"]


def _expected_failed(estimator):
    return FLOAT32_ONLY if np.dtype(estimator.dtype) == np.float32 else {}


@parametrize_with_checks(
    [LayerwiseClassifier(), LayerwiseRegressor(),
     LayerwiseClassifier(dtype=np.float64), LayerwiseRegressor(dtype=np.float64)],
    expected_failed_checks=_expected_failed,
)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # check_array_api_input (NumPy arrays with array-API dispatch on) needs this variable, which
    # scikit-learn reads when the check runs; set for the check only.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


def test_float32_results_agree_to_float32_rounding():
    """What the two float32 expected failures check, at float32's tolerance."""
    rng = np.random.default_rng(0)
    X = 3 * rng.random((40, 5))
    y = (X[:, 0] > 1.5).astype(int) + (X[:, 1] > 1.5)
    clf = LayerwiseClassifier(random_state=0, max_iter=50).fit(X, y)
    full = clf.decision_function(X)
    rows = np.vstack([clf.decision_function(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(rows, full, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(clf.predict(X[::-1])[::-1], clf.predict(X))

    sw = rng.integers(0, 4, len(X))
    a = LayerwiseClassifier(random_state=0, max_iter=50).fit(X, y, sample_weight=sw)
    b = LayerwiseClassifier(random_state=0, max_iter=50).fit(np.repeat(X, sw, axis=0),
                                                                np.repeat(y, sw))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-4, atol=1e-5)


def test_float64_passes_the_rounding_sensitive_checks_directly():
    for est in (LayerwiseClassifier(dtype=np.float64), LayerwiseRegressor(dtype=np.float64)):
        check_methods_subset_invariance(type(est).__name__, est)
        check_sample_weight_equivalence_on_dense_data(type(est).__name__, est)


# -- data ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _params(est):
    return [p.value.copy() for p in est.model_.parameters()]


def _assert_same_params(a, b):
    for p, q in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(p, q)


# -- exact continuation -------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.05), ("adam", 1e-3)])
def test_warm_start_and_partial_fit_continue_bit_for_bit(digits, optimizer, lr):
    X, y = digits[0][:600], digits[1][:600]
    kw = dict(solver=optimizer, learning_rate_init=lr, momentum=0.9, dropout=0.1, batch_size=64,
              random_state=0, tol=None)
    ten = LayerwiseClassifier(max_iter=10, **kw).fit(X, y)

    warm = LayerwiseClassifier(max_iter=5, **kw).fit(X, y)
    warm.set_params(warm_start=True).fit(X, y)
    _assert_same_params(warm, ten)
    assert warm.loss_curve_ == ten.loss_curve_
    assert warm.optimizer_.t == ten.optimizer_.t == 10 * 10       # 10 epochs of 10 steps

    part = LayerwiseClassifier(max_iter=10, **kw)
    for _ in range(10):
        part.partial_fit(X, y, classes=np.arange(10))
    _assert_same_params(part, ten)
    assert part.loss_curve_ == ten.loss_curve_ and part.n_iter_ == 1 and part.t_ == 6000


def test_partial_fit_steps_the_schedule_once_per_call(digits):
    X, y = digits[0][:300], digits[1][:300]
    kw = dict(schedule="cosine", max_iter=6, learning_rate_init=3e-3, random_state=1, tol=None)
    full = LayerwiseRegressor(**kw).fit(X, y.astype(float))
    part = LayerwiseRegressor(**kw)
    for _ in range(6):
        part.partial_fit(X, y.astype(float))
    _assert_same_params(part, full)


def test_warm_start_keeps_optimizer_state_unless_its_settings_change(digits):
    X, y = digits[0][:300], digits[1][:300]
    est = LayerwiseClassifier(max_iter=2, random_state=0, warm_start=True).fit(X, y)
    opt, m = est.optimizer_, est.optimizer_.state[0]["m"].copy()
    est.set_params(learning_rate_init=1e-4).fit(X, y)        # a new rate keeps Adam's moments
    assert est.optimizer_ is opt and est.optimizer_.t == 4 * 2 and est.optimizer_.lr == 1e-4
    assert not np.array_equal(est.optimizer_.state[0]["m"], m)
    est.set_params(solver="sgd").fit(X, y)              # another optimizer starts afresh
    assert isinstance(est.optimizer_, lw.SGD) and est.optimizer_.t == 2 * 2
    assert len(est.loss_curve_) == 6


def test_warm_start_refuses_a_changed_network(digits):
    X, y = digits
    est = LayerwiseClassifier(max_iter=1, warm_start=True, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="sizes from"):
        est.set_params(hidden_layer_sizes=(20,)).fit(X, y)
    with pytest.raises(ValueError, match="classes not in classes_"):
        LayerwiseClassifier().partial_fit(X, y % 3, classes=[0, 1, 2]).partial_fit(X, y)
    with pytest.raises(ValueError, match="classes must be passed"):
        LayerwiseClassifier().partial_fit(X, y)


# -- scikit-learn integration -------------------------------------------------------------------
def test_pipeline_grid_search_and_cross_val_score_in_parallel(digits):
    X, y = digits[0][:500], digits[1][:500]
    pipe = make_pipeline(StandardScaler(), LayerwiseClassifier(max_iter=40, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3, n_jobs=2)
    assert scores.mean() > 0.85
    grid = GridSearchCV(pipe, {"layerwiseclassifier__hidden_layer_sizes": [(16,), (64,)],
                               "layerwiseclassifier__dropout": [0.0, 0.2]}, cv=3, n_jobs=2)
    grid.fit(X, y)
    assert grid.best_score_ > 0.85 and grid.best_estimator_.score(X, y) > 0.9


def test_pickle_round_trip_predicts_identically_and_drops_batch_buffers(digits):
    X, y = digits
    clf = LayerwiseClassifier(max_iter=5, dropout=0.2, random_state=0).fit(X, y)
    before = len(pickle.dumps(clf))
    expected = clf.predict_proba(X)                         # fills 1024-row buffers
    data = pickle.dumps(clf)
    assert len(data) <= before
    again = pickle.loads(data)
    np.testing.assert_array_equal(again.predict_proba(X), expected)
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    clf.set_params(warm_start=True).fit(X, y)                # training continues exactly too
    again.set_params(warm_start=True).fit(X, y)
    _assert_same_params(again, clf)


def test_clone_gives_an_unfitted_copy_with_the_same_params(digits):
    est = LayerwiseClassifier(hidden_layer_sizes=(8,), solver=lw.SGD(0.1, momentum=0.5))
    est.fit(*digits)
    copy_ = clone(est)
    assert not hasattr(copy_, "model_") and copy_.get_params()["hidden_layer_sizes"] == (8,)
    assert est.solver.t == 0                                # the given instance is never trained


def test_predict_is_safe_from_several_threads(digits):
    X, y = digits
    clf = LayerwiseClassifier(max_iter=3, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: clf.predict_proba(X), range(8)))
    for r in results:
        np.testing.assert_array_equal(r, expected)


# -- what MLPClassifier lacks -------------------------------------------------------------------
def test_validation_curves_early_stopping_and_explicit_validation_data(digits):
    X, y = digits
    clf = LayerwiseClassifier(early_stopping=True, n_iter_no_change=3, random_state=0,
                              max_iter=60).fit(X, y)
    n = clf.n_iter_
    assert len(clf.loss_curve_) == len(clf.validation_loss_curve_) == len(
        clf.validation_scores_) == n
    assert n < 60 and clf.best_validation_score_ == max(clf.validation_scores_)

    plain = LayerwiseClassifier(max_iter=4, random_state=0).fit(X, y)
    assert plain.validation_scores_ is None and plain.validation_loss_curve_ is None
    watched = LayerwiseClassifier(max_iter=4, random_state=0).fit(X[:1500], y[:1500],
                                                                    X_val=X[1500:],
                                                                    y_val=y[1500:])
    assert len(watched.validation_loss_curve_) == 4
    acc = watched.score(X[1500:], y[1500:])
    assert watched.validation_scores_[-1] == pytest.approx(acc)


def test_early_stopping_restores_the_best_epoch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = X[:, 0] + 0.5 * rng.standard_normal(200)            # noisy: validation R² peaks early
    reg = LayerwiseRegressor(hidden_layer_sizes=(256,), learning_rate_init=1e-2,
                             early_stopping=True, n_iter_no_change=5, random_state=0,
                             max_iter=200).fit(X, y)
    best = int(np.argmax(reg.validation_scores_))
    assert best < reg.n_iter_ - 1
    assert reg.best_validation_score_ == reg.validation_scores_[best]


def test_multilabel_classification(digits):
    X, Y = make_multilabel_classification(n_samples=300, n_classes=4, random_state=0)
    clf = LayerwiseClassifier(random_state=0, max_iter=100).fit(X, Y)
    assert clf.model_.loss.kind == "bce" and clf.n_outputs_ == 4
    np.testing.assert_array_equal(clf.classes_, np.arange(4))
    P = clf.predict_proba(X)
    assert P.shape == (300, 4) and clf.predict(X).shape == (300, 4)
    np.testing.assert_array_equal(clf.predict(X), (P > 0.5).astype(int))
    assert clf.score(X, Y) > 0.6                              # subset accuracy
    es = LayerwiseClassifier(random_state=0, early_stopping=True, max_iter=5).fit(X, Y)
    assert all(0 <= s <= 1 for s in es.validation_scores_)


def test_multioutput_regression_and_output_activation():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    Y = np.column_stack([X[:, 0] - X[:, 1], np.sin(X[:, 2])])
    reg = LayerwiseRegressor(hidden_layer_sizes=(64, 64), random_state=0, learning_rate_init=3e-3,
                             max_iter=150).fit(X, Y)
    assert reg.predict(X).shape == (300, 2) and reg.score(X, Y) > 0.9
    assert reg.predict(X).dtype == np.float64 and reg.predict(X.astype(np.float32)).dtype == \
        np.float32
    one = LayerwiseRegressor(max_iter=3).fit(X, Y[:, :1])
    assert one.predict(X).shape == (300, 1)                  # a column stays a column
    bounded = LayerwiseRegressor(output_activation="sigmoid", loss="huber", max_iter=5)
    assert np.all(bounded.fit(X, (Y[:, 0] > 0).astype(float)).predict(X) >= 0)


def test_sample_weight_and_class_weight_shift_predictions():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 2))
    y = (X[:, 0] + 0.8 * rng.standard_normal(400) > 0).astype(int)
    kw = dict(random_state=0, max_iter=50)
    base = LayerwiseClassifier(**kw).fit(X, y).predict(X).mean()
    heavy1 = LayerwiseClassifier(class_weight={0: 1, 1: 10}, **kw).fit(X, y).predict(X).mean()
    sw = np.where(y == 1, 10.0, 1.0)
    weighted = LayerwiseClassifier(**kw).fit(X, y, sample_weight=sw).predict(X).mean()
    assert heavy1 > base + 0.1 and weighted > base + 0.1
    balanced = LayerwiseClassifier(class_weight="balanced", **kw)
    assert balanced.fit(X, y).score(X, y) > 0.7
    with pytest.raises(ValueError, match="balanced"):
        balanced.partial_fit(X, y, classes=[0, 1])
    part = LayerwiseClassifier(**kw).partial_fit(X, y, sample_weight=sw, classes=[0, 1])
    assert part.n_iter_ == 1


def test_per_layer_init_activation_and_dropout(digits):
    X, y = digits
    clf = LayerwiseClassifier(hidden_layer_sizes=(32, 16), activation=["relu", "tanh"],
                              dropout=[0.3, 0.0], init=["he_normal", None, "zeros"],
                              max_iter=1, random_state=0).fit(X, y)
    kinds = [layer.kind for layer in clf.model_.layers]
    assert kinds == ["dense", "relu", "dropout", "dense", "tanh", "dense"]
    dense = [layer for layer in clf.model_.layers if layer.kind == "dense"]
    assert [d.init for d in dense] == ["he_normal", "xavier_uniform", "zeros"]
    assert [w.shape for w in clf.coefs_] == [(64, 32), (32, 16), (16, 10)]
    deep = LayerwiseClassifier(hidden_layer_sizes=(32, 32, 32), max_iter=1).fit(X, y)
    layers = deep.model_.layers
    assert len({id(layer) for layer in layers}) == len(layers)    # no shared buffers
    with pytest.raises(ValueError, match="init has 2 entries"):
        clf.set_params(init=["he_normal", "zeros"]).fit(X, y)


def test_float32_end_to_end_and_float64_on_request(digits):
    X, y = digits
    X32 = X.astype(np.float32)
    clf = LayerwiseClassifier(max_iter=2, random_state=0).fit(X32, y)
    assert clf.model_.dtype == np.float32
    assert clf.predict_proba(X32).dtype == np.float32 == clf.decision_function(X32).dtype
    assert clf.predict_proba(X).dtype == np.float64            # the caller's float64 is kept
    clf64 = LayerwiseClassifier(max_iter=2, dtype="float64", random_state=0).fit(X32, y)
    assert clf64.model_.dtype == np.float64 and clf64.predict_proba(X32).dtype == np.float64


def test_model_is_a_sequential_that_saves_and_loads(digits, tmp_path):
    X, y = digits
    clf = LayerwiseClassifier(max_iter=3, random_state=0).fit(X, y)
    assert isinstance(clf.model_, lw.Sequential)
    clf.model_.save(tmp_path / "digits.lw")
    model = lw.load(tmp_path / "digits.lw")
    np.testing.assert_array_equal(model.predict(X), clf.decision_function(X.astype(np.float32)))
    assert model.metadata["classes"] == list(range(10)) and model.metadata["task"] == \
        "classification"

    Xb, yb = X[y < 2], np.where(y[y < 2] == 1, "yes", "no")
    binary = LayerwiseClassifier(max_iter=3, random_state=0).fit(Xb, yb)
    binary.model_.save(tmp_path / "binary.lw")
    assert lw.load(tmp_path / "binary.lw").metadata["classes"] == ["no", "yes"]


def test_binary_outputs_are_consistent(digits):
    X, y = digits
    Xb, yb = X[y < 2], np.where(y[y < 2] == 1, "yes", "no")
    for loss in ("auto", "ce", lw.CrossEntropy(label_smoothing=0.1)):
        clf = LayerwiseClassifier(loss=loss, max_iter=5, random_state=0).fit(Xb, yb)
        d, P = clf.decision_function(Xb), clf.predict_proba(Xb)
        assert d.shape == (len(Xb),) and P.shape == (len(Xb), 2)
        np.testing.assert_array_equal(clf.predict(Xb), clf.classes_[(d > 0).astype(int)])
        np.testing.assert_allclose(np.exp(clf.predict_log_proba(Xb)), P, rtol=1e-5, atol=1e-6)
        assert clf.n_outputs_ == (1 if loss == "auto" else 2)
    assert clf.score(Xb, yb) > 0.95


@pytest.mark.parametrize("params,match", [
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes"),
    (dict(solver="newton"), "solver"),
    (dict(solver="lbfgs", learning_rate_init=0.0), "learning_rate_init"),
    (dict(momentum=1.5), "momentum"),
    (dict(nesterovs_momentum="yes"), "nesterovs_momentum"),
    (dict(learning_rate="sometimes"), "learning_rate"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(alpha=-1.0), "alpha"),
    (dict(shuffle=1), "shuffle"),
    (dict(beta_2=1.0), "beta_2"),
    (dict(max_fun=0), "max_fun"),
    (dict(early_stopping=True, validation_fraction=0.0), "validation_fraction > 0"),
    (dict(schedule="cosine", learning_rate="invscaling"), "not both"),
    (dict(activation="swish-ish"), "unknown activation"),
    (dict(dropout=1.5), "dropout"),
    (dict(output_activation="softmax"), "output_activation must be None"),
    (dict(loss="bce"), "binary or multi-label"),
    (dict(loss="mse"), "loss must be"),
    (dict(batch_size=0), "batch_size"),
    (dict(max_iter=0), "max_iter"),
    (dict(tol=-1.0), "tol"),
    (dict(dtype=np.float16), "float32 or float64"),
    (dict(schedule="sometimes"), "unknown schedule"),
    (dict(class_weight="uniform"), "class_weight"),
    (dict(random_state=-1), "random_state"),
])
def test_invalid_settings_raise_value_errors_at_fit(digits, params, match):
    X, y = digits[0][:50], digits[1][:50]
    est = LayerwiseClassifier(**params)                     # __init__ only stores
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)


def test_regressor_rejects_a_classification_loss():
    with pytest.raises(ValueError, match="regression loss"):
        LayerwiseRegressor(loss="ce").fit(np.zeros((4, 2)), np.arange(4.0))


def test_held_out_digits_accuracy_on_par_with_mlpclassifier(digits):
    """Same defaults as MLPClassifier (100 ReLU, Adam 1e-3, batch 200, <= 200 epochs, tol 1e-4);
    benchmarks/bench_sklearn.py compares 5-fold accuracy and time."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = digits
    Xtr, ytr, Xte, yte = X[:1400], y[:1400], X[1400:], y[1400:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = MLPClassifier(random_state=0).fit(Xtr, ytr).score(Xte, yte)
    ours = LayerwiseClassifier(random_state=0).fit(Xtr, ytr).score(Xte, yte)
    assert ours >= reference - 0.01 and ours > 0.9


def test_importing_layerwise_sklearn_leaves_core_imports_lean():
    code = ("import sys, layerwise; assert 'sklearn' not in sys.modules; "
            "import layerwise.sklearn; assert 'sklearn' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_warnings_in_normal_use(digits):
    """None but the ConvergenceWarning MLPClassifier also gives when max_iter ends a fit."""
    from sklearn.exceptions import ConvergenceWarning
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        LayerwiseClassifier(max_iter=2).fit(X, y).predict(X)
        LayerwiseRegressor(max_iter=2).fit(X, y.astype(float)).predict(X)


def test_feature_names_from_a_dataframe_are_kept(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.standard_normal((60, 3)), columns=["a", "b", "c"])
    y = (df["a"] > 0).map({True: "up", False: "down"})
    clf = LayerwiseClassifier(max_iter=3, random_state=0).fit(df, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c"]
    assert clf.model_.metadata["feature_names"] == ["a", "b", "c"]
    assert set(clf.predict(df)) <= {"up", "down"}
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df[["c", "b", "a"]])


def test_the_estimators_build_their_network_with_lw_mlp(monkeypatch):
    """One builder: the estimator's network is lw.mlp's, called with its settings."""
    import layerwise.sklearn as lsk
    calls = []
    real = lsk.mlp

    def spy(sizes, **kw):
        calls.append((list(sizes), kw))
        return real(sizes, **kw)
    monkeypatch.setattr(lsk, "mlp", spy)
    X = np.random.default_rng(0).normal(size=(40, 4))
    y = (X[:, 0] > 0).astype(int)
    est = LayerwiseClassifier((5, 3), activation=["tanh", "relu"], dropout=[0.0, 0.1],
                              norm="layer", max_iter=2, random_state=0).fit(X, y)
    (sizes, kw), = calls
    assert sizes == [4, 5, 3, 1] and kw["norm"] is lw.LayerNorm     # binary: one logit
    assert [type(a).__name__ for a in kw["activation"]] == ["Tanh", "ReLU"]
    assert [type(layer).__name__ for layer in est.model_.layers] == [
        "Dense", "LayerNorm", "Tanh", "Dense", "LayerNorm", "ReLU", "Dropout", "Dense"]


def test_partial_fit_refuses_other_classes_than_its_first_call():
    """scikit-learn's MLPClassifier raises when a later partial_fit names other classes; ours
    accepted them silently (issue 14)."""
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)
    est = LayerwiseClassifier(random_state=0).partial_fit(X, y, classes=[0, 1])
    est.partial_fit(X, y, classes=[1, 0])                  # the same classes, any order
    est.partial_fit(X, y)                                  # or none
    with pytest.raises(lw.ValidationError, match=r"classes=\[0, 1, 2\] is not the same as on "
                       r"the first call to partial_fit, \[0, 1\]"):
        est.partial_fit(X, y, classes=[0, 1, 2])


def test_best_loss_is_none_with_early_stopping_and_out_activation_is_named_as_sklearn():
    from sklearn.neural_network import MLPClassifier
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y2, y3 = (X[:, 0] > 0).astype(int), np.digitize(X[:, 0], [-0.5, 0.5])
    for y in (y2, y3, np.c_[y2, 1 - y2]):
        ours = LayerwiseClassifier(max_iter=3, random_state=0).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = MLPClassifier(max_iter=3, random_state=0).fit(X, y)
        assert ours.out_activation_ == theirs.out_activation_
    reg = LayerwiseRegressor(max_iter=3, random_state=0).fit(X, X[:, 0])
    assert reg.out_activation_ == "identity"
    es = LayerwiseClassifier(max_iter=5, early_stopping=True, random_state=0).fit(X, y2)
    assert es.best_loss_ is None and es.best_validation_score_ is not None
    assert LayerwiseClassifier(max_iter=3, random_state=0).fit(X, y2).best_loss_ > 0


def test_a_fit_that_reaches_max_epochs_before_tol_warns_as_mlpclassifier():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(ConvergenceWarning) as ours:
        LayerwiseClassifier(max_iter=3, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning) as theirs:
        MLPClassifier(max_iter=3, random_state=0).fit(X, y)
    assert str(ours[0].message) == str(theirs[0].message)
    with warnings.catch_warnings():                  # stopped by tol: no warning
        warnings.simplefilter("error", ConvergenceWarning)
        est = LayerwiseClassifier(max_iter=500, tol=1.0, n_iter_no_change=1,
                                  random_state=0).fit(X, y)
        assert est.n_iter_ < 500
        LayerwiseClassifier(max_iter=3, random_state=0).partial_fit(X, y, classes=[0, 1])


def test_verbose_prints_scikit_learns_iteration_lines(capsys):
    from sklearn.neural_network import MLPClassifier
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LayerwiseClassifier(max_iter=3, verbose=1, random_state=0).fit(X, y)
        ours = capsys.readouterr().out.splitlines()
        MLPClassifier(max_iter=3, verbose=True, random_state=0).fit(X, y)
        theirs = capsys.readouterr().out.splitlines()
    shape = [line.split("=")[0] for line in ours]
    assert shape == [line.split("=")[0] for line in theirs] == [
        f"Iteration {k}, loss " for k in (1, 2, 3)]
    assert all(len(line.split("= ")[1].split(".")[1]) == 8 for line in ours)     # %.8f
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LayerwiseClassifier(max_iter=4, verbose=1, early_stopping=True,
                            random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 4, loss = " in out and "Validation score: " in out


def test_multilabel_loss_is_summed_over_labels_as_mlpclassifier():
    """MLPClassifier sums the labels' log-losses (mean over samples); ours averaged them too,
    so each label's gradient was K times smaller and fits trailed (issue 14)."""
    from sklearn.metrics import log_loss
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    Y = (X[:, :3] + 0.3 * rng.normal(size=(80, 3)) > 0).astype(int)
    est = LayerwiseClassifier(max_iter=5, random_state=0, dtype="float64").fit(X, Y)
    assert est.model_.loss.sum_outputs and est.model_.loss.config()["sum_outputs"]
    P = est.predict_proba(X)
    by_label = sum(log_loss(Y[:, k], P[:, k], labels=[0, 1]) for k in range(3))
    loss = est.model_.loss
    Z = est.model_.predict(X)             # logits: the loss applies the sigmoid itself
    assert loss.forward(Z, Y.astype(np.float64)) == pytest.approx(by_label, rel=1e-6)
    two = LayerwiseClassifier(max_iter=3, random_state=0).fit(X, Y[:, 0])
    assert not two.model_.loss.sum_outputs              # one output: nothing to sum


# -- scikit-learn's parameters with scikit-learn's meaning (issue 14) ------------------------------
def _sigmoid64(z):
    return 1 / (1 + np.exp(-z))


def test_sklearn_worked_example():
    """scikit-learn's test_fit example (logistic units, alpha=0.1, one SGD step of η=0.1 on one
    row), checked against its hand-worked numbers and against the step written out here."""
    X, y = np.array([[0.6, 0.8, 0.7]]), np.array([0])
    W1 = np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.0]])
    W2, b1, b2 = np.array([[0.1], [0.2]]), np.array([0.1, 0.1]), np.array([1.0])
    clf = LayerwiseClassifier(hidden_layer_sizes=2, activation="logistic", solver="sgd",
                              learning_rate_init=0.1, alpha=0.1, momentum=0, random_state=1,
                              dtype="float64")
    clf.partial_fit(X, y, classes=[0, 1])                  # builds the network
    for view, value in zip(clf.coefs_ + clf.intercepts_, [W1, W2, b1, b2]):
        view[...] = value                                  # coefs_ are views of the weights
    clf.partial_fit(X, y)
    # the step by hand: σ units, δ₂ = o − y, δ₁ = δ₂W₂ᵀ ⊙ h(1 − h), g = Aᵀδ + αW (B = 1)
    h = _sigmoid64(X @ W1 + b1)
    o = _sigmoid64(h @ W2 + b2)
    d2 = o - y[:, None]
    d1 = (d2 @ W2.T) * h * (1 - h)
    expected = [W1 - 0.1 * (X.T @ d1 + 0.1 * W1), W2 - 0.1 * (h.T @ d2 + 0.1 * W2),
                b1 - 0.1 * d1[0], b2 - 0.1 * d2[0]]
    for got, want in zip(clf.coefs_ + clf.intercepts_, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_almost_equal(clf.coefs_[0], [[0.098, 0.195756], [0.2956664, 0.096008],
                                                   [0.4939998, -0.002244]], decimal=3)
    np.testing.assert_almost_equal(clf.predict_proba(X)[0, 1], 0.739, decimal=3)


@pytest.mark.parametrize("task", ["regression", "poisson", "multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_one_epoch_equals_scikit_learns_from_the_same_weights(task, solver):
    """From the same weights, one partial_fit epoch (two batches, so alpha/B and the loss's
    batch weighting are exercised) gives scikit-learn's parameters and its loss_ (the L2
    penalty included, squared error averaged over outputs). (A short last batch is decayed by
    α/batch_size where scikit-learn uses α/its rows: docs/sklearn.md.)"""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 4))
    T = X @ rng.normal(size=(4, 3))
    y = {"regression": T, "poisson": rng.poisson(np.exp(0.3 * T)),
         "multiclass": T.argmax(axis=1), "binary": (T[:, 0] > 0).astype(int),
         "multilabel": (T > 0).astype(int)}[task]
    kw = dict(hidden_layer_sizes=(5,), activation="tanh", solver=solver, alpha=0.3,
              batch_size=25, learning_rate_init=0.05, momentum=0.0, shuffle=False,
              random_state=0, epsilon=1e-30)   # Adam's ε: torch's (ours) adds it to √v̂,
    # scikit-learn's to √v; with a negligible ε the two are the same update
    regress = task in ("regression", "poisson")
    extra = {"loss": "poisson"} if task == "poisson" else {}
    ours = (LayerwiseRegressor if regress else LayerwiseClassifier)(dtype="float64", **kw,
                                                                    **extra)
    theirs = (MLPRegressor if regress else MLPClassifier)(**kw, **extra)
    classes = {} if regress else {"classes": np.arange(3) if task == "multilabel"
                                  else np.unique(y)}
    ours.partial_fit(X, y, **classes)
    theirs.partial_fit(X, y, **classes)
    for a, b in zip(theirs.coefs_ + theirs.intercepts_, ours.coefs_ + ours.intercepts_):
        a[...] = b
    if solver == "adam":                                   # restart both Adams from zero
        ours.optimizer_ = ours._make_optimizer(25)
        theirs._optimizer = None
        del theirs._optimizer
    ours.partial_fit(X, y)
    theirs.partial_fit(X, y)
    close = dict(rtol=1e-10, atol=1e-12)
    for a, b in zip(theirs.coefs_ + theirs.intercepts_, ours.coefs_ + ours.intercepts_):
        np.testing.assert_allclose(b, a, **close)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-10)
    assert ours.out_activation_ == theirs.out_activation_
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), **close)


def test_invscaling_rate():
    """learning_rate="invscaling": epoch e runs at η₀/(t + 1)^power_t, t the samples seen
    before it (scikit-learn updates the rate after each epoch from t_)."""
    X, y = [[3, 2], [1, 6], [5, 6], [-2, -4]], [1, 1, 1, 0]
    kw = dict(solver="sgd", hidden_layer_sizes=4, learning_rate="invscaling", power_t=0.25,
              learning_rate_init=0.2, random_state=0, tol=None)
    clf = LayerwiseClassifier(max_iter=3, **kw).fit(X, y)
    assert clf.optimizer_.lr == 0.2 / (8 + 1) ** 0.25          # the third epoch's rate
    warm = LayerwiseClassifier(max_iter=1, warm_start=True, **kw)
    warm.fit(X, y)
    assert warm.optimizer_.lr == 0.2
    warm.fit(X, y)
    assert warm.optimizer_.lr == 0.2 / (4 + 1) ** 0.25 and warm.t_ == 8


def test_adaptive_rate():
    """learning_rate="adaptive": each time the stopping rule fires, η ← η/5, until η <= 1e-6
    stops training (scikit-learn's rule); adam ignores learning_rate, as scikit-learn's."""
    X, y = [[3, 2], [1, 6]], [1, 0]
    clf = LayerwiseClassifier(tol=0.5, max_iter=3000, solver="sgd", learning_rate="adaptive",
                              learning_rate_init=1e-3, random_state=0).fit(X, y)
    assert clf.n_iter_ < 3000 and clf.optimizer_.lr <= 1e-6
    k = round(np.log(1e-3 / clf.optimizer_.lr) / np.log(5))
    assert clf.optimizer_.lr == pytest.approx(1e-3 / 5 ** k) and k == 5   # 1e-3/5⁴ = 1.6e-6
    adam = LayerwiseClassifier(tol=0.5, max_iter=3000, learning_rate="adaptive",
                               random_state=0).fit(X, y)
    assert adam.optimizer_.lr == 1e-3 and adam.n_iter_ == 12   # stops after 1 + 10 + 1 epochs


def test_loss_includes_the_l2_penalty_as_scikit_learn():
    """loss_ = data loss + ½·α·Σ_batches‖W‖²/n with the weights before each step: checked on a
    full batch from weights read before the epoch."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    reg = LayerwiseRegressor(hidden_layer_sizes=(4,), solver="sgd", alpha=2.0, batch_size=30,
                             learning_rate_init=0.01, dtype="float64", random_state=0)
    reg.partial_fit(X, y)
    W = [c.copy() for c in reg.coefs_]
    data = 0.5 * np.mean((reg.predict(X) - y) ** 2)
    reg.partial_fit(X, y)
    penalty = 0.5 * 2.0 * sum(float((w * w).sum()) for w in W) / 30
    assert reg.loss_ == pytest.approx(data + penalty, rel=1e-12)
    assert penalty > 0.01 * data


def test_a_diverging_fit_raises_scikit_learns_error_and_stays_usable():
    X = np.random.default_rng(0).normal(size=(60, 3)) * 1e3
    y = X @ np.array([1.0, -2.0, 0.5])
    reg = LayerwiseRegressor(solver="sgd", learning_rate_init=10.0, activation="identity",
                             max_iter=20, random_state=0)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        reg.fit(X, y)
    assert reg.n_iter_ >= 1 and len(reg.loss_curve_) == reg.n_iter_
    assert np.isnan(reg.loss_curve_[-1])
    assert all(np.isfinite(c).all() for c in reg.coefs_)      # the last finite step's weights
    es = LayerwiseRegressor(solver="sgd", learning_rate_init=10.0, activation="identity",
                            max_iter=20, early_stopping=True, random_state=0)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        es.fit(X, y)
    assert np.isnan(es.validation_scores_[-1]) and es.n_iter_ == len(es.validation_scores_)
    assert np.isfinite(es.predict(X)).all()


def test_scikit_learns_rules_for_partial_fit_warm_start_and_early_stopping():
    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 3
    assert not hasattr(LayerwiseClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        LayerwiseClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    warm = LayerwiseClassifier(max_iter=2, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning):
        warm.fit(X, y)
    with pytest.raises(ValueError, match=r"warm_start can only be used where `y` has the same "
                                         r"classes.*Previously got \[0 1 2\], `y` has \[0 1\]"):
        warm.fit(X, y % 2)
    with pytest.raises(ValueError, match="least populated class"):     # stratified, as theirs
        LayerwiseClassifier(early_stopping=True).fit(X[:4], [0, 0, 0, 1])
    from sklearn.utils._param_validation import InvalidParameterError
    with pytest.raises(InvalidParameterError) as info:
        LayerwiseClassifier(momentum=2.0).fit(X, y)
    assert isinstance(info.value, lw.ValidationError)        # and layerwise's own error
    inf = LayerwiseClassifier(solver="sgd", tol=1e9, n_iter_no_change=np.inf, max_iter=30,
                              random_state=0)
    with pytest.warns(ConvergenceWarning):
        inf.fit(X, y)
    assert inf.n_iter_ == 30 and inf._no_improvement_count == 29
    for shuffle in (True, False):
        a, b = (LayerwiseRegressor(hidden_layer_sizes=2, max_iter=1, batch_size=1,
                                   shuffle=shuffle, random_state=0, tol=None)
                .fit(X, X[:, 0]) for _ in range(2))
        np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    with pytest.warns(UserWarning, match="It is going to be clipped"):
        LayerwiseRegressor(batch_size=100, max_iter=1, tol=None).fit(X, X[:, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # tol=None asks for every epoch: no
        LayerwiseRegressor(max_iter=2, tol=None).fit(X, X[:, 0])   # ConvergenceWarning


def test_an_estimator_pickled_with_the_old_parameter_names_loads_under_the_new_ones(digits):
    """Before issue 14 the estimators took optimizer=, learning_rate=<float>, max_epochs=,
    weight_decay=, nesterov=: such a pickle loads with scikit-learn's names and predicts as
    it did."""
    X, y = digits[0][:300], digits[1][:300]
    est = LayerwiseClassifier(max_iter=3, solver="sgd", learning_rate_init=0.05,
                              random_state=0, tol=None).fit(X, y)
    state = est.__getstate__()
    for new in ("alpha", "learning_rate", "power_t", "shuffle", "beta_1", "beta_2", "epsilon",
                "max_fun"):
        del state[new]
    state.update(optimizer=state.pop("solver"), max_epochs=state.pop("max_iter"),
                 nesterov=state.pop("nesterovs_momentum"),
                 learning_rate=state.pop("learning_rate_init"), weight_decay=0.001)
    old = LayerwiseClassifier.__new__(LayerwiseClassifier)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    params = old.get_params()
    assert params["solver"] == "sgd" and params["max_iter"] == 3
    assert params["learning_rate_init"] == 0.05 and params["learning_rate"] == "constant"
    assert params["alpha"] == pytest.approx(0.001 * 200)      # λ·B, B = min(200, 300 rows)
    assert params["shuffle"] is True and params["max_fun"] == 15000
    np.testing.assert_array_equal(old.predict_proba(X), est.predict_proba(X))
    repr(old)
    old.set_params(warm_start=True).fit(X, y)                  # and it trains on


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_trains_and_predicts_as_its_dense_rows(fmt):
    """CSR or CSC X (TfidfVectorizer's, OneHotEncoder's output) gives the network of its dense
    rows, for the stochastic solvers and L-BFGS, in float64 to 1e-10."""
    import scipy.sparse as sp
    rng = np.random.default_rng(0)
    X = sp.random(120, 40, density=0.1, format=fmt, random_state=0, dtype=np.float64)
    y = (np.asarray(X.sum(axis=1)).ravel() > np.median(np.asarray(X.sum(axis=1)))).astype(int)
    y[rng.permutation(120)[:10]] ^= 1
    for solver in ("adam", "sgd", "lbfgs"):
        kw = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=20, batch_size=32,
                  random_state=0, dtype="float64", tol=None)
        sparse = LayerwiseClassifier(**kw).fit(X, y)
        dense = LayerwiseClassifier(**kw).fit(X.toarray(), y)
        for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(sparse.predict_proba(X), dense.predict_proba(X.toarray()),
                                   rtol=1e-10)


def test_partial_fit_keeps_adams_state_across_chunks_of_different_sizes():
    """alpha/B follows each call's batch size, but a new B must not start Adam afresh: the
    optimizer, its moments and step count carry over from chunk to chunk."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(250, 4)), rng.integers(0, 3, 250)
    est = LayerwiseClassifier(hidden_layer_sizes=(5,), random_state=0)
    est.partial_fit(X[:150], y[:150], classes=[0, 1, 2])     # B = 150
    opt, t = est.optimizer_, est.optimizer_.t
    est.partial_fit(X[150:], y[150:])                       # B = 100
    assert est.optimizer_ is opt and opt.t == t + 1
    assert opt.weight_decay == pytest.approx(1e-4 / 100)    # alpha / this call's B


def test_lbfgs_loss_is_scikit_learns_objective_at_the_end():
    """solver="lbfgs": loss_ = ½·mean over rows and outputs of (ŷ − y)² + ½·(α/n)·‖W‖²,
    computed here from predict and coefs_."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    Y = X @ rng.normal(size=(3, 2)) + 0.1 * rng.normal(size=(60, 2))
    reg = LayerwiseRegressor((4,), solver="lbfgs", alpha=0.5, max_iter=30, tol=None,
                             dtype="float64", random_state=0).fit(X, Y)
    penalty = 0.5 * 0.5 / 60 * sum(float((W * W).sum()) for W in reg.coefs_)
    assert reg.loss_ == pytest.approx(0.5 * np.mean((reg.predict(X) - Y) ** 2) + penalty,
                                      rel=1e-9)
    assert reg.loss_curve_[-1] == pytest.approx(reg.loss_, rel=1e-9)
    assert len(reg.loss_curve_) == reg.n_iter_
