"""Inference is thread-safe; training buffers belong to one ``fit`` at a time (issue 10, item 2).

Every threaded test runs 8 threads x 200 calls on ONE model, each call with its own input (of
its own batch size, so buffers keyed by shape would be resized under the other threads), started
together behind a barrier, and compares every result with the single-threaded one, bit for bit.
A concurrent ``fit`` is held inside training by a callback (or optimizer) that waits on an
Event, so the refusal is tested deterministically, not by sleeping and hoping.
"""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import layerwise as lw
from layerwise import _blas
from layerwise.activations import ACTIVATIONS

THREADS, CALLS = 8, 200
N_IN, N_OUT = 12, 4
DTYPES = [np.float32, np.float64]
WAIT = 30.0                     # seconds an Event wait may take before the test fails


def hammer(call, args):
    """Run ``call(*args[i])`` for every i, split over THREADS threads started together."""
    assert len(args) == THREADS * CALLS
    results: list = [None] * len(args)
    errors: list = []
    start = threading.Barrier(THREADS)

    def work(t):
        start.wait()
        try:
            for i in range(t, len(args), THREADS):
                results[i] = call(*args[i])
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return results


def inputs(seed=1, n_in=N_IN, k=N_OUT):
    """THREADS x CALLS different inputs with 1..40 rows, and integer labels for each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(THREADS * CALLS):
        B = int(rng.integers(1, 41))
        out.append((rng.standard_normal((B, n_in)) * 3 + 1, rng.integers(0, k, B)))
    return out


def trained(dtype, loss="ce"):
    """Standardize, Dense, ReLU, Dropout, Dense, Tanh, Dense: trained briefly with ``fit``."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, N_IN)) * 3 + 1
    y = rng.integers(0, N_OUT, 300)
    model = lw.Sequential(
        lw.Standardize.fit(X, dtype=dtype),
        lw.Dense(N_IN, 32, init="he", dtype=dtype, rng=1), lw.ReLU(), lw.Dropout(0.3, rng=2),
        lw.Dense(32, 16, dtype=dtype, rng=3), lw.Tanh(),
        lw.Dense(16, N_OUT, dtype=dtype, rng=4))
    target = y if loss == "ce" else np.eye(N_OUT)[y]
    model.fit(X, target, loss=loss, epochs=2, batch_size=32, rng=0, verbose=0)
    return model


# -- predict, predict_proba, predict_classes, evaluate from many threads ------------------------
METHODS = {
    "predict": lambda m, X, y: m.predict(X),
    "predict_small_chunks": lambda m, X, y: m.predict(X, batch_size=7),
    "predict_proba": lambda m, X, y: m.predict_proba(X),
    "predict_classes": lambda m, X, y: m.predict_classes(X),
    "evaluate": lambda m, X, y: m.evaluate(X, y),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_inference_from_many_threads_equals_single_threaded(dtype, method):
    model = trained(dtype)
    call = METHODS[method]
    args = [(model, X, y) for X, y in inputs()]
    expected = [call(*a) for a in args]
    got = hammer(call, args)
    wrong = [i for i, (g, e) in enumerate(zip(got, expected)) if not (
        g == e if isinstance(e, dict) else np.array_equal(g, e))]
    assert not wrong, f"{len(wrong)} of {len(args)} threaded results differ from single-threaded"


@pytest.mark.parametrize("loss", ["bce", "mse", "mae", "huber"])
def test_evaluate_from_many_threads_with_every_loss(loss):
    model = trained(np.float32, loss="bce" if loss == "bce" else "mse")
    args = [(model, X, np.eye(N_OUT)[y], loss) for X, y in inputs()]
    call = lambda m, X, y, L: m.evaluate(X, y, loss=L)  # noqa: E731
    expected = [call(*a) for a in args]
    assert hammer(call, args) == expected


# -- inference computes what forward computes, and writes nothing --------------------------------
def _layers(dtype):
    rng = np.random.default_rng(0)
    yield lw.Dense(6, 5, dtype=dtype, rng=0)
    yield lw.Dense(6, 5, bias=False, dtype=dtype, rng=0)
    yield lw.Dropout(0.4, rng=0)
    yield lw.Standardize(rng.standard_normal(6), rng.random(6) + 0.5, dtype=dtype)
    for _, make in sorted(ACTIVATIONS.items()):
        yield make()
    yield lw.GELU(approximate="tanh")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [1, 7, 64, 700])
