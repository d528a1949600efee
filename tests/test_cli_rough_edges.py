"""Issue 11, item 3: the rough edges a new user hits first on the command line.

Regression curves and history in the targets' units (with R²), messages that name the command's
flags, gradcheck/explain on a saved model, one-line argument errors, a continuous target forced
into classes, evaluate without a target column, the progress bar when piped, info, timings,
help texts, and file lines in messages. Every number shown is checked against an independent
computation (scikit-learn's metrics on the saved model's predictions).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import plots, runs
from layerwise._utils import format_seconds
from layerwise.cli import in_flags, main

sklearn_metrics = pytest.importorskip("sklearn.metrics")
SRC = str(Path(lw.__file__).resolve().parents[1])


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layerwise: error: "), err
    assert "Traceback" not in err
    return lines[0]


def write_csv(path: Path, names: list[str], rows) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory) -> Path:
    """scikit-learn's diabetes table: 442 rows, a continuous integer-valued target (25..346)."""
    from sklearn.datasets import load_diabetes
    d = load_diabetes()
    path = tmp_path_factory.mktemp("diabetes") / "diabetes.csv"
    return write_csv(path, [*d.feature_names, "y"], [[*x, t] for x, t in zip(d.data, d.target)])


QUICK = ("--epochs", "4", "--layers", "16", "--seed", "0", "--test-split", "0.2",
         "--validation-split", "0.1")


@pytest.fixture(scope="module")
def reg_run(diabetes_csv, tmp_path_factory):
    """A regression run with its plots captured as figures (path name -> Figure)."""
    out = tmp_path_factory.mktemp("reg") / "run"
    figures = {}
    original = plots._save
    plots._save = lambda fig, path: figures.setdefault(Path(path).name, fig)
    try:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            # --no-refit: the final run keeps its validation rows, whose figures are checked
            # --ensemble 1: the history is the saved network's own
            code = main(["train", str(diabetes_csv), *QUICK, "--no-refit", "--ensemble", "1",
                         "--out", str(out)])
    finally:
        plots._save = original
    assert code == 0, stderr.getvalue()
    return {"out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
            "figures": figures}


