"""Training never leaves or saves non-finite parameters, and Ctrl-C never loses or corrupts a run.

Issue 10, items 3 (non-finite updates are rolled back, never saved), 5 (callbacks' state is in
checkpoints; a checkpoint is only ever of a completed step; a second Ctrl-C is deferred), 6
(Ctrl-C always writes a checkpoint and the CLI prints the exact resume command) and the API
parts of 10 (huge sample weights, ``callbacks=None``).
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import checkpoints
from layerwise.cli import main
from layerwise.training import sample_weights, train_step

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


def test_an_overflowing_last_update_is_caught_after_training(tmp_path, capsys):
    """The last update is followed by no loss: with no validation data, a finite but huge model
    whose outputs overflow must still not come back from fit (or be saved) without a word."""
    X, y = lw.datasets.load_digits()[:2]
    model = lw.mlp([64, 32, 10], rng=0)
    with pytest.raises(lw.DivergenceError, match="after the last update the model's outputs"):
        model.fit(X, y, optimizer=lw.SGD(lr=1e30), epochs=1, batch_size=len(X), verbose=0)
    assert all(np.isfinite(p.value).all() for p in model.parameters())
    code = main(["train", "--lr", "1e30", "--validation-split", "0", "--epochs", "1",
                 "--batch-size", "100000", "--quiet", "--no-plots", "--out",
                 str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "outputs on training rows" in err[0]
    assert not (tmp_path / "run" / "model.lw").exists()


def test_the_output_check_is_of_real_rows_after_a_resume_with_nothing_left(tmp_path):
    """Resuming a checkpoint written after the last epoch trains no step: the output check
    must then look at training rows, not at an unfilled batch buffer."""
    X, y = lw.datasets.load_digits()[:2]
    model = lw.mlp([64, 32, 10], rng=0)
    model.fit(X, y, epochs=1, verbose=0, checkpoint=tmp_path / "c.lw", rng=0)
    again = lw.mlp([64, 32, 10], rng=0)
    again.fit(X, y, epochs=1, verbose=0, resume=tmp_path / "c.lw", rng=0)
    for p, q in zip(model.parameters(), again.parameters()):
        np.testing.assert_array_equal(p.value, q.value)


# -- item 10 (API): sample weights, callbacks=None ------------------------------------------

def test_huge_sample_weights_are_rescaled_not_zeroed():
    w = sample_weights(np.full(50, 1e308), 50)
    np.testing.assert_array_equal(w, np.ones(50))
    w = sample_weights([1e308, 5e307, 0.0, 1e308], 4)
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


# -- item 5: callbacks' state in checkpoints; a checkpoint is of a completed step -------------

def fit5(model, callbacks, **kw):
    return model.fit(X, y, optimizer=lw.SGD(0.05, momentum=0.9), epochs=12, batch_size=16,
                     rng=7, verbose=0, validation_split=0.1, callbacks=callbacks, **kw)


def stateful_callbacks():
    # EarlyStopping with a min_delta no epoch can meet: best at epoch 1, stop after 4 more;
    # ReduceLROnPlateau with a threshold no epoch meets: halves the rate every 2nd epoch.
    return [lw.GradientNorms(),
            lw.ReduceLROnPlateau(factor=0.5, patience=1, monitor="loss", threshold=10.0),
            lw.EarlyStopping(patience=4, monitor="val_loss", min_delta=1e9, restore_best=True)]


@pytest.mark.parametrize("at", [5, 13, 30, 50])
def test_callbacks_resume_where_they_were(tmp_path, at):
    """An uninterrupted run stops early at epoch 5 with its lr halved twice; interrupted at
    step `at` (13 steps an epoch) and resumed, the run ends the same: epochs, history, norms,
    and the best parameters EarlyStopping restores."""
    ref = lw.mlp([6, 16, 3], rng=1)
    ref_cbs = stateful_callbacks()
    h_ref = fit5(ref, ref_cbs)
    assert h_ref.epoch == [1, 2, 3, 4, 5] and ref_cbs[2].stopped_epoch == 4
    assert h_ref["lr"][-1] < h_ref["lr"][0]
    ck = tmp_path / "ck.lw"
    with pytest.raises(lw.TrainingInterrupted):
        fit5(lw.mlp([6, 16, 3], rng=1), [*stateful_callbacks(), Raise(at)], checkpoint=ck,
             checkpoint_every="interrupt")
    model, cbs = lw.mlp([6, 16, 3], rng=1), stateful_callbacks()
    h = fit5(model, cbs, resume=ck)
    drop = lambda d: {k: v for k, v in d.items() if k != "seconds"}  # noqa: E731
    assert drop(h.to_dict()) == drop(h_ref.to_dict())
    assert cbs[0].norms == ref_cbs[0].norms
    assert cbs[2].stopped_epoch == 4 and cbs[2].best_epoch == ref_cbs[2].best_epoch
    for p, q in zip(ref.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.value, q.value)


def test_resume_with_other_stateful_callbacks_is_refused(tmp_path):
    ck = tmp_path / "ck.lw"
    with pytest.raises(lw.TrainingInterrupted):
        fit5(lw.mlp([6, 16, 3], rng=1), [*stateful_callbacks(), Raise(5)], checkpoint=ck)
    with pytest.raises(lw.ValidationError, match="same callbacks"):
        fit5(lw.mlp([6, 16, 3], rng=1), [lw.GradientNorms()], resume=ck)


def test_a_damaged_callback_state_is_refused():
    es = lw.EarlyStopping()
    with pytest.raises(lw.ValidationError, match="wait"):
        es.load_state_dict({"best": 1.0, "wait": -1, "best_epoch": 0})
    with pytest.raises(lw.ValidationError, match="best"):
        es.load_state_dict({"best": "x", "wait": 0, "best_epoch": 0})
    with pytest.raises(lw.ValidationError, match="GradientNorms"):
        lw.GradientNorms().load_state_dict({"norms": {"0.W": [1.0]}, "sums": {}, "count": 0})
    with pytest.raises(lw.ValidationError, match="no state"):
        lw.Callback().load_state_dict({"x": 1})


def fit6(model, **kw):
    return model.fit(X, y, optimizer=lw.Adam(1e-2), epochs=3, batch_size=16, rng=7, verbose=0,
                     **kw)


def reference_after(steps):
    """The model and optimizer after exactly `steps` steps (a callback stops the fit then)."""
    model, opt = lw.mlp([6, 16, 16, 3], dropout=0.2, rng=1), lw.Adam(1e-2)
    with pytest.raises(Stopped):
        model.fit(X, y, optimizer=opt, epochs=3, batch_size=16, rng=7, verbose=0,
                  callbacks=[Raise(steps, Stopped)])
    return model, opt


class SigintInStep:
    """Sends SIGINT to this process in the middle of step `at` (after backward, before the
    update) and, with `again`, `again` more times while the checkpoint is being written."""

    def __init__(self, model, at, again=0, monkeypatch=None):
        self.n, self.at = 0, at
        backward = model.backward

        def wrapped(*args, **kwargs):
            self.n += 1
            out = backward(*args, **kwargs)
            if self.n == at:
                os.kill(os.getpid(), signal.SIGINT)
            return out
        model.backward = wrapped
        if again and monkeypatch is not None:
            save = checkpoints.save

            def interrupted_save(path, run):
                for _ in range(again):
                    os.kill(os.getpid(), signal.SIGINT)
                save(path, run)
            monkeypatch.setattr(checkpoints, "save", interrupted_save)


@pytest.mark.parametrize("at", [1, 7, 13, 14, 39])
def test_ctrl_c_without_a_checkpoint_leaves_the_last_completed_step(at):
    """SIGINT in the middle of step `at`: that step completes, fit raises TrainingInterrupted
    (a KeyboardInterrupt), and model and optimizer equal those after exactly `at` steps."""
    model, opt = lw.mlp([6, 16, 16, 3], dropout=0.2, rng=1), lw.Adam(1e-2)
    SigintInStep(model, at)
    with pytest.raises(lw.TrainingInterrupted, match=r"last completed step.*checkpoint="):
        model.fit(X, y, optimizer=opt, epochs=3, batch_size=16, rng=7, verbose=0)
    ref, ref_opt = reference_after(at)
    assert opt.t == at
    assert_same(snapshot(model, opt), snapshot(ref, ref_opt))


@pytest.mark.parametrize(("at", "again"), [(3, 0), (3, 5), (13, 2), (20, 1)])
def test_ctrl_c_mid_step_and_during_the_write_gives_a_complete_checkpoint(
        tmp_path, monkeypatch, at, again):
    """SIGINT mid-step, then `again` more while the checkpoint is written: the write completes,
    holds exactly step `at`, and the resumed run ends bit-identical to an uninterrupted one."""
    ref = lw.mlp([6, 16, 16, 3], dropout=0.2, rng=1)
    h_ref = fit6(ref)
    ck = tmp_path / "ck.lw"
    model = lw.mlp([6, 16, 16, 3], dropout=0.2, rng=1)
    SigintInStep(model, at, again, monkeypatch)
    with pytest.raises(lw.TrainingInterrupted, match="checkpoint written"):
        fit6(model, checkpoint=ck, checkpoint_every="interrupt")
    monkeypatch.undo()
    saved = lw.load(ck)
    after, _ = reference_after(at)
    for p, q in zip(saved.parameters(), after.parameters()):
        np.testing.assert_array_equal(p.value, q.value)
    resumed = lw.mlp([6, 16, 16, 3], dropout=0.2, rng=1)
    h = fit6(resumed, resume=ck)
    assert h.to_dict()["loss"] == h_ref.to_dict()["loss"]
    for p, q in zip(ref.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(p.value, q.value)


def test_checkpoint_every_interrupt_writes_only_on_ctrl_c(tmp_path):
    ck = tmp_path / "ck.lw"
    fit6(lw.mlp([6, 16, 16, 3], rng=1), checkpoint=ck, checkpoint_every="interrupt")
    assert not ck.exists()


# -- item 6: the CLI always checkpoints on Ctrl-C and prints a resume command that works ------

def _layerwise(*args):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return [sys.executable, "-m", "layerwise", *args], env


def test_cli_ctrl_c_without_checkpoint_every_prints_a_resume_command_that_works(tmp_path):
    """Without --checkpoint-every, SIGINT after the first epoch exits 130 with a checkpoint
    and the exact resume command; running that command ends with the model an uninterrupted
    run saves, bit for bit (dropout, early stopping and all), and a finished run leaves no
    checkpoint behind."""
    common = ["train", "--layers", "32", "--epochs", "200", "--batch-size", "32",
              "--early-stopping", "20", "--dropout", "0.1", "--no-plots"]
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut dir"
    cmd, env = _layerwise(*common, "--quiet", "--out", str(ref_dir))
    subprocess.run(cmd, env=env, check=True, timeout=300, capture_output=True)
    assert not (ref_dir / "checkpoint.lw").exists()
    cmd, env = _layerwise(*common, "--out", str(cut_dir))
    with subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, cwd=tmp_path) as proc:
        assert proc.stderr is not None
        seen, deadline = "", time.monotonic() + 120
        while "Epoch 2/" not in seen and time.monotonic() < deadline:  # epoch 1 is done
            seen += proc.stderr.read(1)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("training finished before the interrupt arrived")
    assert proc.returncode == 130
    last = rest.strip().splitlines()[-1]
    assert "layerwise train --resume " in last and (cut_dir / "checkpoint.lw").exists()
    assert not (cut_dir / "model.lw").exists()
    resume = shlex.split(last.split("Continue it with: ")[1])
    assert resume[:3] == ["layerwise", "train", "--resume"]
    cmd, env = _layerwise(*resume[1:], "--quiet")
    subprocess.run(cmd, env=env, check=True, timeout=300, capture_output=True, cwd=tmp_path)
    assert not (cut_dir / "checkpoint.lw").exists()
    a, b = lw.load(ref_dir / "model.lw"), lw.load(cut_dir / "model.lw")
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.value, q.value)
    # early stopping ended both runs at the same epoch: its state survived the interruption
    assert a.metadata["config"]["epochs_run"] == b.metadata["config"]["epochs_run"] < 200


def test_an_optimizer_with_its_own_step_is_checked_and_rolled_back():
    """A user's Optimizer subclass that overrides step() has no bound: every guarded step runs
    its step on the copy-protected path, and an overflowing one is undone."""
    class Doubling(lw.Optimizer):
        def step(self, params):
            self.t += 1
            for p in params:
                p.value *= np.float32(1e20)

    model, opt = lw.mlp([6, 4, 3], rng=1), Doubling(0.1)
    L = lw.CrossEntropy()
    Y = L.prepare_target(y[:8], 3, np.float32)
    zeros = X[:8] * 0                               # outputs stay 0: the loss stays finite
    step(model, L, opt, zeros, Y)
    before = snapshot(model, opt)
    assert opt.t == 1 and all_finite(model, opt)
    with pytest.raises(lw.DivergenceError, match="not applied"):
        step(model, L, opt, zeros, Y)
    assert_same(snapshot(model, opt), before)


SCRIPT = """
import sys, numpy as np, layerwise as lw
ck, out = sys.argv[1], sys.argv[2]
resume = ck if len(sys.argv) > 3 else None
rng = np.random.default_rng(0)
X = rng.standard_normal((120, 5)).astype(np.float32)
y = rng.integers(0, 3, 120)
model = lw.mlp([5, 12, 3], dropout=0.3, rng=3)
print("started", flush=True)
model.fit(X, y, optimizer=lw.SGD(0.05, momentum=0.9), epochs=30, batch_size=8, rng=5,
          verbose=0, schedule="cosine", checkpoint=ck if ck != "-" else None,
          checkpoint_every=1, resume=resume,
          callbacks=[lw.EarlyStopping(patience=20, monitor="loss"), lw.GradientNorms()])
