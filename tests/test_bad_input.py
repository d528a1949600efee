"""Every bad input the reliability issue lists, through the Python API and through the CLI.

The API raises a ``lw.LayerwiseError`` subclass whose message names what was expected and what
was received (and a ValueError or TypeError where Python convention expects one); the CLI turns
the same input into one line on stderr, ``layerwise: error: ...``, a non-zero exit status and no
traceback.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise.cli import main
from test_checkpoints import StopAt  # Ctrl-C after a number of steps

# -- data and models ----------------------------------------------------------------------------
_rng = np.random.default_rng(0)
X = _rng.standard_normal((30, 4)).astype(np.float32)
Y = np.arange(30) % 3                                       # three classes, 0..2
X_NAN = X.copy()
X_NAN[[2, 5, 7], [1, 0, 3]] = [np.nan, np.inf, -np.inf]     # 3 bad values, the first in row 2


def net(n_out: int = 3, **kw) -> lw.Sequential:
    return lw.mlp([4, 8, n_out], rng=0, **kw)


@pytest.fixture(scope="module")
def trained() -> lw.Sequential:
    model = net()
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0, rng=0)
    return model


def fit(model: lw.Sequential | None = None, X_=X, y=Y, **kw):
    kw = {"epochs": 1, "batch_size": 8, "verbose": 0, "rng": 0, **kw}
    return (model or net()).fit(X_, y, **kw)


def expect(exc: type[Exception], call, *words: str) -> str:
    """``call()`` raises ``exc`` and the message contains every one of ``words``."""
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    missing = [w for w in words if w not in msg]
    assert not missing, f"{missing} not in the message: {msg}"
    return msg


# -- the error classes --------------------------------------------------------------------------
def test_error_classes_follow_python_conventions():
    assert issubclass(lw.ValidationError, lw.LayerwiseError)
    assert issubclass(lw.ValidationError, ValueError)
    assert issubclass(lw.ConfigError, lw.LayerwiseError)
    assert issubclass(lw.ConfigError, TypeError)
    assert issubclass(lw.DataError, ValueError) and issubclass(lw.DataError, lw.LayerwiseError)
    assert issubclass(lw.ModelFileError, ValueError)
    assert issubclass(lw.ModelFileError, lw.LayerwiseError)
    assert issubclass(lw.DivergenceError, lw.LayerwiseError)


def test_bad_values_are_value_errors_and_unknown_names_are_type_errors(trained):
    with pytest.raises(ValueError):                      # plain `except ValueError` catches them
        trained.predict(X_NAN)
    with pytest.raises(ValueError):
        lw.SGD(lr=0)
    with pytest.raises(TypeError):                       # an unknown name is a ConfigError
        lw.mlp([4, 8, 3], activation="swish")
    with pytest.raises(TypeError):
        fit(loss="hinge")


# -- the Python API -----------------------------------------------------------------------------
def _onehot(width: int) -> np.ndarray:
    return np.eye(width, dtype=np.float32)[Y % width]


API = {
    # NaN or infinite values: the count and the first row
    "NaN in X, fit": (lw.ValidationError, lambda m: fit(X_=X_NAN),
                      ["3 NaN or infinite", "first in row 2"]),
    "NaN in X, predict": (lw.ValidationError, lambda m: m.predict(X_NAN),
                          ["3 NaN or infinite", "first in row 2"]),
    "NaN in X, evaluate": (lw.ValidationError, lambda m: m.evaluate(X_NAN, Y),
                           ["3 NaN or infinite", "first in row 2"]),
    "NaN in X_val": (lw.ValidationError, lambda m: fit(validation_data=(X_NAN, Y)),
                     ["X_val", "3 NaN or infinite", "first in row 2"]),
    "inf in a float64 X": (lw.ValidationError,
                           lambda m: fit(net(dtype=np.float64), X_=X_NAN.astype(np.float64)),
                           ["3 NaN or infinite", "first in row 2"]),
    "NaN in a regression y": (lw.ValidationError,
                              lambda m: fit(net(1), y=np.where(Y == 2, np.nan, Y), loss="mse"),
                              ["y contains 10 NaN or infinite", "first in row 2"]),
    "NaN in one-hot y": (lw.ValidationError,
                         lambda m: fit(y=np.where(_onehot(3) == 1, np.nan, 0)),
                         ["y contains 30 NaN or infinite", "first in row 0"]),
    # 1-D, 3-D and empty X
    "1-D X, fit": (lw.ValidationError, lambda m: fit(X_=X[:, 0]),
                   ["2-D", "(n_samples, n_features)", "(30,)", "reshape"]),
    "1-D X, predict": (lw.ValidationError, lambda m: m.predict(X[0]),
                       ["2-D", "(4,)", "X.reshape(1, -1)"]),
    "3-D X, fit": (lw.ValidationError, lambda m: fit(X_=X.reshape(30, 2, 2)),
                   ["2-D", "(30, 2, 2)", "Flatten"]),
    "3-D X, predict": (lw.ValidationError, lambda m: m.predict(X.reshape(30, 2, 2)),
                       ["2-D", "(30, 2, 2)", "Flatten"]),
    "0-d X": (lw.ValidationError, lambda m: m.predict(np.float32(1.0)), ["2-D", "()"]),
    "empty X, fit": (lw.ValidationError, lambda m: fit(X_=X[:0], y=Y[:0]),
                     ["empty", "(0, 4)", "at least one sample"]),
    "empty X, predict": (lw.ValidationError, lambda m: m.predict(X[:0]), ["empty", "(0, 4)"]),
    "empty X, evaluate": (lw.ValidationError, lambda m: m.evaluate(X[:0], Y[:0]),
                          ["empty", "(0, 4)"]),
    # X and y of different lengths
    "lengths, fit": (lw.ValidationError, lambda m: fit(y=Y[:-1]),
                     ["same number of samples", "30", "29"]),
    "lengths, evaluate": (lw.ValidationError, lambda m: m.evaluate(X, Y[:-2]),
                          ["same number of samples", "30", "28"]),
    "lengths, validation data": (lw.ValidationError, lambda m: fit(validation_data=(X, Y[:5])),
                                 ["X_val and y_val", "same number of samples", "30", "5"]),
    # feature count not matching the model
    "features, fit": (lw.ValidationError, lambda m: fit(X_=X[:, :3]),
                      ["3 features", "expects 4", "n_in=3"]),
    "features, predict": (lw.ValidationError, lambda m: m.predict(np.ones((2, 6))),
                          ["6 features", "expects 4"]),
    "features, evaluate": (lw.ValidationError, lambda m: m.evaluate(X[:, :2], Y),
                           ["2 features", "expects 4"]),
    "features, validation data": (lw.ValidationError,
                                  lambda m: fit(validation_data=(X[:, :3], Y)),
                                  ["X_val", "3 features", "expects 4"]),
    # non-numeric dtypes
    "text X": (lw.ValidationError, lambda m: fit(X_=X.astype(str)), ["numeric", "<U"]),
    "object X": (lw.ValidationError, lambda m: m.predict(X.astype(object)),
                 ["numeric", "object"]),
    "complex X": (lw.ValidationError, lambda m: m.predict(X.astype(np.complex64)),
                  ["numeric", "complex64"]),
    "datetime X": (lw.ValidationError,
                   lambda m: m.predict(np.zeros((2, 4), "datetime64[s]")),
                   ["numeric", "datetime64"]),
    "ragged X": (lw.ValidationError, lambda m: m.predict([[1.0, 2.0], [3.0]]), ["2-D"]),
    "text labels, ce": (lw.ValidationError, lambda m: fit(y=np.array(list("abc") * 10)),
                        ["integer class labels", "<U1", "np.unique"]),
    "text targets, mse": (lw.ValidationError,
                          lambda m: fit(net(1), y=np.array(list("abc") * 10), loss="mse"),
                          ["numeric targets", "<U1"]),
    "object targets, mse": (lw.ValidationError,
                            lambda m: fit(net(1), y=Y.astype(object), loss="mse"),
                            ["numeric targets", "object"]),
    # labels outside the classes seen in training
    "label too large, fit": (lw.ValidationError, lambda m: fit(y=np.where(Y == 2, 3, Y)),
                             ["labels in 0..2", "from 0 to 3", "outputs"]),
    "negative label, fit": (lw.ValidationError, lambda m: fit(y=Y - 1),
                            ["labels in 0..2", "from -1 to 1"]),
    "unseen label, evaluate": (lw.ValidationError,
                               lambda m: m.evaluate(X, np.where(Y == 0, 7, Y)),
                               ["labels in 0..2", "from 1 to 7"]),
    "unseen label, validation": (lw.ValidationError,
                                 lambda m: fit(validation_data=(X, Y + 1)),
                                 ["labels in 0..2", "from 1 to 3"]),
    # a regression target given to a classifier loss, and vice versa
    "real targets, ce": (lw.ValidationError, lambda m: fit(y=X[:, 0]),
                         ["integer class labels", "non-integer", "loss='mse'"]),
    "real targets, evaluate with ce": (lw.ValidationError, lambda m: m.evaluate(X, Y + 0.5),
                                       ["non-integer", "loss='mse'"]),
    "real targets, bce": (lw.ValidationError, lambda m: fit(net(1), y=X[:, 0], loss="bce"),
                          ["[0, 1]", "loss='ce'"]),
    # (integer labels 0..2 for 3 outputs are one-hot targets for mse; float ones are not)
    "class labels, mse": (lw.ValidationError, lambda m: fit(y=Y.astype(float), loss="mse"),
                          ["(N, 3)", "(30,)", "loss='ce'"]),
    "class labels, evaluate with mae": (lw.ValidationError,
                                        lambda m: m.evaluate(X, Y, loss="mae"),
                                        ["(N, 3)", "loss='ce'"]),
    # one-hot targets of the wrong width
    "one-hot too wide": (lw.ValidationError, lambda m: fit(y=_onehot(4)),
                         ["one-hot", "(N, 3)", "(30, 4)"]),
    "one-hot too narrow, evaluate": (lw.ValidationError, lambda m: m.evaluate(X, _onehot(2)),
                                     ["one-hot", "(N, 3)", "(30, 2)"]),
    "one-hot, bce width": (lw.ValidationError, lambda m: fit(net(2), y=_onehot(3), loss="bce"),
                           ["(N, 2)", "(30, 3)"]),
    # learning rate
    "lr zero": (lw.ValidationError, lambda m: lw.SGD(lr=0), ["lr", "> 0", "0"]),
    "lr negative": (lw.ValidationError, lambda m: lw.Adam(lr=-1e-3), ["lr", "> 0", "-0.001"]),
    "lr nan": (lw.ValidationError, lambda m: lw.AdamW(lr=float("nan")), ["lr", "finite", "nan"]),
    "lr inf": (lw.ValidationError, lambda m: lw.RMSprop(lr=float("inf")),
               ["lr", "finite", "inf"]),
    "lr text": (lw.ValidationError, lambda m: lw.SGD(lr="fast"), ["lr", "number", "'fast'"]),
    "lr by name": (lw.ValidationError, lambda m: lw.optimizers.get("sgd", lr=0.0),
                   ["lr", "> 0"]),
    # batch size
    "batch size zero": (lw.ValidationError, lambda m: fit(batch_size=0),
                        ["batch_size", "positive integer", "0"]),
    "batch size negative": (lw.ValidationError, lambda m: fit(batch_size=-8),
                            ["batch_size", "positive integer", "-8"]),
    "batch size float": (lw.ValidationError, lambda m: fit(batch_size=8.5),
                         ["batch_size", "positive integer", "8.5"]),
    "batch size inf": (lw.ValidationError, lambda m: fit(batch_size=float("inf")),
                       ["batch_size", "positive integer", "inf"]),
    "batch size, predict": (lw.ValidationError, lambda m: m.predict(X, batch_size=0),
                            ["batch_size", "positive integer"]),
    "batch size, evaluate": (lw.ValidationError, lambda m: m.evaluate(X, Y, batch_size=-1),
                             ["batch_size", "positive integer"]),
    # epochs
    "epochs zero": (lw.ValidationError, lambda m: fit(epochs=0), ["epochs", "positive integer"]),
    "epochs negative": (lw.ValidationError, lambda m: fit(epochs=-3),
                        ["epochs", "positive integer", "-3"]),
    "epochs nan": (lw.ValidationError, lambda m: fit(epochs=float("nan")),
                   ["epochs", "positive integer", "nan"]),
    "epochs bool": (lw.ValidationError, lambda m: fit(epochs=True),
                    ["epochs", "positive integer", "True"]),
    # dropout outside [0, 1)
    "dropout one": (lw.ValidationError, lambda m: lw.Dropout(1.0), ["[0, 1)", "1.0"]),
    "dropout negative": (lw.ValidationError, lambda m: lw.Dropout(-0.1), ["[0, 1)", "-0.1"]),
    "dropout nan": (lw.ValidationError, lambda m: lw.Dropout(float("nan")), ["[0, 1)", "nan"]),
    "dropout text": (lw.ValidationError, lambda m: lw.Dropout("half"), ["[0, 1)", "'half'"]),
    "dropout, mlp": (lw.ValidationError, lambda m: lw.mlp([4, 8, 3], dropout=1.5),
                     ["dropout", "[0, 1)", "1.5"]),
    # unknown names, listing the valid ones
    "activation": (lw.ConfigError, lambda m: lw.mlp([4, 8, 3], activation="swish"),
                   ["unknown activation 'swish'", "relu", "tanh", "gelu"]),
    "output activation": (lw.ConfigError, lambda m: lw.mlp([4, 8, 3], output="softmaxx"),
                          ["unknown activation 'softmaxx'", "softmax", "sigmoid"]),
    "activation by name": (lw.ConfigError, lambda m: lw.activations.get("Swish"),
                           ["unknown activation", "relu"]),
    "loss, fit": (lw.ConfigError, lambda m: fit(loss="hinge"),
                  ["unknown loss 'hinge'", "ce", "mse", "huber"]),
    "loss, evaluate": (lw.ConfigError, lambda m: m.evaluate(X, Y, loss="nll"),
                       ["unknown loss 'nll'", "ce", "mse"]),
    "optimizer, fit": (lw.ConfigError, lambda m: fit(optimizer="nadam"),
                       ["unknown optimizer 'nadam'", "adam", "sgd", "rmsprop"]),
    "optimizer by name": (lw.ConfigError, lambda m: lw.optimizers.get("lbfgs"),
                          ["unknown optimizer 'lbfgs'", "adamw"]),
    # clip_norm
    "clip_norm zero": (lw.ValidationError, lambda m: fit(clip_norm=0), ["clip_norm", "> 0"]),
    "clip_norm negative": (lw.ValidationError, lambda m: fit(clip_norm=-1.0),
                           ["clip_norm", "> 0", "-1.0"]),
    "clip_norm nan": (lw.ValidationError, lambda m: fit(clip_norm=float("nan")),
                      ["clip_norm", "finite", "nan"]),
    "clip_norm inf": (lw.ValidationError, lambda m: fit(clip_norm=float("inf")),
                      ["clip_norm", "finite", "inf"]),
    "clip_norm text": (lw.ValidationError, lambda m: fit(clip_norm="max"),
                       ["clip_norm", "number", "'max'"]),
}


@pytest.mark.parametrize("name", list(API))
def test_bad_input_through_the_api(name, trained):
    exc, call, words = API[name]
    expect(exc, lambda: call(trained), *words)


@pytest.mark.parametrize("every", [0, -2, 1.5, "often", float("nan"), True])
def test_bad_checkpoint_every(tmp_path, every):
    ck = tmp_path / "ck.lw"
    expect(lw.ValidationError, lambda: fit(checkpoint=ck, checkpoint_every=every),
           "checkpoint_every", "positive integer", repr(every))
    assert not ck.exists()


# -- resuming from a missing or foreign checkpoint ----------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of ``fit(net(), X, Y, batch_size=8)`` interrupted after two steps."""
    ck = tmp_path_factory.mktemp("ck") / "ck.lw"
    with pytest.raises(lw.TrainingInterrupted):
        fit(checkpoint=ck, checkpoint_every=1, callbacks=[StopAt(2)])
    return ck


