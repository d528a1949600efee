"""Run by tests/test_mpi.py under mpiexec: one data-parallel fit per scenario (argv[1], a comma
list); rank 0 writes the trained parameters, the history and every rank's parameters to
argv[2] + "-" + scenario + ".npz"."""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np

import layerwise as lw


def data(n: int = 23, n_in: int = 4, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Rows every rank and the test build alike."""
    g = np.random.default_rng(7)
    return g.normal(size=(n, n_in)), g.integers(0, k, size=n)


def model(dropout: bool = False) -> lw.Sequential:
    layers = [lw.Dense(4, 6, rng=1), lw.Tanh()]
    if dropout:
        layers.append(lw.Dropout(0.3, rng=5))
    return lw.Sequential(*layers, lw.Dense(6, 3, rng=2)).astype(np.float64)


def settings(name: str) -> dict:
    """fit's arguments for each scenario (the test trains alike in one process)."""
    w = np.linspace(0.2, 2.0, 23)
    if name == "sgd":       # momentum, uneven batches, sample weights, clipping, validation
        return {"optimizer": lw.SGD(lr=0.1, momentum=0.9), "epochs": 3, "batch_size": 5,
                "sample_weight": w, "clip_norm": 0.5, "validation_split": 0.2}
    if name == "adam":      # Adam, a batch smaller than the number of ranks at each epoch's end
        return {"optimizer": lw.Adam(lr=0.01), "epochs": 3, "batch_size": 11,
                "callbacks": [lw.EarlyStopping(patience=1, monitor="loss")]}
    if name == "dropout":
        return {"optimizer": lw.SGD(lr=0.05, momentum=0.5), "epochs": 2, "batch_size": 7}
    if name == "resume":
        return {"optimizer": lw.Adam(lr=0.01), "epochs": 3, "batch_size": 4}
    raise SystemExit(f"unknown scenario {name}")


class Interrupt(lw.Callback):
    """Ctrl-C on rank 0 only, after step 7: every rank must stop after the same step."""

    reads_only = True

    def on_batch_end(self, state: lw.callbacks.TrainState, loss: float) -> None:
        if state.rank == 0 and state.optimizer.t == 7:
            os.kill(os.getpid(), signal.SIGINT)


class Fail(lw.Callback):
    """Rank 1 fails at its third step: by an exception, or killed."""

    def __init__(self, how: str) -> None:
        self.how = how

    def on_batch_end(self, state: lw.callbacks.TrainState, loss: float) -> None:
        if state.rank == 1 and state.optimizer.t == 3:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 fails on purpose")


def main() -> None:
    for name in sys.argv[1].split(","):
        scenario(name, f"{sys.argv[2]}-{name}")


def scenario(name: str, out: str) -> None:
    X, y = data()
    kw = settings(name if name in ("sgd", "adam", "dropout") else "resume")
    net = model(dropout=name == "dropout")
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    result: dict[str, np.ndarray] = {}
    if name in ("raise", "kill"):
        kw["callbacks"] = [Fail(name)]
        kw["epochs"] = 50
    if name == "interrupt":
        kw["callbacks"] = [Interrupt()]
        try:
            net.fit(X, y, loss="ce", rng=3, verbose=0, comm="auto", checkpoint=out + ".lw",
                    checkpoint_every="interrupt", **kw)
        except lw.errors.TrainingInterrupted:
            result["stopped_at"] = np.array(net.layers[0].W.copy())
        else:
            raise SystemExit("not interrupted")
    else:
        resume = out + ".lw" if name == "resume" else None
        hist = net.fit(X, y, loss="ce", rng=3, verbose=2, comm="auto", resume=resume, **kw)
        result["history"] = np.array(json.dumps(hist.to_dict()))
    params = np.concatenate([p.value.ravel() for p in net.parameters()])
    every = comm.gather(params, root=0)
    if comm.Get_rank() == 0:
        np.savez(out + ".npz", params=params, ranks=np.array(every), size=comm.Get_size(), **result)


if __name__ == "__main__":
    main()
