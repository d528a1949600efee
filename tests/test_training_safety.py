"""Training never leaves or saves non-finite parameters, and Ctrl-C never loses or corrupts a run.

Issue 10, items 3 (non-finite updates are rolled back, never saved), 5 (callbacks' state is in
checkpoints; a checkpoint is only ever of a completed step; a second Ctrl-C is deferred), 6
(Ctrl-C always writes a checkpoint and the CLI prints the exact resume command) and the API
parts of 10 (huge sample weights, ``callbacks=None``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise.cli import main
from layerwise.training import _sample_weights, train_step

SRC = str(Path(__file__).resolve().parents[1] / "src")
rng0 = np.random.default_rng(0)
X = rng0.standard_normal((200, 6)).astype(np.float32)
y = rng0.integers(0, 3, 200)


def snapshot(model, opt):
    """Everything a divergence must leave untouched: parameters, optimizer state and step."""
    return ([p.value.copy() for p in model.parameters()], opt.t,
            {k: v.copy() for k, v in opt.state_arrays().items()})


def assert_same(a, b):
    (pa, ta, sa), (pb, tb, sb) = a, b
    assert ta == tb and sorted(sa) == sorted(sb)
    for u, v in zip(pa, pb):
        np.testing.assert_array_equal(u, v)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])


def step(model, L, opt, Xb, Yb, params=None):
    """train_step outside fit, where NumPy's overflow warnings would be errors in the tests."""
    with np.errstate(all="ignore"):
        return train_step(model, L, opt, Xb, Yb, params or model.flat_parameters())


def all_finite(model, opt):
    return all(np.isfinite(p.value).all() for p in model.parameters()) and all(
        np.isfinite(v).all() for v in opt.state_arrays().values())


class Raise(lw.Callback):
    """Raises ``exc`` from on_batch_end at step ``at`` (the step itself is complete)."""

    def __init__(self, at, exc=KeyboardInterrupt):
        self.at, self.n, self.exc = at, 0, exc

    def on_batch_end(self, state, loss):
        self.n += 1
        if self.n == self.at:
            raise self.exc


class Stopped(Exception):
    pass


# -- item 3: no update leaves a non-finite parameter ----------------------------------------

# (optimizer, how to make its next update overflow)
POISONS = [
    (lambda: lw.SGD(0.05), lambda o: setattr(o, "lr", 3e38)),
    (lambda: lw.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
     lambda o: setattr(o, "lr", 3e38)),
    (lambda: lw.SGD(0.05, momentum=0.9, dampening=0.5), lambda o: setattr(o, "momentum", 1e38)),
    (lambda: lw.Adam(1e-2, weight_decay=1e-4),
     lambda o: setattr(o, "weight_decay", 1e37)),                                 # g² overflows
    (lambda: lw.AdamW(1e-2), lambda o: setattr(o, "weight_decay", 1e45)),     # W(1 − ηλ)
    (lambda: lw.RMSprop(1e-2, momentum=0.9, centered=True),
     lambda o: setattr(o, "weight_decay", 1e37)),
]


@pytest.mark.parametrize(("make_opt", "poison"), POISONS)
def test_an_overflowing_update_is_rolled_back_bit_for_bit(make_opt, poison):
    """After k good steps, a step whose update overflows raises DivergenceError and leaves
    parameters, optimizer state and step count exactly as a twin that stopped after k steps."""
    L = lw.CrossEntropy()
    Xb, Y = X[:32] * 50, L.prepare_target(y[:32], 3, np.float32)
    models = [lw.mlp([6, 16, 3], rng=1) for _ in range(2)]
    opts = [make_opt(), make_opt()]
    for model, opt in zip(models, opts):
        for _ in range(4):
            step(model, L, opt, Xb, Y)
    before = snapshot(models[0], opts[0])
    poison(opts[0])
    with pytest.raises(lw.DivergenceError, match=r"NaN or infinite.*not applied"):
        step(models[0], L, opts[0], Xb, Y)
    assert_same(snapshot(models[0], opts[0]), before)
    assert_same(snapshot(models[0], opts[0]), snapshot(models[1], opts[1]))


def test_an_overflow_at_the_first_step_leaves_the_optimizer_unstarted():
    model, opt = lw.mlp([6, 16, 3], rng=1), lw.SGD(3e38, momentum=0.9)
    before = [p.value.copy() for p in model.parameters()]
    with pytest.raises(lw.DivergenceError, match=r"epoch 1, step 1.*keep the parameters"):
        model.fit(X * 50, y, optimizer=opt, epochs=1, batch_size=200, verbose=0)
    assert opt.t == 0 and opt.state_arrays() == {}
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.value, b)