def test_every_layer_infers_exactly_what_forward_gives(dtype, B):
    """Same BLAS calls in the same order: bit-identical, for every layer and both dtypes."""
    A = (np.random.default_rng(B).standard_normal((B, 6)) * 4).astype(dtype)
    for layer in _layers(dtype):
        out = layer.infer(A)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, layer.forward(A, training=False), err_msg=repr(layer))


def _state(obj):
    """Every attribute of obj and of its buffer dict, by identity (and arrays by value)."""
    items = {k: (id(v), v.copy() if isinstance(v, np.ndarray) else None)
             for k, v in vars(obj).items()}
    items.update({("_buf", k): (id(v), v.copy()) for k, v in getattr(obj, "_buf", {}).items()})
    return items


def _same_state(before, after):
    if before.keys() != after.keys():
        return False
    return all(b[0] == a[0] and (b[1] is None or np.array_equal(b[1], a[1], equal_nan=True))
               for b, a in ((before[k], after[k]) for k in before))


@pytest.mark.parametrize("dtype", DTYPES)
def test_inference_writes_nothing_on_layers_model_or_loss(dtype):
    model = trained(dtype)
    X, y = inputs()[0]
    model.forward(X[:3].astype(dtype), training=True)        # training buffers in some state
    before = [_state(layer) for layer in model.layers]
    before_model, before_loss = _state(model), _state(model.loss)
    model.predict(X)
    model.predict_proba(X)
    model.predict_classes(X)
    model.evaluate(X, y)
    for i, (layer, b) in enumerate(zip(model.layers, before)):
        assert _same_state(b, _state(layer)), f"inference changed layer {i} ({layer!r})"
    assert _same_state(before_model, _state(model)), "inference changed the model"
    assert _same_state(before_loss, _state(model.loss)), "evaluate changed the model's loss"


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_equals_the_buffered_forward(dtype):
    model = trained(dtype)
    X = (np.random.default_rng(3).standard_normal((2500, N_IN)) * 3).astype(dtype)
    np.testing.assert_array_equal(model.predict(X, batch_size=1000), np.concatenate(
        [model.forward(X[s:s + 1000]).copy() for s in range(0, 2500, 1000)]))
    np.testing.assert_array_equal(model.infer(X[:5]), model.forward(X[:5]))


class Scale(lw.Layer):
    """A user's layer that defines only forward: inference falls back to it, serialised."""

    kind = "scale"

    def forward(self, A, training=False):
        from layerwise._utils import buffer
        out = buffer(self._buf, "A", A.shape[0], A.shape[1:], A.dtype)
        np.multiply(A, 2.0, out=out)
        return out


def test_a_custom_layer_with_only_forward_is_still_safe():
    model = lw.Sequential(lw.Dense(N_IN, 8, rng=0), Scale(), lw.Dense(8, N_OUT, rng=1))
    args = [(X,) for X, _ in inputs()]
    expected = [model.predict(*a) for a in args]
    got = hammer(model.predict, args)
    assert all(np.array_equal(g, e) for g, e in zip(got, expected))


# -- the scikit-learn estimators -----------------------------------------------------------------
@pytest.mark.sklearn
@pytest.mark.sklearn
@pytest.mark.parametrize("dtype", DTYPES)
def test_sklearn_estimators_predict_from_many_threads(dtype):
    from layerwise.sklearn import LayerwiseClassifier, LayerwiseRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, N_IN))
    clf = LayerwiseClassifier((16,), dropout=0.2, max_iter=3, dtype=dtype, random_state=0
                              ).fit(X, rng.integers(0, 3, 300))
    reg = LayerwiseRegressor((16,), max_iter=3, dtype=dtype, random_state=0
                             ).fit(X, rng.standard_normal(300))
    args = [(X,) for X, _ in inputs()]
    for call in (clf.predict, clf.predict_proba, reg.predict):
        expected = [call(*a) for a in args]
        got = hammer(call, args)
        assert all(np.array_equal(g, e) for g, e in zip(got, expected)), call


