"""`layerwise train --recipe NAME`: the classic MNIST experiments' settings, their conversions
to our conventions (checked against the sources' own update rules written out in NumPy), and
the command line around them."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

import layerwise as lw
from layerwise import cli, recipes

# The published settings, as the sources state them (Nielsen's network.py / network2.py
# calls in chapters 1 and 3; the 1998 and 2003 tables' architecture and loss).
PUBLISHED = {
    "nielsen-ch1": {"sizes": [784, 30, 10], "hidden": "sigmoid", "cost": "quadratic",
                    "eta": 3.0, "mini_batch": 10, "epochs": 30, "train": 50_000,
                    "w_std": 1.0, "b_std": 1.0, "lmbda": 0.0, "accuracy": 95.42},
    "nielsen-ch3": {"sizes": [784, 30, 10], "hidden": "sigmoid", "cost": "cross-entropy",
                    "eta": 0.5, "mini_batch": 10, "epochs": 30, "train": 50_000,
                    "w_std": "1/sqrt(n_in)", "b_std": 1.0, "lmbda": 5.0, "accuracy": 96.5},
    "lecun-300": {"sizes": [784, 300, 10], "cost": "mse", "error": 4.7},
    "lecun-300-100": {"sizes": [784, 300, 100, 10], "cost": "mse", "error": 3.05},
    "simard-800": {"sizes": [784, 800, 10], "cost": "cross-entropy", "error": 1.6},
}


def test_every_published_experiment_has_a_recipe():
    assert set(recipes.names()) == set(PUBLISHED)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_the_recipe_has_the_published_architecture_loss_and_result(name):
    r, pub = recipes.get(name), PUBLISHED[name]
    s = r.settings
    assert [784, *s["layers"], 10] == pub["sizes"]
    loss = {"quadratic": "mse", "mse": "mse", "cross-entropy": ("bce", "ce")}[pub["cost"]]
    assert s["loss"] in (loss if isinstance(loss, tuple) else (loss,))
    accuracy = pub.get("accuracy", 100 - pub.get("error", 0))
    assert r.published_accuracy == pytest.approx(accuracy)
    assert r.data == "mnist" and r.source and r.published


@pytest.mark.parametrize("name", ["nielsen-ch1", "nielsen-ch3"])
def test_nielsens_recipes_have_his_training_settings(name):
    s, pub = recipes.get(name).settings, PUBLISHED[name]
    assert s["activation"] == pub["hidden"] and s["output_activation"] == "sigmoid"
    assert (s["batch_size"], s["epochs"]) == (pub["mini_batch"], pub["epochs"])
    assert s["validation_rows"] == 60_000 - pub["train"]          # his first 50,000 train
    assert s["optimizer"] == "sgd" and s["momentum"] == 0 and s["schedule"] == "constant"
    assert s["bias_init"] == "normal:1.0" and not s["decay_biases"]
    assert s["scaling"] == "image"                                   # pixels / 255


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_a_recipe_sets_everything_the_automatic_defaults_would(name):
    """No size-based choice may slip into a published setting."""
    s = recipes.get(name).settings
    assert set(recipes.PLAIN_KEYS) <= set(s)
    assert set(cli.PLAIN) - {"validation_split"} <= set(s)
    assert len(set(recipes.VALIDATION_KEYS) & set(s)) == 1


def test_lecun_normal_is_nielsens_improved_initialiser():
    """network2.py's default_weight_initializer: W ~ N(0, 1/n_in)."""
    layer = lw.Dense(784, 300, init="lecun_normal", rng=0, dtype=np.float64)
    assert layer.W.std() == pytest.approx(1 / np.sqrt(784), rel=0.01)
    assert abs(layer.W.mean()) < 1e-3


# -- the conversions: one mini-batch of ours against the source's update, written out --------
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def nielsen_step(W, b, X, Y, eta, cost, lmbda=0.0, n=50_000):
    """One update_mini_batch of Nielsen's network.py / network2.py, columns as samples:
    w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∇w C_x,  b ← b − (η/m)·Σ_x ∇b C_x, with δ_L = (a − y)·σ′(z)
    for the quadratic cost and δ_L = a − y for the cross-entropy (summed over outputs)."""
    m = X.shape[0]
    acts, zs = [X.T], []
    for w, bb in zip(W, b):
        zs.append(w @ acts[-1] + bb[:, None])
        acts.append(sigmoid(zs[-1]))
    delta = acts[-1] - Y.T
    if cost == "quadratic":
        delta = delta * sigmoid(zs[-1]) * (1 - sigmoid(zs[-1]))
    gW, gb = [None] * len(W), [None] * len(W)
    for i in range(len(W) - 1, -1, -1):
        gW[i], gb[i] = delta @ acts[i].T, delta.sum(1)
        if i:
            delta = (W[i].T @ delta) * sigmoid(zs[i - 1]) * (1 - sigmoid(zs[i - 1]))
    W = [(1 - eta * lmbda / n) * w - eta / m * g for w, g in zip(W, gW)]
    b = [bb - eta / m * g for bb, g in zip(b, gb)]
    return W, b


