"""LayerNorm and BatchNorm: the equations against torch (float64, 1e-10), gradient checks,
train vs eval mode, save/load, explain, ``mlp(norm=...)``, the CLI's ``--norm``, the estimators."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

import layerwise as lw
from layerwise.cli import main
from layerwise.explain import explain
from layerwise.training import train_step
from test_checkpoints import StopAt  # Ctrl-C after a number of steps

F64 = np.float64
TOL = 1e-10
NORMS = {"layer": lw.LayerNorm, "batch": lw.BatchNorm}


def randomised(cls, n: int = 5, seed: int = 0):
    """A float64 layer with γ, β away from their 1, 0 start, so both matter in every check."""
    layer = cls(n, dtype=F64)
    rng = np.random.default_rng(seed)
    layer.gamma[...] = rng.uniform(0.5, 1.5, n)
    layer.beta[...] = rng.standard_normal(n)
    return layer


def batch(B: int = 7, n: int = 5, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((B, n)) * 3 + 1


# -- agreement with torch ------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "B"), [("layer", 1), ("layer", 7), ("batch", 2), ("batch", 7)])
def test_training_mode_agrees_with_torch(name, B):
    torch = pytest.importorskip("torch")
    layer = randomised(NORMS[name])
    t = (torch.nn.LayerNorm(5) if name == "layer" else torch.nn.BatchNorm1d(5)).double()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(layer.gamma.copy()))
        t.bias.copy_(torch.from_numpy(layer.beta.copy()))
    t.train()
    for step in range(3):                           # running statistics move step after step
        X, dY = batch(B, seed=step), batch(B, seed=10 + step)
        x = torch.tensor(X, requires_grad=True)
        t.zero_grad()
        y = t(x)
        y.backward(torch.from_numpy(dY))
        np.testing.assert_allclose(layer.forward(X, training=True), y.detach().numpy(),
                                   rtol=0, atol=TOL)
        np.testing.assert_allclose(layer.backward(dY), x.grad.numpy(), rtol=0, atol=TOL)
        np.testing.assert_allclose(layer.params()[0].grad, t.weight.grad.numpy(), atol=TOL)
        np.testing.assert_allclose(layer.params()[1].grad, t.bias.grad.numpy(), atol=TOL)
        if name == "batch":
            np.testing.assert_allclose(layer.running_mean, t.running_mean.numpy(), atol=TOL)
            np.testing.assert_allclose(layer.running_var, t.running_var.numpy(), atol=TOL)


@pytest.mark.parametrize("name", ["layer", "batch"])
def test_eval_mode_agrees_with_torch(name):
    torch = pytest.importorskip("torch")
    layer = randomised(NORMS[name])
    t = (torch.nn.LayerNorm(5) if name == "layer" else torch.nn.BatchNorm1d(5, momentum=0.3))
    t = t.double()
    if name == "batch":
        layer = lw.BatchNorm(5, momentum=0.3, dtype=F64)
        layer.gamma[...], layer.beta[...] = randomised(lw.BatchNorm).gamma, 0.25
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(layer.gamma.copy()))
        t.bias.copy_(torch.from_numpy(layer.beta.copy()))
    t.train()
    for step in range(2):                           # give BatchNorm running statistics
        layer.forward(batch(seed=step), training=True)
        t(torch.tensor(batch(seed=step)))
    t.eval()
    X, dY = batch(4, seed=5), batch(4, seed=6)
    x = torch.tensor(X, requires_grad=True)
    y = t(x)
    y.backward(torch.from_numpy(dY))
    np.testing.assert_allclose(layer.forward(X, training=False), y.detach().numpy(), atol=TOL)
    np.testing.assert_allclose(layer.backward(dY), x.grad.numpy(), atol=TOL)
    np.testing.assert_allclose(layer.params()[0].grad, t.weight.grad.numpy(), atol=TOL)
    if name == "batch":                             # eval mode leaves the statistics alone
        np.testing.assert_allclose(layer.running_var, t.running_var.numpy(), atol=TOL)


# -- gradient checks -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["layer", "batch"])
@pytest.mark.parametrize("training", [False, True])
def test_gradcheck_float64(name, training):
    rng = np.random.default_rng(2)
    model = lw.Sequential(lw.Dense(4, 5, rng=0, dtype=F64), randomised(NORMS[name]), lw.Tanh(),
                          lw.Dense(5, 3, rng=1, dtype=F64))
    if name == "batch":                             # non-trivial running statistics for eval
        model.layers[1].running_mean[...] = rng.standard_normal(5)
        model.layers[1].running_var[...] = rng.uniform(0.5, 2, 5)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    report = lw.gradcheck(model, "ce", X, y, training=training, max_elements=None)
    assert report.passed, str(report)
    assert {"1.gamma", "1.beta", "input"} <= set(report.max_rel_error)


# -- modes, inference, buffers -------------------------------------------------------------------
def test_batchnorm_train_and_eval_modes_differ_and_only_training_moves_the_statistics():
    layer = randomised(lw.BatchNorm)
    X = batch()
    before = layer.running_mean.copy(), layer.running_var.copy()
    out_eval = layer.forward(X, training=False).copy()
    assert np.array_equal(layer.running_mean, before[0])
    out_train = layer.forward(X, training=True).copy()
    assert not np.allclose(out_eval, out_train)
    np.testing.assert_allclose(layer.running_mean, 0.9 * before[0] + 0.1 * X.mean(axis=0))
    np.testing.assert_allclose(out_train.mean(axis=0), layer.beta, atol=1e-12)   # x̂: mean 0


@pytest.mark.parametrize("name", ["layer", "batch"])
def test_infer_is_forward_in_eval_mode_bit_for_bit_and_writes_nothing(name):
    layer = randomised(NORMS[name])
    layer.forward(batch(), training=True)
    state = {k: a.copy() for k, a in layer.arrays().items()}
    X = batch(3, seed=4)
    got = layer.infer(X)
    assert all(np.array_equal(a, state[k]) for k, a in layer.arrays().items())
    np.testing.assert_array_equal(got, layer.forward(X, training=False))


def test_batchnorm_refuses_a_training_batch_of_one_row():
    with pytest.raises(lw.ValidationError, match="at least 2 rows"):
        lw.BatchNorm(3).forward(np.ones((1, 3), np.float32), training=True)
    assert lw.BatchNorm(3).forward(np.ones((1, 3), np.float32)).shape == (1, 3)   # eval: fine


@pytest.mark.parametrize(("make", "match"), [
    (lambda: lw.LayerNorm(0), "n"), (lambda: lw.LayerNorm(3, eps=0), "eps"),
    (lambda: lw.BatchNorm(3, momentum=1.5), "momentum"), (lambda: lw.BatchNorm(3, eps=-1), "eps"),
])
def test_bad_settings_are_refused(make, match):
    with pytest.raises(lw.ValidationError, match=match):
        make()


def test_gamma_and_beta_are_not_weight_decayed_by_default():
    for p in lw.BatchNorm(4).params():
        assert p.no_decay == ((0, 4),)


@pytest.mark.parametrize("name", ["layer", "batch"])
def test_a_warmed_up_step_allocates_nothing_batch_sized(name):
    B = 256
    rng = np.random.default_rng(0)
    X = rng.standard_normal((B, 784)).astype(np.float32)
    L = lw.CrossEntropy()
    y = L.prepare_target(rng.integers(0, 10, B), 10, np.float32)
    model = lw.mlp([784, 512, 256, 10], norm=name, rng=0)
    opt, params = lw.Adam(1e-3), model.flat_parameters()
    for _ in range(2):
        train_step(model, L, opt, X, y, params)
    tracemalloc.start()
    try:
        for _ in range(3):
            train_step(model, L, opt, X, y, params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < B * 256 * 4 // 4, f"{peak} bytes allocated during steady-state steps"


# -- the package around them ---------------------------------------------------------------------
def digits():
    Xtr, ytr, Xte, yte = lw.datasets.load_digits()
    return Xtr / 16, ytr, Xte / 16, yte


@pytest.mark.parametrize("name", ["layer", "batch"])
def test_mlp_with_norm_trains_saves_and_loads(name, tmp_path):
    model = lw.mlp([64, 32, 32, 10], norm=name, rng=0)
    kinds = [layer.kind for layer in model.layers]
    assert kinds == ["dense", f"{name}norm", "relu", "dense", f"{name}norm", "relu", "dense"]
    Xtr, ytr, Xte, yte = digits()
    model.fit(Xtr, ytr, epochs=5, batch_size=64, optimizer=lw.Adam(3e-3), rng=0)
    assert model.evaluate(Xte, yte)["accuracy"] > 0.9
    model.save(tmp_path / "m.lw")
    back = lw.load(tmp_path / "m.lw")
    assert [layer.kind for layer in back.layers] == kinds
    for a, b in zip(model.layers, back.layers):
        assert a.config() == b.config()
        for k, v in a.arrays().items():
            np.testing.assert_array_equal(b.arrays()[k], v)
    np.testing.assert_array_equal(back.predict(Xte), model.predict(Xte))
    if name == "batch":                     # the running statistics were trained and saved
        assert not np.allclose(back.layers[1].running_var, 1.0)


def test_mlp_refuses_an_unknown_norm():
    with pytest.raises(lw.ConfigError, match=r"'group'.*'batch', 'layer'"):
        lw.mlp([4, 3, 2], norm="group")


def test_a_model_file_with_a_negative_running_variance_is_refused(tmp_path):
    model = lw.mlp([4, 3, 2], norm="batch", rng=0)
    model.save(tmp_path / "m.lw")
    with zipfile.ZipFile(tmp_path / "m.lw") as z:
        members = {n: z.read(n) for n in z.namelist()}
    doc = json.loads(members["model.json"])
    ref = doc["layers"][1]["arrays"]["running_var"]
    bad = lw.io.npy_bytes(-np.ones(3, np.float32))
    members[ref["file"]] = bad

    ref["sha256"] = hashlib.sha256(bad).hexdigest()
    members["model.json"] = json.dumps(doc).encode()
    with zipfile.ZipFile(tmp_path / "bad.lw", "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(lw.ModelFileError, match="running_var must be >= 0"):
        lw.load(tmp_path / "bad.lw")


def test_explain_shows_the_norm_layers():
    model = lw.mlp([64, 16, 10], norm="batch", rng=0)
    Xtr, ytr, _, _ = digits()
    report = explain(model, "ce", Xtr[:32], ytr[:32])
    assert [r.kind for r in report.layers] == ["dense", "batchnorm", "dense"]
    assert [r.activation for r in report.layers] == ["identity", "relu", "identity"]
    assert report.layers[1].shapes["dW"] == (16,) and report.layers[1].dead_fraction is not None
    text = str(report)
    assert "2 batchnorm" in text and "γ, β" in text


@pytest.mark.parametrize("name", ["layer", "batch"])
def test_cli_train_with_norm(name, tmp_path):
    out = tmp_path / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = main(["train", "digits", "--epochs", "2", "--layers", "16", "--quiet",
                     "--norm", name, "--out", str(out)])
    assert code == 0
    model = lw.load(out / "model.lw")
    assert f"{name}norm" in [layer.kind for layer in model.layers]
    assert json.loads((out / "config.json").read_text())["args"]["norm"] == name
    with contextlib.redirect_stdout(io.StringIO()) as text:
        assert main(["explain", str(out / "model.lw")]) == 0
    assert f"{name}norm" in text.getvalue()


def test_cli_refuses_an_unknown_norm(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "digits", "--norm", "group"])
    assert exc.value.code == 2
    assert "--norm" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["layer", "batch"])
def test_estimators_take_a_norm(name):
    pytest.importorskip("sklearn")
    import pickle

    from layerwise.sklearn import LayerwiseClassifier, LayerwiseRegressor
    Xtr, ytr, Xte, yte = digits()
    clf = LayerwiseClassifier((32,), norm=name, max_iter=10, random_state=0).fit(Xtr, ytr)
    assert f"{name}norm" in [layer.kind for layer in clf.model_.layers]
    assert clf.score(Xte, yte) > 0.9
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(Xte), clf.predict_proba(Xte))
    reg = LayerwiseRegressor((8,), norm=name, max_iter=3, random_state=0)
    reg.fit(Xtr, Xtr[:, 10])
    assert f"{name}norm" in [layer.kind for layer in reg.model_.layers]
    with pytest.raises(lw.LayerwiseError, match="norm"):
        LayerwiseClassifier((4,), norm="group").fit(Xtr[:20], ytr[:20])


@pytest.mark.parametrize("name", ["layer", "batch"])
def test_an_interrupted_run_resumes_bit_for_bit(name, tmp_path):
    """BatchNorm's running statistics are state, not parameters: the checkpoint restores
    every layer's arrays, so the resumed run's statistics (and its eval outputs) are exact."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 6)).astype(np.float32), rng.integers(0, 3, 200)

    def run(model, **kw):
        return model.fit(X, y, optimizer=lw.Adam(1e-2), epochs=3, batch_size=16, rng=7,
                         verbose=0, **kw)

    ref = lw.mlp([6, 16, 3], norm=name, rng=1)
    h_ref = run(ref)
    with pytest.raises(lw.TrainingInterrupted):
        run(lw.mlp([6, 16, 3], norm=name, rng=1), checkpoint=tmp_path / "ck.lw",
            checkpoint_every=5, callbacks=[StopAt(17)])
    model = lw.mlp([6, 16, 3], norm=name, rng=1)
    h = run(model, resume=tmp_path / "ck.lw")
    assert h["loss"] == h_ref["loss"]
    for a, b in zip(ref.layers, model.layers):     # parameters and running statistics
        for k, v in a.arrays().items():
            np.testing.assert_array_equal(b.arrays()[k], v)


