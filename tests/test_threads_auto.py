"""BLAS thread counts chosen by timing real steps, or forced (issue 11, item 1).

The decision logic runs on a fake clock and fake BLAS libraries, so it is tested exactly and
nothing here depends on how fast or how busy the machine is. Forced counts are checked where
they matter: inside the training step and inside predict, with threadpoolctl.
"""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import layerwise as lw
from layerwise import _blas
from layerwise.cli import main
from test_checkpoints import StopAt  # Ctrl-C after a number of steps


# -- the decision, on a fake clock ----------------------------------------------------------
class FakeLib:
    """A BLAS library as threadpoolctl's controller shows it: a count to read and set."""

    def __init__(self, n: int) -> None:
        self.num_threads = n
        self.calls: list[int] = []

    def set_num_threads(self, n: int) -> None:
        self.calls.append(n)
        self.num_threads = n


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fake(monkeypatch):
    lib = FakeLib(4)
    monkeypatch.setattr(_blas, "_libraries", lambda: [lib])
    return lib


def run_steps(th: _blas.Threads, clock: Clock, cost: dict[int, float], n: int) -> list[int]:
    """n steps, each taking cost[count in force] seconds on the fake clock; the counts used."""
    used = []
    for _ in range(n):
        t0 = th.start_step()
        used.append(th.current)
        clock.t += cost[th.current]
        th.end_step(t0)
    return used


def test_auto_times_both_counts_on_real_steps_and_keeps_the_faster(fake):
    clock = Clock()
    with _blas.Threads(None, small=False, steps=10_000, clock=clock) as th:
        used = run_steps(th, clock, {1: 1e-3, 4: 6e-4}, _blas.MIN_STEPS)
        # interleaved: a warm-up step with each count, then PROBE_STEPS timed steps each
        assert used == [4, 1] * (1 + _blas.PROBE_STEPS)
        assert th.current == 4 and fake.num_threads == 4
        assert th.choices == [{"step": _blas.MIN_STEPS, "reason": "start", "threads": 4,
                               "us_per_step": {"1": 1000.0, "4": 600.0}}]
        assert run_steps(th, clock, {1: 1e-3, 4: 6e-4}, 50) == [4] * 50   # settled


@pytest.mark.parametrize(("cost", "decided_at", "winner"), [({1: 1e-3, 4: 5e-3}, 6, 1),
                                                             ({1: 1e-3, 4: 4e-4}, 12, 4)])
