"""`layerwise train` on small tables: defaults chosen by the data's size, a test split fixed by
--split-seed (independent of --seed) that `evaluate` rebuilds, and models from before
--split-seed (which recorded only their seed) still evaluated on their own test rows."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import cli, runs

N_ROWS = 200


def train(tmp_path: Path, name: str, *argv: object) -> tuple[Path, str]:
    """``layerwise train ARGV --out tmp/NAME --quiet --no-plots``: (run dir, stdout)."""
    out = tmp_path / name
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["train", *map(str, argv), "--out", str(out), "--quiet", "--no-plots"])
    assert code == 0
    return out, stdout.getvalue()


def table(text: str) -> dict[str, list[str]]:
    """The rows of the table ``train`` / ``evaluate`` print: {row name: cells}."""
    return {cells[0]: cells[1:] for cells in map(str.split, text.splitlines())
            if cells and cells[0] in ("train", "validation", "test", "evaluate")}


@pytest.fixture(scope="module")
def index_csv(tmp_path_factory) -> Path:
    """A CSV whose feature ``i`` is the row number: the input scaler fitted on the training
    rows (mean and std of their ``i``) tells which rows those were."""
    path = tmp_path_factory.mktemp("data") / "rows.csv"
    rng = np.random.default_rng(0)
    x = rng.normal(size=N_ROWS)
    lines = ["i,x,y"] + [f"{i},{x[i]:.6f},{'a' if x[i] > 0 else 'b'}" for i in range(N_ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def training_rows_scaler(run: Path) -> tuple[float, float]:
    """(mean, std) of feature ``i`` over the rows the run fitted its scaler on."""
    scaler = lw.load(run / "model.lw").layers[0]
    return float(scaler.offset[0]), float(scaler.scale[0])


# -- --split-seed --------------------------------------------------------------------------------
def test_split_seed_fixes_the_test_rows_whatever_the_seed(tmp_path, index_csv):
    # --validation-split 0: the scaler is fitted on every non-test row, so it names the split
    common = ("--layers", 4, "--epochs", 1, "--validation-split", 0)
    a, _ = train(tmp_path, "a", index_csv, *common, "--seed", 0)
    b, _ = train(tmp_path, "b", index_csv, *common, "--seed", 7)
    c, _ = train(tmp_path, "c", index_csv, *common, "--seed", 7, "--split-seed", 1)
    assert training_rows_scaler(a) == training_rows_scaler(b)       # the same test rows
    assert training_rows_scaler(a) != training_rows_scaler(c)       # other test rows
    # the rows themselves: a seeded permutation of the row numbers, its first 20% for testing
    for run, split_seed in ((a, 0), (c, 1)):
        test = np.random.default_rng(split_seed).permutation(N_ROWS)[:round(0.2 * N_ROWS)]
        rows = np.setdiff1d(np.arange(N_ROWS), test)
        np.testing.assert_allclose(training_rows_scaler(run), (rows.mean(), rows.std()),
                                   rtol=1e-5)
    meta = lw.load(c / "model.lw").metadata
    assert (meta["seed"], meta["split_seed"]) == (7, 1)
    assert json.loads((c / "config.json").read_text())["split_seed"] == 1


def test_evaluate_rebuilds_the_test_split_from_the_split_seed(tmp_path, index_csv, capsys):
    run, stdout = train(tmp_path, "run", index_csv, "--layers", 8, "--epochs", 3,
                        "--seed", 5, "--split-seed", 3)
    assert cli.main(["evaluate", str(run / "model.lw"), str(index_csv)]) == 0
    out = capsys.readouterr().out
    assert f"test split, {round(0.2 * N_ROWS)} samples" in out
    assert table(out)["evaluate"] == table(stdout)["test"]


def test_a_model_from_before_split_seed_is_evaluated_on_its_own_test_rows(tmp_path, index_csv,
                                                                          capsys):
    """Old models recorded only ``seed``, which then seeded the test split too."""
    run, stdout = train(tmp_path, "run", index_csv, "--layers", 8, "--epochs", 3,
                        "--seed", 4, "--split-seed", 4)
    model = lw.load(run / "model.lw")
    del model.metadata["split_seed"]
    model.save(tmp_path / "old.lw")
    assert cli.main(["evaluate", str(tmp_path / "old.lw"), str(index_csv)]) == 0
    assert table(capsys.readouterr().out)["evaluate"] == table(stdout)["test"]


def test_resuming_a_run_from_before_split_seed_keeps_its_split(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.lw").write_bytes(b"")
    (run / "config.json").write_text(json.dumps({"args": {"data": "wine", "seed": 3}}))
    args = cli._parser().parse_args(["train", "--resume", str(run)])
    assert cli._resume_args(args).split_seed == 3


def test_a_negative_split_seed_is_refused_in_one_line(tmp_path, capsys):
    assert cli.main(["train", "wine", "--split-seed", "-1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--split-seed must be a non-negative integer" in err
    assert not (tmp_path / "r").exists()


# -- the rule --------------------------------------------------------------------------------------
SMALL = {"optimizer": "adam", "weight_decay": (1e-4, 1e-2, 1e-1), "schedule": "constant",
         "epochs": 500, "batch_size": 32, "label_smoothing": 0.0, "validation_split": 0.2,
         "early_stopping": 20, "refit": True, "ensemble": 5}
LARGE = {"optimizer": "sgd", "weight_decay": 0.0, "schedule": "cosine", "epochs": 20,
         "batch_size": 64, "label_smoothing": 0.1, "validation_split": 0.1,
         "early_stopping": None, "refit": False, "ensemble": 1}


@pytest.mark.parametrize("n, expected", [(1, SMALL), (142, SMALL), (1_999, SMALL),
                                         (2_000, LARGE), (3_823, LARGE), (60_000, LARGE)])
def test_train_defaults_follow_the_documented_rule(n, expected):
    assert runs.SMALL_DATA == 2_000
    assert runs.train_defaults(n) == expected


def unset() -> argparse.Namespace:
    return cli._parser().parse_args(["train"])


def test_options_given_on_the_command_line_are_kept():
    args = cli._parser().parse_args(["train", "--optimizer", "sgd", "--epochs", "7",
                                     "--weight-decay", "0", "--batch-size", "8"])
    auto = cli.apply_train_defaults(args, 100)
    assert (args.optimizer, args.epochs, args.weight_decay, args.batch_size) == ("sgd", 7, 0, 8)
    assert set(auto) == {"schedule", "label_smoothing", "validation_split", "early_stopping",
                         "refit", "ensemble"}
    assert args.early_stopping == 20 and args.validation_split == 0.2

    args = unset()                                     # nothing given: all from the rule
    assert cli.apply_train_defaults(args, 60_000) == {k: v for k, v in LARGE.items()
                                                      if v is not None}
    assert args.early_stopping is None and args.lr is None


def test_no_validation_rows_means_no_automatic_early_stopping():
    args = cli._parser().parse_args(["train", "--validation-split", "0"])
    auto = cli.apply_train_defaults(args, 100)
    assert args.early_stopping is None and "early_stopping" not in auto


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_explicit_options_win_end_to_end(tmp_path):
    run, _ = train(tmp_path, "run", "wine", "--optimizer", "sgd", "--lr", "0.05", "--epochs", 3,
                   "--batch-size", 16, "--weight-decay", "0.001", "--layers", 8)
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 3 and config["epochs_run"] == 3 and config["batch_size"] == 16
    assert config["optimizer"].startswith("SGD(") and "lr=0.05" in config["optimizer"]
    assert "weight_decay=0.001" in config["optimizer"]
    assert not {"optimizer", "epochs", "batch_size", "weight_decay"} & set(config["defaults"])
    # wine has 142 training rows: the other settings follow the small-data rule, the refit
    # included: early stopping on 20% validation rows chose the epochs (of at most 3), and the
    # final run trained on every training row for that many
    selection = config["selection"]
    assert selection["validation_split"] == 0.2 and selection["early_stopping"] == 20
    assert selection["max_epochs"] == 3 and list(selection["val_loss"]) == ["0.001"]
    assert config["epochs_run"] == config["epochs"] == selection["best_epoch"] <= 3
    assert config["validation_split"] == 0.0 and config["early_stopping"] is None


# -- end to end with the defaults --------------------------------------------------------------
@pytest.mark.sklearn
@pytest.mark.sklearn
def test_wine_with_the_defaults_beats_the_old_recipe(tmp_path):
    """The old defaults gave 91.1% on wine; the rule's run is deterministic for fixed seeds."""
    run, stdout = train(tmp_path, "run", "wine")
    accuracy = float(table(stdout)["test"][1].rstrip("%")) / 100
    assert accuracy >= 0.94
    # an independent count of correct test predictions, on the rows of --split-seed 0
    data = lw.datasets.load("wine")
    test = np.random.default_rng(0).permutation(len(data.X_train))[:round(0.2 * 178)]
    model = lw.load(run / "model.lw")
    assert np.mean(model.predict_classes(data.X_train[test]) == data.y_train[test]) == \
        pytest.approx(accuracy, abs=5e-5)

    config = json.loads((run / "config.json").read_text())
    assert config["defaults"]["rule"] == "N = 142 training rows < 2,000"
    assert config["batch_size"] == 32 and config["selection"]["early_stopping"] == 20
    # the weight decay chosen is the one with the lowest validation loss; the final run is the
    # refit on all 142 training rows for the chosen run's best epoch count
    selection = config["selection"]
    losses = selection["val_loss"]
    assert set(losses) == {"0.0001", "0.01", "0.1"}
    chosen = min(losses, key=losses.get)
    assert f"weight_decay={float(chosen)}" in config["optimizer"]
    assert selection["refit"] and selection["validation_rows"] == 28
    history = json.loads((run / "history.json").read_text())
    assert "val_loss" not in history
    assert len(history["epoch"]) == config["epochs_run"] == selection["best_epoch"]


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_diabetes_with_the_defaults_explains_the_variance_a_linear_model_does(tmp_path):
    """diabetes (regression, 353 training rows): the old defaults gave R² 0.215."""
    run, stdout = train(tmp_path, "run", "diabetes")
    r2 = float(table(stdout)["test"][-1])
    assert r2 > 0.45
    assert json.loads((run / "config.json").read_text())["defaults"]["rule"] == \
        "N = 354 training rows < 2,000"


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_the_early_stopping_line_says_whether_training_stopped(tmp_path, capsys):
    """A run that reaches --epochs did not stop early; the line must not say it did."""
    from layerwise.cli import main
    for epochs, expected in (("3", "no early stop: the validation loss was still lowest at"),
                             ("500", "early stopping: the best validation loss was at epoch")):
        out = tmp_path / f"run{epochs}"
        assert main(["train", "wine", "--epochs", epochs, "--early-stopping", "2", "--lr",
                     "0.3", "--optimizer", "sgd", "--no-refit", "--quiet", "--no-plots", "--out",
                     str(out)]) == 0
        assert expected in capsys.readouterr().out