@pytest.mark.parametrize("n, batch, last", [(33, 32, 1), (1, 32, 1), (65, 16, 1)])
def test_fit_refuses_a_batch_of_one_row_for_batchnorm_before_the_first_step(n, batch, last):
    """33 rows in batches of 32 leave a last batch of 1: BatchNorm stopped at the end of the
    first epoch; fit now refuses before any step, naming the batch size that works."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, 3)), rng.integers(0, 2, n)
    model = lw.mlp([3, 4, 2], norm="batch", dtype=np.float64, rng=0)
    before = [p.value.copy() for p in model.parameters()]
    with pytest.raises(lw.ValidationError) as e:
        model.fit(X, y, batch_size=batch, epochs=1, verbose=0)
    assert f"{n} training rows in batches of {batch} leave a batch of {last}" in str(e.value)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.value, b)
    if n >= 2:                                        # the suggested size trains
        fix = int(str(e.value).split("pass batch_size=")[1].split(",")[0])
        model.fit(X, y, batch_size=fix, epochs=1, verbose=0)
    lw.mlp([3, 4, 2], norm="layer", rng=0).fit(X, y, batch_size=batch, epochs=1, verbose=0)


def test_the_cli_names_the_flag_for_a_batchnorm_batch_of_one(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(41, 3))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(int), X_test=X[:8],
             y_test=(X[:8, 0] > 0).astype(int))
    from layerwise.cli import main
    assert main(["train", str(tmp_path / "d.npz"), "--norm", "batch", "--validation-split",
                 "0.2", "--out", str(tmp_path / "r"), "--quiet", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "leave a batch of 1; pass --batch-size 33, or drop BatchNorm" in err