def test_slow_threads_end_the_measurement_after_two_pairs(fake, cost, decided_at, winner):
    """All threads more than EARLY times slower after two timed pairs: decided at step 6, so
    a busy machine pays three slow probe steps (one warm-up, two timed), not six. Faster
    threads get all their samples (their slow steps may come later)."""
    clock = Clock()
    with _blas.Threads(None, small=False, steps=10_000, clock=clock) as th:
        used = run_steps(th, clock, cost, 14)
        assert used[:decided_at] == [4, 1] * (decided_at // 2)
        assert used[decided_at:] == [winner] * (14 - decided_at)
        assert [c["step"] for c in th.choices] == [decided_at] and th.current == winner


def test_the_mean_decides_not_the_median(fake):
    """Several threads on a busy machine: mostly fast steps, now and then a very slow one
    (a thread waiting for a core). The median would pick them; the mean, what an epoch
    costs, does not."""
    clock = Clock()
    spikes = iter([2e-4, 2e-4, 2e-2, 2e-4, 2e-4, 2e-2])      # the timed steps with 4 threads
    with _blas.Threads(None, small=False, steps=10_000, clock=clock) as th:
        for i in range(_blas.MIN_STEPS):
            t0 = th.start_step()
            warm = i < 2
            clock.t += 1e-3 if th.current == 1 else (5e-4 if warm else next(spikes))
            th.end_step(t0)
        assert th.current == 1
        assert th.choices[0]["us_per_step"] == {"1": 1000.0, "4": 6800.0}
    assert fake.num_threads == 4                      # the entry count is restored


def test_warm_up_steps_are_not_counted(fake):
    """A slow first step (buffers, optimizer state) must not decide against its count."""
    clock = Clock()
    with _blas.Threads(None, small=False, steps=10_000, clock=clock) as th:
        t0 = th.start_step()
        clock.t += 10.0                               # the first step: very slow, with 4
        th.end_step(t0)
        run_steps(th, clock, {1: 1e-3, 4: 3e-4}, _blas.MIN_STEPS - 1)
        assert th.current == 4 and th.choices[0]["us_per_step"] == {"1": 1000.0, "4": 300.0}


def test_one_thread_is_kept_unless_several_are_clearly_faster(fake):
    clock = Clock()
    with _blas.Threads(None, small=False, steps=10_000, clock=clock) as th:
        run_steps(th, clock, {1: 1e-3, 4: 0.97e-3}, _blas.MIN_STEPS)    # 3% faster: not worth it
        assert th.current == 1 and fake.num_threads == 1
    assert fake.num_threads == 4


def test_contention_starting_later_is_noticed_by_the_drift_check(fake):
    """Quiet at first (4 threads win); then another process takes the cores and a 4-thread
    step becomes 5x slower than a 1-thread step: within one window the run measures again
    and switches to one thread."""
    clock = Clock()
    with _blas.Threads(None, small=False, steps=100_000, clock=clock) as th:
        run_steps(th, clock, {1: 1e-3, 4: 3e-4}, _blas.MIN_STEPS + 3 * _blas.WINDOW)
        assert th.current == 4 and len(th.choices) == 1
        busy = {1: 1.2e-3, 4: 6e-3}
        used = run_steps(th, clock, busy, 2 * _blas.WINDOW)
        assert th.current == 1
        assert th.choices[-1]["reason"] == "drift" and th.choices[-1]["threads"] == 1
        assert th.choices[-1]["us_per_step"] == {"1": 1200.0, "4": 6000.0}
        # the slow steps before the switch: at most one window, then three probe steps
        assert used.count(4) <= _blas.WINDOW + 3
        # contention ends: the drift is small (1.2 -> 1.0 ms), so the periodic check finds it
        quiet = {1: 1e-3, 4: 3e-4}
        run_steps(th, clock, quiet, _blas.RECHECK * _blas.WINDOW + _blas.MIN_STEPS)
        assert th.current == 4
        assert [c["reason"] for c in th.choices] == ["start", "drift", "periodic"]


def test_steady_step_times_are_measured_again_only_periodically(fake):
    clock = Clock()
    with _blas.Threads(None, small=False, steps=100_000, clock=clock) as th:
        period = _blas.RECHECK * _blas.WINDOW + _blas.MIN_STEPS
        run_steps(th, clock, {1: 1e-3, 4: 6e-4}, _blas.MIN_STEPS + 3 * period)
        assert [c["reason"] for c in th.choices] == ["start"] + ["periodic"] * 3
        assert [c["step"] for c in th.choices] == [_blas.MIN_STEPS + k * period
                                                  for k in range(4)]


@pytest.mark.parametrize(("setting", "small", "steps", "all_", "expected", "reason"), [
    (3, False, 10_000, 4, 3, "forced"),
    (1, True, 10_000, 4, 1, "forced"),
    (None, True, 10_000, 4, 1, "small model"),
    (None, False, _blas.MIN_STEPS - 1, 4, 4, "too few steps to measure"),
    (None, False, 10_000, 1, 1, "one thread available"),
])
def test_when_nothing_is_measured(monkeypatch, setting, small, steps, all_, expected, reason):
    lib = FakeLib(all_)
    monkeypatch.setattr(_blas, "_libraries", lambda: [lib])
    clock = Clock()
    with _blas.Threads(setting, small=small, steps=steps, clock=clock) as th:
        assert run_steps(th, clock, {1: 1e-3, 3: 1e-3, 4: 1e-4}, 20) == [expected] * 20
        assert th.reason == reason and th.choices == [] and not th.auto
    assert lib.num_threads == all_


def test_a_second_holder_changes_nothing_and_the_first_restores(fake):
    """The count is process-wide: while one Threads holds it, another (a predict in another
    thread) runs under it; the holder restores the count it found."""
    with _blas.Threads(1, small=False, steps=100) as outer:
        with _blas.Threads(2, small=False, steps=100, fit=False) as inner:
            assert inner.reason == "held elsewhere" and fake.num_threads == 1
        assert fake.num_threads == 1 and outer.current == 1
    assert fake.num_threads == 4 and not _blas._limit_held.locked()


def test_predicts_take_no_hold_while_a_fit_runs(fake):
    """A fit that could not take the count (another fit held it) does not lose it to
    predicts: they defer to running fits, and the fit takes the count at its next step."""
    first = _blas.Threads(2, small=False, steps=100).__enter__()
    second = _blas.Threads(3, small=False, steps=100).__enter__()
    assert second.reason == "held elsewhere"
    first.__exit__(None, None, None)
    with _blas.Threads(1, small=True, steps=1, fit=False) as predict:
        assert predict.reason == "held elsewhere"         # a fit is running: no hold
    second.start_step()                                   # takes over
    assert second.reason == "forced" and fake.num_threads == 3
    second.__exit__(None, None, None)
    assert fake.num_threads == 4 and not _blas._limit_held.locked()


def test_state_round_trip_continues_a_measurement(fake):
    """A checkpoint taken in the middle of a measurement continues it after resume."""
    clock = Clock()
    with _blas.Threads(None, small=False, steps=10_000, clock=clock) as th:
        run_steps(th, clock, {1: 1e-3, 4: 6e-4}, 5)
        state = json.loads(json.dumps(th.state_dict()))
    resumed = _blas.Threads(None, small=False, steps=10_000, clock=clock)
    resumed.load_state_dict(state)
    with resumed:
        assert resumed.plan == th.plan and resumed.current == th.current
        run_steps(resumed, clock, {1: 1e-3, 4: 6e-4}, _blas.MIN_STEPS - 5)
        assert resumed.choices == [{"step": _blas.MIN_STEPS, "reason": "start", "threads": 4,
                                    "us_per_step": {"1": 1000.0, "4": 600.0}}]


@pytest.mark.parametrize(("given", "expected"), [(None, 3), (2, 2)])
def test_resuming_a_forced_run(fake, given, expected):
    """threads="auto" on resume continues the checkpoint's forced count (no measuring); a
    count given to the resumed fit wins."""
    clock = Clock()
    cost = {1: 1e-3, 2: 1e-3, 3: 1e-3, 4: 1e-4}
    with _blas.Threads(3, small=False, steps=10_000, clock=clock) as th:
        run_steps(th, clock, cost, 5)
        state = json.loads(json.dumps(th.state_dict()))
    resumed = _blas.Threads(given, small=False, steps=10_000, clock=clock)
    resumed.load_state_dict(state)
    with resumed:
        assert run_steps(resumed, clock, cost, 20) == [expected] * 20
        assert resumed.choices == [] and resumed.step == 25
    assert fake.num_threads == 4


@pytest.mark.parametrize("bad", [{"current": 0, "all": 4}, {"current": 2, "all": True},
                                 {"current": 1, "all": 2, "plan": [1], "warm": []},
                                 {"current": 1, "all": 2, "window": [-1.0]}, "x"])
def test_damaged_thread_state_is_refused(bad):
    with pytest.raises(ValueError):
        _blas.Threads(None, small=False, steps=1).load_state_dict(bad)


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [(None, None), ("auto", None), (" AUTO ", None),
                                                 (1, 1), ("2", 2), (np.int64(3), 3),
                                                 (_blas.MAX_THREADS, _blas.MAX_THREADS)])
