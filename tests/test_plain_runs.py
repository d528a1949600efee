"""Issue 12, items 5–7: images scaled by one factor, one validation-split rule for the API and
the command line (a seeded random sample, or the last N rows), and ``--plain`` for plain SGD."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import cli, runs, training
from layerwise.cli import main
from layerwise.preprocessing import Standardize
from layerwise.training import validation_rows


# -- helpers ------------------------------------------------------------------------------------
def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv) -> str:
    code, _out, err = run(capsys, *argv)
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layerwise: error: "), err
    return lines[0]


def write_idx(path: Path, A: np.ndarray) -> None:
    """An IDX file: 00 00, type code 0x08 (uint8), ndim, each dimension as big-endian uint32."""
    assert A.dtype == np.uint8
    path.write_bytes(b"\0\0\x08" + bytes([A.ndim]) + struct.pack(f">{A.ndim}I", *A.shape)
                     + A.tobytes())


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A folder of IDX files, 6×6 uint8 images; pixel (0, 0) is 0 in every training image and
    255 in every test image (MNIST's border pixels are all but always 0 in training)."""
    folder = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 200, (120, 6, 6), dtype=np.uint8)
    X[:, 0, 0] = 0
    y = (X.reshape(120, -1).sum(1) > X.reshape(120, -1).sum(1).mean()).astype(np.uint8)
    Xt = rng.integers(0, 200, (30, 6, 6), dtype=np.uint8)
    Xt[:, 0, 0] = 255
    yt = rng.integers(0, 2, 30, dtype=np.uint8)
    for name, A in (("train-images-idx3-ubyte", X), ("train-labels-idx1-ubyte", y),
                    ("t10k-images-idx3-ubyte", Xt), ("t10k-labels-idx1-ubyte", yt)):
        write_idx(folder / name, A)
    return folder, X.reshape(120, -1), Xt.reshape(30, -1)


def table_csv(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A CSV of 3 features and a 3-class text label, sorted by label (as iris is)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]
    s = X[:, 0] + (X[:, 1] - 10) / 5
    label = np.where(s > 0.5, "high", np.where(s < -0.5, "low", "mid"))
    order = np.argsort(label, kind="stable")
    lines = ["a,b,c,label"] + [f"{a!r},{b!r},{c!r},{t}" for (a, b, c), t in
                               zip(X[order].tolist(), label[order])]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- item 5: images are scaled by one factor ----------------------------------------------------
def test_idx_images_are_divided_by_255_and_the_saved_model_does_it(capsys, tmp_path,
                                                                    mnist_like):
    folder, _X, Xt = mnist_like
    assert lw.datasets.load(str(folder)).full_scale == 255
    code, _, err = run(capsys, "train", folder, "--layers", "8", "--epochs", "1", "--quiet",
                       "--no-plots", "--threads", "1", "--out", tmp_path / "run")
    assert code == 0, err
    model = lw.load(tmp_path / "run" / "model.lw")
    first = model.layers[0]
    assert first.method == "image"
    np.testing.assert_array_equal(first.scale, 255)             # one factor, every pixel
    np.testing.assert_array_equal(first.offset, 0)
    A = first.infer(Xt.astype(np.float32))
    assert A.max() <= 1 and A[:, 0].max() == 1       # per-pixel min-max gave 255 here
    # the saved model applies it: predict on raw pixels is the network on pixels / 255
    net = lw.Sequential(model.layers[1:])
    np.testing.assert_array_equal(model.predict(Xt), net.predict(Xt.astype(np.float32) / 255))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["scaling"] == "image"


def test_per_pixel_minmax_is_what_went_wrong(mnist_like):
    """The old default: a pixel always 0 in training gets scale 1, so test inputs reach 255."""
    _, X, Xt = mnist_like
    assert Standardize.fit(X, "minmax").transform(Xt).max() == 255
    assert Standardize.fit(X, "image", full_scale=255).transform(Xt).max() == 1


def test_image_scaling_of_other_data_uses_the_training_rows_largest_magnitude():
    X = np.array([[0.0, -8.0, 2.0], [1.0, 4.0, 0.0]])
    s = Standardize.fit(X, "image", np.float64)
    np.testing.assert_array_equal(s.scale, [8.0, 8.0, 8.0])        # max |x| over all of X
    np.testing.assert_array_equal(s.transform(X), X / 8)
    assert Standardize.fit(np.zeros((2, 3)), "image").scale.tolist() == [1, 1, 1]
    # float images carry no full scale: the training rows decide
    assert lw.datasets.load(_npy_pair(X)).full_scale is None


def _npy_pair(X: np.ndarray) -> str:
    import tempfile
    folder = Path(tempfile.mkdtemp())
    np.save(folder / "X.npy", np.repeat(X[:, None, :], 2, axis=1))        # (N, 2, 3) images
    np.save(folder / "y.npy", np.arange(len(X)))
    return f"{folder / 'X.npy'},{folder / 'y.npy'}"


