"""layerwise.runs: what `layerwise train` does around fit, used from Python without the CLI."""

from __future__ import annotations

import contextlib
import csv
import json

import numpy as np
import pytest

import layerwise as lw
from layerwise import runs


def table(n=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32) * [1, 10, 100] + [0, 5, -50]
    y = (X[:, 0] > 0).astype(np.int64)
    return lw.datasets.Dataset("t", X.astype(np.float32), y, None, None, "classification",
                               None, "standard")


def test_train_and_test_is_a_seeded_split_or_the_datas_own():
    data = table()
    Xtr, _ytr, Xte, _yte = runs.train_and_test(data, 0.2, seed=3)
    order = np.random.default_rng(3).permutation(50)
    np.testing.assert_array_equal(Xte, data.X_train[np.sort(order[:10])])
    np.testing.assert_array_equal(Xtr, data.X_train[np.sort(order[10:])])
    # a saved model's metadata reproduces its own split, whatever is asked now
    again = runs.train_and_test(data, 0.5, 0, meta={"test_split": 0.2, "split_seed": 3})
    np.testing.assert_array_equal(again[2], Xte)
    official = lw.datasets.load("digits")
    assert runs.train_and_test(official, 0.2, 0)[2] is official.X_test


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_a_test_fraction_outside_zero_one_is_a_library_error(fraction):
    with pytest.raises(lw.ValidationError, match="test_split must be in"):
        runs.train_and_test(table(), fraction, 0)


def test_prepare_fits_the_scaling_on_the_training_rows_only():
    data = table()
    fit_rows = np.arange(40)                     # rows 40..49 are validation: not looked at
    loss = lw.losses.get("mse")
    y = data.X_train[:, 2].copy()
    _x_scaler, _y_scaler, Xs, Y = runs.prepare(data.X_train, y, fit_rows, "standard", None, loss,
                                             0, False, np.float32)
    X = data.X_train.astype(np.float64)
    np.testing.assert_allclose(Xs, (X - X[:40].mean(0)) / X[:40].std(0), rtol=1e-5, atol=1e-5)
    yy = y.astype(np.float64)
    np.testing.assert_allclose(Y.ravel(), (yy - yy[:40].mean()) / yy[:40].std(), rtol=1e-5,
                               atol=1e-5)
    _, none, _, labels = runs.prepare(data.X_train, data.y_train, fit_rows, "standard", None,
                                      lw.losses.get("ce"), 2, True, np.float32)
    assert none is None and labels is data.y_train           # labels stay labels for ce


def test_targets_for_bce_are_one_hot_beyond_two_classes():
    bce = lw.losses.get("bce")
    np.testing.assert_array_equal(runs.targets_for(bce, np.array([0, 2, 1]), 3),
                                  np.eye(3)[[0, 2, 1]])
    np.testing.assert_array_equal(runs.targets_for(bce, np.array([0, 1]), 2), [0.0, 1.0])


def test_run_directories_lock_and_never_replace_a_finished_run(tmp_path):
    out = tmp_path / "run"
    with contextlib.ExitStack() as first:
        runs.open_run_dir(out, resume=False, cleanup=first)
        with contextlib.ExitStack() as second, pytest.raises(lw.BusyError,
                                                             match="another layerwise train"):
            runs.open_run_dir(out, resume=False, cleanup=second)
        runs.write_file(out / "model.lw", b"x")
    with contextlib.ExitStack() as again, pytest.raises(lw.ValidationError,
                                                        match="already holds a trained model"):
        runs.open_run_dir(out, resume=False, cleanup=again)
    with contextlib.ExitStack() as resumed:                 # --resume may reopen it
        runs.open_run_dir(out, resume=True, cleanup=resumed)
    assert (out / "model.lw").read_bytes() == b"x"


def test_fresh_run_dir_names_never_collide(tmp_path):
    first = runs.fresh_run_dir("data/wine.csv", root=tmp_path)
    assert first.parent == tmp_path and first.name.startswith("wine-")
    first.mkdir()
    second = runs.fresh_run_dir("data/wine.csv", root=tmp_path)
    assert second != first and second.name.startswith(first.name)


def test_a_run_from_python_with_the_library_pieces(tmp_path):
    """The docstring's promise: split, prepare, fit with TargetUnits, write the history."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2)).astype(np.float32)
    y = (3 * X[:, 0] - X[:, 1] + 100).astype(np.float32)
    data = lw.datasets.Dataset("r", X, y, None, None, "regression", None, "standard")
    Xtr, ytr, _Xte, _yte = runs.train_and_test(data, 0.25, 0)
    fit_rows = np.arange(50)
    loss = lw.losses.get("mse")
    _x_s, y_s, Xs, Y = runs.prepare(Xtr, ytr, fit_rows, "standard", None, loss, 0, False,
                                   np.float32)
    inverse = lw.Standardize(-y_s.offset / y_s.scale, 1 / y_s.scale, method="inverse")
    net = lw.mlp([2, 1], rng=0)
    units = runs.TargetUnits(inverse, loss, Xs, ytr.reshape(-1, 1), 50)
    history = net.fit(Xs, Y, loss=loss, optimizer="adam", epochs=3, batch_size=10,
                      validation_data=(Xs[50:], Y[50:]), callbacks=[units], verbose=0)
    # the history is in the targets' units: its val_mse is the MSE of the network + inverse
    pred = lw.Sequential([*net.layers, inverse]).predict(Xs[50:]).ravel()
    assert history["val_mse"][-1] == pytest.approx(np.mean((pred - ytr[50:]) ** 2), rel=1e-4)
    runs.write_history(tmp_path, history)
    assert json.loads((tmp_path / "history.json").read_text())["epoch"] == [1, 2, 3]
    with (tmp_path / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and float(rows[-1]["val_mse"]) == pytest.approx(
        history["val_mse"][-1], rel=1e-5)


def test_select_weight_decay_keeps_the_lowest_validation_loss_and_its_epoch():
    """Recomputed by hand: one fresh network per candidate, the same seed, early stopping."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(np.int64)
    kw = {"loss": "ce", "epochs": 40, "batch_size": 16, "validation_split": 0.25, "rng": 3,
          "threads": 1}
    chosen, epoch, losses = runs.select_weight_decay(
        lambda: lw.mlp([4, 16, 2], rng=0), lambda wd: lw.Adam(1e-2, weight_decay=wd),
        X, y, (1e-4, 1e-1, 1.0), patience=5, **kw)
    by_hand = {}
    for wd in (1e-4, 1e-1, 1.0):
        h = lw.mlp([4, 16, 2], rng=0).fit(X, y, optimizer=lw.Adam(1e-2, weight_decay=wd),
                                          callbacks=[lw.EarlyStopping(5)], verbose=0, **kw)
        by_hand[f"{wd:g}"] = (min(h["val_loss"]), int(np.argmin(h["val_loss"])) + 1)
    assert losses == {k: v[0] for k, v in by_hand.items()}
    best = min(by_hand, key=lambda k: by_hand[k][0])
    assert f"{chosen:g}" == best and epoch == by_hand[best][1]