def split_rows(source: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The training run's fit rows and validation rows (X raw, y in the target's units), as
    `train` splits with --seed 0 --test-split 0.2 --validation-split 0.1."""
    data = lw.datasets.load(source)
    Xtr, ytr, _, _ = runs.train_and_test(data, 0.2, 0)
    perm = np.random.default_rng(0).permutation(len(Xtr))
    Xtr, ytr = Xtr[perm], ytr[perm]
    n_val = round(len(Xtr) * 0.1)
    return Xtr[:-n_val], ytr[:-n_val], Xtr[-n_val:], ytr[-n_val:]


def read_history(out: Path) -> dict[str, list[float]]:
    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


# -- regression: history, curves and epoch lines in the targets' units, with R² ---------------
def test_regression_history_is_in_the_targets_units_with_r2(reg_run, diabetes_csv):
    history = read_history(reg_run["out"])
    for key in ("loss", "mse", "mae", "r2", "val_loss", "val_mse", "val_mae", "val_r2"):
        assert key in history, sorted(history)
    model = lw.load(reg_run["out"] / "model.lw")
    X_fit, y_fit, X_val, y_val = split_rows(diabetes_csv)
    for prefix, X, y in (("", X_fit, y_fit), ("val_", X_val, y_val)):
        pred = model.predict(X).reshape(-1).astype(np.float64)
        mse = sklearn_metrics.mean_squared_error(y, pred)
        # the last epoch's figures are those of the saved model (no early stopping here)
        assert history[f"{prefix}mse"][-1] == pytest.approx(mse, rel=1e-5)
        assert history[f"{prefix}loss"][-1] == pytest.approx(mse / 2, rel=1e-5)   # ½·MSE
        assert history[f"{prefix}mae"][-1] == pytest.approx(
            sklearn_metrics.mean_absolute_error(y, pred), rel=1e-5)
        assert history[f"{prefix}r2"][-1] == pytest.approx(
            sklearn_metrics.r2_score(y, pred), rel=1e-4, abs=1e-5)
    # the targets' units (variance ~5900), not standardised ones (~1)
    assert history["val_mse"][-1] > 1000
    assert json.loads((reg_run["out"] / "history.json").read_text())["val_r2"] == pytest.approx(
        history["val_r2"], rel=1e-5)


def test_regression_epoch_lines_show_the_recorded_numbers(reg_run):
    history = read_history(reg_run["out"])
    lines = [line for line in reg_run["stderr"].splitlines() if line.startswith("Epoch ")]
    assert len(lines) == 4                      # not a terminal: one line per epoch
    last = dict(re.findall(r"(\w+)=([-\d.e+]+)", lines[-1]))
    for key in ("loss", "mse", "r2", "val_mse", "val_r2"):
        assert float(last[key]) == pytest.approx(history[key][-1], rel=1e-3, abs=1e-4)


def test_regression_curves_plot_loss_mae_and_r2_as_recorded(reg_run):
    history = read_history(reg_run["out"])
    fig = reg_run["figures"]["curves.png"]
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss per epoch", "MAE per epoch", "R² per epoch"]
    for ax, key in zip(fig.axes, ("loss", "mae", "r2")):
        curves = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
        label = {"loss": "loss", "mae": "MAE", "r2": "R²"}[key]
        np.testing.assert_allclose(curves[f"training {label}"], history[key], rtol=1e-5)
        np.testing.assert_allclose(curves[f"validation {label}"], history[f"val_{key}"],
                                   rtol=1e-5)


def test_plot_history_draws_r2_from_validation_only_histories(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_history({"loss": [1.0, 0.5], "val_loss": [1.2, 0.7], "val_mse": [2.4, 1.4],
                        "val_mae": [1.1, 0.9], "val_r2": [0.1, 0.4]}, tmp_path / "c.png")
    assert [ax.get_title() for ax in figures[0].axes] == [
        "loss per epoch", "MAE per epoch", "R² per epoch"]


# -- messages name the command's flags ----------------------------------------------------------
@pytest.mark.parametrize("api, flags", [
    ("pass data_dir=FOLDER or set LAYERWISE_DATA=FOLDER.",
     "pass --data-dir FOLDER or set LAYERWISE_DATA=FOLDER."),
    ("drop target='bp'.", "drop --target bp."),
    ("so pass task='classification'.", "so pass --task classification."),
    ("clip gradients (clip_norm=1) or", "clip gradients (--clip-norm 1) or"),
    ("use float64 (dtype=np.float64).", "use float64 (--dtype float64)."),
    ("or pass header=False if the file has none", "or pass --no-header if the file has none"),
    ("choose it with target='my col'.", "choose it with --target 'my col'."),
])
def test_library_messages_are_translated_to_flags(api, flags):
    assert in_flags(api) == flags


PYTHON_SYNTAX = re.compile(r"\b[a-z_]+=\S")        # name=value: how Python callers write it


def test_errors_on_the_command_line_name_flags(capsys, tmp_path, diabetes_csv):
    text = write_csv(tmp_path / "text.csv", ["a", "label"], [[1, "x"], [2, "y"], [3, "x"]])
    huge = write_csv(tmp_path / "huge.csv", ["a", "b", "label"],
                     [[1, 2, 0], [2, 3, 1], [3.77e300, 4, 0], [4, 5, 1]])
    cases = [
        (["train", "digits", "--target", "bp"], "--target bp"),
        (["train", text, "--task", "regression"], "--task classification"),
        (["train", huge], "--dtype float64"),
        (["train", "digits", "--lr", "1e30", "--epochs", "1"], "(--clip-norm 1)"),
    ]
    for argv, words in cases:
        line = one_line_error(capsys, *argv, "--quiet", "--no-plots", "--out", tmp_path / "r")
        assert words in line, line
        assert not PYTHON_SYNTAX.search(line), line


def test_divergence_does_not_suggest_the_clipping_already_used(capsys, tmp_path):
    line = one_line_error(capsys, "train", "digits", "--lr", "1e30", "--epochs", "1",
                          "--clip-norm", "5", "--quiet", "--no-plots", "--out", tmp_path / "r")
    assert "Lower the learning rate" in line
    assert "clip" not in line.split("Lower the learning rate")[1], line


# -- gradcheck and explain on a saved model use the data it was trained on --------------------
@pytest.fixture(scope="module")
def csv_model(diabetes_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("gc") / "run"
    code = main(["train", str(diabetes_csv), "--epochs", "1", "--layers", "8", "--quiet",
                 "--no-plots", "--out", str(out)])
    assert code == 0
    return out / "model.lw"


@pytest.mark.parametrize("command", ["gradcheck", "explain"])
def test_gradcheck_and_explain_use_the_models_own_data(command, capsys, csv_model):
    code, out, err = run(capsys, command, csv_model)
    assert code == 0, err
    assert "digits" not in out + err
    assert ("gradient check PASSED" if command == "gradcheck" else "gradients look") in out


@pytest.mark.parametrize("command", ["gradcheck", "explain"])
def test_gradcheck_and_explain_say_pass_data_when_the_data_is_not_found(
        command, capsys, csv_model, tmp_path, monkeypatch):
    moved = tmp_path / "model.lw"
    moved.write_bytes(csv_model.read_bytes())
    monkeypatch.chdir(tmp_path)          # the CSV path the run recorded is relative: not here
    model = lw.load(moved)
    model.metadata["config"]["data"] = "nowhere/diabetes.csv"
    model.save(moved)
    line = one_line_error(capsys, command, moved)
    assert "nowhere/diabetes.csv" in line and f"layerwise {command}" in line
    assert "DATA" in line and "digits" not in line


def test_gradcheck_on_a_model_without_recorded_data_says_pass_data(capsys, tmp_path):
    path = tmp_path / "bare.lw"
    model = lw.mlp([30, 4, 2], rng=0)
    model.loss = lw.CrossEntropy()
    model.save(path)
    line = one_line_error(capsys, "gradcheck", path)
    assert "does not record the data" in line and "DATA" in line


# -- argument errors are one line ---------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["train", "--layers", "64,abc"], "--layers"),
    (["train", "--epochs", "many"], "--epochs"),
    (["evaluate"], "required"),
    (["predict", "m.lw", "x.csv", "--bogus"], "--bogus"),
    (["--no-such-option"], "--no-such-option"),
])
def test_argument_errors_are_one_line_with_a_pointer_to_help(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("layerwise: error: ") and words in lines[0]
    assert re.search(r"see 'layerwise( \w+)? --help'", lines[0]), lines[0]
    assert "usage:" not in err


# -- a continuous target forced into classes; evaluate without the target column --------------
def test_classification_of_a_continuous_target_warns_with_the_reason(capsys, diabetes_csv,
                                                                     tmp_path):
    code, _, err = run(capsys, "train", diabetes_csv, "--task", "classification", "--epochs",
                       "1", "--layers", "8", "--quiet", "--no-plots", "--out", tmp_path / "r")
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("layerwise: warning:")]
    assert len(warning) == 1, err
    n_classes = len(np.unique(lw.datasets.load(diabetes_csv).y_train))
    assert f"makes {n_classes} classes" in warning[0] and "442 rows" in warning[0]
    assert "drop --task" in warning[0] and "regression" in warning[0]


def test_no_warning_for_real_classes(capsys, tmp_path):
    code, _, err = run(capsys, "train", "iris", "--task", "classification", "--epochs", "1",
                       "--layers", "8", "--quiet", "--no-plots", "--out", tmp_path / "r")
    assert code == 0 and "warning" not in err


def test_evaluate_without_the_target_column_says_so(capsys, csv_model, diabetes_csv, tmp_path):
    with diabetes_csv.open() as f:
        rows = [row[:-1] for row in csv.reader(f)]
    features = tmp_path / "features.csv"
    write_csv(features, rows[0], rows[1:])
    line = one_line_error(capsys, "evaluate", csv_model, features)
    assert "target column 'y' is missing" in line
    line = one_line_error(capsys, "evaluate", csv_model, features, "--by-position")
    assert "no target column" in line and "layerwise predict" in line
    assert "features but the model expects" not in line


# -- progress when piped, info, timings, help, file lines ---------------------------------------
def test_piped_progress_is_one_line_per_epoch(tmp_path):
    def train(*extra):
        return subprocess.run(
            [sys.executable, "-m", "layerwise", "train", "iris", "--epochs", "3", "--layers",
             "8", "--no-refit", "--no-plots", "--out", str(tmp_path / f"r{len(extra)}"),
             *extra],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})
    result = train()
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split()[:2] for line in lines] == [["Epoch", f"{k}/3"] for k in (1, 2, 3)]
    assert "\r" not in result.stderr and all("val_loss=" in line for line in lines)
    quiet = train("--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_fit_prints_one_line_per_epoch_without_a_terminal(capsys):
    X = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    lw.mlp([2, 4, 2], rng=0).fit(X, y, epochs=3, batch_size=16, verbose=1)
    err = capsys.readouterr().err
    assert [line.split()[:2] for line in err.splitlines()] == [
        ["Epoch", "1/3"], ["Epoch", "2/3"], ["Epoch", "3/3"]]


def test_info_shows_no_none_and_explains_the_default_init(capsys, csv_model):
    code, out, _ = run(capsys, "info", csv_model)
    assert code == 0
    config = out.split("training configuration:")[1]
    settings = dict(line.strip().split(": ", 1) for line in config.strip().splitlines())
    assert "None" not in {v for k, v in settings.items() if k != "args"}
    assert "default for each layer's activation" in settings["init"]


@pytest.mark.parametrize("seconds, text", [
    (0.0004, "0.4 ms"), (0.0412, "41.2 ms"), (0.0999, "99.9 ms"), (0.1, "0.1s"),
    (0.4123, "0.412s"), (18.71, "18.7s"), (548.3, "548s"), (1234.5, "1234s"),
])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_fast_runs_print_a_time_consistent_with_the_rate(capsys, tmp_path):
    code, out, err = run(capsys, "train", "iris", "--epochs", "3", "--layers", "8", "--quiet",
                         "--no-plots", "--out", tmp_path / "r")
    assert code == 0, err
    m = re.search(r"(\d+) epochs in ([\d.]+)( ms|s) \(([\d,]+) samples/s\)", out)
    assert m, out
    shown = float(m[2]) * (1e-3 if m[3] == " ms" else 1)
    assert shown > 0 and "0.0s" not in out
    history = read_history(tmp_path / "r")
    assert m[2] + m[3] == format_seconds(sum(history["seconds"]))
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    n_fit = lw.datasets.load("iris").X_train.shape[0]
    n_fit -= round(n_fit * config["test_split"])
    n_fit -= round(n_fit * config["validation_split"])
    rate = float(m[4].replace(",", ""))
    # the rate times the time shown is the samples trained, up to the shown time's rounding
    assert rate * shown == pytest.approx(int(m[1]) * n_fit, rel=6e-3)


@pytest.mark.parametrize("command", ["evaluate", "predict", "info"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and f"layerwise {command} " in out.split("examples:")[1]


def test_dtype_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert re.search(r"--dtype \{float32,float64\} float32 \(default", out), out


def test_messages_name_the_file_and_its_line(capsys, tmp_path):
    rows = [[1, 2, 0], [2, 3, 1], [3, 4, 0], [4, float("nan"), 1], [5, 6, 0], [6, 7, 1]]
    nan = write_csv(tmp_path / "nan.csv", ["a", "b", "label"], rows)      # NaN: row 3, line 5
    line = one_line_error(capsys, "train", nan, "--quiet", "--no-plots", "--out", tmp_path / "r")
    assert "nan.csv: X" in line and "first on line 5, column 'b'" in line and "row" not in line
    headless = tmp_path / "headless.csv"
    headless.write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    line = one_line_error(capsys, "train", headless, "--no-header", "--quiet", "--no-plots",
                          "--out", tmp_path / "r")
    assert "first on line 4, column 'col2'" in line
    huge = write_csv(tmp_path / "huge.csv", ["a", "b", "label"],
                     [[1, 2, 0], [2, 3, 1], [3.77e300, 4, 0], [4, 5, 1]])
    line = one_line_error(capsys, "train", huge, "--quiet", "--no-plots", "--out",
                          tmp_path / "r")
    assert "huge.csv: X holds values up to 3.77e+300 (first on line 4, column 'a')" in line
    targets = write_csv(tmp_path / "targets.csv", ["a", "b", "y"],
                        [[i, i % 3, "nan" if i == 6 else i / 2] for i in range(40)])
    line = one_line_error(capsys, "train", targets, "--quiet", "--no-plots", "--out",
                          tmp_path / "r")                                 # was a traceback
    assert "targets.csv: y contains 1 NaN or infinite values (first on line 8)" in line


def test_predict_and_evaluate_name_the_file_line(capsys, csv_model, diabetes_csv, tmp_path):
    with diabetes_csv.open() as f:
        rows = list(csv.reader(f))
    rows[3][2] = "nan"                                                    # line 4 of the file
    bad = write_csv(tmp_path / "bad.csv", rows[0], rows[1:])
    for argv in (["predict", csv_model, bad], ["evaluate", csv_model, bad]):
        line = one_line_error(capsys, *argv)
        assert "bad.csv: X" in line and "first on line 4, column 'bmi'" in line, line


def test_help_lists_the_registries_names_so_a_new_one_needs_no_cli_edit(monkeypatch):
    """The names in --help come from the registries (one per class, aliases left out): the
    hard-coded list had missed the diabetes dataset."""
    from layerwise import cli, datasets, optimizers

    class Lion(optimizers.SGD):
        pass
    monkeypatch.setitem(optimizers.OPTIMIZERS, "lion", Lion)
    text = " ".join(cli._parser()._subparsers._group_actions[0].choices["train"]
                    .format_help().split())
    assert "sgd, adam, adamw, rmsprop, lion (auto: adam for small data" in text
    assert ", ".join(datasets.NAMES) in text and "diabetes" in text
    assert "mse, mae, huber, poisson, bce, ce (default" in text and "cross_entropy" not in text
    assert "hidden activation: relu, leaky_relu, sigmoid, tanh, elu, softplus, gelu" in text