# -- the refit -----------------------------------------------------------------------------------
@pytest.mark.sklearn
@pytest.mark.sklearn
def test_the_refit_is_the_validation_runs_epochs_on_every_training_row(tmp_path):
    """Recomputed through the API alone: early stopping on fit's 20% validation sample of
    wine's training rows (seed 0) picks the epoch count, then a fresh network of the same seed
    trains on all 142 rows for that many epochs; the CLI's saved model is that network."""
    run, stdout = train(tmp_path, "run", "wine", "--layers", 16, "--weight-decay", "0.01",
                        "--threads", 1, "--ensemble", 1)     # (one network: see --ensemble)
    config = json.loads((run / "config.json").read_text())
    data = lw.datasets.load("wine")
    test = np.random.default_rng(0).permutation(178)[:36]                  # --split-seed 0
    rows = np.setdiff1d(np.arange(178), test)                              # in file order
    X, y = data.X_train[rows], data.y_train[rows]
    fit_rows, _ = lw.training.validation_rows(142, 0.2, 0)                 # fit's own draw

    def scaled(fit_rows, rows=X):        # the scaler of fit_rows (checked in test_preprocessing)
        return lw.Standardize.fit(X[fit_rows], "standard", np.float32).transform(rows)

    def fresh(epochs, Xs, validation_split, callbacks=()):
        net = lw.mlp([13, 16, 3], rng=0)
        history = net.fit(Xs, y, loss="ce", optimizer=lw.Adam(lr=1e-3, weight_decay=0.01),
                          epochs=epochs, batch_size=32, validation_split=validation_split,
                          schedule="constant", rng=0, callbacks=callbacks, verbose=0,
                          threads=1)
        return net, history
    _, history = fresh(500, scaled(fit_rows), 0.2, [lw.EarlyStopping(patience=20)])
    best = int(np.argmin(history["val_loss"])) + 1
    assert config["selection"]["best_epoch"] == config["epochs_run"] == best
    assert config["selection"]["val_loss"] == {"0.01": pytest.approx(min(history["val_loss"]),
                                                                    rel=1e-4)}
    net, _ = fresh(best, scaled(slice(None)), 0.0)
    model = lw.load(run / "model.lw")
    X_test = scaled(slice(None), data.X_train[test])
    np.testing.assert_allclose(model.predict(data.X_train[test]), net.predict(X_test),
                               rtol=1e-5, atol=1e-5)
    assert "validation" not in table(stdout)          # every training row was trained on
    assert f"refit on all 142 training rows for {best} epochs" in stdout


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_no_refit_keeps_the_early_stopped_run_and_its_validation_rows(tmp_path):
    run, stdout = train(tmp_path, "run", "wine", "--layers", 16, "--no-refit")
    config = json.loads((run / "config.json").read_text())
    assert config["validation_split"] == 0.2 and config["early_stopping"] == 20
    assert not config["selection"]["refit"] and "validation" in table(stdout)
    assert "val_loss" in json.loads((run / "history.json").read_text())


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_refit_without_validation_rows_is_refused_in_one_line(tmp_path, capsys):
    assert cli.main(["train", "wine", "--refit", "--validation-split", "0",
                     "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--refit" in err and "--no-refit" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_an_interrupted_refit_resumes_to_the_same_model(tmp_path, monkeypatch):
    """Ctrl-C during the final (refit) run; --resume continues that run, not the choice."""
    import os
    import signal
    first = ["wine", "--layers", 16, "--weight-decay", "0.01", "--threads", 1]
    full, _ = train(tmp_path, "full", *first)

    end = lw.GradientNorms.on_epoch_end           # only the final run has this callback

    def ctrl_c(self, state, logs):
        end(self, state, logs)
        if state.epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(lw.GradientNorms, "on_epoch_end", ctrl_c)
    cut = tmp_path / "cut"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["train", *map(str, first), "--out", str(cut), "--quiet",
                         "--no-plots"]) == 130
    assert (cut / "checkpoint.lw").exists()
    monkeypatch.undo()
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["train", "--resume", str(cut)]) == 0
    for p, q in zip(lw.load(full / "model.lw").parameters(),
                    lw.load(cut / "model.lw").parameters()):
        np.testing.assert_array_equal(p.value, q.value)