def test_scaling_image_on_a_table_and_minmax_on_images_on_request(capsys, tmp_path,
                                                                 mnist_like):
    data = table_csv(tmp_path / "t.csv")
    assert run(capsys, "train", data, "--scaling", "image", "--epochs", "1", "--layers", "4",
               "--quiet", "--no-plots", "--out", tmp_path / "a")[0] == 0
    first = lw.load(tmp_path / "a" / "model.lw").layers[0]
    assert first.method == "image" and len(set(first.scale.tolist())) == 1
    assert first.scale[0] > 10                     # column b's values, near 10 ± 15
    folder, _X, _ = mnist_like
    assert run(capsys, "train", folder, "--scaling", "minmax", "--epochs", "1", "--layers", "4",
               "--quiet", "--no-plots", "--out", tmp_path / "b")[0] == 0
    first = lw.load(tmp_path / "b" / "model.lw").layers[0]
    assert first.method == "minmax" and first.scale[0] == 1         # asked for: per pixel


def test_tables_keep_per_feature_scaling(tmp_path):
    assert lw.datasets.load(str(table_csv(tmp_path / "t.csv"))).scaling == "standard"
    assert lw.datasets.load("digits").scaling == "standard"           # documented choice
    assert lw.datasets.load("digits").full_scale == 16


def test_model_files_with_per_feature_scaling_still_load_and_predict_the_same(capsys,
                                                                               tmp_path):
    """A model with a per-feature min-max first layer (what the command line saved for
    images before) loads and predicts (X − offset)/scale through its network, in the API and
    through ``layerwise predict``."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (20, 4)).astype(np.float32)
    offset, scale = np.array([0, 1, 2, 0], np.float32), np.array([1, 254, 253, 255], np.float32)
    net = lw.mlp([4, 5, 3], rng=0)
    model = lw.Sequential([Standardize(offset, scale, method="minmax"), *net.layers])
    model.loss = lw.CrossEntropy()
    model.save(tmp_path / "old.lw")
    loaded = lw.load(tmp_path / "old.lw")
    assert loaded.layers[0].method == "minmax"
    expected = net.predict((X - offset) / scale)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    np.save(tmp_path / "X.npy", X)
    code, out, err = run(capsys, "predict", tmp_path / "old.lw", tmp_path / "X.npy", "--proba")
    assert code == 0, err
    shown = np.array([[float(v) for v in line.split(",")] for line in out.splitlines()[1:]])
    P = loaded.predict_proba(X)
    np.testing.assert_allclose(shown, P, rtol=1e-5, atol=1e-6)


# -- item 6: one validation rule ----------------------------------------------------------------
def test_validation_rows_fraction_is_a_seeded_random_sample_and_an_int_the_tail():
    rows, val = validation_rows(100, 0.25, 3)
    assert len(val) == 25 and np.array_equal(np.sort(np.r_[rows, val]), np.arange(100))
    again = validation_rows(100, 0.25, 3)
    assert np.array_equal(val, again[1]) and np.array_equal(rows, again[0])
    assert not np.array_equal(val, np.arange(75, 100))              # not the last rows
    rows, val = validation_rows(100, 30, 3)
    np.testing.assert_array_equal(rows, np.arange(70))              # exactly [0, n − N)
    np.testing.assert_array_equal(val, np.arange(70, 100))          # and [n − N, n)
    rows, val = validation_rows(100, 0.0, 3)
    assert len(rows) == 100 and len(val) == 0


def test_fit_holds_out_the_rows_validation_rows_names():
    X = np.random.default_rng(0).standard_normal((80, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = lw.mlp([3, 4, 2], rng=0)
    h = model.fit(X, y, epochs=1, batch_size=8, validation_split=0.25, rng=5, verbose=0)
    _, val = validation_rows(80, 0.25, 5)
    # the first epoch's validation loss is that of the held-out rows (weights after epoch 1)
    assert h["val_loss"][0] == pytest.approx(model.evaluate(X[val], y[val])["loss"], rel=1e-6)


def test_an_int_split_is_the_last_rows_bit_for_bit():
    """fit(validation_split=N) is fit on the first rows with the last N as validation_data,
    bit for bit (nothing is drawn from rng for it): Nielsen's 50,000/10,000."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 4)).astype(np.float32)
    y = rng.integers(0, 3, 90)
    a, b = lw.mlp([4, 6, 3], rng=1), lw.mlp([4, 6, 3], rng=1)
    kw = {"epochs": 3, "batch_size": 8, "rng": 2, "verbose": 0, "optimizer": "sgd"}
    ha = a.fit(X, y, validation_split=30, **kw)
    hb = b.fit(X[:60], y[:60], validation_data=(X[60:], y[60:]), **kw)
    assert ha["val_loss"] == hb["val_loss"] and ha["loss"] == hb["loss"]
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize(("split", "match"), [
    (1.0, r"must be in \[0, 1\) as a fraction"),
    (10000.0, "validation_split=10000 for the last 10000 rows"),
    (1.5, r"must be in \[0, 1\)"),
    (-1, "number of rows >= 0"),
    (True, "a float fraction in \\[0, 1\\) or an int"),
    ("0.1", "a float fraction in \\[0, 1\\) or an int"),
    (40, "leaves 40 for validation and 0 for training"),
    (0.001, "leaves 0 for validation"),
])
def test_fit_refuses_ambiguous_or_impossible_splits(split, match):
    X = np.zeros((40, 2), np.float32)
    with pytest.raises(lw.ValidationError, match=match):
        lw.mlp([2, 3, 2], rng=0).fit(X, np.zeros(40, np.int64), validation_split=split,
                                     epochs=1, verbose=0)


