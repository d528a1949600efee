"""The training loop: mini-batches, the four steps of backpropagation, history and callbacks.

One step on a batch (X_b, y_b), exactly as the textbook orders it::

    A   = model.forward(X_b, training=True)      # forward, layer by layer
    L   = loss.forward(A, y_b)                   # scalar loss, mean over the batch
    dA  = loss.backward()                        # dL/dA, already divided by B
    model.backward(dA)                           # every layer's dW, db
    optimizer.step(model.parameters())           # W ← W − η·dW (or Adam, …)

Batches are gathered with ``np.take(..., out=)`` into buffers allocated once, from one shuffled
index per epoch; the last batch may be shorter.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from . import losses as losses_mod
from . import optimizers as optimizers_mod
from . import outofcore
from . import schedules as schedules_mod
from ._blas import Threads, check_threads, is_small
from ._utils import (
    RngLike,
    as_array,
    as_generator,
    exclusive,
    format_seconds,
    is_finite,
    positive_float,
    positive_int,
)
from .callbacks import Callback, History, TrainState
from .errors import (
    BusyError,
    DivergenceError,
    LayerwiseError,
    TrainingInterrupted,
    ValidationError,
)
from .layers import Param
from .metrics import classification_kind, for_loss

if TYPE_CHECKING:
    import os

    from .losses import LossLike
    from .network import Sequential
    from .optimizers import OptimizerLike
    from .schedules import ScheduleLike


def _check_batch_rows(model: Sequential, n: int, batch_size: int) -> None:
    """Refuse, before the first step, a split of ``n`` training rows into batches whose
    smallest (the last, n mod batch_size, or a batch_size larger than n) holds fewer rows
    than a layer needs in training (``Layer.min_batch``: BatchNorm's variance needs 2): the
    run would otherwise stop at the end of its first epoch."""
    need = max((getattr(layer, "min_batch", 1) for layer in model.layers), default=1)
    smallest = min(batch_size, n) if n % batch_size == 0 or n < batch_size else n % batch_size
    if smallest >= need:
        return
    kind = next(type(layer).__name__ for layer in model.layers
                if getattr(layer, "min_batch", 1) == need)
    fix = next((b for b in range(batch_size + 1, batch_size + need + 64)
                if n % b == 0 or n % b >= need), None) if n >= need else None
    hint = f"pass batch_size={fix}" if fix else "train on more rows"
    raise ValidationError(
        f"{kind} needs at least {need} rows in every training batch, but {n} training rows in "
        f"batches of {batch_size} leave a batch of {smallest}; {hint}, or drop {kind}.")


def sample_weights(sample_weight: Any, n: int) -> np.ndarray:
    """Validate per-sample weights and rescale them to mean 1."""
    try:
        if as_array(sample_weight, "sample_weight").dtype.kind not in "biuf":
            raise TypeError("not real numbers")
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1) if np.ndim(
            sample_weight) else np.full(n, float(sample_weight))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"sample_weight must be numbers, one per sample; could not "
                              f"convert it: {exc}") from None
    if w.shape != (n,):
        raise ValidationError(
            f"sample_weight must have one value per training sample, shape ({n},); received "
            f"shape {np.shape(sample_weight)}."
        )
    finite = np.isfinite(w)
    if not finite.all() or (w < 0).any() or not w.max() > 0:
        raise ValidationError(
            "sample_weight must be finite, non-negative and not all zero; received "
            f"{int((~finite).sum())} NaN or infinite and {int((w[finite] < 0).sum())} negative "
            f"values out of {n}."
        )
    w = w / w.max()             # first into (0, 1]: the sum of huge weights would overflow
    return w * (n / w.sum())    # mean 1


def validation_count(n: int, validation_split: float | int) -> int:
    """How many of ``n`` samples ``validation_split`` holds out: round(n·f) for a fraction f in
    [0, 1), N itself for an int N (the last N rows); refuses anything else, and a count that
    leaves no validation or no training sample.

    A float is always a fraction and an int always a count, so 10000.0 (a float count) and 1.0
    (a fraction of all rows) are refused rather than guessed at.
    """
    v = validation_split
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        if v < 0:
            raise ValidationError(f"validation_split={v} must be a fraction in [0, 1) or a "
                                  "number of rows >= 0; pass e.g. validation_split=0.1 or "
                                  "validation_split=10000 (the last 10000 rows).")
        n_val = int(v)
    elif isinstance(v, (float, np.floating)):
        if not 0.0 <= v < 1.0:
            rows = int(v) if float(v).is_integer() and v > 1 else 10000
            raise ValidationError(
                f"validation_split must be in [0, 1) as a fraction of the samples, or an int "
                f"number of rows (the last ones); received {v!r}, so pass e.g. "
                f"validation_split=0.1, or validation_split={rows} for the last {rows} rows.")
        n_val = round(n * float(v))
    else:
        raise ValidationError(f"validation_split must be a float fraction in [0, 1) or an int "
                              f"number of rows; received {type(v).__name__} {v!r}, so pass "
                              "e.g. validation_split=0.1 or validation_split=10000.")
    if v and not 1 <= n_val < n:
        raise ValidationError(
            f"validation_split={v!r} of {n} samples leaves {n_val} for validation and "
            f"{n - n_val} for training; both need at least one."
        )
    return n_val


def validation_rows(n: int, validation_split: float | int, rng: RngLike
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The (training, validation) rows of ``n`` samples, as increasing index arrays.

    - a fraction f in (0, 1): round(n·f) rows drawn at random, the last round(n·f) of
      ``rng.permutation(n)`` (before any shuffling; ``fit`` draws it from its own ``rng``, so
      the same seed gives the same rows, as the command line's ``--seed`` does);
    - an int N: the last N rows in the order given, as in Nielsen's 50,000/10,000 MNIST split
      (``validation_split=10000``); nothing is drawn from ``rng``;
    - 0: every row trains (no validation rows).
    """
    n_val = validation_count(n, validation_split)
    if isinstance(validation_split, (int, np.integer)):
        order = np.arange(n)
    else:
        order = as_generator(rng).permutation(n) if n_val else np.arange(n)
    return np.sort(order[:n - n_val]), np.sort(order[n - n_val:])


_P = ParamSpec("_P")
_R = TypeVar("_R")


def one_fit_at_a_time(train: Callable[_P, _R]) -> Callable[_P, _R]:
    """Hold the model for the whole of ``fit``: a second fit of it, from another thread (or
    from a callback), raises ``BusyError`` at once, before touching anything. Training writes
    buffers and parameters the model owns, so two fits at once would corrupt both."""
    @functools.wraps(train)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        model = args[0] if args else kwargs.get("model")
        try:
            weakref.ref(model)
        except TypeError:                       # not a model at all: fit's own checks say so
            return train(*args, **kwargs)
        refuse = lambda: BusyError(  # noqa: E731
            "this model is already being trained by another fit (in another thread, or by a "
            "callback of that fit); two fits at once would overwrite each other's buffers and "
            "parameters. Wait for that fit to finish, or train a copy: copy.deepcopy(model).")
        with exclusive(model, refuse):
            return train(*args, **kwargs)
    return guarded


@one_fit_at_a_time
def fit(model: Sequential, X: Any, y: Any, loss: LossLike = "ce",
        optimizer: OptimizerLike = "adam",
        epochs: int = 10, batch_size: int = 32, validation_data: tuple[Any, Any] | None = None,
        validation_split: float | int = 0.0, shuffle: bool = True, rng: RngLike = None,
        callbacks: Sequence[Callback] = (), verbose: int = 1, schedule: ScheduleLike = None,
        sample_weight: Any = None, clip_norm: float | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int | str | None = "epoch",
        resume: str | os.PathLike[str] | None = None,
        train_metrics: bool = True, threads: int | str | None = "auto",
        decay_biases: bool | None = None, comm: Any = None) -> History:
    """Train ``model`` on (X, y) with mini-batch gradient descent.

    Parameters
    ----------
    X : array (N, n_in), or a scipy.sparse matrix
        Sparse X (CSR, CSC, COO, ...: TfidfVectorizer's or OneHotEncoder's output) is converted
        once to CSR in the model's dtype and never densified: each batch is a CSR slice of
        rows, which only a ``Dense`` first layer takes (``Sequential.check_input``).
        A memory-mapped X (``np.load(path, mmap_mode="r")``), or ``outofcore.Rows`` of one (a
        subset of its rows), is never copied: each batch reads only its own rows, the finiteness
        check is a streaming pass, validation rows held out by ``validation_split`` are read a
        slice at a time, and the mapping's pages are dropped as they are read, so memory stays
        bounded whatever the file's size (``outofcore``). Its dtype must be
        the model's (a float32 file for a float32 model), else it is refused with how to
        convert it. y (and sample_weight) are read into memory.
    y : array
        Integer labels (N,) or one-hot (N, K) for CrossEntropy; (N, n_out) or (N,) otherwise.
        MSE and BCE also take integer labels (N,) for a network of K >= 2 outputs, as one-hot
        rows (a 1-D y for one output stays a regression or binary target).
    loss : str or Loss
        "ce", "bce", "mse", "mae", "huber" or an instance.
    optimizer : str or Optimizer
        "sgd", "adam", "adamw", "rmsprop" (default settings) or an instance.
    epochs, batch_size : int
        Passes over the data and samples per step (the last batch may be shorter).
    validation_data : (X_val, y_val), optional
        X_val dense or scipy.sparse, as X.
    validation_split : float or int
        Held out for validation when there is no ``validation_data``. A float f in [0, 1): a
        random sample of round(N·f) rows, drawn from ``rng`` before any shuffling (the command
        line's ``--validation-split`` draws the very same rows from ``--seed``). An int N: the
        last N rows in the order given ("first N − n for training, the rest for validation",
        as Nielsen's 50,000/10,000 MNIST split; ``--validation-rows N``). A float count such as
        10000.0, or 1.0, is refused. :func:`validation_rows` gives the rows either way.
    shuffle : bool
        Reshuffle the samples every epoch (with ``rng``).
    rng : int, Generator or None
        Seed for the validation sample (a fraction ``validation_split``) and shuffling. Same
        seed and same model seed: bit-identical results. A resumed fit needs the same seed
        again, so that it holds out the same rows.
    callbacks : sequence of Callback, optional
        e.g. ``EarlyStopping``, ``ReduceLROnPlateau``, ``ModelCheckpoint``; None for none.
    verbose : int
        0 silent, 1 a progress bar per epoch, 2 one line per epoch.
    schedule : str, Schedule or None
        Learning-rate schedule over epochs ("cosine", "step", "exponential", or an instance).
    sample_weight : array (N,), optional
        Non-negative weight per sample, rescaled to mean 1 over the training samples; each
        batch then minimises (1/B) Σ_b w_b l_b. Validation losses stay unweighted.
    clip_norm : float, optional
        Rescale the gradients so their global norm is at most this, before each update.
    checkpoint : path, optional
        Write a checkpoint here (atomically: the previous one survives any crash) at the end of
        every epoch, or every ``checkpoint_every`` steps, and when interrupted by Ctrl-C.
    checkpoint_every : int, "epoch" or "interrupt"
        Steps (batches) between checkpoints; "epoch" (default) writes one per epoch;
        "interrupt" writes one only on Ctrl-C.
    train_metrics : bool
        Count the training batches' accuracy (labels, one-hot or multi-label targets) for
        the history; False skips
        that small per-step cost.
    resume : path, optional
        Continue from this checkpoint: the model's parameters, the optimizer's state, the
        schedule's position, every random generator, the epoch and step, and the history are
        restored, and so is every callback's ``state_dict``: with the same data, arguments and
        callbacks the run ends bit-identical to one that was never interrupted (given the same
        BLAS thread counts: see ``threads``).
    threads : "auto", None or int
        BLAS threads for the training steps. "auto" (or None): one thread for small networks
        (fewer than 2**22 multiply-adds per batch); for larger ones the first steps are timed
        with one thread and with all of them and the faster is kept, measured again every
        1000 steps or when the step time drifts by more than 30%. An int forces that count.
        OpenBLAS's results for some matrix shapes differ in the last bits between thread
        counts, so bit-for-bit reproducibility of large networks needs a forced count; a
        resumed fit continues the checkpoint's count. The counts are in ``history["threads"]``
        and the measurements in ``history.thread_choices``.
    decay_biases : bool or None
        Whether the optimizer's weight decay applies to the biases too. None (default) keeps
        the optimizer's own setting, which is False unless set: weights only, the textbook's
        L2 penalty ½λ‖W‖² and scikit-learn's ``alpha``. True decays every parameter, as
        ``torch.optim`` given all parameters. A bool sets it on the optimizer.
    comm : None, "auto" or an mpi4py communicator
        Data-parallel training over MPI (docs/distributed.md): every rank draws the same
        shuffled order, trains on its share of each global batch of ``batch_size`` rows, and
        the gradients, losses and metric counts are summed with Allreduce weighted by row
        counts, so the result equals one process's training on the same global batches up to
        the order of floating-point sums. Rank 0's initial parameters and generators are
        broadcast; dropout draws per-rank streams derived from the seed. Only rank 0 prints and
        writes checkpoints; a checkpoint resumes on any number of ranks. "auto": the world
        communicator when started by ``mpiexec`` with more than one process, else one process.
        None (default): one process.

    Raises
    ------
    DivergenceError
        When the loss or a gradient becomes NaN or infinite, or an update would make a
        parameter or the optimizer's state NaN or infinite; names the epoch and step. The model
        and the optimizer keep the parameters and state of the last completed step.
    TrainingInterrupted
        On Ctrl-C, at the end of the step in progress (never in the middle of one): after
        writing ``checkpoint`` if given. The model holds the last completed step.
    BusyError
        At once, when another ``fit`` of this model is running (in any thread). ``predict``
        and ``evaluate`` may run meanwhile: they see the parameters of that moment.

    Returns
    -------
    History
        Per-epoch loss, metrics, validation loss and metrics, learning rate and seconds.
    """
    L = losses_mod.get(loss)
    opt = optimizers_mod.get(optimizer)
    if decay_biases is not None:
        if not isinstance(decay_biases, (bool, np.bool_)):
            raise ValidationError(f"decay_biases must be True, False or None; received "
                                  f"{decay_biases!r}.")
        opt.decay_biases = bool(decay_biases)
    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size)
    if clip_norm is not None:
        clip_norm = positive_float("clip_norm", clip_norm)
    sched = schedules_mod.get(schedule, epochs)
    dtype = model.dtype
    if opt.lr > float(np.finfo(dtype).max):     # e.g. 1e39 is inf in float32: every step NaN
        raise ValidationError(
            f"the learning rate {opt.lr:g} does not fit in the model's {dtype} (largest value "
            f"{float(np.finfo(dtype).max):.3g}); use a learning rate such as 0.1 or 1e-3."
        )
    X, Y = training_data(model, L, X, y)
    N, n_out = X.shape[0], int(model.n_out or 0)          # (training_data checked n_out)
    Xv: Any
    train_rows = None
    if isinstance(X, outofcore.Rows):               # some rows of an array, not copied
        X, train_rows = X.X, X.rows
        if outofcore.mapping(X) is None:            # in memory: as if given those rows
            X, train_rows = X[train_rows], None
    Yv: np.ndarray | None
    if validation_data is not None:
        try:
            Xv_raw, yv_raw = validation_data
        except (TypeError, ValueError) as exc:
            raise ValidationError("validation_data must be a pair (X_val, y_val).") from exc
        Xv = model.check_input(Xv_raw, name="X_val")
        Yv = L.prepare_target(yv_raw, n_out, dtype)
        if len(Yv) != Xv.shape[0]:
            raise ValidationError(
                f"X_val and y_val must have the same number of samples; received {Xv.shape[0]} "
                f"and {len(Yv)}."
            )
    weights = None if sample_weight is None else sample_weights(sample_weight, N)
    gen = as_generator(rng)
    dp = _data_parallel(comm, model, gen)
    if validation_data is None and validation_count(N, validation_split) > 0:
        rows, val = validation_rows(N, validation_split, gen)
        if outofcore.mapping(X) is not None:        # memory-mapped X is never copied: the
            Y, Yv = Y[rows], Y[val]                 # batches read X[train_rows[idx]]
            base = np.arange(N) if train_rows is None else train_rows
            train_rows, Xv = base[rows], outofcore.Rows(X, base[val])
        else:
            X, Y, Xv, Yv = X[rows], Y[rows], X[val], Y[val]
        if weights is not None:                     # the held-out rows' weights are unused
            weights = sample_weights(weights[rows], len(rows))
    elif validation_data is None:
        Xv, Yv = None, None
    if weights is not None:
        weights = weights.astype(X.dtype)
    _check_batch_rows(model, len(Y), batch_size)
    if verbose not in (0, 1, 2):
        raise ValidationError(f"verbose must be 0, 1 or 2; received {verbose!r}.")
    n_threads = check_threads(threads)
    if dp is not None and dp.rank != 0:             # only rank 0 prints
        verbose = 0

    run = Run(model, L, opt, sched, X, Y, weights, Xv, Yv, epochs=epochs,
               batch_size=batch_size, shuffle=shuffle, gen=gen,
               clip_norm=clip_norm, callbacks=_callback_list(callbacks), verbose=verbose,
               threads=n_threads, rows=train_rows)
    run.classify = run.classify and bool(train_metrics)
    run.dp = dp
    if dp is not None:
        run.state.rank, run.state.ranks = dp.rank, dp.size
    every = _checkpoint_every(checkpoint, checkpoint_every)
    # on_train_begin first: it checks the settings and starts each callback afresh; resume
    # then puts back the state the callbacks had when the checkpoint was written.
    for cb in run.callbacks:
        cb.on_train_begin(run.state)
    if resume is not None:
        from .checkpoints import restore
        restore(resume, run)
    if dp is not None:          # rank 0's parameters everywhere, then a dropout stream per rank
        dp.broadcast_model(model)
        dp.split_dropout(model)
    # Overflow shows up as a non-finite loss or gradient, or is caught by the optimizer's
    # guarded step, which all raise DivergenceError; NumPy's own floating-point warnings would
    # only be noise before it. run.threads sets the BLAS thread count for the run and
    # restores the previous one at the end.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"), \
            _deferred_interrupt(run), run.threads, _abort_on_error(dp):
        try:
            run.loop(checkpoint, every)
            run.check_outputs()
        except KeyboardInterrupt:
            where = f"interrupted at epoch {run.epoch + 1}, sample {run.position} of {run.N}"
            if checkpoint is None:
                raise TrainingInterrupted(
                    f"{where}; the model holds the parameters after the last completed step. "
                    "To be able to resume, pass checkpoint='run.lw' to fit."
                ) from None
            run.save(checkpoint)           # still deferring Ctrl-C: the write completes
            if dp is not None:             # no rank ends (and mpiexec ends the job) before
                dp.comm.Barrier()          # rank 0 has written the checkpoint
            raise TrainingInterrupted(
                f"{where}; checkpoint written to {checkpoint}. Resume with the same data and "
                f"settings and fit(..., resume={str(checkpoint)!r})."
            ) from None
    for cb in run.callbacks:
        cb.on_train_end(run.state)
    return run.history