# -- --ensemble ------------------------------------------------------------------------------------
def test_ensemble_saves_one_network_whose_first_block_is_the_single_run(tmp_path, index_csv):
    """--ensemble K: network 1 is the run --ensemble 1 trains (same seed, rows, settings);
    the saved model is lw.ensemble of the K, so its first Dense rows are network 1's and the
    last Dense's first block is network 1's divided by K."""
    common = ("--layers", 6, "--epochs", 4, "--validation-split", 0.2, "--early-stopping", 0,
              "--no-refit", "--seed", 3, "--threads", 1)
    one, _ = train(tmp_path, "one", index_csv, *common, "--ensemble", 1)
    three, out = train(tmp_path, "three", index_csv, *common, "--ensemble", 3)
    single = [layer for layer in lw.load(one / "model.lw").layers if isinstance(layer, lw.Dense)]
    merged = [layer for layer in lw.load(three / "model.lw").layers
              if isinstance(layer, lw.Dense)]
    assert merged[0].W.shape == (18, 2) and merged[1].W.shape == (single[1].n_out, 18)
    np.testing.assert_array_equal(merged[0].W[:6], single[0].W)
    np.testing.assert_array_equal(merged[0].b[:6], single[0].b)
    np.testing.assert_allclose(merged[1].W[:, :6] * 3, single[1].W, rtol=1e-6)
    assert not np.array_equal(merged[0].W[6:12], single[0].W)      # its own initial weights
    config = json.loads((three / "config.json").read_text())
    assert config["ensemble"] == 3 and config["args"]["ensemble"] == 3
    # the table is the saved model's: evaluate gives the same test row
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        cli.main(["evaluate", str(three / "model.lw"), str(index_csv)])
    assert table(stdout.getvalue())["evaluate"] == table(out)["test"]