def test_valid_thread_settings(given, expected):
    assert _blas.check_threads(given) == expected


BAD = [0, -1, _blas.MAX_THREADS + 1, 1.5, True, "fast", "", "0", [2]]


@pytest.mark.parametrize("bad", BAD)
def test_invalid_thread_settings_are_refused_everywhere(bad):
    model = lw.mlp([4, 8, 2], rng=0)
    X, y = np.ones((10, 4)), np.zeros(10, dtype=int)
    with pytest.raises(lw.ValidationError, match=r"threads must be 'auto' .* received"):
        model.fit(X, y, epochs=1, verbose=0, threads=bad)
    with pytest.raises(lw.ValidationError, match=r"threads must be 'auto'"):
        model.predict(X, threads=bad)
    with pytest.raises(lw.ValidationError, match=r"threads must be 'auto'"):
        model.evaluate(X, y, loss="ce", threads=bad)
    pytest.importorskip("sklearn", reason="the estimators need scikit-learn")
    from layerwise.sklearn import LayerwiseClassifier
    with pytest.raises(lw.ValidationError, match=r"n_threads must be 'auto'"):
        LayerwiseClassifier((4,), n_threads=bad, max_iter=1).fit(X, y)


# -- the real library: forced counts are applied, auto is recorded ---------------------------
def _numpy_blas_threads() -> int:
    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


