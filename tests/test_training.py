"""fit: mini-batches, history, reproducibility, callbacks, schedules, and digits accuracy."""

from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw


@pytest.fixture(scope="module")
def digits():
    Xtr, ytr, Xte, yte = lw.datasets.load_digits()
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
    return (Xtr - mu) / sd, ytr, (Xte - mu) / sd, yte


def blobs(n=200, seed=0):
    """Three well-separated Gaussian blobs in 2-D."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 3], [3, -2], [-3, -2]], dtype=float)
    y = rng.integers(0, 3, n)
    return (centers[y] + 0.5 * rng.standard_normal((n, 2))).astype(np.float32), y


def test_digits_reaches_97_percent_with_adam_in_30_epochs_bit_identically(digits):
    """The issue's target: lw.mlp([64, 128, 10]) + Adam, 30 epochs, >= 97% test accuracy."""
    Xtr, ytr, Xte, yte = digits

    def run():
        model = lw.mlp([64, 128, 10], rng=0)
        model.fit(Xtr, ytr, loss=lw.CrossEntropy(label_smoothing=0.1), optimizer=lw.Adam(3e-3),
                  epochs=30, batch_size=32, schedule="cosine", rng=0, verbose=0)
        return model

    a, b = run(), run()
    assert a.evaluate(Xte, yte)["accuracy"] >= 0.97
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.value, q.value)        # same seed: bit for bit


def test_history_records_every_epoch():
    X, y = blobs()
    model = lw.mlp([2, 16, 3], rng=0)
    h = model.fit(X, y, loss="ce", optimizer=lw.SGD(0.1), epochs=4, batch_size=64,
                  validation_split=0.25, rng=0, verbose=0)
    assert len(h) == 4 and h.epoch == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert len(h[key]) == 4, key
    assert h["loss"][-1] < h["loss"][0]
    assert h.to_dict()["epoch"] == [1, 2, 3, 4]
    assert model.loss is not None and model.loss.kind == "ce"


def test_reported_epoch_loss_is_the_sample_weighted_batch_mean():
    """With lr≈0 the weights do not move, so the epoch loss equals the full-data loss even with a
    short last batch (7 samples, batch 3: batches of 3, 3, 1)."""
    X, y = blobs(7)
    model = lw.mlp([2, 4, 3], rng=0).astype(np.float64)
    expected = lw.CrossEntropy().forward(model.predict(X), y)
    h = model.fit(X, y, loss="ce", optimizer=lw.SGD(1e-300), epochs=1, batch_size=3, verbose=0)
    assert h["loss"][0] == pytest.approx(expected, rel=1e-12)


def test_regression_with_mse_learns_a_linear_map():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    model = lw.Sequential(lw.Dense(3, 1, rng=0))
    h = model.fit(X, y, loss="mse", optimizer=lw.SGD(0.1), epochs=50, batch_size=32, rng=0,
                  verbose=0)
    r = model.evaluate(X, y)
    assert r["r2"] > 0.999 and h["loss"][-1] < 1e-3
    np.testing.assert_allclose(model.layers[0].W[0], [1.0, -2.0, 0.5], atol=1e-2)


def test_binary_classification_with_bce_and_sigmoid_free_logits():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 2)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.float32)             # XOR-like quadrants
    model = lw.mlp([2, 32, 1], activation="tanh", rng=1)
    model.fit(X, y, loss="bce", optimizer=lw.Adam(0.01), epochs=100, batch_size=32, rng=1,
              verbose=0)
    assert model.evaluate(X, y)["accuracy"] > 0.95
    P = model.predict_proba(X)
    assert P.shape == (300, 1) and np.all((P >= 0) & (P <= 1))