def test_overlapping_blas_thread_limits_restore_the_original_count():
    """threadpoolctl's limit is process-wide and restores what it saw on entry: with thread A
    in, B in (seeing A's 1), A out, B out, B's exit would restore A's 1 for good."""
    model = lw.mlp([4, 8, 2], rng=0)                  # small: threads_for limits to one thread
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info()
                if i["user_api"] == "blas"}

    def thread_a():
        with _blas.threads_for(model.macs()):
            a_in.set()
            assert b_in.wait(WAIT)
        a_out.set()

    original = blas_threads()
    if max(original.values(), default=1) < 2:
        pytest.skip("BLAS runs on one thread here: a lost limit could not be told apart")
    th = threading.Thread(target=thread_a)
    th.start()
    assert a_in.wait(WAIT)
    with _blas.threads_for(model.macs()):
        b_in.set()
        assert a_out.wait(WAIT)
    th.join()
    assert blas_threads() == original


# -- predict during fit, and a second fit refused ------------------------------------------------
class Hold(lw.Callback):
    """Holds fit inside training after its first step until ``release`` is set."""

    def __init__(self):
        self.inside, self.release = threading.Event(), threading.Event()

    def on_batch_end(self, state, loss):
        self.inside.set()
        assert self.release.wait(WAIT), "the test never released the first fit"


def _train_in_thread(model, X, y, callbacks, **kw):
    box: dict = {}

    def run():
        try:
            box["history"] = model.fit(X, y, epochs=2, batch_size=50, rng=0, verbose=0,
                                       callbacks=callbacks, **kw)
        except BaseException as exc:  # checked by the test
            box["error"] = exc
    th = threading.Thread(target=run)
    th.start()
    return th, box


def _data(n=200):
    rng = np.random.default_rng(5)
    return rng.standard_normal((n, N_IN)), rng.integers(0, N_OUT, n)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_second_fit_on_a_training_model_is_refused_at_once(dtype):
    model = trained(dtype)
    X, y = _data()
    hold = Hold()
    th, box = _train_in_thread(model, X, y, [hold])
    try:
        assert hold.inside.wait(WAIT)
        params = [p.value.copy() for p in model.parameters()]
        for second in (lambda: model.fit(X, y, epochs=1, verbose=0),
                       lambda: lw.training.fit(model, X, y, epochs=1, verbose=0),
                       lambda: lw.training.fit(model=model, X=X, y=y, epochs=1, verbose=0)):
            with pytest.raises(lw.LayerwiseError, match="already being trained") as info:
                second()
            assert isinstance(info.value, lw.BusyError)
            assert th.is_alive() and not hold.release.is_set()   # refused, not waited
        for p, before in zip(model.parameters(), params):       # nothing was changed
            np.testing.assert_array_equal(p.value, before)
        # the model stays copyable and picklable while it trains; a copy can be trained
        copy.deepcopy(model)
        pickle.loads(pickle.dumps(model))
        copy.deepcopy(model).fit(X, y, epochs=1, verbose=0)
    finally:
        hold.release.set()
        th.join()
    assert "error" not in box and len(box["history"]) == 2     # the first fit finished normally
    model.fit(X, y, epochs=1, verbose=0)                        # and released the model


def test_predict_during_fit_sees_the_parameters_of_that_moment_and_does_not_wait():
    model = trained(np.float32)
    X, y = _data()
    hold = Hold()
    th, box = _train_in_thread(model, X, y, [hold])
    try:
        assert hold.inside.wait(WAIT)
        snapshot = copy.deepcopy(model)                       # the parameters after the first step
        np.testing.assert_array_equal(model.predict(X), snapshot.predict(X))
        assert model.evaluate(X, y) == snapshot.evaluate(X, y)
        assert th.is_alive() and not hold.release.is_set()
    finally:
        hold.release.set()
        th.join()
    assert "error" not in box