class Probe(lw.Callback):
    """The BLAS thread count in force inside the training loop, after each step."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_batch_end(self, state, loss):
        self.seen.append(_numpy_blas_threads())


rng0 = np.random.default_rng(0)
X_BIG = rng0.standard_normal((640, 256)).astype(np.float32)
Y_BIG = rng0.integers(0, 10, 640)


def big():
    """Above SMALL_MACS at batch 64 (64·(256·512 + 512·10) multiply-adds): auto measures."""
    model = lw.mlp([256, 512, 10], rng=0)
    assert not _blas.is_small(model.macs() * 64)
    return model


def _all_threads():
    n = _numpy_blas_threads()
    if n < 2:
        pytest.skip("BLAS runs on one thread here: forced counts could not be told apart")
    return n


@pytest.mark.parametrize("forced", [1, 2])
def test_fit_applies_a_forced_count_records_it_and_restores(forced):
    before = _all_threads()
    probe = Probe()
    h = big().fit(X_BIG, Y_BIG, epochs=2, batch_size=64, rng=0, verbose=0, threads=forced,
                  callbacks=[probe])
    assert set(probe.seen) == {forced} and len(probe.seen) == 20
    assert h["threads"] == [forced, forced] and h.thread_choices == []
    assert _numpy_blas_threads() == before


def test_fit_auto_records_its_measurements():
    before = _all_threads()
    probe = Probe()
    h = big().fit(X_BIG, Y_BIG, epochs=8, batch_size=64, rng=0, verbose=0, callbacks=[probe])
    first = h.thread_choices[0]
    assert first["step"] in (6, 8, 10, 12) and first["reason"] == "start"   # < 12: clear early
    assert set(first["us_per_step"]) == {"1", str(before)}
    assert all(v > 0 for v in first["us_per_step"].values())
    assert first["threads"] in (1, before)
    # the probe steps alternate (the probe reads the count after each step: after the 8th
    # the decision is in force); then the chosen count holds (no drift check fires before a
    # window of steps has passed)
    k = first["step"]
    assert probe.seen[:k - 1] == ([before, 1] * 6)[:k - 1]
    assert set(probe.seen[k - 1:k + _blas.WINDOW - 1]) == {first["threads"]}
    assert all(n in (1, before) for n in h["threads"])
    assert _numpy_blas_threads() == before


def test_fit_auto_keeps_one_thread_for_small_networks():
    _all_threads()
    probe = Probe()
    h = lw.mlp([8, 16, 3], rng=0).fit(X_BIG[:, :8], Y_BIG % 3, epochs=2, batch_size=64,
                                      verbose=0, callbacks=[probe])
    assert set(probe.seen) == {1} and h["threads"] == [1, 1] and h.thread_choices == []


@pytest.mark.parametrize("forced", [1, 2])
def test_a_forced_count_reproduces_bit_for_bit(forced):
    """Same seed and the same forced count: the same network, to the last bit."""
    runs = []
    for _ in range(2):
        model = big()
        model.fit(X_BIG, Y_BIG, epochs=2, batch_size=64, rng=3, verbose=0, threads=forced)
        runs.append(model.flat_parameters()[0].value.copy())
    np.testing.assert_array_equal(*runs)


@pytest.mark.parametrize("forced", [1, 2])
def test_resume_continues_the_checkpoints_count_bit_for_bit(tmp_path, forced):
    """Interrupted and resumed with the default threads='auto': the checkpoint's forced count
    continues, and the run ends identical to one never interrupted."""
    _all_threads()
    kw = dict(epochs=3, batch_size=64, rng=5, verbose=0)
    ref = big()
    h_ref = ref.fit(X_BIG, Y_BIG, threads=forced, **kw)
    ck = tmp_path / "ck.lw"
    with pytest.raises(lw.TrainingInterrupted):
        big().fit(X_BIG, Y_BIG, threads=forced, checkpoint=ck, checkpoint_every=7,
                  callbacks=[StopAt(13)], **kw)
    model, probe = big(), Probe()
    h = model.fit(X_BIG, Y_BIG, resume=ck, callbacks=[probe], **kw)
    assert set(probe.seen) == {forced}
    np.testing.assert_array_equal(model.flat_parameters()[0].value,
                                  ref.flat_parameters()[0].value)
    assert h["loss"] == h_ref["loss"] and h["threads"] == [forced] * 3


def test_resume_of_an_auto_run_keeps_its_measurements(tmp_path):
    _all_threads()
    kw = dict(epochs=8, batch_size=64, rng=5, verbose=0)     # 80 steps: enough to measure
    ck = tmp_path / "ck.lw"
    with pytest.raises(lw.TrainingInterrupted):
        big().fit(X_BIG, Y_BIG, checkpoint=ck, checkpoint_every=5, callbacks=[StopAt(15)],
                  **kw)
    h = big().fit(X_BIG, Y_BIG, resume=ck, **kw)
    assert h.thread_choices and h.thread_choices[0]["step"] <= _blas.MIN_STEPS   # before the stop


# -- predict ------------------------------------------------------------------------------------
def _probe_infer(model, seen):
    infer = model.infer

    def probed(X):
        seen.append(_numpy_blas_threads())
        return infer(X)
    model.infer = probed


@pytest.mark.parametrize("forced", [1, 2])
def test_predict_applies_a_forced_count(forced):
    before = _all_threads()
    model, seen = big(), []
    expected = model.predict(X_BIG, batch_size=32, threads=1)
    _probe_infer(model, seen)
    out = model.predict(X_BIG, batch_size=32, threads=forced)
    assert set(seen) == {forced} and len(seen) == 20
    assert _numpy_blas_threads() == before
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("forced", [1, 2])
def test_evaluate_applies_a_forced_count(forced):
    before = _all_threads()
    model, seen = big(), []
    _probe_infer(model, seen)
    model.evaluate(X_BIG, Y_BIG, loss="ce", batch_size=32, threads=forced)
    assert set(seen) == {forced} and len(seen) == 20 and _numpy_blas_threads() == before


def test_validation_during_fit_runs_under_fits_count():
    _all_threads()
    model, seen = big(), []
    model.fit(X_BIG, Y_BIG, epochs=1, batch_size=64, verbose=0, threads=1)   # builds buffers
    _probe_infer(model, seen)
    model.fit(X_BIG, Y_BIG, epochs=2, batch_size=64, verbose=0, threads=1,
              validation_data=(X_BIG[:64], Y_BIG[:64]))
    assert seen and set(seen) == {1}


def test_predict_auto_times_the_first_chunks_of_a_large_call():
    before = _all_threads()
    model, seen = big(), []
    _probe_infer(model, seen)
    assert not _blas.is_small(model.macs() * 32)
    model.predict(X_BIG, batch_size=32)              # 20 chunks: enough to measure
    assert seen[:6] == [before, 1] * 3 and len(set(seen[_blas.MIN_STEPS:])) == 1
    seen.clear()
    model.predict(X_BIG[:128], batch_size=32)        # 4 chunks: the rule (all threads)
    assert seen == [before] * 4
    seen.clear()
    small = lw.mlp([8, 16, 3], rng=0)
    _probe_infer(small, seen)
    small.predict(X_BIG[:, :8], batch_size=16)       # small network: one thread
    assert set(seen) == {1}


# -- the estimators and the CLI ----------------------------------------------------------------
class ProbeSGD(lw.SGD):
    seen: ClassVar[list[int]] = []

    def step(self, params):
        ProbeSGD.seen.append(_numpy_blas_threads())
        super().step(params)


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_estimators_pass_n_threads_to_fit_and_predict():
    from sklearn.base import clone

    from layerwise.sklearn import LayerwiseClassifier, LayerwiseRegressor

    before = _all_threads()
    ProbeSGD.seen = []
    clf = LayerwiseClassifier((512,), solver=ProbeSGD(0.01), max_iter=2, batch_size=64,
                              n_threads=2, random_state=0)
    assert clone(clf).get_params()["n_threads"] == 2
    assert LayerwiseRegressor().get_params()["n_threads"] is None
    clf.fit(X_BIG, Y_BIG)
    assert set(ProbeSGD.seen) == {2}
    seen: list[int] = []
    _probe_infer(clf.model_, seen)
    clf.set_params(n_threads=1).predict(X_BIG)
    assert set(seen) == {1} and _numpy_blas_threads() == before


def test_cli_threads_option_is_applied_and_recorded(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "digits", "--layers", "32", "--epochs", "2", "--threads", "1",
                 "--out", str(out), "--quiet", "--no-plots"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["threads"] == {"setting": 1, "per_epoch": [1, 1], "choices": []}
    assert config["args"]["threads"] == 1
    history = json.loads((out / "history.json").read_text())
    assert history["threads"] == [1, 1]


def test_cli_threads_auto_is_the_default(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "digits", "--layers", "32", "--epochs", "1", "--out", str(out),
                 "--quiet", "--no-plots"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["threads"]["setting"] == "auto"
    assert config["threads"]["per_epoch"] == [1]          # digits' network is small


@pytest.mark.parametrize("bad", ["0", "many", "-2", "1.5"])
def test_cli_refuses_bad_threads(tmp_path, capsys, bad):
    code = main(["train", "digits", "--threads", bad, "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("layerwise: error: --threads must be 'auto'") and err.count("\n") == 1
    assert bad in err
    assert not (tmp_path / "r").exists()                 # refused before anything is written