def test_the_checkpoint_resumes(checkpoint):
    assert len(fit(resume=checkpoint)) == 1


def test_resume_from_a_missing_checkpoint(tmp_path):
    expect(lw.ModelFileError, lambda: fit(resume=tmp_path / "nope.lw"), "nope.lw", "no such file")


def test_resume_from_a_folder(tmp_path):
    expect(lw.ModelFileError, lambda: fit(resume=tmp_path), "no such file")


def test_resume_from_a_plain_model_file(tmp_path, trained):
    path = tmp_path / "model.lw"
    trained.save(path)
    expect(lw.ModelFileError, lambda: fit(resume=path), "checkpoint.json")


def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.lw"
    path.write_text("hello")
    expect(lw.ModelFileError, lambda: fit(resume=path), "not a zip")


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"batch_size": 16}, ["other data or settings", "batch_size"]),
    ({"epochs": 3}, ["other data or settings", "epochs"]),
    ({"X_": X[:20], "y": Y[:20]}, ["other data or settings", "n_train"]),
    ({"loss": "bce", "y": np.eye(3)[Y]}, ["other data or settings", "loss"]),
    ({"optimizer": "sgd"}, ["other data or settings", "optimizer"]),
])
def test_resume_with_other_data_or_settings(checkpoint, kwargs, words):
    expect(lw.ValidationError, lambda: fit(resume=checkpoint, **kwargs), *words,
           "same data and arguments")


