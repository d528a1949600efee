"""Classification with any loss (issue 12, items 1 and 2): true accuracy, MSE/BCE classifiers.

- Accuracy is the argmax accuracy whenever the targets are labels or one-hot rows, whatever the
  loss (CrossEntropy, BCE with one output per class, MSE); BCE with one output thresholds at ½.
- True multi-label targets report "subset_accuracy" and "label_accuracy", never "accuracy".
- The command line trains --loss mse and --loss bce on classes with one-hot targets and
  --output sigmoid|softmax|identity, and a saved MSE classifier predicts labels.

Every number is checked against an independent computation (NumPy by hand or sklearn.metrics).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import metrics
from layerwise.cli import main

try:            # the reference metrics; the tests comparing with them are marked sklearn
    from sklearn.metrics import accuracy_score, hamming_loss
except ImportError:
    accuracy_score = hamming_loss = None

K = 10


def ten_classes(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Linearly separable-ish 10-class data: labels the argmax of a random linear map."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    y = (X @ rng.normal(size=(8, K))).argmax(axis=1)
    return X, y


def confident_negative_model(seed: int = 1) -> lw.Sequential:
    """Logits around −5: every σ(z) < ½, so 9 of 10 one-hot elements are 'right' per row
    while the argmax is a near-random class."""
    model = lw.Sequential(lw.Dense(8, K, rng=seed))
    model.layers[0].W *= 0.1
    model.layers[0].b[...] = -5.0
    return model


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def final_table(out: str) -> dict[str, dict[str, str]]:
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
    return float(cell[:-1]) / 100


# -- item 1: accuracy is the argmax accuracy for one class per sample -------------------------
@pytest.mark.sklearn
def test_bce_on_one_hot_targets_reports_argmax_accuracy_not_per_element():
    """The bug: BCE's accuracy was the fraction of right elements (≈ 90% for a useless
    10-class model). Now it is the argmax accuracy, in evaluate and metrics.for_loss."""
    X, y = ten_classes()
    Y = np.eye(K)[y]
    model = confident_negative_model()
    out = model.predict(X)
    argmax_acc = accuracy_score(y, out.argmax(axis=1))
    per_element = float(np.mean((out > 0) == (Y > 0.5)))
    assert per_element > 0.85 and argmax_acc < 0.5           # far apart: the test can fail
    result = model.evaluate(X, Y, loss="bce")
    assert result["accuracy"] == pytest.approx(argmax_acc, abs=1e-12)
    assert metrics.for_loss(lw.BinaryCrossEntropy(), out, Y)["accuracy"] == \
        pytest.approx(argmax_acc, abs=1e-12)
    assert set(result) == {"loss", "accuracy"}


@pytest.mark.sklearn
def test_bce_history_accuracy_is_argmax_accuracy_on_training_and_validation():
    """fit's training and validation accuracy with BCE on one-hot targets: an SGD step of
    1e-30 leaves the model as it was, so both equal the first model's argmax accuracy."""
    X, y = ten_classes()
    Y = np.eye(K)[y]
    model = confident_negative_model().astype(np.float64)
    Xv, yv = X[300:], y[300:]
    expect_train = accuracy_score(y[:300], model.predict(X[:300]).argmax(axis=1))
    expect_val = accuracy_score(yv, model.predict(Xv).argmax(axis=1))
    h = model.fit(X[:300], Y[:300], loss="bce", optimizer=lw.SGD(lr=1e-30), epochs=1,
                  batch_size=64, validation_data=(Xv, np.eye(K)[yv]), verbose=0, rng=0)
    assert h["accuracy"][0] == pytest.approx(expect_train, abs=1e-12)
    assert h["val_accuracy"][0] == pytest.approx(expect_val, abs=1e-12)
    assert "subset_accuracy" not in h and "label_accuracy" not in h


@pytest.mark.sklearn
def test_bce_with_integer_labels_and_one_output_per_class():
    """BCE takes 1-D integer labels for a network of >= 2 outputs as one-hot rows."""
    X, y = ten_classes()
    model = confident_negative_model()
    out = model.predict(X)
    r = model.evaluate(X, y, loss="bce")
    assert r["accuracy"] == pytest.approx(accuracy_score(y, out.argmax(axis=1)), abs=1e-12)
    assert r["loss"] == pytest.approx(model.evaluate(X, np.eye(K)[y], loss="bce")["loss"])