@pytest.mark.parametrize("name", ["nielsen-ch1", "nielsen-ch3"])
def test_one_step_of_the_recipe_is_one_step_of_nielsens_code(name):
    """The recipe's converted lr and weight decay, through our fit, move every weight and
    bias exactly as his update_mini_batch does with η and λ as published (float64)."""
    s, pub = recipes.get(name).settings, PUBLISHED[name]
    rng = np.random.default_rng(0)
    X = rng.random((10, 6))
    Y = np.eye(10)[rng.permutation(10)]          # MNIST's 10 outputs: the conversion needs them
    # bce takes logits and applies the sigmoid itself (fused, as the command line builds it)
    output = None if s["loss"] == "bce" else "sigmoid"
    net = lw.mlp([6, 5, 10], activation="sigmoid", output=output, init=s["init"],
                 bias_init=s["bias_init"], dtype=np.float64, rng=1)
    dense = [layer for layer in net.layers if isinstance(layer, lw.Dense)]
    W0 = [d.W.copy() for d in dense]
    b0 = [d.b.copy() for d in dense]
    loss = lw.losses.get(s["loss"])
    opt = lw.optimizers.get("sgd", lr=s["lr"], momentum=0.0, weight_decay=s["weight_decay"])
    net.fit(X, Y, loss=loss, optimizer=opt, epochs=1, batch_size=10, shuffle=False,
            verbose=0, threads=1, decay_biases=s["decay_biases"])
    W1, b1 = nielsen_step(W0, b0, X, Y, pub["eta"], pub["cost"], pub["lmbda"])
    for d, w, bb in zip(dense, W1, b1):
        np.testing.assert_allclose(d.W, w, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(d.b, bb, rtol=1e-12, atol=1e-14)


# -- the command line ------------------------------------------------------------------------
def tiny_mnist(tmp_path):
    """An image-like .npz of 120 uint8 'pictures' of 784 pixels and 10 classes."""
    rng = np.random.default_rng(0)
    y = np.arange(120) % 10
    X = (rng.random((120, 784)) * 60).astype(np.uint8)
    X[np.arange(120), y * 70] = 255                     # a bright pixel tells the class
    path = tmp_path / "tiny.npz"
    np.savez(path, X=X, y=y, X_test=X[:20], y_test=y[:20])
    return path


def train(tmp_path, *argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["train", *map(str, argv), "--no-plots", "--out", str(tmp_path / "run")])
    return code, out.getvalue(), err.getvalue()


def test_a_recipe_run_prints_and_saves_its_settings_and_what_was_overridden(tmp_path):
    code, out, err = train(tmp_path, tiny_mnist(tmp_path), "--recipe", "nielsen-ch3",
                           "--epochs", 2, "--validation-rows", 20)
    assert code == 0, err
    assert "recipe nielsen-ch3" in out and "published: about 96.5%" in out
    assert "conversion: cost: his cross-entropy sums the 10 outputs" in out
    assert "overridden on the command line: --epochs 2, --validation-rows 20" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    r = config["recipe"]
    assert r["name"] == "nielsen-ch3" and r["settings"]["lr"] == 5.0
    assert r["overridden"] == {"epochs": 2, "validation_rows": 20}
    # the run used the recipe's settings, the given ones excepted
    assert config["epochs_run"] == 2 and config["batch_size"] == 10
    assert config["layers"] == [784, 30, 10] and config["bias_init"] == "normal:1.0"
    assert "lr=5.0" in config["optimizer"] and "weight_decay=1e-05" in config["optimizer"]
    assert config["scaling"] == "image" and config["defaults"] == {
        "rule": "N = 120 training rows < 2,000"}      # nothing chosen by the data's size
    assert config["selection"] is None
    model = lw.load(tmp_path / "run" / "model.lw")
    assert isinstance(model.layers[-1], lw.Dense) and model.loss.kind == "bce"   # fused


def test_a_recipe_given_a_validation_fraction_drops_its_row_count(tmp_path):
    code, out, err = train(tmp_path, tiny_mnist(tmp_path), "--recipe", "nielsen-ch1",
                           "--epochs", 1, "--validation-split", 0.25)
    assert code == 0, err
    assert "90 training, 30 validation, 20 test samples" in out


def test_an_unknown_recipe_is_one_line_naming_the_recipes(tmp_path):
    code, _out, err = train(tmp_path, "--recipe", "nielsen-ch9")
    assert code == 2 and err.count("\n") == 1
    assert "unknown recipe 'nielsen-ch9'" in err and "nielsen-ch1" in err
    assert not (tmp_path / "run").exists()


def test_the_recipes_command_lists_each_with_its_source_and_command(capsys):
    assert cli.main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in PUBLISHED:
        assert f"layerwise train --recipe {name}" in out
    assert "--lr 5 --weight-decay 1e-05" in out and "Proc. IEEE 1998" in out


def test_given_options_tells_defaults_from_the_command_line():
    assert cli.given_options(["train", "--recipe", "x", "--epochs", "3"]) == {
        "recipe", "epochs"}
    assert cli.given_options(["train", "mnist", "--no-refit"]) == {"data", "refit"}


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_a_recipe_on_other_data_says_so_and_names_its_row_count(tmp_path):
    """nielsen-ch1 on wine: its --validation-rows 10000 is MNIST's; the error says the recipe
    set it and how to override; a regression table is refused outright."""
    code, _out, err = train(tmp_path, "wine", "--recipe", "nielsen-ch1")
    assert code == 2 and err.count("\n") == 1
    assert "--validation-rows 10000 holds out 10000 rows but there are 142 training rows" in err
    assert "--recipe nielsen-ch1 sets it for mnist" in err and "--validation-split F" in err
    code, _out, err = train(tmp_path, "diabetes", "--recipe", "lecun-300")
    assert code == 2 and "trains a classifier" in err and "regression" in err
    code, out, err = train(tmp_path, "wine", "--recipe", "nielsen-ch1", "--epochs", 1,
                           "--validation-split", 0.2)
    assert code == 0, err
    assert "was published for mnist; on wine its published result is no yardstick" in out