def _data_parallel(comm: Any, model: Sequential, gen: np.random.Generator) -> Any:
    """The ``distributed.DataParallel`` of ``fit(comm=...)``, or None for one process; every
    rank then holds rank 0's shuffling generator."""
    if comm is None:
        return None
    from . import distributed
    comm = distributed.resolve_comm(comm)
    if comm is None:
        return None
    distributed.check_model(model)
    dp = distributed.DataParallel(comm)
    dp.broadcast_generator(gen)
    return dp


@contextlib.contextmanager
def _abort_on_error(dp: Any) -> Iterator[None]:
    """Data-parallel: an exception other than the library's own (which every rank raises
    together, from reduced values) and Ctrl-C ends the whole MPI job (``MPI_Abort``), since
    the other ranks may be waiting in a collective this rank will never join."""
    try:
        yield
    except (LayerwiseError, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if dp is None:
            raise
        from .distributed import abort_on_error
        abort_on_error(dp.comm, exc)
        raise


def _callback_list(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list (None means none), each a ``Callback``."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    try:
        out = list(callbacks)
    except TypeError:
        out = [callbacks]
    bad = [type(cb).__name__ for cb in out if not isinstance(cb, Callback)]
    if bad:
        raise ValidationError(
            f"callbacks must be a list of layerwise.Callback instances; received {bad}. Write a "
            "callback as a subclass of lw.Callback."
        )
    return out


@contextlib.contextmanager
def _deferred_interrupt(run: Run) -> Iterator[None]:
    """Ctrl-C (SIGINT) during fit only sets a flag, which the loop checks between steps: the
    model is never left half-updated, and a checkpoint is only ever of a completed step. Further
    Ctrl-Cs, also while the checkpoint is being written, are deferred the same way, so the
    write always completes; fit then raises ``TrainingInterrupted``. Signal handlers can only
    be installed in the main thread; elsewhere SIGINT never reaches fit anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if run.dp is None:
            run.interrupted = True
        else:                   # data-parallel: every rank stops after the same step
            run.interrupt_pending = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _checkpoint_every(checkpoint: Any, every: Any) -> int | None:
    """Steps between checkpoints; None means at the end of every epoch, 0 only on Ctrl-C."""
    if checkpoint is None or every in (None, "epoch"):
        return None
    if every == "interrupt":
        return 0
    return positive_int("checkpoint_every", every)


class Run:
    """Everything the training loop carries from step to step, so it can be checkpointed
    (``fit`` builds one per call; ``checkpoints`` reads it only through ``settings``,
    ``state_dict`` and ``load_state_dict``, and those of its optimizer, schedule and callbacks).

    ``epoch`` is the epoch in progress (0-based) and ``position`` how many of its samples were
    already trained on; ``order`` is that epoch's shuffled index. A checkpoint taken anywhere
    restores all of it, the optimizer's state and every random generator, so a resumed run
    continues bit for bit as if it had never stopped.
    """

    def __init__(self, model: Sequential, loss: losses_mod.Loss,
                 opt: optimizers_mod.Optimizer, sched: schedules_mod.Schedule, X: np.ndarray,
                 Y: np.ndarray, weights: np.ndarray | None, Xv: Any,
                 Yv: np.ndarray | None, *, epochs: int, batch_size: int, shuffle: bool,
                 gen: np.random.Generator, clip_norm: float | None, callbacks: list[Callback],
                 verbose: int, threads: int | None = None, rows: np.ndarray | None = None
                 ) -> None:
        self.model, self.loss, self.opt, self.sched = model, loss, opt, sched
        self.X, self.Y, self.weights, self.Xv, self.Yv = X, Y, weights, Xv, Yv
        self.epochs, self.batch_size, self.shuffle, self.gen = epochs, batch_size, shuffle, gen
        self.clip_norm, self.callbacks, self.verbose = clip_norm, callbacks, verbose
        # Memory-mapped X (outofcore): ``rows`` are its training rows when validation rows
        # were held out (X is never copied, so sample k of the run is row rows[k]); ``pages``
        # drops the mapping's resident pages as batches are read, so RSS stays bounded.
        self.rows = rows
        self.N = X.shape[0] if rows is None else len(rows)
        mm = outofcore.mapping(X)
        self.pages = None if mm is None else outofcore.PageBudget(
            mm, X.dtype.itemsize * math.prod(X.shape[1:]))
        B_max = self.B_max = min(batch_size, self.N)
        self.Ib = np.empty(0 if rows is None else B_max, dtype=np.intp)
        # scipy.sparse X (CSR, from Sequential.check_input): each batch is a CSR slice of rows,
        # allocated per step; dense X: batch buffers filled in place every step (no per-step
        # batch-sized allocation).
        self.sparse = not isinstance(X, np.ndarray)
        self.Xb = np.empty((0 if self.sparse else B_max, *X.shape[1:]), dtype=X.dtype)
        self.Yb = np.empty((B_max, *Y.shape[1:]), dtype=Y.dtype)
        self.Wb = np.empty(B_max, dtype=X.dtype)
        self.params = model.flat_parameters()      # one contiguous buffer: cheap optimizer steps
        self.history = History()
        # the BLAS thread count: forced, or timed on the run's own first steps (see Threads)
        self.threads = Threads(threads, is_small(model.macs() * B_max),
                               epochs * math.ceil(self.N / batch_size))
        self.history.thread_choices = self.threads.choices
        self.state = TrainState(model, opt, loss, self.history, base_lr=opt.lr, epochs=epochs,
                                has_validation=Xv is not None)
        self.batch_callbacks = [cb for cb in callbacks
                                if type(cb).on_batch_end is not Callback.on_batch_end]
        # callbacks that might change the parameters between steps (not reads_only ones)
        self.editing_callbacks = any(not cb.reads_only for cb in self.batch_callbacks)
        self.saved_at: tuple[int, int, int] | None = None   # (epoch, position, steps) on disk
        # how outputs are scored (metrics.classification_kind), from the targets: labels or
        # one-hot rows give "accuracy" whatever the loss; multi-label rows (in the training or
        # the validation targets) give "subset_accuracy" and "label_accuracy"
        kinds = {classification_kind(loss, Y), None if Yv is None else
                 classification_kind(loss, Yv)}
        self.kind = "multilabel" if "multilabel" in kinds else classification_kind(loss, Y)
        self.classify = self.kind is not None
        self.threshold = 0.0 if getattr(loss, "from_logits", False) else 0.5
        self.epoch, self.position, self.steps = 0, 0, 0
        self.interrupted = False
        self.dp: Any = None             # distributed.DataParallel of a data-parallel fit
        self.interrupt_pending = False  # data-parallel: Ctrl-C seen here, not yet agreed on
        self.order = np.arange(self.N)
        self.loss_sum, self.correct, self.seen, self.seconds = 0.0, 0.0, 0, 0.0
        self.label_correct = 0.0        # multi-label: labels right, in rows (sum of fractions)
        model.loss = loss
        model.stop_training = False

    # -- checkpoints: what the loop carries, for checkpoints.save and restore ------------------
    def settings(self) -> dict[str, Any]:
        """What must be the same when resuming (else the continuation would differ)."""
        settings = {"n_train": self.N, "batch_size": self.batch_size, "epochs": self.epochs,
                    "shuffle": self.shuffle, "loss": [self.loss.kind, self.loss.config()],
                    "optimizer": self.opt.kind, "dtype": str(self.model.dtype),
                    "weighted": self.weights is not None}
        # Weights-only decay is recorded only where it matters, so that checkpoints from before
        # decay_biases existed (which decayed the biases) resume with decay_biases=True.
        if self.opt.weight_decay and not self.opt.decay_biases:
            settings["decay_biases"] = False
        return settings

    def state_dict(self) -> dict[str, Any]:
        """Where the loop stands at a step boundary: the epoch in progress, the position in it
        and its sample ``order`` (an array), the step count, the epoch's running sums, the
        learning-rate state, every random generator (shuffling, and each layer's: dropout
        masks), the history, whether a callback stopped training, and the BLAS thread count
        with its measurements. The optimizer, schedule and callbacks give their own."""
        rngs = {"shuffle": self.gen.bit_generator.state}
        for i, layer in enumerate(self.model.layers):
            g = getattr(layer, "rng", None)
            if isinstance(g, np.random.Generator):
                rngs[str(i)] = g.bit_generator.state
        return {"epoch": self.epoch, "position": self.position, "steps": self.steps,
                "loss_sum": self.loss_sum, "correct": self.correct, "seen": self.seen,
                "label_correct": self.label_correct, "seconds": self.seconds,
                "base_lr": self.state.base_lr, "lr_factor": self.state.lr_factor,
                "rngs": rngs, "history": self.history.to_dict(),
                "stop_training": bool(self.model.stop_training),
                "threads": self.threads.state_dict(), "order": self.order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` gave (from a checkpoint: every value is checked
        first, and ValueError says what is wrong; nothing changes unless all is valid).
        Checkpoints from before multi-label metrics have no ``label_correct``, from before
        thread measurements no ``threads``: those start afresh."""
        def whole(key: str, high: int) -> int:
            v = state.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= high:
                raise ValueError(f"{key} must be an integer in [0, {high}]; found {v!r}")
            return v

        def number(key: str, positive: bool = False) -> float:
            v = state.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                    not math.isfinite(v) or (positive and v <= 0):
                raise ValueError(f"{key} must be a finite {'positive ' if positive else ''}"
                                 f"number; found {v!r}")
            return float(v)

        order = state.get("order")
        if not isinstance(order, np.ndarray) or order.shape != (self.N,) or \
                order.dtype.kind not in "iu" or \
                not np.array_equal(np.sort(order), np.arange(self.N)):
            raise ValueError("the saved sample order is not a permutation of the data")
        epoch, position = whole("epoch", self.epochs), whole("position", self.N)
        steps, seen = whole("steps", 1 << 53), whole("seen", self.N)
        loss_sum, correct, seconds = (number(k) for k in ("loss_sum", "correct", "seconds"))
        label_correct = number("label_correct") if "label_correct" in state else 0.0
        base_lr, lr_factor = number("base_lr", True), number("lr_factor", True)
        hist = state.get("history")
        if not isinstance(hist, dict) or not all(isinstance(v, list) for v in hist.values()):
            raise ValueError("history must map names to lists")
        epochs_done = hist.get("epoch", [])
        if any(len(v) != len(epochs_done) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
               for v in hist.values()):
            raise ValueError("history columns must be numbers of equal length")
        rngs = state.get("rngs")
        if not isinstance(rngs, dict) or "shuffle" not in rngs:
            raise ValueError("rngs must hold the shuffling generator's state")
        probe = np.random.default_rng()             # check each state on a copy first
        probe.bit_generator.state = rngs["shuffle"]
        layer_rngs = {}
        for i, layer in enumerate(self.model.layers):
            if isinstance(getattr(layer, "rng", None), np.random.Generator) and str(i) in rngs:
                probe.bit_generator.state = rngs[str(i)]
                layer_rngs[i] = rngs[str(i)]
        stop = state.get("stop_training", False)
        if not isinstance(stop, bool):
            raise ValueError("stop_training must be true or false")
        if "threads" in state:                      # checked here, applied when the run starts
            self.threads.load_state_dict(state["threads"])
        # all valid: now change the run
        self.gen.bit_generator.state = rngs["shuffle"]
        for i, g in layer_rngs.items():
            self.model.layers[i].rng.bit_generator.state = g  # type: ignore[attr-defined]
        self.order = order.astype(np.int64)
        self.epoch, self.position, self.steps, self.seen = epoch, position, steps, seen
        self.loss_sum, self.correct, self.seconds = loss_sum, correct, seconds
        self.label_correct = label_correct
        self.state.base_lr, self.state.lr_factor = base_lr, lr_factor
        self.model.stop_training = stop
        columns = {k: v for k, v in hist.items() if k != "epoch"}
        for k, e in enumerate(epochs_done):
            self.history.append(int(e), {key: values[k] for key, values in columns.items()})

    def loop(self, checkpoint: Any, every: int | None) -> None:
        """Train to the last epoch. ``every``: steps between checkpoints, None at each epoch's
        end, 0 only on Ctrl-C. Ctrl-C is noticed only between steps (``_check_interrupt``)."""
        n_batches = math.ceil(self.N / self.batch_size)
        self._check_interrupt()
        while self.epoch < self.epochs and not self.model.stop_training:
            self.state.epoch = self.epoch
            self.opt.forget_param_norm()                    # callbacks may have changed them
            if self.position == 0:                          # a new epoch: rate, order, sums
                self.opt.lr = self.sched(self.epoch, self.state.base_lr) * self.state.lr_factor
                self.order = self.gen.permutation(self.N) if self.shuffle else np.arange(self.N)
                self.loss_sum, self.correct, self.seen, self.seconds = 0.0, 0.0, 0, 0.0
                self.label_correct = 0.0
            bar = _progress(n_batches, self.epoch, self.epochs, self.position // self.batch_size
                            ) if self.verbose == 1 and _terminal() else None
            t0 = time.perf_counter()
            try:
                while self.position < self.N:
                    self._step(bar)
                    if every and self.steps % every == 0:
                        self.save(checkpoint)
                    self._check_interrupt()
            finally:
                if bar is not None and self.position < self.N:
                    bar.close()
            self.seconds += time.perf_counter() - t0
            self._end_epoch(bar)
            self.epoch, self.position = self.epoch + 1, 0
            if checkpoint is not None and every is None:
                self.save(checkpoint)
            self._check_interrupt()
        self._check_interrupt()

    def check_outputs(self) -> None:
        """No later loss checks the last update, so check that the trained model's outputs on
        a batch of training rows are finite (one forward pass, once per fit): finite
        parameters can still be so large that every output overflows."""
        A = self.model.infer(self.X[:self.B_max] if self.rows is None else
                             self.X[self.rows[:self.B_max]])
        if not is_finite(A):
            raise DivergenceError(
                f"after the last update the model's outputs on training rows are NaN or "
                f"infinite: the parameters are finite but so large that the outputs overflow, "
                f"so the model is useless. {self._remedies()}"
            )

    def _remedies(self) -> str:
        """What to try after a divergence, leaving out what the run already does."""
        clip = ", clip gradients (clip_norm=1)" if self.clip_norm is None else ""
        return f"Lower the learning rate (now {self.opt.lr:g}){clip} or standardise the inputs."

    def _check_interrupt(self) -> None:
        """Raise the Ctrl-C that the signal handler deferred, now that no step is half done."""
        if self.interrupted:
            raise KeyboardInterrupt

    def save(self, checkpoint: Any) -> None:
        """Write a checkpoint of this moment (a step boundary), unless one already holds it."""
        at = (self.epoch, self.position, self.steps)
        if at != self.saved_at:
            from .checkpoints import save
            if self.dp is None or self.dp.rank == 0:    # data-parallel: rank 0 writes
                save(checkpoint, self)
            self.saved_at = at

    def _step(self, bar: Any) -> None:
        s = self.position
        idx = self.order[s:s + self.batch_size]
        B = B_all = len(idx)
        if self.dp is not None:                         # this rank's share of the batch
            a, b = self.dp.rows(B_all)
            idx = idx[a:b]
            B = len(idx)
        # memory-mapped X with rows held out: sample k is X's row rows[k] (X is never copied)
        at = idx if self.rows is None else np.take(self.rows, idx, out=self.Ib[:B], mode="clip")
        if self.sparse:
            Xb = self.X[at]                                     # the rows' stored values, CSR
        else:
            Xb = self.Xb[:B]
            np.take(self.X, at, axis=0, out=Xb, mode="clip")   # (mode="raise" would buffer)
            if self.pages is not None:                      # memory-mapped: bound the RSS
                self.pages.touch(B)
        Yb = self.Yb[:B]
        np.take(self.Y, idx, axis=0, out=Yb, mode="clip")
        Wb = None
        if self.weights is not None:
            Wb = self.Wb[:B]
            np.take(self.weights, idx, out=Wb, mode="clip")
        t0 = self.threads.start_step()
        try:
            if self.dp is not None:
                Lb = self._parallel_step(Xb, Yb, Wb, B_all)
            else:
                Lb = train_step(self.model, self.loss, self.opt, Xb, Yb, self.params, Wb,
                                self.clip_norm)
        except DivergenceError as exc:
            raise DivergenceError(
                f"{exc}, at epoch {self.epoch + 1}, step {s // self.batch_size + 1}; training "
                "stopped there and the model and optimizer keep the parameters and state of the "
                f"step before. {self._remedies()}"
            ) from None
        if self.classify and self.dp is None:
            self._count_correct(self.model.output, Yb)  # type: ignore[arg-type]
        self.threads.end_step(t0)
        self.loss_sum += Lb * B_all
        self.seen += B_all
        self.position = s + B_all
        self.steps += 1
        for cb in self.batch_callbacks:                     # the step is complete: state agrees
            cb.on_batch_end(self.state, Lb)
        if self.editing_callbacks:
            self.opt.forget_param_norm()
        if bar is not None:
            bar.update(1)
            if bar.n % max(1, bar.total // 20) == 0:
                bar.set_postfix_str(f"loss={self.loss_sum / self.seen:.4f}", refresh=False)

    def _parallel_step(self, Xb: Any, Yb: np.ndarray, Wb: np.ndarray | None, B: int) -> float:
        """``train_step`` of a data-parallel fit: this rank's B_r rows of the global batch of B
        give L_r and g_r; one Allreduce makes g = Σ_r (B_r/B)·g_r and L = Σ_r (B_r/B)·L_r on
        every rank (``DataParallel.reduce_gradient``), and the checks, clipping and update then
        run on identical values everywhere. The metric counts and Ctrl-C are summed alike."""
        from .distributed import local_step_loss
        B_r = Xb.shape[0]
        correct, label_correct = self.correct, self.label_correct
        L_r, ok = float("nan"), False
        if B_r:
            L_r, ok = local_step_loss(lambda: loss_and_gradient(self.model, self.loss, Xb, Yb,
                                                                Wb))
            if ok and self.classify:
                self._count_correct(self.model.output, Yb)  # type: ignore[arg-type]
        counts = (self.correct - correct, self.label_correct - label_correct)
        Lb = self.dp.reduce_gradient(self.params, L_r, B_r, B, counts, self.interrupt_pending)
        s = self.dp.scalars
        self.correct, self.label_correct = correct + s[1], label_correct + s[2]
        self.interrupted = self.interrupted or bool(s[3])
        apply_gradient(self.opt, self.params, Lb, self.clip_norm)
        return Lb

    def _count_correct(self, A: np.ndarray, Yb: np.ndarray) -> None:
        """Add a training batch's right answers to the epoch's counts (metrics.for_loss's
        rules): rows whose argmax is the label, or whose every thresholded output is right
        (``correct``); for multi-label also the fraction of labels right (``label_correct``)."""
        if self.kind == "argmax":
            true = Yb if Yb.ndim == 1 else Yb.argmax(axis=1)
            self.correct += np.count_nonzero(A.argmax(axis=1) == true)
            return
        right = (A > self.threshold) == (Yb > 0.5)          # (B, K): each label right
        self.correct += np.count_nonzero(right.all(axis=1))
        self.label_correct += np.count_nonzero(right) / right.shape[1]

    def _end_epoch(self, bar: Any) -> None:
        logs: dict[str, float] = {"loss": self.loss_sum / max(self.seen, 1)}
        n = max(self.seen, 1)
        if self.kind == "multilabel" and self.classify:
            logs["subset_accuracy"] = self.correct / n
            logs["label_accuracy"] = self.label_correct / n
        elif self.classify:
            logs["accuracy"] = self.correct / n
        if self.Xv is not None and self.Yv is not None:
            for k, v in evaluate_arrays(self.model, self.loss, self.Xv, self.Yv,
                                        kind=self.kind).items():
                logs[f"val_{k}"] = v
            if self.dp is not None:     # rank 0's values on every rank: callbacks agree
                logs = self.dp.agree(logs)
            if not math.isfinite(logs["val_loss"]):
                raise DivergenceError(
                    f"the validation loss became {logs['val_loss']} at the end of epoch "
                    f"{self.epoch + 1}: the parameters are finite but so large that the outputs "
                    f"overflow, so the model is useless. {self._remedies()}"
                )
        logs["lr"] = self.opt.lr
        logs["seconds"] = self.seconds
        logs["threads"] = self.threads.current
        # Callbacks may add or replace entries (the CLI's regression metrics in the targets'
        # units): the history and the epoch's line record logs as the callbacks leave them.
        for cb in self.callbacks:
            cb.on_epoch_end(self.state, logs)
        self.history.append(self.epoch + 1, logs)
        summary = "  ".join(f"{k}={v:.4g}" for k, v in logs.items()
                            if k not in ("lr", "seconds", "threads"))
        line = f"epoch {self.epoch + 1}/{self.epochs}  {summary}  ({format_seconds(self.seconds)})"
        if bar is not None:
            bar.set_postfix_str(summary)
            bar.close()
        elif self.verbose == 2:
            print(line, flush=True)
        elif self.verbose == 1:      # no terminal to redraw a bar in: one line per epoch
            print(line[0].upper() + line[1:], file=sys.stderr, flush=True)


def training_data(model: Sequential, L: losses_mod.Loss, X: Any, y: Any) -> tuple[Any, Any]:
    """X checked for ``model`` (an array, or CSR rows for scipy.sparse X) and y as ``L``
    trains on it, once, up front (``fit`` and ``fit_lbfgs``)."""
    X = model.check_input(X)
    if model.n_out is None:
        raise ValidationError("the model has no Dense layer, so there is nothing to train.")
    Y = L.prepare_target(y, model.n_out, model.dtype)
    if len(Y) != X.shape[0]:
        raise ValidationError(
            f"X and y must have the same number of samples; received {X.shape[0]} and "
            f"{len(Y)}.")
    return X, Y


def train_step(model: Sequential, loss: losses_mod.Loss, optimizer: optimizers_mod.Optimizer,
               X: np.ndarray, y: np.ndarray, params: Sequence[Param] | None = None,
               weight: np.ndarray | None = None, clip_norm: float | None = None) -> float:
    """One step of backpropagation on a prepared batch; returns the batch loss.

        A  = model.forward(X, training=True)      # forward, layer by layer
        L  = loss.forward(A, y)                   # mean loss over the batch
        model.backward(loss.backward())           # dL/dA, then every layer's dW, db
        g ← g · min(1, c/‖g‖)                     # optional clipping by global norm c
        optimizer.step(params)                    # W ← W − η·dW (or Adam, …)

    X must already have the model's dtype and y the form ``loss.prepare_target`` gives (``fit``
    does both once). With per-sample ``weight`` w the loss is (1/B) Σ_b w_b l_b and row b of
    dL/dA is scaled by w_b.

    Raises
    ------
    DivergenceError
        When the loss or the gradient is NaN or infinite, or the update would make a parameter
        or the optimizer's state NaN or infinite (``Optimizer.guarded_step``). Nothing has been
        updated then: parameters and optimizer state are those after the last good step.
    """
    L = loss_and_gradient(model, loss, X, y, weight)
    params = model.flat_parameters() if params is None else params
    apply_gradient(optimizer, params, L, clip_norm)
    return L


def apply_gradient(optimizer: optimizers_mod.Optimizer, params: Sequence[Param], L: float,
                   clip_norm: float | None = None) -> None:
    """The last steps of ``train_step``, on gradients already in ``params`` (of a batch whose
    loss was ``L``): check them, clip them to global norm ``clip_norm``, update.

    Raises ``DivergenceError`` when L or the gradient is NaN or infinite, or the update would
    make a parameter or the optimizer's state so (then nothing changes).
    """
    if not math.isfinite(L):
        raise DivergenceError(f"the loss became {L}")
    norm = global_norm(params)                  # one BLAS dot per buffer: ‖g‖ = √(Σ g²)
    if not math.isfinite(norm):
        raise DivergenceError(f"the gradient became {norm} (loss {L:.6g})")
    if clip_norm is not None and norm > clip_norm:
        scale = clip_norm / (norm + 1e-6)       # as torch.nn.utils.clip_grad_norm_
        for p in params:
            p.grad *= scale
        norm = clip_norm                        # an upper bound of the clipped norm
    # W ← W − η·dW (or Adam, …), proven or checked not to overflow; else nothing changes
    optimizer.guarded_step(params, norm)


def loss_and_gradient(model: Sequential, loss: losses_mod.Loss, X: np.ndarray, y: np.ndarray,
                      weight: np.ndarray | None = None) -> float:
    """The first steps of backpropagation on a prepared batch: returns the batch loss and
    leaves dL/dθ in every parameter's ``grad`` (``train_step`` then updates the parameters,
    ``lbfgs.fit_lbfgs`` hands the gradient to L-BFGS).

        A  = model.forward(X, training=True)      # forward, layer by layer
        L  = loss.forward(A, y)                   # mean loss over the batch
        model.backward(loss.backward())           # dL/dA, then every layer's dW, db

    With per-sample ``weight`` w the loss is (1/B) Σ_b w_b l_b and row b of dL/dA is scaled
    by w_b. X and y as for ``train_step``.

    Raises
    ------
    DivergenceError
        When the loss is NaN or infinite (before the backward pass).
    """
    A = model.forward(X, training=True)
    L = loss.forward(A, y)
    if weight is not None:
        L = loss.weighted(A, y, weight)
    if not math.isfinite(L):
        raise DivergenceError(f"the loss became {L}")
    dA = loss.backward()
    if weight is not None:
        dA *= weight[:, None]                   # dL/dA_b = w_b · dl_b/dA_b / B
    model.backward(dA, input_grad=False)
    return L


def global_norm(params: Sequence[Param]) -> float:
    """‖g‖ = √(Σ_p Σ_i g_pi²) over every gradient, accumulated in float64."""
    if len(params) == 1 and params[0].grad.ndim == 1:   # fit's single flat buffer
        g = params[0].grad
        return math.sqrt(float(np.dot(g, g)))
    total = 0.0
    for p in params:
        g = p.grad.reshape(-1, order="A")       # a view: gradients are contiguous
        total += float(np.dot(g, g))
    return math.sqrt(total)


def evaluate_arrays(model: Sequential, L: losses_mod.Loss, X: np.ndarray, Y: np.ndarray,
                    batch_size: int = 1024, threads: int | None = None,
                    kind: str | None = "auto") -> dict[str, float]:
    """Loss and metrics (``metrics.for_loss``) of ``model`` on arrays already in the model's
    form: X (N, n_in) of its dtype (or CSR rows, sliced per chunk) and Y as
    ``L.prepare_target`` gives it. No checks: this is what ``Sequential.evaluate`` runs after
    checking its inputs, and what ``fit`` runs on the validation data at each epoch's end.
    ``kind``: how to score classification (``metrics.classification_kind``; "auto": from Y);
    ``threads``: BLAS threads (None: auto).

    Thread-safe: ``model.infer`` shares no buffer, and the loss is a fresh instance, since a
    loss's ``forward`` writes into buffers of its own (the model's loss is fit's training loss).
    """
    N = X.shape[0]                              # (len() is refused by scipy.sparse X)
    out = np.empty((N, model.n_out or 0), dtype=model.dtype)
    L = L.fresh()
    total = 0.0
    # BLAS threads as predict chooses them; inside fit, under fit's count
    macs = model.macs() * min(batch_size, N)
    with Threads(threads, is_small(macs), -(-N // batch_size), fit=False) as th:
        for s in range(0, N, batch_size):
            t0 = th.start_step()
            A = model.infer(X[s:s + batch_size])
            th.end_step(t0)
            total += L.forward(A, Y[s:s + batch_size]) * len(A)
            out[s:s + batch_size] = A
    return {"loss": total / N, **for_loss(L, out, Y, kind)}


def _terminal() -> bool:
    """Whether a progress bar can redraw itself in place: stderr is a terminal, or this is a
    notebook (tqdm.auto draws a widget there). Piped into a file, a bar would write its line
    again at every refresh."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty()) or "ipykernel" in sys.modules


def _progress(total: int, epoch: int, epochs: int, initial: int = 0) -> Any:
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch",
                leave=True, dynamic_ncols=True, mininterval=0.2)