@pytest.mark.sklearn
def test_single_output_bce_still_thresholds_at_one_half():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 8))
    y = (X[:, 0] > 0).astype(np.int64)
    model = lw.Sequential(lw.Dense(8, 1, rng=0))
    z = model.predict(X)[:, 0]
    for loss, pred in ((lw.BinaryCrossEntropy(), z > 0),
                       (lw.BinaryCrossEntropy(from_logits=False), z > 0.5)):
        assert model.evaluate(X, y, loss=loss)["accuracy"] == pytest.approx(
            accuracy_score(y, pred.astype(int)), abs=1e-12)


@pytest.mark.sklearn
def test_multilabel_targets_report_subset_and_label_accuracy_never_bare_accuracy():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 8))
    Y = (X[:, :5] + 0.5 * rng.normal(size=(300, 5)) > 0).astype(np.float64)
    assert (Y.sum(axis=1) != 1).any()                        # truly multi-label
    model = lw.Sequential(lw.Dense(8, 16, rng=0), lw.ReLU(), lw.Dense(16, 5, rng=1))
    h = model.fit(X[:240], Y[:240], loss="bce", optimizer=lw.Adam(lr=1e-2), epochs=3,
                  batch_size=32, validation_data=(X[240:], Y[240:]), verbose=0, rng=0)
    assert "accuracy" not in h and "val_accuracy" not in h
    pred = (model.predict(X[240:]) > 0).astype(int)
    assert h["val_subset_accuracy"][-1] == pytest.approx(accuracy_score(Y[240:], pred),
                                                         abs=1e-12)
    assert h["val_label_accuracy"][-1] == pytest.approx(1 - hamming_loss(Y[240:], pred),
                                                        abs=1e-12)
    r = model.evaluate(X[240:], Y[240:])
    assert set(r) == {"loss", "subset_accuracy", "label_accuracy"}
    assert r["subset_accuracy"] == pytest.approx(accuracy_score(Y[240:], pred), abs=1e-12)
    # training figures: counted per batch; after a step of 1e-30 they are the model's own
    h = model.fit(X[:240], Y[:240], loss="bce", optimizer=lw.SGD(lr=1e-30), epochs=1,
                  batch_size=32, verbose=0, rng=0)
    pred = (model.predict(X[:240]) > 0).astype(int)
    assert h["subset_accuracy"][0] == pytest.approx(accuracy_score(Y[:240], pred), abs=1e-6)
    assert h["label_accuracy"][0] == pytest.approx(1 - hamming_loss(Y[:240], pred), abs=1e-6)


def test_classification_kind_follows_the_targets():
    ce, bce, mse = lw.CrossEntropy(), lw.BinaryCrossEntropy(), lw.MSE()
    onehot, multi = np.eye(3)[[0, 2, 1]], np.array([[1, 1, 0], [0, 0, 0], [0, 1, 0.]])
    assert metrics.classification_kind(ce, np.array([0, 2])) == "argmax"
    assert metrics.classification_kind(bce, onehot) == "argmax"
    assert metrics.classification_kind(bce, multi) == "multilabel"
    assert metrics.classification_kind(bce, np.array([[1.0], [0.0]])) == "threshold"
    assert metrics.classification_kind(mse, onehot) == "argmax"
    assert metrics.classification_kind(mse, multi) is None            # regression on 0/1
    assert metrics.classification_kind(mse, np.array([[0.3, 0.7], [1, 0]])) is None


# -- item 2 (API): MSE on one-hot targets or labels is a classifier ---------------------------
@pytest.mark.sklearn
def test_mse_on_one_hot_targets_reports_accuracy_in_history_and_evaluate():
    X, y = ten_classes()
    model = lw.mlp([8, 16, K], output="sigmoid", rng=0, dtype=np.float64)
    h = model.fit(X[:300], np.eye(K)[y[:300]], loss="mse", optimizer=lw.SGD(lr=1.0), epochs=5,
                  batch_size=10, validation_data=(X[300:], np.eye(K)[y[300:]]), verbose=0,
                  rng=0)
    out = model.predict(X[300:])
    acc = accuracy_score(y[300:], out.argmax(axis=1))
    assert h["val_accuracy"][-1] == pytest.approx(acc, abs=1e-12)
    assert "accuracy" in h and len(h["accuracy"]) == 5
    r = model.evaluate(X[300:], y[300:])                    # labels: one-hot for MSE
    assert r["accuracy"] == pytest.approx(acc, abs=1e-12)
    # the loss is the textbook ½‖a − y‖² per sample, averaged over the batch
    assert r["loss"] == pytest.approx(0.5 * np.mean(((out - np.eye(K)[y[300:]]) ** 2).sum(1)))
    assert r["mse"] == pytest.approx(np.mean((out - np.eye(K)[y[300:]]) ** 2))
    assert acc > 0.3                                         # it learns (chance is 0.1)


