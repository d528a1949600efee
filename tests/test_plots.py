"""plots: every function writes a PNG; without matplotlib, a ConfigError with an install hint."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import layerwise as lw
from layerwise import plots
from layerwise.explain import explain

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5000                 # a drawn figure, not an empty canvas


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 8)), rng.integers(0, 3, 16)
    model = lw.mlp([8, 16, 16, 16, 16, 3], activation="sigmoid", init="normal", rng=0)
    return explain(model, "ce", X, y)


def test_available():
    assert plots.available() is True


@pytest.mark.parametrize("history", [
    {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8],
     "val_loss": [1.1, 0.7, 0.5], "val_accuracy": [0.4, 0.6, 0.75]},
    {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8]},                  # no validation
    {"loss": [10.0, 1.0, 0.1, 0.05], "val_loss": [9.0, 2.0, 0.3, 0.2],       # log scale
     "mae": [3.0, 1.0, 0.4, 0.3], "val_mae": [3.1, 1.2, 0.5, 0.4]},
    {"loss": [0.9]},                                                         # loss only, 1 epoch
], ids=["validation", "no-validation", "regression-log-scale", "loss-only"])
def test_plot_history(history, tmp_path):
    plots.plot_history(history, tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")


def test_plot_history_of_a_real_run(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), rng.integers(0, 2, 64)
    model = lw.mlp([4, 8, 2], rng=0)
    history = model.fit(X, y, loss="ce", epochs=3, batch_size=16, validation_split=0.25, rng=0,
                        verbose=0)
    plots.plot_history(history.history, tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")


def test_plot_gradient_flow(tmp_path):
    norms = {"0.W": [1.0, 0.5, 0.2], "0.b": [0.1, 0.05, 0.02],
             "2.W": [0.3, 0.2, 0.1], "2.b": [0.01, 0.01, 0.01]}
    plots.plot_gradient_flow(norms, tmp_path / "flow.png")
    assert_png(tmp_path / "flow.png")
    plots.plot_gradient_flow({"w": [1e-8, 1e-6], "v": [1.0, 2.0]}, tmp_path / "other.png")
    assert_png(tmp_path / "other.png")                   # no ".W" names: every series drawn


def test_plot_gradient_flow_from_the_callback(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    grads = lw.GradientNorms()
    lw.mlp([3, 5, 2], rng=0).fit(X, y, loss="ce", epochs=2, batch_size=10, rng=0, verbose=0,
                                 callbacks=[grads])
    plots.plot_gradient_flow(grads.norms, tmp_path / "flow.png")
    assert_png(tmp_path / "flow.png")


@pytest.mark.parametrize("classes", [None, ["cat", "dog", "bird"], ["a", "b", "c"]])
def test_plot_confusion_matrix(classes, tmp_path):
    C = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    plots.plot_confusion_matrix(C, tmp_path / "cm.png", classes, title="test")
    assert_png(tmp_path / "cm.png")


def test_plot_confusion_matrix_many_classes_and_empty(tmp_path):
    C = np.random.default_rng(0).integers(0, 20, (25, 25))       # K > 20: no counts written
    plots.plot_confusion_matrix(C, tmp_path / "big.png")
    assert_png(tmp_path / "big.png")
    plots.plot_confusion_matrix(np.zeros((2, 2), dtype=int), tmp_path / "zero.png")
    assert_png(tmp_path / "zero.png")


def test_plot_explanation(report, tmp_path):
    assert report.flags                                            # some layers are flagged
    plots.plot_explanation(report, tmp_path / "explain.png")
    assert_png(tmp_path / "explain.png")


def test_plot_explanation_with_a_dead_layer(tmp_path):
    """Zero norms (a dead ReLU layer) are drawn on the log axis without warnings."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
    model = lw.mlp([3, 4, 2], rng=0)
    model.layers[0].b[:] = -100
    r = explain(model, "ce", X, y)
    assert r.layers[0].dead_fraction == 1.0
    plots.plot_explanation(r, tmp_path / "dead.png")
    assert_png(tmp_path / "dead.png")


def test_pathlike_and_str_paths(tmp_path):
    plots.plot_history({"loss": [1.0, 0.5]}, str(tmp_path / "a.png"))
    assert_png(tmp_path / "a.png")


def test_without_matplotlib_a_config_error_with_an_install_hint(monkeypatch, tmp_path, report):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)   # import fails
    calls = [
        lambda p: plots.plot_history({"loss": [1.0, 0.5]}, p),
        lambda p: plots.plot_gradient_flow({"0.W": [1.0, 0.5]}, p),
        lambda p: plots.plot_confusion_matrix(np.eye(2, dtype=int), p),
        lambda p: plots.plot_explanation(report, p),
    ]
    for k, call in enumerate(calls):
        path = tmp_path / f"{k}.png"
        with pytest.raises(lw.ConfigError, match=r"pip install matplotlib .*'\.\[plot\]'") as exc:
            call(path)
        assert "matplotlib" in str(exc.value)
        assert isinstance(exc.value, lw.LayerwiseError)
        assert not path.exists()


def test_available_is_false_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert plots.available() is False