def test_verbose_modes_print_progress(capsys):
    X, y = blobs(64)
    lw.mlp([2, 4, 3], rng=0).fit(X, y, epochs=2, batch_size=16, verbose=2)
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "loss=" in out
    lw.mlp([2, 4, 3], rng=0).fit(X, y, epochs=1, batch_size=16, verbose=1)
    assert "Epoch 1/1" in capsys.readouterr().err              # tqdm bar on stderr
    lw.mlp([2, 4, 3], rng=0).fit(X, y, epochs=1, batch_size=16, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_fit_with_batch_larger_than_data_and_batch_of_one():
    X, y = blobs(5)
    for bs in (1, 100):
        h = lw.mlp([2, 4, 3], rng=0).fit(X, y, epochs=2, batch_size=bs, verbose=0)
        assert len(h) == 2


def test_schedule_sets_lr_per_epoch():
    X, y = blobs(32)
    h = lw.mlp([2, 4, 3], rng=0).fit(X, y, optimizer=lw.SGD(0.1), epochs=4, batch_size=8,
                                    schedule=lw.StepDecay(step_size=2, gamma=0.5), verbose=0)
    assert h["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05])
    h = lw.mlp([2, 4, 3], rng=0).fit(X, y, optimizer=lw.SGD(0.1), epochs=4, batch_size=8,
                                    schedule="cosine", verbose=0)
    assert h["lr"][0] == pytest.approx(0.1) and h["lr"][-1] < h["lr"][1]


def test_cosine_warmup_and_exponential():
    s = lw.CosineDecay(epochs=10, warmup=2, min_lr=0.01)
    lrs = [s(e, 1.0) for e in range(10)]
    assert lrs[0] == pytest.approx(1 / 3) and lrs[1] == pytest.approx(2 / 3)
    assert lrs[2] == pytest.approx(1.0) and all(a > b for a, b in zip(lrs[2:], lrs[3:]))
    assert lrs[-1] > 0.01
    assert lw.ExponentialDecay(0.5)(3, 2.0) == pytest.approx(0.25)
    with pytest.raises(lw.ValidationError, match="warmup"):
        lw.CosineDecay(epochs=3, warmup=3)
    with pytest.raises(lw.ConfigError, match="unknown schedule"):
        lw.schedules.get("linear", 3)


def test_early_stopping_stops_and_restores_best_weights():
    X, y = blobs(100)
    model = lw.mlp([2, 8, 3], rng=0)
    # Improvements smaller than min_delta count as none, so training stops once it plateaus.
    es = lw.EarlyStopping(patience=2, monitor="val_loss", min_delta=0.01)
    h = model.fit(X, y, optimizer=lw.SGD(0.05), epochs=200, batch_size=10,
                  validation_data=blobs(60, seed=1), callbacks=[es], rng=0, verbose=0)
    assert len(h) < 200 and es.stopped_epoch is not None
    best = es.best_epoch
    assert best < len(h) - 1 and h["val_loss"][-1] < h["val_loss"][best]   # not simply the last
    assert model.evaluate(*blobs(60, seed=1))["loss"] == pytest.approx(h["val_loss"][best],
                                                                       rel=1e-5)


def test_early_stopping_needs_validation_data():
    X, y = blobs(20)
    with pytest.raises(lw.ValidationError, match="validation_data"):
        lw.mlp([2, 4, 3]).fit(X, y, epochs=1, callbacks=[lw.EarlyStopping()], verbose=0)


def test_reduce_lr_on_plateau_lowers_the_rate():
    X, y = blobs(40)
    cb = lw.ReduceLROnPlateau(factor=0.5, patience=1, monitor="loss", threshold=10.0)
    h = lw.mlp([2, 4, 3], rng=0).fit(X, y, optimizer=lw.SGD(0.1), epochs=6, batch_size=8,
                                    callbacks=[cb], verbose=0)
    # threshold=10 means no epoch counts as an improvement after the first
    assert h["lr"][0] == pytest.approx(0.1) and h["lr"][-1] < 0.1
    assert all(b <= a for a, b in zip(h["lr"], h["lr"][1:]))


def test_model_checkpoint_saves_best(tmp_path):
    X, y = blobs(60)
    path = tmp_path / "best.lw"
    model = lw.mlp([2, 8, 3], rng=0)
    h = model.fit(X, y, epochs=5, batch_size=10, validation_split=0.2,
                  callbacks=[lw.ModelCheckpoint(str(path))], rng=0, verbose=0)
    loaded = lw.load(path)
    best = min(h["val_loss"])
    _, val = lw.training.validation_rows(len(X), 0.2, 0)    # fit's random 20% for rng=0
    Xv, yv = X[val], y[val]
    assert loaded.evaluate(Xv, yv)["loss"] == pytest.approx(best, rel=1e-5)
    every = tmp_path / "e{epoch}.lw"
    model.fit(X, y, epochs=2, batch_size=10, verbose=0,
              callbacks=[lw.ModelCheckpoint(str(every), monitor="loss", save_best_only=False)])
    assert (tmp_path / "e1.lw").exists() and (tmp_path / "e2.lw").exists()


def test_divergence_raises_a_clear_error():
    X, y = blobs(32)
    X = X * 1e30
    with pytest.raises(lw.DivergenceError, match="Lower the learning rate"):
        lw.mlp([2, 4, 1], rng=0).fit(X, y.astype(float), loss="mse", optimizer=lw.SGD(1e10),
                                    epochs=3, batch_size=8, verbose=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": -1}, "batch_size must be a positive integer"),
        ({"validation_split": 1.5}, r"validation_split must be in \[0, 1\)"),
        ({"loss": "hinge"}, "unknown loss 'hinge'"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"verbose": 5}, "verbose must be 0, 1 or 2"),
        ({"validation_data": (np.ones((3, 2)), np.ones(4))}, "same number of samples"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, match):
    X, y = blobs(20)
    args = {"epochs": 1, "verbose": 0, **kwargs}
    with pytest.raises(lw.LayerwiseError, match=match):
        lw.mlp([2, 4, 3]).fit(X, y, **args)


def test_fit_rejects_bad_data():
    X, y = blobs(20)
    m = lw.mlp([2, 4, 3])
    with pytest.raises(lw.ValidationError, match="same number of samples"):
        m.fit(X, y[:-1], epochs=1, verbose=0)
    with pytest.raises(lw.ValidationError, match=r"labels in 0\.\.2"):
        m.fit(X, y + 5, epochs=1, verbose=0)
    with pytest.raises(lw.ValidationError, match="has 3 features but the model expects 2"):
        m.fit(np.ones((20, 3)), y, epochs=1, verbose=0)
    with pytest.raises(lw.ValidationError, match="learning rate"):
        lw.SGD(lr=0)
    with pytest.raises(lw.ValidationError, match="learning rate"):
        lw.Adam(lr=float("nan"))


def test_sample_weight_of_two_equals_a_duplicated_sample():
    """Full-batch gradient descent: weight 2 on one sample is that sample twice, since weights
    are rescaled to mean 1 (both minimise the same average)."""
    X, y = blobs(9)
    X = X.astype(np.float64)
    w = np.ones(9)
    w[4] = 2.0
    a = lw.mlp([2, 5, 3], rng=0, dtype=np.float64)
    b = lw.mlp([2, 5, 3], rng=0, dtype=np.float64)
    ha = a.fit(X, y, optimizer=lw.SGD(0.5), epochs=3, batch_size=9, shuffle=False,
               sample_weight=w, verbose=0)
    Xd, yd = np.vstack([X, X[4:5]]), np.concatenate([y, y[4:5]])
    hb = b.fit(Xd, yd, optimizer=lw.SGD(0.5), epochs=3, batch_size=10, shuffle=False, verbose=0)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-12, atol=1e-14)
    assert ha["loss"] == pytest.approx(hb["loss"], rel=1e-12)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "bce", "ce"])