def test_concurrent_inference_does_not_change_training():
    """Training while 4 threads predict and evaluate on the same model gives the same network,
    bit for bit, as training alone."""
    X, y = _data(600)
    alone = trained(np.float32)
    busy = copy.deepcopy(alone)
    h_alone = alone.fit(X, y, epochs=3, batch_size=20, rng=0, verbose=0,
                        validation_data=(X[:100], y[:100]))
    stop = threading.Event()
    queries = inputs(seed=9)

    def query(t):
        i = t
        while not stop.is_set():
            Xq, yq = queries[i % len(queries)]
            busy.predict(Xq)
            busy.evaluate(Xq, yq)
            i += 4
    threads = [threading.Thread(target=query, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    try:
        h_busy = busy.fit(X, y, epochs=3, batch_size=20, rng=0, verbose=0,
                          validation_data=(X[:100], y[:100]))
    finally:
        stop.set()
        for th in threads:
            th.join()
    for p, q in zip(alone.parameters(), busy.parameters()):
        np.testing.assert_array_equal(p.value, q.value)
    strip = lambda h: {k: v for k, v in h.history.items() if k != "seconds"}  # noqa: E731
    assert strip(h_alone) == strip(h_busy)


class Boom(lw.Callback):
    def __init__(self, exc):
        self.exc = exc

    def on_batch_end(self, state, loss):
        raise self.exc


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_fit_that_fails_releases_the_model(exc):
    model = trained(np.float32)
    X, y = _data()
    with pytest.raises(type(exc)):
        model.fit(X, y, epochs=1, verbose=0, callbacks=[Boom(exc)])
    model.fit(X, y, epochs=1, verbose=0)              # not refused: the first released it


def test_a_refused_fit_leaves_the_running_one_holding_the_model():
    """The refused call must not release the model it never held."""
    model = trained(np.float32)
    X, y = _data()
    hold = Hold()
    th, box = _train_in_thread(model, X, y, [hold])
    try:
        assert hold.inside.wait(WAIT)
        for _ in range(2):
            with pytest.raises(lw.BusyError):
                model.fit(X, y, epochs=1, verbose=0)
    finally:
        hold.release.set()
        th.join()
    assert "error" not in box


class HoldingSGD(lw.SGD):
    """An optimizer that holds the estimator's fit inside its first step. The events are class
    attributes: the estimator deep-copies its optimizer, and Events cannot be copied."""

    inside = threading.Event()
    release = threading.Event()

    def step(self, params):
        HoldingSGD.inside.set()
        assert HoldingSGD.release.wait(WAIT)
        super().step(params)


@pytest.mark.sklearn
@pytest.mark.sklearn
@pytest.mark.parametrize("second", ["fit", "partial_fit"])
def test_sklearn_fit_or_partial_fit_during_a_fit_is_refused(second):
    from layerwise.sklearn import LayerwiseClassifier

    X, y = _data()
    clf = LayerwiseClassifier((8,), solver=HoldingSGD(0.05), max_iter=2, random_state=0)
    if second == "partial_fit":                              # a fitted model to continue
        HoldingSGD.release.set()
        clf.fit(X, y)
    HoldingSGD.inside.clear()
    HoldingSGD.release.clear()
    box: dict = {}

    def run():
        try:
            clf.partial_fit(X, y) if second == "partial_fit" else clf.fit(X, y)
        except BaseException as exc:
            box["error"] = exc
    th = threading.Thread(target=run)
    th.start()
    try:
        assert HoldingSGD.inside.wait(WAIT)
        with pytest.raises(lw.BusyError, match="already being trained"):
            clf.fit(X, y)
        with pytest.raises(lw.BusyError, match="already being trained"):
            clf.partial_fit(X, y)
        clf.predict(X)                                 # inference does not wait for the fit
        assert th.is_alive() and not HoldingSGD.release.is_set()
        pickle.loads(pickle.dumps(clf))
    finally:
        HoldingSGD.release.set()
        th.join()
    assert "error" not in box
    clf.partial_fit(X, y)                              # released


def test_explain_and_gradcheck_leave_the_model_and_its_loss_alone():
    """They run on copies, so they can never disturb a fit of the model in another thread."""
    model = trained(np.float64)
    X, y = inputs()[0]
    before = [_state(layer) for layer in model.layers]
    before_loss = _state(model.loss)
    lw.explain.explain(model, model.loss, X, y)
    lw.gradcheck(model, model.loss, X[:3], y[:3])
    for i, (layer, b) in enumerate(zip(model.layers, before)):
        assert _same_state(b, _state(layer)), f"layer {i} ({layer!r}) changed"
    assert _same_state(before_loss, _state(model.loss)), "the model's loss changed"