def test_the_cli_holds_out_the_same_rows_as_the_api(capsys, tmp_path, monkeypatch):
    """Same setting, same rows: the command line's --validation-split F --seed S holds out
    validation_rows(n, F, S), the rows fit(validation_split=F, rng=S) holds out, on a file
    sorted by class (so the last rows would all be one class)."""
    data = table_csv(tmp_path / "t.csv")
    real_fit, calls = training.fit, []

    def spy(model, X, y, **kwargs):
        calls.append((np.array(X), kwargs["validation_split"], kwargs["rng"]))
        return real_fit(model, X, y, **kwargs)

    monkeypatch.setattr(training, "fit", spy)
    code, out, err = run(capsys, "train", data, "--validation-split", "0.25", "--seed", "3",
                         "--test-split", "0.2", "--epochs", "2", "--layers", "4", "--quiet",
                         "--no-plots", "--weight-decay", "0", "--no-refit", "--ensemble", "1",
                         "--out", tmp_path / "run")
    assert code == 0, err
    (Xs, split, seed), = calls               # fit is given every training row, in file order
    assert (split, seed) == (0.25, 3)
    d = lw.datasets.load(str(data))
    Xtr, ytr, _, _ = runs.train_and_test(d, 0.2, 0)
    rows, val = validation_rows(len(Xtr), 0.25, 3)
    assert len(np.unique(ytr[val])) == 3
    model = lw.load(tmp_path / "run" / "model.lw")
    first = model.layers[0]                  # standardised on the training rows alone
    np.testing.assert_allclose(first.offset, Xtr[rows].astype(np.float64).mean(0), rtol=1e-5)
    np.testing.assert_allclose(first.transform(Xtr), Xs, rtol=1e-6)
    shown = out.splitlines()[-4:]
    val_loss = model.evaluate(Xtr[val], ytr[val])["loss"]
    assert any(line.startswith("validation") and f"{val_loss:.4f}" in line for line in shown)


