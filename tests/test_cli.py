"""The command line: every subcommand in-process and as a subprocess, the run directory it
writes, predictions in the user's units and labels, and one-line errors for bad input."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import plots
from layerwise.cli import main

pytestmark = pytest.mark.usefixtures("in_tmp_path")   # each test in its own folder (conftest)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUN_FILES = ("model.lw", "history.csv", "history.json", "config.json", "curves.png",
             "gradient_flow.png", "confusion_matrix.png")
N_CSV = 300                           # rows of the CSV files written below
N_CSV_TEST = round(0.2 * N_CSV)       # the default --test-split of them


# -- helpers ------------------------------------------------------------------------------------
def run(capsys, *argv) -> tuple[int, str, str]:
    """``layerwise ARGV`` in-process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_quietly(*argv) -> str:
    """``layerwise ARGV`` in-process from a module fixture (no capsys there); returns stdout."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    assert code == 0, err.getvalue()
    return out.getvalue()


def run_subprocess(*argv, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerwise", *map(str, argv)],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def assert_one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("layerwise: error: ")
    return lines[0]


def final_table(out: str) -> dict[str, dict[str, str]]:
    """The table printed at the end of ``train`` / ``evaluate``: {row: {column: cell}}."""
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:1] == ["loss"])
    cols = lines[head].split()
    rows = {}
    for line in lines[head + 1:]:
        cells = line.split()
        if len(cells) != len(cols) + 1:
            break
        rows[cells[0]] = dict(zip(cols, cells[1:]))
    return rows


def percent(cell: str) -> float:
    assert cell.endswith("%"), cell
    return float(cell[:-1])


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def read_csv(path_or_text: Path | str) -> tuple[list[str], list[list[str]]]:
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def write_csv(path: Path, header: list[str], columns: list[np.ndarray]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in zip(*columns):
            w.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in row])
    return path


# -- shared runs (trained once per module, tiny) ------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "run"
    stdout = run_quietly("train", "digits", "--epochs", "2", "--layers", "16", "--quiet",
                         "--out", out)
    return out, stdout


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory):
    """cls.csv: 3 features and a text label in {high, low, mid}; reg.csv: y = 3x1 − 2x2 + 100."""
    folder = tmp_path_factory.mktemp("csv")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_CSV, 3))
    s = X[:, 0] + X[:, 1]
    label = np.where(s > 0.5, "high", np.where(s < -0.5, "low", "mid"))
    y = 3 * X[:, 0] - 2 * X[:, 1] + 100
    cls = write_csv(folder / "cls.csv", ["a", "b", "c", "label"], [*X.T.tolist(), label])
    reg = write_csv(folder / "reg.csv", ["x1", "x2", "x3", "y"], [*X.T.tolist(), y.tolist()])
    return cls, reg


@pytest.fixture(scope="module")
def cls_run(csv_files):
    cls, _ = csv_files
    out = cls.parent / "cls-run"
    # the defaults for 240 training rows (small data: Adam, early stopping; not 10 epochs)
    stdout = run_quietly("train", cls, "--layers", "16", "--quiet", "--no-plots", "--out", out)
    return out, stdout


@pytest.fixture(scope="module")
def reg_run(csv_files):
    _, reg = csv_files
    out = reg.parent / "reg-run"
    stdout = run_quietly("train", reg, "--loss", "mse", "--epochs", "30", "--layers", "16",
                         "--lr", "0.05", "--quiet", "--out", out)
    return out, stdout


# -- the old demo's intent: version, help, a tiny training run, argument errors ---------------
def test_version():
    r = subprocess.run([sys.executable, "-m", "layerwise", "--version"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"layerwise {lw.__version__}"


def test_no_command_prints_help_listing_every_subcommand(capsys):
    code, out, _ = run(capsys)
    assert code == 0
    for command in ("train", "evaluate", "predict", "info", "gradcheck", "explain"):
        assert command in out


def test_bad_epochs_is_a_one_line_error(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--epochs", "0", "--quiet", "--out", tmp_path / "r")
    line = assert_one_line_error(code, out, err)
    assert line.startswith("layerwise: error: --epochs must be a positive integer")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "many"])
    assert exc.value.code == 2


# -- train --------------------------------------------------------------------------------------
def test_train_writes_the_run_directory(digits_run):
    out, stdout = digits_run
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    for name in ("curves.png", "gradient_flow.png", "confusion_matrix.png"):
        assert is_png(out / name), name

    config = json.loads((out / "config.json").read_text())
    assert config["layers"] == [64, 16, 10]
    assert config["optimizer"].startswith("SGD(lr=0.1, momentum=0.9")
    assert config["seed"] == 0 and config["epochs"] == 2 and config["epochs_run"] == 2
    assert config["data"] == "digits" and config["task"] == "classification"
    assert config["activation"] == "relu" and config["batch_size"] == 64
    assert config["loss"].startswith("CrossEntropy(") and config["dtype"] == "float32"

    header, rows = read_csv(out / "history.csv")
    assert header[0] == "epoch" and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(header)
    assert [r[0] for r in rows] == ["1", "2"]                  # one row per epoch
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_accuracy"]) == 2

    table = final_table(stdout)
    assert list(table) == ["train", "validation", "test"]
    assert all(set(row) == {"loss", "accuracy"} for row in table.values())
    assert re.search(r"2 epochs in [\d.]+( ms|s) \([\d,]+ samples/s\)", stdout)

    model = lw.load(out / "model.lw")
    assert isinstance(model.layers[0], lw.Standardize)         # the model takes raw pixels
    assert model.metadata["classes"] == [str(k) for k in range(10)]


def test_model_file_is_as_readable_as_the_other_run_files(digits_run):
    """model.lw is written through a temporary file; it should get the usual permissions."""
    out, _ = digits_run
    mode = stat.S_IMODE((out / "model.lw").stat().st_mode)
    assert mode == stat.S_IMODE((out / "history.csv").stat().st_mode)


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_train_without_matplotlib_warns_once_and_succeeds(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(plots, "available", lambda: False)
    code, out, err = run(capsys, "train", "iris", "--epochs", "2", "--layers", "8", "--quiet",
                         "--out", tmp_path / "run")
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning:") and "matplotlib" in lines[0]
    assert (tmp_path / "run" / "model.lw").is_file()
    assert not list((tmp_path / "run").glob("*.png"))
    assert "test" in final_table(out)


def test_default_train_reaches_97_percent_on_digits(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--quiet", "--no-plots", "--out", tmp_path / "run")
    assert code == 0, err
    printed = percent(final_table(out)["test"]["accuracy"])
    assert printed >= 97.0
    assert not list((tmp_path / "run").glob("*.png"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"] == "digits" and config["layers"] == [64, 128, 10]
    assert config["epochs"] == 20
    model = lw.load(tmp_path / "run" / "model.lw")
    _, _, Xte, yte = lw.datasets.load_digits()
    accuracy = float(np.mean(model.predict_classes(Xte) == yte))
    assert f"{accuracy:.2%}" == f"{printed:.2f}%"


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_train_float64_minmax_and_early_stopping(capsys, tmp_path):
    code, _, err = run(capsys, "train", "iris", "--dtype", "float64", "--scaling", "minmax",
                       "--early-stopping", "1", "--epochs", "40", "--optimizer", "adam",
                       "--quiet", "--no-plots", "--out", tmp_path / "run")
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["scaling"] == "minmax" and config["optimizer"].startswith("Adam(")
    _, rows = read_csv(tmp_path / "run" / "history.csv")
    assert len(rows) == config["epochs_run"] <= 40
    model = lw.load(tmp_path / "run" / "model.lw")
    assert model.dtype == np.float64 and model.layers[0].method == "minmax"


# -- evaluate and predict reproduce train's test accuracy -------------------------------------
def test_evaluate_reproduces_the_digits_test_accuracy(capsys, digits_run):
    out, stdout = digits_run
    test_row = final_table(stdout)["test"]
    code, eval_out, err = run(capsys, "evaluate", out / "model.lw", "digits")
    assert code == 0, err
    assert "test split, 1797 samples" in eval_out
    assert final_table(eval_out)["evaluate"] == test_row


def test_predict_reproduces_the_digits_test_accuracy(capsys, digits_run, tmp_path):
    out, stdout = digits_run
    printed = final_table(stdout)["test"]["accuracy"]
    _, _, Xte, yte = lw.datasets.load_digits()
    np.save(tmp_path / "X.npy", Xte)
    code, _, err = run(capsys, "predict", out / "model.lw", tmp_path / "X.npy",
                       "--output", tmp_path / "pred.npy")
    assert code == 0, err
    pred = np.load(tmp_path / "pred.npy")
    assert pred.shape == (len(yte), 1)
    assert f"{np.mean(pred[:, 0] == yte.astype(str)):.2%}" == printed


def test_predict_applies_the_saved_preprocessing_to_a_raw_csv(capsys, digits_run, tmp_path):
    out, _ = digits_run
    model = lw.load(out / "model.lw")
    assert isinstance(model.layers[0], lw.Standardize)
    _, _, Xte, _ = lw.datasets.load_digits()
    X = Xte[:40]                                              # raw pixel counts 0–16
    path = write_csv(tmp_path / "raw.csv", [f"p{j}" for j in range(64)],
                     [c.astype(int).tolist() for c in X.T])
    code, stdout, err = run(capsys, "predict", out / "model.lw", path)
    assert code == 0, err
    header, rows = read_csv(stdout)
    assert header == ["prediction"]
    assert [r[0] for r in rows] == [str(k) for k in model.predict_classes(X)]


def test_predict_proba_has_class_headers_and_rows_summing_to_one(capsys, digits_run, tmp_path):
    out, _ = digits_run
    model = lw.load(out / "model.lw")
    _, _, Xte, _ = lw.datasets.load_digits()
    np.save(tmp_path / "X.npy", Xte[:25])
    code, stdout, err = run(capsys, "predict", out / "model.lw", tmp_path / "X.npy", "--proba")
    assert code == 0, err
    header, rows = read_csv(stdout)
    assert header == [str(k) for k in range(10)]
    P = np.array(rows, dtype=float)
    assert P.shape == (25, 10) and (P >= 0).all()
    np.testing.assert_allclose(P.sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(P, model.predict_proba(Xte[:25]), rtol=1e-5, atol=1e-6)

    # the same to files: .csv keeps the header, .npy holds the float array
    assert run(capsys, "predict", out / "model.lw", tmp_path / "X.npy", "--proba",
               "--output", tmp_path / "p.csv")[0] == 0
    assert read_csv(tmp_path / "p.csv") == (header, rows)
    assert run(capsys, "predict", out / "model.lw", tmp_path / "X.npy", "--proba",
               "--output", tmp_path / "p.npy")[0] == 0
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), P, atol=1e-6)


def test_csv_classification_with_text_labels(capsys, csv_files, cls_run, tmp_path):
    cls, _ = csv_files
    out, stdout = cls_run
    printed = final_table(stdout)["test"]
    assert not list(out.glob("*.png"))                        # --no-plots

    # evaluate on the same CSV reproduces the seeded random test split from the metadata
    code, eval_out, err = run(capsys, "evaluate", out / "model.lw", cls)
    assert code == 0, err
    assert f"test split, {N_CSV_TEST} samples" in eval_out
    assert final_table(eval_out)["evaluate"] == printed

    # predict gives the labels back as text, to stdout, .csv and .npy
    code, pred_out, err = run(capsys, "predict", out / "model.lw", cls)
    assert code == 0, err
    header, rows = read_csv(pred_out)
    labels = [r[0] for r in rows]
    assert header == ["prediction"] and len(labels) == N_CSV
    assert set(labels) <= {"high", "low", "mid"} and len(set(labels)) > 1
    _, truth = read_csv(cls)
    assert np.mean([p == t[-1] for p, t in zip(labels, truth)]) > 0.8
    assert run(capsys, "predict", out / "model.lw", cls, "--output", tmp_path / "p.npy")[0] == 0
    saved = np.load(tmp_path / "p.npy")
    assert saved.dtype.kind == "U" and saved[:, 0].tolist() == labels
    assert run(capsys, "predict", out / "model.lw", cls, "--output", tmp_path / "p.csv")[0] == 0
    assert read_csv(tmp_path / "p.csv") == (header, rows)

    # --proba: one column per class name, in the model's class order
    code, proba_out, _ = run(capsys, "predict", out / "model.lw", cls, "--proba")
    header, rows = read_csv(proba_out)
    assert header == ["high", "low", "mid"]
    P = np.array(rows, dtype=float)
    np.testing.assert_allclose(P.sum(axis=1), 1, atol=1e-4)
    assert [header[k] for k in P.argmax(axis=1)] == labels


def test_evaluate_on_a_copy_of_the_csv_says_what_it_evaluates(capsys, cls_run, csv_files,
                                                              tmp_path):
    """Under another name, the training split is not recognised; the header must then be true.

    cli._cmd_evaluate prints "all samples" but _test_set(data, None, 0.2, 0) still takes a
    20% split with seed 0 (which may overlap the training rows of a run with another seed).
    """
    cls, _ = csv_files
    out, _ = cls_run
    copy = shutil.copy(cls, tmp_path / "copy.csv")
    code, eval_out, err = run(capsys, "evaluate", out / "model.lw", copy)
    assert code == 0, err
    which, n = re.search(r"\((all samples|test split), (\d+) samples\)", eval_out).groups()
    assert (which, int(n)) in {("all samples", N_CSV), ("test split", N_CSV_TEST)}


def test_regression_csv_learns_a_linear_target_in_original_units(capsys, csv_files, reg_run,
                                                                 tmp_path):
    _, reg = csv_files
    out, stdout = reg_run
    table = final_table(stdout)
    assert list(table) == ["train", "test"]      # small data: the refit trains on every row
    assert set(table["test"]) == {"loss", "mse", "mae", "r2"}
    assert float(table["test"]["r2"]) > 0.95
    assert not (out / "confusion_matrix.png").exists()
    assert is_png(out / "curves.png") and is_png(out / "gradient_flow.png")

    model = lw.load(out / "model.lw")
    first, last = model.layers[0], model.layers[-1]
    assert isinstance(first, lw.Standardize) and isinstance(last, lw.Standardize)
    assert last.method == "inverse"                           # un-standardises the targets

    code, eval_out, err = run(capsys, "evaluate", out / "model.lw", reg)
    assert code == 0, err
    assert final_table(eval_out)["evaluate"] == table["test"]

    code, pred_out, err = run(capsys, "predict", out / "model.lw", reg)
    assert code == 0, err
    header, rows = read_csv(pred_out)
    assert header == ["y"]
    pred = np.array(rows, dtype=float)[:, 0]
    _, truth = read_csv(reg)
    y = np.array([r[-1] for r in truth], dtype=float)
    assert 90 < pred.mean() < 110                             # original units, not standardised
    assert 1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2) > 0.95

    # the task is inferred without --loss too; the same seed gives the same model
    code, _, err = run(capsys, "train", reg, "--epochs", "30", "--layers", "16", "--lr", "0.05",
                       "--quiet", "--no-plots", "--out", tmp_path / "inferred")
    assert code == 0, err
    again = lw.load(tmp_path / "inferred" / "model.lw")
    assert again.loss.kind == "mse"
    np.testing.assert_array_equal(again.predict(np.zeros((1, 3))), model.predict(np.zeros((1, 3))))


def test_regression_with_the_default_options_does_not_diverge(capsys, csv_files, tmp_path):
    """`layerwise train data.csv` with the large-data defaults (128 ReLU units, SGD lr 0.1,
    momentum 0.9; small tables get Adam unless --optimizer sgd) on a plain linear target: MSE
    gradients are unbounded, so this must still train."""
    _, reg = csv_files
    code, out, err = run(capsys, "train", reg, "--optimizer", "sgd", "--epochs", "5", "--quiet",
                         "--no-plots", "--no-refit", "--out", tmp_path / "run")
    assert code == 0, err
    assert err == ""                                          # no RuntimeWarnings either
    # 30 steps: R² spreads over 0.897–0.991 with seeds 0–5 (which rows train in which order
    # moved when fit began drawing its own validation sample, issue 12); a divergence is far off
    assert float(final_table(out)["test"]["r2"]) > 0.85


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_validation_rows_are_a_random_sample(capsys, monkeypatch, tmp_path):
    """iris is sorted by class; the rows held out for validation must not all be one class."""
    from layerwise import training
    real_fit, seen = training.fit, {}

    def spy(model, X, y, **kwargs):
        if kwargs.get("validation_data") is not None:
            seen["y_val"] = np.asarray(kwargs["validation_data"][1])
        else:
            # fit holds out its own random sample (issue 12): the rows validation_rows draws
            _, val = training.validation_rows(len(X), kwargs["validation_split"], kwargs["rng"])
            seen["y_val"] = np.asarray(y)[val]
        return real_fit(model, X, y, **kwargs)

    monkeypatch.setattr(training, "fit", spy)
    assert run(capsys, "train", "iris", "--epochs", "1", "--quiet", "--no-plots", "--no-refit",
               "--out", tmp_path / "run")[0] == 0
    assert len(seen["y_val"]) == 24           # 20% of 120: the small-data default (issue 11)
    assert len(np.unique(seen["y_val"])) > 1


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_predict_with_bce_names_the_most_probable_class(capsys, tmp_path):
    """With --loss bce on K > 2 classes there is one sigmoid output per class: the predicted
    class must be the most probable one, not whether output 0 fired (labels[:, 0])."""
    assert run(capsys, "train", "iris", "--loss", "bce", "--epochs", "5", "--quiet",
               "--no-plots", "--out", tmp_path / "run")[0] == 0
    from sklearn.datasets import load_iris
    np.save(tmp_path / "X.npy", load_iris().data[::10])
    model = tmp_path / "run" / "model.lw"
    _, labels_out, _ = run(capsys, "predict", model, tmp_path / "X.npy")
    _, proba_out, _ = run(capsys, "predict", model, tmp_path / "X.npy", "--proba")
    _, labels = read_csv(labels_out)
    header, rows = read_csv(proba_out)
    best = [header[k] for k in np.array(rows, dtype=float).argmax(axis=1)]
    assert [r[0] for r in labels] == best


# -- info, gradcheck, explain -------------------------------------------------------------------
def test_info_prints_the_summary_and_the_training_configuration(capsys, digits_run):
    out, _ = digits_run
    code, stdout, err = run(capsys, "info", out / "model.lw")
    assert code == 0, err
    assert "Standardize" in stdout and "Dense" in stdout and "total parameters" in stdout
    assert "loss: CrossEntropy(" in stdout
    assert "training configuration:" in stdout
    assert "  layers: [64, 16, 10]" in stdout and "  seed: 0" in stdout
    assert "  optimizer: SGD(" in stdout


def test_gradcheck_a_fresh_network_and_a_saved_model(capsys, digits_run):
    code, stdout, err = run(capsys, "gradcheck", "--layers", "8", "--activation", "tanh")
    assert code == 0, err
    assert "PASSED" in stdout and "FAIL" not in stdout
    out, _ = digits_run
    code, stdout, err = run(capsys, "gradcheck", out / "model.lw", "digits")
    assert code == 0, err
    assert "PASSED" in stdout


def test_explain_flags_vanishing_gradients_in_a_deep_sigmoid_net(capsys, tmp_path):
    code, stdout, err = run(capsys, "explain", "--layers", "32,32,32,32,32,32", "--activation",
                            "sigmoid", "--init", "normal", "--plot", tmp_path / "f.png")
    assert code == 0, err
    assert "vanishing gradient" in stdout and "gradients look healthy" not in stdout
    assert is_png(tmp_path / "f.png")


def test_explain_a_healthy_relu_net_and_a_saved_model(capsys, digits_run):
    code, stdout, err = run(capsys, "explain")
    assert code == 0, err
    assert stdout.strip().endswith("gradients look healthy")
    assert "vanishing" not in stdout.split("\n\n")[-1]
    out, _ = digits_run
    code, stdout, err = run(capsys, "explain", out / "model.lw", "--batch-size", "16")
    assert code == 0, err
    assert "B = 16" in stdout


def test_explain_plot_without_matplotlib_warns(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(plots, "available", lambda: False)
    code, _, err = run(capsys, "explain", "--layers", "8", "--plot", tmp_path / "f.png")
    assert code == 0
    assert len(err.strip().splitlines()) == 1 and "matplotlib" in err
    assert not (tmp_path / "f.png").exists()


# -- errors -------------------------------------------------------------------------------------
@pytest.fixture
def bad_files(tmp_path, digits_run):
    model = digits_run[0] / "model.lw"
    (tmp_path / "garbage.lw").write_bytes(b"this is not a model")
    (tmp_path / "truncated.lw").write_bytes(model.read_bytes()[:300])
    write_csv(tmp_path / "narrow.csv", ["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    write_csv(tmp_path / "unseen.csv", ["a", "b", "c", "label"],
              [[0.1], [0.2], [0.3], ["purple"]])
    return {"MODEL": str(model), "TMP": str(tmp_path)}


ERRORS = {
    "unknown dataset": (["train", "no-such-dataset"], "no dataset named 'no-such-dataset'"),
    "missing file": (["train", "TMP/missing.csv"], "no such file"),
    "wrong target": (["train", "CLS", "--target", "price"], "price"),
    "digits model on iris": (["evaluate", "MODEL", "iris"], "4 features but the model expects 64"),
    "predict wrong width": (["predict", "MODEL", "TMP/narrow.csv"], "2 features"),
    "huber on classes": (["train", "iris", "--loss", "huber"], "--loss ce"),
    "early stopping without validation": (
        ["train", "iris", "--early-stopping", "2", "--validation-split", "0"], "validation"),
    "unknown optimizer": (["train", "iris", "--optimizer", "nadam"], "unknown optimizer 'nadam'"),
    "garbage model, evaluate": (["evaluate", "TMP/garbage.lw", "digits"], "cannot load model"),
    "truncated model, info": (["info", "TMP/truncated.lw"], "cannot load model"),
    "missing model": (["info", "TMP/missing.lw"], "no such file"),
    "missing input": (["predict", "MODEL", "TMP/missing.csv"], "no such input file"),
    "proba of regression": (["predict", "REG", "REG_CSV", "--proba"], "classification model"),
    "unseen class label": (["evaluate", "CLS_MODEL", "TMP/unseen.csv"], "purple"),
    "too many positionals": (["gradcheck", "a.lw", "digits", "extra"], "at most"),
}


@pytest.mark.parametrize("name", [  # the cases on iris need scikit-learn's copy of it
    pytest.param(n, marks=pytest.mark.sklearn) if "iris" in ERRORS[n][0] else n for n in ERRORS])
def test_bad_input_is_a_one_line_error(name, capsys, bad_files, csv_files, cls_run, reg_run):
    argv, needle = ERRORS[name]
    subst = {**bad_files, "CLS": str(csv_files[0]), "REG_CSV": str(csv_files[1]),
             "CLS_MODEL": str(cls_run[0] / "model.lw"), "REG": str(reg_run[0] / "model.lw")}
    argv = [re.sub("|".join(sorted(subst, key=len, reverse=True)),
                   lambda m: subst[m.group()], a) for a in argv]
    if argv[0] == "train":
        argv += ["--epochs", "1", "--quiet", "--no-plots", "--out", f"{bad_files['TMP']}/run"]
    code, out, err = run(capsys, *argv)
    line = assert_one_line_error(code, out, err)
    assert needle in line


@pytest.mark.parametrize("argv", [
    ["--early-stopping", "2", "--validation-split", "0"],
    ["--optimizer", "nadam"],
    ["--epochs", "0"],
])
def test_a_failed_train_leaves_no_run_directory(argv, capsys, tmp_path):
    code, out, err = run(capsys, "train", "iris", "--quiet", *argv, "--out", tmp_path / "run")
    assert_one_line_error(code, out, err)
    assert not (tmp_path / "run").exists()


def test_a_missing_csv_cell_is_reported_as_one_value(capsys, csv_files, tmp_path):
    """One empty cell: the error should count 1 NaN in the data, not the whole column that
    the Standardize layer (fitted with a NaN mean) turned into NaN."""
    lines = csv_files[0].read_text().splitlines()
    lines[4] = "," + lines[4].split(",", 1)[1]                # data row 3, first cell empty
    path = tmp_path / "missing-cell.csv"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "train", path, "--epochs", "1", "--quiet", "--no-plots",
                         "--out", tmp_path / "run")
    line = assert_one_line_error(code, out, err)
    assert "NaN" in line and " 1 NaN" in line


def test_bad_layers_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--layers", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --layers: layer sizes must be positive" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["gradcheck", "--layers", "a,b"])
    assert exc.value.code == 2
    assert "comma-separated layer sizes" in capsys.readouterr().err


# -- the same as subprocesses -------------------------------------------------------------------
def test_every_subcommand_as_a_subprocess(tmp_path, csv_files):
    cls, _ = csv_files
    r = run_subprocess("train", cls, "--epochs", "5", "--layers", "8", "--quiet", "--out", "run",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    printed = final_table(r.stdout)["test"]
    for name in RUN_FILES:
        assert (tmp_path / "run" / name).is_file(), name
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["command"].startswith("layerwise train ")     # the command line, recorded

    r = run_subprocess("evaluate", "run/model.lw", cls, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert final_table(r.stdout)["evaluate"] == printed

    r = run_subprocess("predict", "run/model.lw", cls, "--output", "p.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    header, rows = read_csv(tmp_path / "p.csv")
    assert header == ["prediction"] and len(rows) == N_CSV

    r = run_subprocess("info", "run/model.lw", cwd=tmp_path)
    assert r.returncode == 0 and "training configuration:" in r.stdout

    r = run_subprocess("gradcheck", "--layers", "8", "--activation", "tanh", cwd=tmp_path)
    assert r.returncode == 0 and "PASSED" in r.stdout

    r = run_subprocess("explain", "run/model.lw", cls, "--plot", "e.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert is_png(tmp_path / "e.png")


@pytest.mark.parametrize("argv", [
    ["train", "no-such-dataset"],
    ["info", "missing.lw"],
    ["train", "iris", "--loss", "huber", "--out", "run"],
])
def test_errors_as_a_subprocess(argv, tmp_path):
    r = run_subprocess(*argv, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layerwise: error:")


def test_train_checkpoints_and_resume_bit_identically(tmp_path):
    """Ctrl-C (SIGINT) during `train --checkpoint-every` exits 130 with how to resume, and
    `train --resume RUN_DIR` ends with the model an uninterrupted run gives."""
    import signal
    import time

    base = [sys.executable, "-m", "layerwise", "train", "--quiet", "--no-plots", "--epochs", "8",
            "--layers", "64", "--checkpoint-every", "3"]
    full = tmp_path / "full"
    subprocess.run([*base, "--out", str(full)], check=True, capture_output=True, timeout=300)
    cut = tmp_path / "cut"
    with subprocess.Popen([*base, "--out", str(cut)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        for _ in range(600):                                # wait for the first checkpoint
            if (cut / "checkpoint.lw").exists():
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("training finished before the interrupt arrived")
    assert proc.returncode == 130
    assert f"layerwise train --resume {cut}" in err and "Traceback" not in err
    r = subprocess.run([sys.executable, "-m", "layerwise", "train", "--resume", str(cut)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = lw.load(full / "model.lw"), lw.load(cut / "model.lw")
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.value, q.value)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    code, out, err = run(capsys, "train", "--resume", tmp_path)
    line = assert_one_line_error(code, out, err)
    assert "no checkpoint.lw" in line
