"""LayerwiseClassifier next to scikit-learn's MLPClassifier on the digits data set.

Part 1 trains both with the same recipe (100 ReLU units, Adam 1e-3, batches of 200, at most 200
epochs, the same stopping rule) and prints test accuracy and fit time. Part 2 shows what
LayerwiseClassifier adds: dropout, a validation loss per epoch beside the training loss,
warm starts that keep Adam's moments, and the trained network saved as a model file.

    python examples/compare_mlpclassifier.py
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import layerwise as lw
from layerwise.sklearn import LayerwiseClassifier


def timed_fit(estimator, X, y):
    """Fit and return (estimator, seconds)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)      # MLPClassifier at max_iter
        estimator.fit(X, y)
    return estimator, time.perf_counter() - t0


def main() -> None:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)

    # -- 1. the same recipe, side by side ------------------------------------------------------
    print("1. same recipe: StandardScaler, 100 ReLU units, Adam 1e-3, batch 200, <= 200 epochs")
    recipe = {"hidden_layer_sizes": (100,), "batch_size": 200, "tol": 1e-4,
              "n_iter_no_change": 10, "random_state": 0}
    candidates = {
        # the same parameters for both: LayerwiseClassifier takes MLPClassifier's
        "MLPClassifier": MLPClassifier(learning_rate_init=1e-3, max_iter=200, **recipe),
        "LayerwiseClassifier": LayerwiseClassifier(learning_rate_init=1e-3, max_iter=200,
                                                   **recipe),
    }
    for name, est in candidates.items():
        pipe, seconds = timed_fit(make_pipeline(StandardScaler(), est), X_train, y_train)
        print(f"   {name:<20} test accuracy {pipe.score(X_test, y_test):.4f}   "
              f"fit {seconds:6.3f} s   epochs {pipe[-1].n_iter_}")

    # -- 2. what MLPClassifier does not have ---------------------------------------------------
    print("\n2. dropout, validation loss per epoch, early stopping on the best epoch")
    clf = make_pipeline(StandardScaler(), LayerwiseClassifier(
        hidden_layer_sizes=(256,), dropout=0.2, early_stopping=True, n_iter_no_change=20,
        max_iter=300, random_state=0))
    clf, seconds = timed_fit(clf, X_train, y_train)
    net = clf[-1]
    best = max(range(net.n_iter_), key=net.validation_scores_.__getitem__)
    print(f"   {net.n_iter_} epochs in {seconds:.2f} s; best epoch {best + 1}: training loss "
          f"{net.loss_curve_[best]:.4f}, validation loss {net.validation_loss_curve_[best]:.4f}, "
          f"validation accuracy {net.validation_scores_[best]:.4f}")
    print(f"   test accuracy with the best epoch's weights: {clf.score(X_test, y_test):.4f}")

    print("\n3. warm_start continues with the optimizer's state (Adam's moments are kept)")
    scaler = StandardScaler().fit(X_train)
    Xs_train, Xs_test = scaler.transform(X_train), scaler.transform(X_test)
    warm = LayerwiseClassifier(max_iter=5, warm_start=True, tol=None, random_state=0)
    for _ in range(4):
        warm.fit(Xs_train, y_train)
        print(f"   after {len(warm.loss_curve_):2d} epochs ({warm.optimizer_.t:3d} Adam steps): "
              f"loss {warm.loss_:.4f}, test accuracy {warm.score(Xs_test, y_test):.4f}")
    once = LayerwiseClassifier(max_iter=20, tol=None, random_state=0).fit(Xs_train, y_train)
    same = all((p.value == q.value).all() for p, q in zip(once.model_.parameters(),
                                                           warm.model_.parameters()))
    print(f"   identical, bit for bit, to one 20-epoch fit: {same}")

    print("\n4. the trained network is a layerwise model: save it, load it without pickle")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits.lw"
        warm.model_.save(path)
        model = lw.load(path)
        agree = (model.predict_classes(Xs_test) == warm.predict(Xs_test)).all()
        print(f"   {path.name}: {path.stat().st_size} bytes, classes "
              f"{model.metadata['classes']}, predictions agree: {agree}")
        model.summary(print_fn=lambda text: print("   " + text.replace("\n", "\n   ")))


if __name__ == "__main__":
    main()