class Poison(lw.Callback):
    """After step ``at``, sets a learning rate that makes the next update overflow."""

    def __init__(self, at):
        self.at, self.n = at, 0

    def on_batch_end(self, state, loss):
        self.n += 1
        if self.n == self.at:
            state.optimizer.lr = 3e38


@pytest.mark.parametrize("make_opt", [lambda: lw.SGD(0.05, momentum=0.9),
                                      lambda: lw.SGD(0.05)])
def test_fit_that_diverges_keeps_the_last_good_step(make_opt):
    """fit raising DivergenceError at step 8 leaves model and optimizer bit-identical to a fit
    stopped after step 7; no checkpoint written before holds a non-finite value."""
    def run(callback, opt):
        model = lw.mlp([6, 16, 3], rng=1)
        with pytest.raises((lw.DivergenceError, Stopped)):
            model.fit(X * 50, y, optimizer=opt, epochs=3, batch_size=16, rng=2, verbose=0,
                      callbacks=[callback])
        return model
    opt_a, opt_b = make_opt(), make_opt()
    a = run(Poison(7), opt_a)
    b = run(Raise(7, Stopped), opt_b)
    assert opt_a.t == opt_b.t == 7
    assert_same(snapshot(a, opt_a), snapshot(b, opt_b))


def test_checkpoints_before_a_divergence_are_finite(tmp_path):
    ck = tmp_path / "ck.lw"
    model = lw.mlp([6, 16, 3], rng=1)
    with pytest.raises(lw.DivergenceError):
        model.fit(X * 50, y, optimizer=lw.SGD(0.05, momentum=0.9), epochs=3, batch_size=16,
                  rng=2, verbose=0, callbacks=[Poison(7)], checkpoint=ck, checkpoint_every=1)
    saved = lw.load(ck)
    assert all(np.isfinite(p.value).all() for p in saved.parameters())
    for p, q in zip(saved.parameters(), model.parameters()):   # the last good step
        np.testing.assert_array_equal(p.value, q.value)


def test_a_learning_rate_that_overflows_the_dtype_is_refused_up_front():
    model = lw.mlp([6, 16, 3], rng=1)
    before = [p.value.copy() for p in model.parameters()]
    with pytest.raises(lw.ValidationError, match=r"1e\+39 does not fit in the model's float32"):
        model.fit(X, y, optimizer=lw.SGD(1e39), epochs=1, verbose=0)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.value, b)
    # in float64 the same rate is a number: the update overflows nothing at the first step
    model64 = lw.mlp([6, 16, 3], rng=1, dtype=np.float64)
    model64.fit(X, y, optimizer=lw.SGD(1e39), epochs=1, batch_size=200, verbose=0)


def test_huge_finite_parameters_are_not_called_divergent():
    """‖W‖² overflows float32 here, but every parameter is finite: the step is taken."""
    model = lw.mlp([6, 4, 3], rng=1, activation="tanh")
    params = model.flat_parameters()
    model.layers[0].W[...] = 2e19                   # ‖W‖² ≈ 24 · 4e38 > float32's max
    L = lw.MSE()
    Y = L.prepare_target(np.zeros((8, 3), np.float32), 3, np.float32)
    opt = lw.SGD(0.1, momentum=0.9)
    for _ in range(3):
        step(model, L, opt, X[:8] * 0, Y, params)    # dW of layer 0 is 0: W stays 2e19
    assert opt.t == 3 and (model.layers[0].W == np.float32(2e19)).all()


def test_random_steps_end_finite_or_change_nothing():
    """Fuzz the guard: random optimizers, rates, decays and parameter scales up to the edge
    of float32. Every guarded step either leaves everything finite or raises and changes
    nothing; a bound that wrongly declared a step safe would leave a NaN or inf behind."""
    rng = np.random.default_rng(3)
    L = lw.MSE()
    raised = passed = 0
    for trial in range(300):
        kind = rng.integers(4)
        lr = float(10.0 ** rng.uniform(-3, 38.5))
        wd = float(10.0 ** rng.uniform(-6, 39)) if rng.random() < 0.3 else 0.0
        if kind == 0:
            opt = lw.SGD(lr, momentum=float(rng.uniform(0, 1.5)), weight_decay=wd)
        elif kind == 1:
            opt = lw.Adam(lr, eps=float(10.0 ** rng.uniform(-50, -1)), weight_decay=wd)
        elif kind == 2:
            opt = lw.AdamW(lr, weight_decay=wd)
        else:
            opt = lw.RMSprop(lr, momentum=float(rng.uniform(0, 0.99)),
                             centered=bool(rng.integers(2)),
                             eps=float(10.0 ** rng.uniform(-50, -1)), weight_decay=wd)
        model = lw.mlp([3, 4, 2], activation="tanh", rng=int(trial))
        params = model.flat_parameters()
        params[0].value *= np.float32(10.0 ** rng.uniform(0, 37))
        Xb = rng.standard_normal((5, 3)).astype(np.float32) * 1e-30
        Yb = (rng.standard_normal((5, 2)) * 10.0 ** rng.uniform(0, 15)).astype(np.float32)
        for _ in range(3):
            before = snapshot(model, opt)
            try:
                step(model, L, opt, Xb, Yb, params)
            except lw.DivergenceError:
                assert_same(snapshot(model, opt), before)
                raised += 1
                break
            assert all_finite(model, opt), (trial, opt)
            passed += 1
    assert raised > 20 and passed > 100               # both paths were exercised