def test_ensemble_defaults_and_refusals(tmp_path, index_csv, capsys):
    # a sigmoid output cannot be averaged by a Dense layer: auto falls back to one network,
    train(tmp_path, "sig", index_csv, "--loss", "mse", "--layers", 4, "--epochs", 2)
    assert json.loads((tmp_path / "sig" / "config.json").read_text())["ensemble"] == 1
    # an explicit --ensemble is refused in one line
    code = cli.main(["train", str(index_csv), "--loss", "mse", "--ensemble", "2", "--out",
                     str(tmp_path / "bad"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--ensemble 2" in err and "last layer to be Dense" in err
    with pytest.raises(SystemExit):
        cli.main(["train", str(index_csv), "--ensemble", "0"])
    assert "expected a whole number >= 1" in capsys.readouterr().err
    train(tmp_path, "plain", index_csv, "--plain", "--layers", 4)
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["ensemble"] == 1
    run = tmp_path / "old"
    run.mkdir()
    (run / "checkpoint.lw").write_bytes(b"")
    (run / "config.json").write_text(json.dumps({"args": {"data": "wine", "seed": 3}}))
    args = cli._parser().parse_args(["train", "--resume", str(run)])
    assert cli._resume_args(args).ensemble == 1          # a run from before --ensemble


def test_ctrl_c_while_training_an_ensemble_member_says_so_and_saves_no_model(
        tmp_path, index_csv, capsys, monkeypatch):
    """Ctrl-C in network 2 of 3: one line naming it, exit 130, no model file written."""
    made = []

    class Interrupting(lw.EarlyStopping):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)

        def on_batch_end(self, state, loss):
            if len(made) == 2:                  # the second network's stopper
                raise KeyboardInterrupt

    monkeypatch.setattr(lw, "EarlyStopping", Interrupting)
    out = tmp_path / "run"
    code = cli.main(["train", str(index_csv), "--layers", "4", "--epochs", "3", "--ensemble",
                     "3", "--validation-split", "0.2", "--early-stopping", "5", "--no-refit",
                     "--quiet", "--no-plots", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 130, err
    assert "interrupted while training network 2 of the --ensemble 3" in err
    assert not (out / "model.lw").exists()
