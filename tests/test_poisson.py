"""The Poisson loss (log link): its formula, gradient, torch's, fit, the CLI, model files."""

from __future__ import annotations

import copy
import csv
import pickle

import numpy as np
import pytest

import layerwise as lw
from layerwise.cli import main


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = rng.poisson(np.exp(0.6 * X[:, 0] - 0.4 * X[:, 1] + 0.2)).astype(np.float64)
    return X, y


def test_poisson_is_half_the_deviance_summed_over_outputs_and_its_gradient_is_mu_minus_y():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(6, 2)), rng.poisson(2.0, size=(6, 2)).astype(np.float64)
    loss = lw.Poisson()
    mu = np.exp(z)
    ylogy = np.where(y > 0, y * np.log(np.maximum(y, 1e-300)), 0.0)
    # half deviance y·log(y/μ) − y + μ per element, summed over outputs, mean over rows
    assert loss.forward(z, y) == pytest.approx(np.sum(ylogy - y * z - y + mu) / 6, rel=1e-13)
    np.testing.assert_allclose(loss.backward(), (mu - y) / 6, rtol=1e-13)
    np.testing.assert_allclose(loss.output_transform(z), mu)
    assert loss.forward(np.log(np.where(y > 0, y, 1e-300)), y) == pytest.approx(0, abs=1e-9)


def test_poisson_agrees_with_torch_and_passes_a_float64_gradcheck():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    z, y = rng.normal(size=(5, 3)), rng.poisson(1.5, size=(5, 3)).astype(np.float64)
    loss = lw.Poisson()
    loss.forward(z, y)
    zt = torch.tensor(z, requires_grad=True)
    # torch's log_input form e^z − y·z, summed, over the rows (no constant: same gradient)
    (torch.nn.functional.poisson_nll_loss(zt, torch.tensor(y), log_input=True,
                                          reduction="sum") / 5).backward()
    np.testing.assert_allclose(loss.backward(), zt.grad.numpy(), rtol=1e-13)
    X, t = _data(20)
    model = lw.mlp([3, 4, 1], activation="tanh", dtype=np.float64, rng=0)
    report = lw.gradcheck(model, lw.Poisson(), X, t[:, None])
    assert report.passed, report


def test_poisson_refuses_negative_targets_and_survives_copies():
    with pytest.raises(lw.ValidationError, match="targets >= 0"):
        lw.Poisson().prepare_target(np.array([1.0, -0.5]), 1, np.float32)
    z, y = np.zeros((3, 1)), np.array([[1.0], [0.0], [2.0]])
    used = lw.Poisson()
    used.forward(z, y)
    for again in (copy.deepcopy(used), pickle.loads(pickle.dumps(used))):
        again.forward(z + 1, y)
        np.testing.assert_allclose(again.backward(), (np.exp(z + 1) - y) / 3)
    assert lw.losses.get("poisson").kind == "poisson"


def test_fit_with_poisson_learns_the_rate_and_evaluate_scores_mu():
    X, y = _data(600)
    model = lw.mlp([3, 8, 1], dtype=np.float64, rng=0)
    model.fit(X, y, loss="poisson", optimizer=lw.Adam(0.02), epochs=60, batch_size=64,
              verbose=0, rng=0)
    mu = np.exp(model.predict(X)[:, 0])
    true = np.exp(0.6 * X[:, 0] - 0.4 * X[:, 1] + 0.2)
    assert np.corrcoef(mu, true)[0, 1] > 0.95
    scores = model.evaluate(X, y)
    # MSE and R² are of the predictions μ = e^z, not of the log-means the network outputs
    assert scores["mse"] == pytest.approx(np.mean((mu - y) ** 2), rel=1e-9)


def test_cli_trains_poisson_on_raw_counts_and_predicts_mu(tmp_path, capsys):
    X, y = _data(300)
    path = tmp_path / "counts.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "c", "count"])
        w.writerows([*x, int(c)] for x, c in zip(X, y))
    out = tmp_path / "run"
    main(["train", str(path), "--task", "regression", "--loss", "poisson", "--epochs", "20",
          "--no-plots", "--quiet", "--out", str(out), "--threads", "1"])
    model = lw.load(out / "model.lw")
    assert model.loss.kind == "poisson" and model.layers[-1].kind == "dense"   # no un-scaling
    capsys.readouterr()
    main(["predict", str(out / "model.lw"), str(path)])
    printed = np.array([float(v) for v in capsys.readouterr().out.split()[1:]])
    Xs = np.loadtxt(path, delimiter=",", skiprows=1)[:, :3]
    np.testing.assert_allclose(printed, np.exp(model.predict(Xs)[:, 0]), rtol=1e-5)
    assert printed.min() > 0


def test_poisson_estimator_saves_and_a_target_transformer_around_it_is_refused(tmp_path):
    pytest.importorskip("sklearn")
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import MinMaxScaler

    from layerwise.sklearn import LayerwiseRegressor, save
    X, y = _data(200)
    reg = LayerwiseRegressor((8,), loss="poisson", solver="lbfgs", max_iter=1000,
                             random_state=0).fit(X, y)
    assert reg.out_activation_ == "exp" and (reg.predict(X) > 0).all()
    save(reg, tmp_path / "p.lw")
    back = lw.load(tmp_path / "p.lw")
    np.testing.assert_allclose(back.loss.output_transform(back.predict(X))[:, 0],
                               reg.predict(X), rtol=1e-5)
    # un-scaling would act on log μ, before e^z: refused rather than saved wrong
    ttr = TransformedTargetRegressor(
        regressor=LayerwiseRegressor((4,), loss="poisson", max_iter=5, tol=None),
        transformer=MinMaxScaler()).fit(X, y)               # (scaled counts stay >= 0)
    with pytest.raises(ValueError, match="cannot fold"):
        save(ttr, tmp_path / "t.lw")