def test_rmsprop_centered_never_takes_the_square_root_of_a_negative():
    """s − ḡ² ≥ 0 in exact arithmetic; with state where rounding makes it negative, the step
    stays finite (torch.optim gives NaN there)."""
    w = np.zeros(4, np.float32)
    p = lw.Param("w", w, np.full(4, 1.0, np.float32))
    opt = lw.RMSprop(0.1, centered=True)
    opt.step([p])
    opt.state[0]["gavg"][...] = 10.0                # a state with s < ḡ²
    with np.errstate(invalid="raise"):
        opt.step([p])
    assert np.isfinite(w).all()


def test_save_refuses_non_finite_parameters(tmp_path):
    model = lw.mlp([6, 4, 3], rng=1)
    model.layers[2].W[1, 2] = np.nan
    with pytest.raises(lw.ValidationError, match=r"layer 2 \(dense\) array W holds NaN"):
        model.save(tmp_path / "m.lw")
    assert os.listdir(tmp_path) == []
    model.layers[2].W[1, 2] = np.inf
    with pytest.raises(lw.ValidationError, match="NaN or infinite"):
        lw.io.save(model, tmp_path / "m.lw")
    assert os.listdir(tmp_path) == []


def test_a_checkpoint_refuses_non_finite_optimizer_state(tmp_path):
    class Spoil(lw.Callback):
        def on_batch_end(self, state, loss):
            state.optimizer.state[0]["v"][0] = np.inf

    with pytest.raises(lw.ValidationError, match=r"optimizer state.*NaN or infinite"):
        lw.mlp([6, 4, 3], rng=1).fit(X, y, optimizer=lw.SGD(0.01, momentum=0.9), epochs=1,
                                     verbose=0, callbacks=[Spoil()],
                                     checkpoint=tmp_path / "c.lw", checkpoint_every=1)
    assert not (tmp_path / "c.lw").exists()


def _cli(args, tmp_path, capsys):
    code = main(["train", *args, "--epochs", "1", "--quiet", "--no-plots",
                 "--out", str(tmp_path / "run")])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("extra", [["--lr", "1e39"], ["--lr", "1e39", "--optimizer", "adam"],
                                   ["--lr", "1e39", "--clip-norm", "1"], ["--lr", "3e38"],
                                   ["--lr", "1e30", "--optimizer", "adam"]])
def test_cli_refuses_to_save_a_diverged_model(tmp_path, capsys, extra):
    code, err = _cli(["--batch-size", "100000", *extra], tmp_path, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("layerwise: error: ")
    assert "learning rate" in err[0]
    assert not (tmp_path / "run" / "model.lw").exists()


# -- item 10 (API): sample weights, callbacks=None ------------------------------------------

def test_huge_sample_weights_are_rescaled_not_zeroed():
    w = _sample_weights(np.full(50, 1e308), 50)
    np.testing.assert_array_equal(w, np.ones(50))
    w = _sample_weights([1e308, 5e307, 0.0, 1e308], 4)
    np.testing.assert_allclose(w, [1.6, 0.8, 0.0, 1.6])
    assert np.isfinite(w).all() and math.isclose(w.mean(), 1.0)
    a, b = (lw.mlp([6, 8, 3], rng=1) for _ in range(2))
    a.fit(X, y, epochs=1, verbose=0, rng=0, sample_weight=np.full(len(X), 1e308))
    b.fit(X, y, epochs=1, verbose=0, rng=0, sample_weight=np.ones(len(X)))
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.value, q.value)


def test_fit_accepts_callbacks_none_and_refuses_non_callbacks():
    h = lw.mlp([6, 8, 3], rng=1).fit(X, y, epochs=1, verbose=0, callbacks=None)
    assert len(h) == 1
    with pytest.raises(lw.ValidationError, match="Callback instances"):
        lw.mlp([6, 8, 3], rng=1).fit(X, y, epochs=1, verbose=0, callbacks=[print])