np.save(out, model.flat_parameters()[0].value)
"""


def test_repeated_ctrl_c_on_a_real_process_never_loses_or_corrupts_the_checkpoint(tmp_path):
    """A burst of SIGINTs at random moments of a run that checkpoints every step (so most land
    in a step or a write): every time the process exits interrupted with a checkpoint, and the
    run resumed from it ends bit-identical to an uninterrupted one."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def python(*args):
        return [sys.executable, str(script), *map(str, args)]
    ref = tmp_path / "ref.npy"
    subprocess.run(python("-", ref), check=True, timeout=120, env=env)
    rng = np.random.default_rng(1)
    interrupted = 0
    for trial in range(3):
        ck, out = tmp_path / f"ck{trial}.lw", tmp_path / f"out{trial}.npy"
        with subprocess.Popen(python(ck, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) as proc:
            assert proc.stdout is not None
            proc.stdout.readline()                       # "started": fit is about to run
            deadline = time.monotonic() + 60
            while not ck.exists() and time.monotonic() < deadline:
                time.sleep(0.005)                        # the first step's checkpoint: fit
            time.sleep(float(rng.uniform(0, 0.2)))       # handles SIGINT from now on
            for _ in range(int(rng.integers(2, 6))):
                proc.send_signal(signal.SIGINT)
                time.sleep(float(rng.uniform(0, 0.003)))
            _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            continue                                     # finished before the interrupts
        assert "TrainingInterrupted" in err and "checkpoint written to" in err, err
        lw.load(ck)
        subprocess.run(python(ck, out, "resume"), check=True, timeout=120, env=env)
        np.testing.assert_array_equal(np.load(out), np.load(ref))
        interrupted += 1
    assert interrupted >= 2, "the runs finished before the interrupts arrived"