def test_mse_takes_integer_labels_only_when_unambiguous():
    X, y = ten_classes(50)
    wide = lw.mlp([8, K], output="sigmoid", rng=0)
    wide.fit(X, y, loss="mse", epochs=1, verbose=0)           # 1-D ints, width 10: one-hot
    narrow = lw.mlp([8, 1], rng=0)
    h = narrow.fit(X, y, loss="mse", epochs=1, verbose=0)     # width 1: regression on y
    assert "accuracy" not in h
    assert narrow.evaluate(X, y)["mse"] == pytest.approx(
        np.mean((narrow.predict(X)[:, 0] - y) ** 2), rel=1e-5)
    with pytest.raises(lw.ValidationError, match=r"labels 0\.\.9 .* from 1 to 10"):
        wide.fit(X, np.where(y == 0, 10, y), loss="mse", epochs=1, verbose=0)
    with pytest.raises(lw.ValidationError, match=r"shape \(N, 10\)"):
        wide.fit(X, y.astype(np.float64), loss="mse", epochs=1, verbose=0)   # floats: no


def test_mse_one_hot_classifier_passes_gradcheck():
    X, y = ten_classes(12)
    model = lw.mlp([8, 6, K], activation="sigmoid", output="sigmoid", rng=0,
                   dtype=np.float64)
    report = lw.gradcheck(model, lw.MSE(), X, np.eye(K)[y])
    assert report.passed, report