def test_resume_into_another_architecture(checkpoint):
    expect(lw.ValidationError,
           lambda: fit(lw.mlp([4, 16, 3], rng=0), resume=checkpoint), "another architecture")


# -- bugs found while writing these tests -------------------------------------------------------
def test_values_beyond_float32_are_refused_without_a_warning():
    """1e300 is finite in float64; cast for a float32 model it overflows. The user should get
    a ValidationError saying so, not a NumPy RuntimeWarning (an error under -W error) followed
    by a claim that the data holds infinite values."""
    big = X.astype(np.float64)
    big[4, 2] = 1e300
    expect(lw.ValidationError, lambda: fit(X_=big), "float32", "row 4")
    model = net()
    expect(lw.ValidationError, lambda: model.predict(big), "float32", "row 4")


def test_huge_integral_float_labels_are_refused_without_a_warning():
    """Labels such as 1e30 are integral floats: they must be reported as out of range, without
    the RuntimeWarning of casting them to int64."""
    y = Y.astype(np.float64)
    y[3] = 1e30
    expect(lw.ValidationError, lambda: fit(y=y), "labels in 0..2")


def test_a_ragged_y_is_a_validation_error():
    """X gets this right (as_input); the loss's prepare_target lets NumPy's ValueError out."""
    for loss in ("ce", "mse"):
        expect(lw.ValidationError, lambda loss=loss: fit(X_=X[:2], y=[[0, 1], [2]], loss=loss),
               "y")