def test_validation_rows_flag_takes_the_last_rows_of_the_file(capsys, tmp_path):
    """--validation-rows N on data with its own test set: training rows [0, n − N), the last
    N rows of the file for validation, as in Nielsen's MNIST split."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3)).astype(np.float32) + np.arange(100)[:, None] / 10
    y = (X[:, 0] > 5).astype(np.int64)
    np.savez(tmp_path / "d.npz", X=X, y=y, X_test=X[:10], y_test=y[:10])
    code, out, err = run(capsys, "train", tmp_path / "d.npz", "--validation-rows", "30",
                         "--epochs", "2", "--layers", "4", "--no-plots", "--no-refit",
                         "--out", tmp_path / "run")
    assert code == 0, err
    assert "70 training, 30 validation, 10 test samples" in out
    first = lw.load(tmp_path / "run" / "model.lw").layers[0]
    np.testing.assert_allclose(first.offset, X[:70].astype(np.float64).mean(0), rtol=1e-5)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["validation_split"] == 30 and config["args"]["validation_rows"] == 30


@pytest.mark.parametrize(("flags", "match"), [
    (["--validation-split", "1.0"], "pass --validation-rows N instead"),
    (["--validation-split", "10000"], "received 10000. For the last N rows"),
    (["--validation-rows", "0"], "--validation-rows must be a positive integer"),
    (["--validation-rows", "500"], "--validation-rows 500 holds out 500 rows"),
    (["--validation-rows", "10", "--validation-split", "0.1"], "give one"),
])
def test_the_cli_refuses_bad_validation_settings(capsys, tmp_path, flags, match):
    data = table_csv(tmp_path / "t.csv")
    line = one_line_error(capsys, "train", data, *flags, "--epochs", "1", "--quiet",
                          "--no-plots", "--out", tmp_path / "run")
    assert match in line
    assert not (tmp_path / "run" / "model.lw").exists()


# -- item 7: --plain ----------------------------------------------------------------------------
LONG_FORM = ["--optimizer", "sgd", "--momentum", "0", "--schedule", "constant",
             "--label-smoothing", "0", "--weight-decay", "0", "--validation-split", "0",
             "--early-stopping", "0", "--epochs", "20", "--batch-size", "64", "--lr", "0.1",
             "--ensemble", "1"]


def _history(run_dir: Path) -> dict:
    h = json.loads((run_dir / "history.json").read_text())
    return {k: v for k, v in h.items() if k not in ("seconds", "threads")}


def test_plain_equals_the_long_form_bit_for_bit(capsys, tmp_path):
    data = table_csv(tmp_path / "t.csv")          # 240 training rows: small-data defaults
    common = ["train", data, "--layers", "8", "--threads", "1", "--no-plots", "--seed", "4"]
    code, out, err = run(capsys, *common, "--plain", "--out", tmp_path / "plain")
    assert code == 0, err
    assert "plain SGD (--plain): --optimizer sgd, --momentum 0, --schedule constant" in out
    assert "defaults for" not in out              # nothing chosen by the data's size
    code, _, err = run(capsys, *common, *LONG_FORM, "--out", tmp_path / "long")
    assert code == 0, err
    assert _history(tmp_path / "plain") == _history(tmp_path / "long")
    a = lw.load(tmp_path / "plain" / "model.lw")
    b = lw.load(tmp_path / "long" / "model.lw")
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.value, q.value)
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert config["plain"] == {**cli.PLAIN, "lr": 0.1}
    assert config["optimizer"] == json.loads(
        (tmp_path / "long" / "config.json").read_text())["optimizer"]
    assert config["epochs_run"] == 20 and config["validation_split"] == 0.0


def test_explicit_flags_win_over_plain(capsys, tmp_path):
    data = table_csv(tmp_path / "t.csv")
    code, _out, err = run(capsys, "train", data, "--plain", "--momentum", "0.5",
                         "--validation-split", "0.2", "--epochs", "3", "--lr", "0.05",
                         "--layers", "4", "--no-plots", "--quiet", "--out", tmp_path / "run")
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "momentum" not in config["plain"] and "lr" not in config["plain"]
    assert config["optimizer"].startswith("SGD(") and "momentum=0.5" in config["optimizer"]
    assert "lr=0.05" in config["optimizer"] and config["epochs_run"] == 3
    assert config["validation_split"] == 0.2
    assert config["early_stopping"] == 0          # still off: --plain has no early stopping
    assert config["selection"] is None      # no automatic weight decay, no refit


def test_plain_sets_every_size_default_and_regression_gets_sgds_regression_rate(capsys,
                                                                                 tmp_path):
    for n in (10, 10**6):                         # small and large data alike
        assert set(runs.train_defaults(n)) <= set(cli.PLAIN)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    lines = ["a,b,y"] + [f"{a!r},{b!r},{2 * a - b + 0.01 * i!r}"
                         for i, (a, b) in enumerate(X.tolist())]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    code, _out, err = run(capsys, "train", tmp_path / "r.csv", "--plain", "--epochs", "2",
                         "--layers", "4", "--no-plots", "--quiet", "--out", tmp_path / "run")
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["plain"]["lr"] == 0.01 and "momentum=0" in config["optimizer"]


def test_without_plain_the_good_defaults_stay(capsys, tmp_path):
    data = table_csv(tmp_path / "t.csv")
    code, _out, err = run(capsys, "train", data, "--optimizer", "sgd", "--epochs", "2",
                         "--layers", "4", "--no-plots", "--quiet", "--out", tmp_path / "run")
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "momentum=0.9" in config["optimizer"] and config["plain"] is None


def test_a_resumed_plain_run_keeps_its_settings(capsys, tmp_path):
    """--resume reads the settings from config.json: --plain's implied settings and an int
    --validation-rows split come back as they were (both the split and the flag are saved)."""
    data = table_csv(tmp_path / "t.csv")
    code, _, err = run(capsys, "train", data, "--plain", "--validation-rows", "40", "--epochs",
                       "2", "--layers", "4", "--no-plots", "--quiet", "--out", tmp_path / "run")
    assert code == 0, err
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "checkpoint.lw").write_bytes(b"")        # only its presence counts
    args = cli._resume_args(cli._parser().parse_args(["train", "--resume",
                                                      str(tmp_path / "run")]))
    cli._check_train_args(args)
    assert args.validation_split == 40 and isinstance(args.validation_split, int)
    assert cli.apply_plain(args) == saved["plain"] and saved["plain"]["lr"] == 0.1
    assert "validation_split" not in saved["plain"]              # given: --validation-rows
    assert args.momentum == 0.0 and args.early_stopping == 0 and args.epochs == 2