def test_mse_one_hot_classifier_matches_torch():
    """Three SGD steps of the sigmoid network with the quadratic cost on one-hot targets:
    our L = (1/B) Σ_b ½‖a_b − y_b‖² is torch's MSELoss(reduction='sum') / (2B)."""
    torch = pytest.importorskip("torch")
    X, y = ten_classes(30)
    Y = np.eye(K)[y]
    model = lw.mlp([8, 6, K], activation="sigmoid", output="sigmoid", rng=0,
                   dtype=np.float64)
    W = [torch.tensor(d.W, requires_grad=True) for d in model.layers if isinstance(d, lw.Dense)]
    b = [torch.tensor(d.b, requires_grad=True) for d in model.layers if isinstance(d, lw.Dense)]
    h = model.fit(X, Y, loss="mse", optimizer=lw.SGD(lr=3.0), epochs=1, batch_size=10,
                  shuffle=False, verbose=0)
    opt = torch.optim.SGD([*W, *b], lr=3.0)
    total = 0.0
    for s in range(0, 30, 10):
        xb, yb = torch.tensor(X[s:s + 10]), torch.tensor(Y[s:s + 10])
        a = torch.sigmoid(torch.sigmoid(xb @ W[0].T + b[0]) @ W[1].T + b[1])
        L = torch.nn.MSELoss(reduction="sum")(a, yb) / (2 * len(xb))
        opt.zero_grad()
        L.backward()
        opt.step()
        total += L.item() * len(xb)
    dense = [d for d in model.layers if isinstance(d, lw.Dense)]
    for d, Wt, bt in zip(dense, W, b):
        np.testing.assert_allclose(d.W, Wt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d.b, bt.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert h["loss"][0] == pytest.approx(total / 30, rel=1e-10)


def test_multilabel_metrics_survive_a_resumed_fit(tmp_path):
    """The label count is part of a checkpoint: a run interrupted mid-epoch and resumed
    reports the same label_accuracy as one that never stopped."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(90, 4))
    Y = (X[:, :3] > 0).astype(np.float64)
    make = lambda: lw.Sequential(lw.Dense(4, 3, rng=0))  # noqa: E731
    whole = make().fit(X, Y, loss="bce", optimizer="sgd", epochs=2, batch_size=10,
                       verbose=0, rng=0)

    class Stop(lw.Callback):
        def on_batch_end(self, state, loss):
            if state.epoch == 1 and not hasattr(self, "done"):
                self.done = True
                raise KeyboardInterrupt
    ck = tmp_path / "ck.lw"
    model = make()
    with pytest.raises(lw.TrainingInterrupted):
        model.fit(X, Y, loss="bce", optimizer="sgd", epochs=2, batch_size=10, verbose=0,
                  rng=0, callbacks=[Stop()], checkpoint=ck)
    resumed = make().fit(X, Y, loss="bce", optimizer="sgd", epochs=2, batch_size=10,
                         verbose=0, rng=0, resume=ck)
    assert resumed["label_accuracy"] == whole["label_accuracy"]
    assert resumed["subset_accuracy"] == whole["subset_accuracy"]


@pytest.mark.sklearn
def test_classifier_score_is_subset_accuracy_for_multilabel():
    from layerwise.sklearn import LayerwiseClassifier
    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 6))
    Y = (X[:, :3] > 0).astype(int)
    clf = LayerwiseClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, Y)
    assert clf.score(X, Y) == pytest.approx(accuracy_score(Y, clf.predict(X)))


# -- item 2 (CLI): --loss mse / bce on classes, --output ----------------------------------------
@pytest.fixture(scope="module")
def mse_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mse") / "run"
    buf = io.StringIO()
    import contextlib
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = main(["train", "digits", "--loss", "mse", "--epochs", "4", "--no-plots",
                     "--out", str(out), "--quiet"])
    assert code == 0
    return out, buf.getvalue()


@pytest.mark.sklearn
def test_cli_mse_on_classes_trains_a_sigmoid_classifier(mse_run):
    out, text = mse_run
    model = lw.load(out / "model.lw")
    assert isinstance(model.loss, lw.MSE)
    assert isinstance(model.layers[-1], lw.Sigmoid) and model.n_out == K
    config = json.loads((out / "config.json").read_text())
    assert config["output_activation"] == "sigmoid" and config["loss"] == "MSE()"
    _, _, Xte, yte = lw.datasets.load_digits()
    table = final_table(text)
    assert set(table["test"]) == {"loss", "accuracy"}
    out_te = model.predict(Xte).astype(np.float64)
    acc = accuracy_score(yte, out_te.argmax(axis=1))
    assert percent(table["test"]["accuracy"]) == pytest.approx(acc, abs=5e-5)
    assert acc > 0.5
    half_sse = 0.5 * np.mean(((out_te - np.eye(K)[yte]) ** 2).sum(axis=1))   # ½‖a − y‖²
    assert float(table["test"]["loss"]) == pytest.approx(half_sse, abs=5e-5)
    # the training and validation rows: train's seeded permutation, the last 10% held out
    Xtr, ytr, _, _ = lw.datasets.load_digits()
    perm = np.random.default_rng(0).permutation(len(Xtr))
    Xtr, ytr = Xtr[perm], ytr[perm]
    n_fit = len(Xtr) - round(0.1 * len(Xtr))
    for row, rows in (("train", slice(0, n_fit)), ("validation", slice(n_fit, None))):
        acc = accuracy_score(ytr[rows], model.predict(Xtr[rows]).argmax(axis=1))
        assert percent(table[row]["accuracy"]) == pytest.approx(acc, abs=5e-5), row
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert float(rows[-1]["val_accuracy"]) == pytest.approx(acc, abs=1e-6)  # the last epoch


@pytest.mark.sklearn
def test_cli_evaluate_and_predict_give_labels_for_an_mse_classifier(capsys, mse_run,
                                                                    tmp_path):
    out, _ = mse_run
    model = lw.load(out / "model.lw")
    _, _, Xte, yte = lw.datasets.load_digits()
    code, text, err = run(capsys, "evaluate", out / "model.lw", "digits")
    assert code == 0, err
    acc = accuracy_score(yte, model.predict(Xte).argmax(axis=1))
    assert percent(final_table(text)["evaluate"]["accuracy"]) == pytest.approx(acc, abs=5e-5)
    np.save(tmp_path / "x.npy", Xte[:20])
    code, text, err = run(capsys, "predict", out / "model.lw", tmp_path / "x.npy")
    assert code == 0, err
    lines = text.strip().splitlines()
    assert lines[0] == "prediction"
    assert lines[1:] == [str(k) for k in model.predict(Xte[:20]).argmax(axis=1)]
    code, _, err = run(capsys, "predict", out / "model.lw", tmp_path / "x.npy", "--proba")
    assert code == 2 and "not probabilities" in err
    code, text, err = run(capsys, "explain", out / "model.lw", "--batch-size", "8")
    assert code == 0, err


@pytest.mark.sklearn
@pytest.mark.parametrize("output, layer", [("softmax", lw.Softmax), ("identity", lw.Dense)])
def test_cli_mse_output_choices(capsys, tmp_path, output, layer):
    code, text, err = run(capsys, "train", "digits", "--loss", "mse", "--output", output,
                          "--epochs", "1", "--no-plots", "--out", tmp_path / "r", "--quiet")
    assert code == 0, err
    model = lw.load(tmp_path / "r" / "model.lw")
    assert isinstance(model.layers[-1], layer)
    _, _, Xte, yte = lw.datasets.load_digits()
    acc = accuracy_score(yte, model.predict(Xte).argmax(axis=1))
    assert percent(final_table(text)["test"]["accuracy"]) == pytest.approx(acc, abs=5e-5)


@pytest.mark.sklearn
def test_cli_bce_on_ten_classes_reports_argmax_accuracy(capsys, tmp_path):
    code, text, err = run(capsys, "train", "digits", "--loss", "bce", "--epochs", "1",
                          "--no-plots", "--out", tmp_path / "r", "--quiet")
    assert code == 0, err
    model = lw.load(tmp_path / "r" / "model.lw")
    assert model.n_out == K and isinstance(model.layers[-1], lw.Dense)     # fused sigmoid
    _, _, Xte, yte = lw.datasets.load_digits()
    out = model.predict(Xte)
    acc = accuracy_score(yte, out.argmax(axis=1))
    per_element = float(np.mean((out > 0) == (np.eye(K)[yte] > 0.5)))
    assert abs(per_element - acc) > 1e-3                    # the old figure would differ
    assert percent(final_table(text)["test"]["accuracy"]) == pytest.approx(acc, abs=5e-5)
    code, text, err = run(capsys, "evaluate", tmp_path / "r" / "model.lw", "digits")
    assert percent(final_table(text)["evaluate"]["accuracy"]) == pytest.approx(acc, abs=5e-5)


@pytest.mark.parametrize("argv, words", [
    (["--loss", "ce", "--output", "identity"], "cross-entropy applies the softmax itself"),
    (["--loss", "ce", "--output", "sigmoid"], "drop --output"),
    (["--loss", "bce", "--output", "softmax"], "binary cross-entropy applies the sigmoid"),
    (["--loss", "mse", "--output", "tanh"], "use --output sigmoid, softmax or identity"),
    (["--loss", "mae"], "use --loss ce, bce or mse, or --task regression"),
])
def test_cli_refuses_nonsensical_loss_and_output_pairs(capsys, tmp_path, argv, words):
    code, _, err = run(capsys, "train", "digits", *argv, "--out", tmp_path / "r")
    assert code == 2
    assert err.startswith("layerwise: error: ") and len(err.strip().splitlines()) == 1
    assert words in err
    assert not Path(tmp_path / "r").exists()               # refused before anything is written


def test_cli_help_names_the_quadratic_cost_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--output ACTIVATION" in text and "quadratic cost" in text


def test_curves_show_subset_and_label_accuracy(tmp_path):
    """plot_history draws a panel for each multi-label accuracy (the figure grows by one
    panel's width per curve: 3.5 inches)."""
    import struct

    from layerwise import plots
    if not plots.available():
        pytest.skip("matplotlib not installed")

    def width(history, name):
        plots.plot_history(history, tmp_path / name)
        return struct.unpack(">I", (tmp_path / name).read_bytes()[16:20])[0]  # PNG IHDR
    one = width({"loss": [1.0, 0.5], "accuracy": [0.5, 0.6]}, "a.png")
    multi = width({"loss": [1.0, 0.5], "subset_accuracy": [0.5, 0.6],
                   "label_accuracy": [0.8, 0.9]}, "b.png")
    assert multi > one