@pytest.mark.parametrize("weights", [["a"] * 30, [np.nan] * 30, [[1.0, 2.0], [3.0]]],
                         ids=["text", "all NaN", "ragged"])
def test_bad_sample_weights_are_validation_errors(weights):
    expect(lw.ValidationError, lambda: fit(sample_weight=weights), "sample_weight")


def test_a_standardize_layer_of_another_width_is_refused():
    """Sequential checks that Dense layers chain, but not a Standardize layer in front of them:
    the mismatch surfaces later as a NumPy broadcasting ValueError inside predict."""
    with pytest.raises(lw.ValidationError, match=r"Standardize|expects|features"):
        model = lw.Sequential(lw.Standardize(np.zeros(4), np.ones(4)), lw.Dense(5, 2, rng=0))
        model.predict(np.ones((3, 5), np.float32))


# -- the command line ---------------------------------------------------------------------------
TINY = ["--epochs", "1", "--layers", "8", "--quiet", "--no-plots"]


def _write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _quiet(*argv) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    assert code == 0, err.getvalue()


def _interrupted(*argv) -> None:
    """Run ``layerwise ARGV`` and Ctrl-C it (SIGINT to this process) during its third step: it
    exits 130 with a checkpoint of that step."""
    original, calls = lw.GradientNorms.on_batch_end, []

    def on_batch_end(self, state, loss):
        original(self, state, loss)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        mp.setattr(lw.GradientNorms, "on_batch_end", on_batch_end)
        code = main([str(a) for a in argv])
    assert code == 130, err.getvalue()


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> dict[str, Path]:
    """Small data files, and runs trained on them (classification, text labels, regression, and
    three with checkpoints left behind)."""
    d = tmp_path_factory.mktemp("cli")
    r = np.random.default_rng(1)
    X4 = r.standard_normal((60, 4))
    y3 = (X4[:, 0] > 0).astype(int) + (X4[:, 1] > 0)
    np.savez(d / "cls.npz", X=X4, y=y3)
    _write_csv(d / "labels.csv", ["a", "b", "c", "d", "label"],
               [[*x, "xyz"[k]] for x, k in zip(X4, y3)])
    _write_csv(d / "reg.csv", ["a", "b", "c", "d", "t"], [[*x, 2 * x[0] + 0.1] for x in X4])
    cells = [[f"{v:.4f}" for v in x] for x in X4]
    cells[3][1], cells[8][0], cells[9][2] = "", "nan", "inf"          # first bad value: row 3
    _write_csv(d / "nan.csv", ["a", "b", "c", "d", "label"], [[*c, k] for c, k in zip(cells, y3)])
    _write_csv(d / "unseen.csv", ["a", "b", "c", "d", "label"],
               [[*x, "purple" if i == 5 else "xyz"[k]] for i, (x, k) in enumerate(zip(X4, y3))])
    _write_csv(d / "text-feature.csv", ["a", "b", "c", "d", "label"],
               [[*x[:3], "red" if i == 2 else "1.0", "xyz"[k]]
                for i, (x, k) in enumerate(zip(X4, y3))])
    _write_csv(d / "narrow.csv", ["a", "b", "label"], [[*x[:2], k] for x, k in zip(X4, y3)])
    np.savez(d / "inf.npz", X=np.where(np.arange(60)[:, None] == 11, np.inf, X4), y=y3)
    np.savez(d / "lengths.npz", X=X4, y=y3[:-1])
    np.savez(d / "empty.npz", X=X4[:0], y=y3[:0])
    np.savez(d / "scalar.npz", X=np.array(1.0), y=np.array(1))
    np.savez(d / "text.npz", X=X4.astype(str), y=y3)
    np.savez(d / "out-of-range.npz", X=X4, y=np.where(np.arange(60) == 7, 3, y3))
    np.savez(d / "onehot4.npz", X=X4, y=np.eye(4)[y3])
    np.savez(d / "wide.npz", X=np.c_[X4, X4], y=y3)
    np.save(d / "in-1d.npy", np.ones(5))
    np.save(d / "in-3d.npy", np.ones((3, 2, 3)))
    np.save(d / "in-empty.npy", np.ones((0, 4)))
    np.save(d / "in-nan.npy", np.r_[np.ones((2, 4)), [[1, np.nan, 1, 1]], [[np.inf, 1, 1, 1]]])
    np.save(d / "in-text.npy", np.array([["a", "b", "c", "d"]]))
    np.save(d / "in-wide.npy", np.ones((2, 7)))
    _quiet("train", d / "cls.npz", *TINY, "--out", d / "cls-run")
    _quiet("train", d / "labels.csv", *TINY, "--out", d / "labels-run")
    _quiet("train", d / "reg.csv", *TINY, "--out", d / "reg-run")
    for name, data, layers in (("ck8", "cls.npz", "8"), ("ck16", "cls.npz", "16"),
                               ("ck-reg", "reg.csv", "8")):
        # a finished run (which removes its checkpoint), given the checkpoint that the same
        # run, interrupted, writes
        args = ("train", d / data, "--epochs", "1", "--layers", layers, "--quiet", "--no-plots",
                "--batch-size", "8", "--checkpoint-every", "1")
        _quiet(*args, "--out", d / name)
        assert not (d / name / "checkpoint.lw").exists()
        _interrupted(*args, "--out", d / f"{name}-cut")
        shutil.copy(d / f"{name}-cut" / "checkpoint.lw", d / name / "checkpoint.lw")
    return {"dir": d}


