"""Checkpoints and resume: interrupted runs continue bit for bit, crashes never corrupt them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import layerwise as lw

rng0 = np.random.default_rng(0)
X = rng0.standard_normal((200, 6)).astype(np.float32)
y = rng0.integers(0, 3, 200)


def make():
    return lw.mlp([6, 16, 16, 3], dropout=0.2, rng=1)


def run_fit(model, **kw):
    return model.fit(X, y, optimizer=lw.Adam(1e-2), epochs=4, batch_size=16, rng=7, verbose=0,
                     schedule="cosine", validation_split=0.1, **kw)


class StopAt(lw.Callback):
    """Simulates Ctrl-C after a given number of steps."""

    def __init__(self, at):
        self.at, self.n = at, 0

    def on_batch_end(self, state, loss):
        self.n += 1
        if self.n == self.at:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def reference():
    model = make()
    return model, run_fit(model)


@pytest.mark.parametrize(("at", "every"), [(1, 1), (5, 3), (12, 3), (13, 1), (30, 3),
                                           (30, "epoch"), (44, 5)])
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, reference, at, every):
    ref, h_ref = reference
    ck = tmp_path / "ck.lw"
    with pytest.raises(lw.TrainingInterrupted, match=r"checkpoint written to .*resume="):
        run_fit(make(), checkpoint=ck, checkpoint_every=every, callbacks=[StopAt(at)])
    model = make()
    h = run_fit(model, resume=ck)
    for p, q in zip(ref.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.value, q.value)
    assert h["loss"] == h_ref["loss"] and h["val_loss"] == h_ref["val_loss"]
    assert h.epoch == [1, 2, 3, 4]


def test_a_checkpoint_is_a_loadable_model_file(tmp_path):
    ck = tmp_path / "ck.lw"
    model = make()
    run_fit(model, checkpoint=ck)
    loaded = lw.load(ck)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    with zipfile.ZipFile(ck) as z:
        assert "checkpoint.json" in z.namelist()


def test_resume_with_other_settings_is_refused(tmp_path):
    ck = tmp_path / "ck.lw"
    with pytest.raises(KeyboardInterrupt):
        run_fit(make(), checkpoint=ck, callbacks=[StopAt(3)], checkpoint_every=1)
    with pytest.raises(lw.ValidationError, match="other data or settings"):
        make().fit(X, y, optimizer=lw.Adam(1e-2), epochs=4, batch_size=32, rng=7, verbose=0,
                   validation_split=0.1, resume=ck)
    with pytest.raises(lw.ValidationError, match="another architecture"):
        lw.mlp([6, 8, 3], rng=1).fit(X, y, optimizer=lw.Adam(1e-2), epochs=4, batch_size=16,
                                      rng=7, verbose=0, validation_split=0.1, resume=ck)


def test_resume_from_a_damaged_checkpoint_is_a_clear_error(tmp_path):
    ck = tmp_path / "ck.lw"
    ck.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(lw.ModelFileError):
        run_fit(make(), resume=ck)


# -- crashes: SIGKILL at random moments, and Ctrl-C, in a real subprocess ------------------

SCRIPT = """
import sys, numpy as np, layerwise as lw
ck, out = sys.argv[1], sys.argv[2]
resume = ck if len(sys.argv) > 3 else None
rng = np.random.default_rng(0)
X = rng.standard_normal((120, 5)).astype(np.float32)
y = rng.integers(0, 3, 120)
model = lw.mlp([5, 12, 3], dropout=0.1, rng=3)
print("started", flush=True)
model.fit(X, y, optimizer=lw.SGD(0.05, momentum=0.9), epochs=60, batch_size=8, rng=5,
          verbose=0, schedule="cosine", checkpoint=ck if ck != "-" else None,
          checkpoint_every=1, resume=resume)
np.save(out, model.flat_parameters()[0].value)
"""


def _python(tmp_path, *args):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return [sys.executable, str(script), *map(str, args)]


def test_sigkill_at_random_moments_never_loses_the_checkpoint(tmp_path):
    """Kill a training process 20 times at random moments (it writes a checkpoint every step,
    so most kills land in or around a write); every time the last checkpoint loads, and the
    run resumed from it finally ends bit-identical to an uninterrupted one."""
    ref = tmp_path / "ref.npy"
    subprocess.run(_python(tmp_path, "-", ref), check=True, timeout=120)
    ck, out = tmp_path / "ck.lw", tmp_path / "out.npy"
    rng = np.random.default_rng(42)
    kills = 0
    while kills < 20:
        existed = ck.exists()
        args = _python(tmp_path, ck, out, *(["resume"] if existed else []))
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
            assert proc.stdout is not None
            proc.stdout.readline()                       # "started": imports are done
            time.sleep(float(rng.uniform(0.0, 0.1)))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        if proc.returncode == 0:                         # it finished before the kill
            break
        kills += 1
        # A kill before the first step completes finds no checkpoint yet (fit's set-up can
        # outlast the sleep on a busy machine); once one exists, it must never be lost.
        assert ck.exists() or not existed
        if ck.exists():
            lw.load(ck)                                  # intact: loads as a model
        leftovers = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        for f in leftovers:                              # a killed write leaves only its temp
            assert f.startswith(".ck.lw.")
    if not out.exists():
        subprocess.run(_python(tmp_path, ck, out, "resume"), check=True, timeout=120)
    np.testing.assert_array_equal(np.load(out), np.load(ref))
    assert kills >= 10


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path):
    ref = tmp_path / "ref.npy"
    subprocess.run(_python(tmp_path, "-", ref), check=True, timeout=120)
    ck, out = tmp_path / "ck.lw", tmp_path / "out.npy"
    with subprocess.Popen(_python(tmp_path, ck, out), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("training finished before the interrupt arrived")
    assert "checkpoint written to" in err and "resume=" in err
    subprocess.run(_python(tmp_path, ck, out, "resume"), check=True, timeout=120)
    np.testing.assert_array_equal(np.load(out), np.load(ref))