def test_weighted_loss_is_the_weighted_mean_of_per_sample_losses(loss):
    rng = np.random.default_rng(0)
    L = lw.losses.get(loss)
    pred = rng.standard_normal((6, 3))
    if loss == "ce":
        target = rng.integers(0, 3, 6)
    elif loss == "bce":
        target = rng.integers(0, 2, (6, 3)).astype(float)
    else:
        target = rng.standard_normal((6, 3))
    plain = L.forward(pred, target)
    assert L.per_sample(pred, target).mean() == pytest.approx(plain, rel=1e-12)
    w = rng.random(6)
    assert L.weighted(pred, target, w) == pytest.approx(
        float(L.per_sample(pred, target) @ w) / 6, rel=1e-12)


def test_bad_sample_weights_are_refused():
    X, y = blobs(10)
    m = lw.mlp([2, 4, 3])
    with pytest.raises(lw.ValidationError, match="one value per training sample"):
        m.fit(X, y, epochs=1, sample_weight=np.ones(3), verbose=0)
    with pytest.raises(lw.ValidationError, match="non-negative"):
        m.fit(X, y, epochs=1, sample_weight=-np.ones(10), verbose=0)


class _Snapshots(lw.Callback):
    def __init__(self):
        self.params = None

    def on_batch_end(self, state, loss):
        self.params = [p.value.copy() for p in state.model.parameters()]


def test_divergence_stops_at_the_step_and_keeps_the_last_finite_parameters():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = X @ np.array([1.0, 2.0, 3.0])
    model = lw.mlp([3, 8, 1], rng=0, dtype=np.float64)
    snap = _Snapshots()
    with pytest.raises(lw.DivergenceError, match=r"at epoch \d+, step \d+") as info:
        model.fit(X, y, loss="mse", optimizer=lw.SGD(2.0), epochs=50, batch_size=8,
                  callbacks=[snap], verbose=0)
    assert "clip_norm" in str(info.value)
    assert snap.params is not None                   # at least one good step happened
    for p, kept in zip(model.parameters(), snap.params):
        assert np.isfinite(p.value).all()
        np.testing.assert_array_equal(p.value, kept)   # untouched by the failing step


def test_clip_norm_bounds_the_update():
    """Full-batch SGD with lr 1: the parameter change is exactly the clipped gradient."""
    X, y = blobs(32)
    model = lw.mlp([2, 8, 3], rng=0, dtype=np.float64)
    before = model.flat_parameters()[0].value.copy()
    model.fit(X, y, optimizer=lw.SGD(1.0), epochs=1, batch_size=32, clip_norm=1e-3,
              shuffle=False, verbose=0)
    step = before - model.flat_parameters()[0].value
    assert np.linalg.norm(step) == pytest.approx(1e-3, rel=1e-5)
    with pytest.raises(lw.ValidationError, match="clip_norm"):
        model.fit(X, y, epochs=1, clip_norm=0, verbose=0)


def test_global_norm_matches_numpy():
    model = lw.mlp([4, 5, 3], rng=0, dtype=np.float64)
    for p in model.parameters():
        p.grad[...] = np.random.default_rng(1).standard_normal(p.grad.shape)
    expected = np.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    assert lw.training.global_norm(model.parameters()) == pytest.approx(expected, rel=1e-12)
    assert lw.training.global_norm(model.flat_parameters()) == pytest.approx(expected, rel=1e-12)