def one_line_error(capsys, *argv) -> str:
    """Run ``layerwise ARGV`` in-process: a non-zero exit, one stderr line, no traceback."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code != 0, f"exit status 0 for {argv}:\n{out}"
    assert "Traceback" not in out and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("layerwise: error: "), err
    return lines[0]


CLI = {
    # NaN or infinite values, with the count and the first row
    "NaN cells in a training CSV": (["train", "D/nan.csv"],
                                    ["3 NaN or infinite", "first on line 5"]),
    "inf in a training NPZ": (["train", "D/inf.npz"], ["4 NaN or infinite", "first in row 11"]),
    "NaN in inputs to predict": (["predict", "D/cls-run/model.lw", "D/in-nan.npy"],
                                 ["2 NaN or infinite", "first in row 2"]),
    "NaN in data to evaluate": (["evaluate", "D/labels-run/model.lw", "D/nan.csv"],
                                ["3 NaN or infinite", "first on line 5"]),
    # 1-D, 3-D and empty X (the CLI reshapes 1-D and flattens 3-D, then checks the width)
    "1-D inputs of the wrong width": (["predict", "D/cls-run/model.lw", "D/in-1d.npy"],
                                      ["features", "expects 4"]),
    "3-D inputs of the wrong width": (["predict", "D/cls-run/model.lw", "D/in-3d.npy"],
                                      ["6 features", "expects 4"]),
    "0-d X": (["train", "D/scalar.npz"], ["at least one sample", "shape ()"]),
    "empty X, train": (["train", "D/empty.npz"], ["at least one sample", "(0, 4)"]),
    "empty X, predict": (["predict", "D/cls-run/model.lw", "D/in-empty.npy"],
                         ["empty", "(0, 4)"]),
    # X and y of different lengths
    "X and y lengths": (["train", "D/lengths.npz"], ["one entry per sample", "60", "59"]),
    # feature count not matching the model
    "features, evaluate": (["evaluate", "D/cls-run/model.lw", "D/wide.npz"],
                           ["8 features", "expects 4"]),
    "features, predict": (["predict", "D/cls-run/model.lw", "D/in-wide.npy"],
                          ["7 features", "expects 4"]),
    "features, CSV": (["evaluate", "D/labels-run/model.lw", "D/narrow.csv"],   # by name
                      ["missing ['c', 'd']", "--by-position"]),
    "features, explain": (["explain", "D/cls-run/model.lw", "D/wide.npz"],
                          ["8 features", "expects 4"]),
    # non-numeric dtypes
    "text feature column": (["train", "D/text-feature.csv"],
                            ["feature column 'd'", "numeric", "'red'"]),
    "text X in an NPZ": (["train", "D/text.npz"], ["numeric", "<U"]),
    "text inputs to predict": (["predict", "D/cls-run/model.lw", "D/in-text.npy"],
                               ["numeric", "<U1"]),
    "text cell in a CSV to predict": (["predict", "D/labels-run/model.lw",
                                       "D/text-feature.csv"], ["number", "'red'"]),
    # labels outside the classes seen in training
    "unseen text label": (["evaluate", "D/labels-run/model.lw", "D/unseen.csv"],
                          ["purple", "classes seen in training"]),
    "label out of range": (["evaluate", "D/cls-run/model.lw", "D/out-of-range.npz"],
                           ["labels in 0..2", "to 3"]),
    # a regression target given to a classifier loss and vice versa
    "real targets, --loss ce": (["train", "D/reg.csv", "--loss", "ce"],
                                ["'ce' is for classification", "regression", "--loss mse"]),
    "real targets, --loss bce": (["train", "D/reg.csv", "--loss", "bce"],
                                 ["classification", "regression"]),
    # (--loss mse and bce train classifiers on one-hot targets: test_classification_losses)
    "class labels, --loss mae": (["train", "D/labels.csv", "--loss", "mae"],
                                 ["'mae' is for regression", "classification", "--loss ce"]),
    "class labels, --loss huber": (["train", "D/cls.npz", "--loss", "huber"],
                                   ["regression", "classification"]),
    "classifier evaluated on real targets": (["evaluate", "D/cls-run/model.lw", "D/reg.csv"],
                                             ["classification targets must be", "regression"]),
    # (--target: by default evaluate reads the model's target column, 't', absent here)
    "regressor evaluated on class labels": (["evaluate", "D/reg-run/model.lw", "D/labels.csv",
                                             "--target", "label"],
                                            ["regression", "classification"]),
    # one-hot targets of the wrong width
    "one-hot of the wrong width": (["evaluate", "D/cls-run/model.lw", "D/onehot4.npz"],
                                   ["one-hot", "4 classes", "trained on 3"]),
    # learning rate, batch size, epochs, dropout
    "--lr 0": (["train", "D/cls.npz", "--lr", "0"], ["--lr", "> 0", "0.0"]),
    "--lr -0.1": (["train", "D/cls.npz", "--lr", "-0.1"], ["--lr", "> 0", "-0.1"]),
    "--lr nan": (["train", "D/cls.npz", "--lr", "nan"], ["--lr", "finite", "nan"]),
    "--lr inf": (["train", "D/cls.npz", "--lr", "inf"], ["--lr", "finite", "inf"]),
    "--batch-size 0": (["train", "D/cls.npz", "--batch-size", "0"],
                       ["--batch-size", "positive integer", "0"]),
    "--batch-size -4": (["train", "D/cls.npz", "--batch-size", "-4"],
                        ["--batch-size", "positive integer", "-4"]),
    "--batch-size 0, gradcheck": (["gradcheck", "D/cls.npz", "--layers", "4",
                                   "--batch-size", "0"], ["--batch-size", "positive"]),
    "--epochs 0": (["train", "D/cls.npz", "--layers", "8", "--epochs", "0"],
                   ["--epochs", "positive integer", "0"]),
    "--epochs -1": (["train", "D/cls.npz", "--layers", "8", "--epochs", "-1"],
                    ["--epochs", "positive integer", "-1"]),
    "--dropout 1": (["train", "D/cls.npz", "--dropout", "1"], ["--dropout", "[0, 1)", "1.0"]),
    "--dropout -0.2": (["train", "D/cls.npz", "--dropout", "-0.2"],
                       ["--dropout", "[0, 1)", "-0.2"]),
    "--dropout nan": (["train", "D/cls.npz", "--dropout", "nan"], ["--dropout", "[0, 1)"]),
    # unknown activation, loss, optimizer: the valid ones listed
    "--activation swish": (["train", "D/cls.npz", "--activation", "swish"],
                           ["unknown activation 'swish'", "relu", "tanh"]),
    "--output-activation": (["train", "D/reg.csv", "--output-activation", "softmaxx"],
                            ["unknown activation 'softmaxx'", "softmax"]),
    "--output on classes": (["train", "D/cls.npz", "--output", "softmaxx"],
                            ["--output softmaxx does not go with --loss ce", "softmax"]),
    "--activation, gradcheck": (["gradcheck", "D/cls.npz", "--layers", "4",
                                 "--activation", "swish"], ["unknown activation", "relu"]),
    "--loss hinge": (["train", "D/cls.npz", "--loss", "hinge"],
                     ["unknown loss 'hinge'", "ce", "mse"]),
    "--loss, explain": (["explain", "D/cls.npz", "--layers", "4", "--loss", "nll"],
                        ["unknown loss 'nll'", "ce"]),
    "--optimizer nadam": (["train", "D/cls.npz", "--optimizer", "nadam"],
                          ["unknown optimizer 'nadam'", "adam", "sgd"]),
    # clip norm, checkpoint interval
    "--clip-norm 0": (["train", "D/cls.npz", "--clip-norm", "0"], ["--clip-norm", "> 0"]),
    "--clip-norm -1": (["train", "D/cls.npz", "--clip-norm", "-1"],
                       ["--clip-norm", "> 0", "-1.0"]),
    "--clip-norm nan": (["train", "D/cls.npz", "--clip-norm", "nan"],
                        ["--clip-norm", "finite", "nan"]),
    "--clip-norm inf": (["train", "D/cls.npz", "--clip-norm", "inf"],
                        ["--clip-norm", "finite", "inf"]),
    "--checkpoint-every 0": (["train", "D/cls.npz", "--checkpoint-every", "0"],
                             ["--checkpoint-every", "positive integer", "0"]),
    "--checkpoint-every -5": (["train", "D/cls.npz", "--checkpoint-every", "-5"],
                              ["--checkpoint-every", "positive integer", "-5"]),
}


@pytest.mark.parametrize("name", list(CLI))
def test_bad_input_through_the_cli(name, cli, capsys, tmp_path):
    argv, words = CLI[name]
    argv = [a.replace("D/", f"{cli['dir']}/") for a in argv]
    if argv[0] == "train":
        argv += ["--quiet", "--no-plots", "--out", str(tmp_path / "run")]
        argv += [] if "--epochs" in argv else ["--epochs", "1"]
        argv += [] if "--layers" in argv else ["--layers", "8"]
    line = one_line_error(capsys, *argv)
    missing = [w for w in words if w not in line]
    assert not missing, f"{missing} not in: {line}"
    if argv[0] == "train":
        assert not (tmp_path / "run").exists()          # a refused run leaves nothing behind


# -- the CLI: resuming from a missing or foreign checkpoint -------------------------------------
def _copy_run(cli, name: str, tmp_path: Path) -> Path:
    """A copy of a run directory (--resume writes into the directory it is given)."""
    run = tmp_path / name
    shutil.copytree(cli["dir"] / name, run)
    return run


def test_cli_resume_from_a_missing_run_directory(capsys, tmp_path):
    line = one_line_error(capsys, "train", "--resume", tmp_path / "nowhere")
    assert "nowhere" in line and "no checkpoint.lw" in line and "--checkpoint-every" in line


def test_cli_resume_from_a_run_without_a_checkpoint(capsys, cli, tmp_path):
    run = _copy_run(cli, "cls-run", tmp_path)
    line = one_line_error(capsys, "train", "--resume", run)
    assert "no checkpoint.lw" in line


def test_cli_resume_with_a_checkpoint_of_another_architecture(capsys, cli, tmp_path):
    run = _copy_run(cli, "ck16", tmp_path)
    shutil.copy(cli["dir"] / "ck8" / "checkpoint.lw", run / "checkpoint.lw")
    line = one_line_error(capsys, "train", "--resume", run)
    assert "cannot resume" in line and "another architecture" in line


def test_cli_resume_with_a_checkpoint_of_another_run(capsys, cli, tmp_path):
    run = _copy_run(cli, "ck8", tmp_path)
    shutil.copy(cli["dir"] / "ck-reg" / "checkpoint.lw", run / "checkpoint.lw")
    line = one_line_error(capsys, "train", "--resume", run)
    assert "cannot resume" in line and "other data or settings" in line


def test_cli_resume_with_a_model_file_as_checkpoint(capsys, cli, tmp_path):
    run = _copy_run(cli, "ck8", tmp_path)
    shutil.copy(run / "model.lw", run / "checkpoint.lw")
    line = one_line_error(capsys, "train", "--resume", run)
    assert "checkpoint.json" in line


def test_cli_resume_with_a_damaged_checkpoint(capsys, cli, tmp_path):
    run = _copy_run(cli, "ck8", tmp_path)
    data = (run / "checkpoint.lw").read_bytes()
    (run / "checkpoint.lw").write_bytes(data[: len(data) // 3])
    line = one_line_error(capsys, "train", "--resume", run)
    assert "cannot load model file" in line


def test_cli_resume_without_the_run_settings(capsys, cli, tmp_path):
    run = _copy_run(cli, "ck8", tmp_path)
    (run / "config.json").unlink()
    line = one_line_error(capsys, "train", "--resume", run)
    assert "config.json" in line and "settings" in line


def test_cli_resumes_a_copied_run(capsys, cli, tmp_path):
    """The copies the tests above damage do resume when left intact."""
    run = _copy_run(cli, "ck8", tmp_path)
    assert main(["train", "--resume", str(run)]) == 0, capsys.readouterr().err
