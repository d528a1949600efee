"""scikit-learn's own MLP tests, run against LayerwiseClassifier and LayerwiseRegressor.

The test file ships inside the installed scikit-learn (sklearn/neural_network/tests/
test_mlp.py). It is read as it is, its one import of MLPClassifier and MLPRegressor is pointed
at layerwise's estimators, and every test function it defines runs here, in this module. A test
that cannot apply is skipped below with a one-line reason: those reaching into scikit-learn's
private internals, and a few where layerwise deliberately differs (docs/sklearn.md lists them).
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

_SPEC = importlib.util.find_spec("sklearn.neural_network.tests.test_mlp")
if _SPEC is None or _SPEC.origin is None:        # a scikit-learn installed without its tests
    pytest.skip("scikit-learn's test_mlp.py is not installed", allow_module_level=True)
_ORIGIN: str = _SPEC.origin
_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
_SOURCE = pathlib.Path(_ORIGIN).read_text(encoding="utf-8")
assert _SOURCE.count(_IMPORT) == 1, f"{_ORIGIN} no longer imports the MLPs in one line"
_SOURCE = _SOURCE.replace(
    _IMPORT, "from layerwise.sklearn import LayerwiseClassifier as MLPClassifier, "
             "LayerwiseRegressor as MLPRegressor")
exec(compile(_SOURCE, _ORIGIN, "exec"), globals())      # the tests land in this module


@pytest.fixture
def global_random_seed() -> int:
    """scikit-learn's conftest fixture (its default seed when no range is asked for)."""
    return 42


#: test -> why it cannot apply to layerwise's estimators
SKIPPED = {
    "test_fit": "assigns scikit-learn's private training state (_coef_velocity, coefs_ as a "
                "plain list) before partial_fit; the same worked example is "
                "tests/test_sklearn.py::test_sklearn_worked_example",
    "test_gradient": "calls scikit-learn's private _loss_grad_lbfgs; layerwise's L-BFGS "
                     "objective is gradient-checked in tests/test_lbfgs.py",
    "test_learning_rate_warmstart": "reads scikit-learn's private _optimizer.learning_rate; "
                                    "the same rule is tested on optimizer_.lr in "
                                    "tests/test_sklearn.py::test_invscaling_rate",
    "test_adaptive_learning_rate": "reads scikit-learn's private _optimizer.learning_rate; the "
                                   "same rule is tested on optimizer_.lr in "
                                   "tests/test_sklearn.py::test_adaptive_rate",
    "test_nonfinite_params": "X of 1.8e308 overflows the default float32 network and is refused "
                             "up front, with its own message, before any solver runs",
    "test_lbfgs_regression_maxfun": "from layerwise's initial weights L-BFGS converges on the "
                                    "linear ('identity') model in 9 iterations, before "
                                    "max_fun=10 runs out, so no ConvergenceWarning is due; "
                                    "max_fun: tests/test_lbfgs.py",
    "test_predict_proba_multilabel": "compares argmax of predict_proba and predict_log_proba, "
                                     "which tie only in scikit-learn's log(predict_proba); "
                                     "layerwise's log-probabilities come from the logits and stay "
                                     "exact where probabilities round to 1.0",
    "test_early_stopping_stratified": "the same refusal, but scikit-learn's message names the "
                                      "class as the label binarizer's 'True'; layerwise's "
                                      "names the class",
}

for _name, _reason in SKIPPED.items():
    globals()[_name] = pytest.mark.skip(reason=_reason)(globals()[_name])


def _skip_cases(name: str, reason: str, when: object) -> None:
    """Skip the parametrized cases of test ``name`` for which ``when(**kwargs)`` is true."""
    test = globals()[name]

    @functools.wraps(test)
    def wrapper(*args: object, **kwargs: object) -> object:
        if when(**kwargs):  # type: ignore[operator]
            pytest.skip(reason)
        return test(*args, **kwargs)
    globals()[name] = wrapper


_skip_cases("test_mlp_param_dtypes", "layerwise trains in float32 whatever X's dtype "
            "(dtype=np.float64 gives float64 parameters)",
            lambda dtype, Estimator: dtype == np.float64)
_skip_cases("test_preserve_feature_names", "y has a single class, which LayerwiseClassifier "
            "refuses (it cannot learn a decision from one class)",
            lambda Estimator: Estimator is MLPClassifier)  # noqa: F821  (from the exec)
