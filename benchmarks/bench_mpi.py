"""Data-parallel training over MPI on one machine: MNIST epoch time and test accuracy for one
process with 2 BLAS threads vs 2 MPI processes with 1 thread each, the Allreduce's share of a
step, and a PROJECTION (a model, not a measurement) of scaling to more nodes.

Recipe: 784-800-10 MLP, ReLU, softmax cross-entropy, SGD lr 0.1 momentum 0.9, global batch 128,
float32, inputs in [0, 1], seed 0, no validation. Both set-ups train the same global batches, so
they reach the same accuracy (up to the order of floating-point sums); only the time differs.

    python benchmarks/bench_mpi.py                        # 2 epochs on all 60,000 rows
    python benchmarks/bench_mpi.py --epochs 1 --rows 20000 --json out.json

The script starts itself as workers: ``python bench_mpi.py --worker`` (1 process x 2 threads)
and ``mpiexec -n 2 python bench_mpi.py --worker`` (2 processes x 1 thread), one after the other.

Allreduce share: in the MPI run, after training, rank 0 times ``--reps`` Allreduces of the flat
gradient buffer (the message of one step) and divides by the measured time per step.

Projection to R nodes (one process per node), with t_c the measured one-process step time
with 1 thread on a batch of 128 and a ring Allreduce of the M-byte gradient,
    t_allreduce(R) = 2 (R−1)/R · M / BW + 2 (R−1) · α
over an ASSUMED network of bandwidth BW (--bandwidth, GB/s, one or more) and latency α
(--latency, µs):
- strong scaling (the same global batch of 128, split R ways): t(R) = t_c / R + t_allreduce(R),
  speed-up t_c / t(R);
- weak scaling (a global batch of 128·R, 128 rows per node): t(R) = t_c + t_allreduce(R), and
  R times the rows per step: throughput speed-up R · t_c / t(R).
It ignores everything but compute and the Allreduce (stragglers, per-rank batches too small to
keep BLAS efficient), so it is an upper bound of the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import layerwise as lw

HIDDEN, BATCH, LR, MOMENTUM, SEED = 800, 128, 0.1, 0.9, 0


def load(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = lw.datasets.load("mnist")
    assert d.X_test is not None and d.y_test is not None
    scale = np.float32(1 / 255)
    return (d.X_train[:rows] * scale, d.y_train[:rows].astype(np.int64),
            d.X_test * scale, d.y_test.astype(np.int64))


class Clock(lw.Callback):
    """Training seconds of each epoch (fit's own count, evaluation excluded)."""

    reads_only = True

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_epoch_end(self, state: Any, logs: dict[str, float]) -> None:
        self.seconds.append(logs["seconds"])


def worker(args: argparse.Namespace) -> None:
    """One set-up: train, then (under MPI) time the Allreduce of one step's gradient."""
    X, y, Xt, yt = load(args.rows)
    net = lw.Sequential(lw.Dense(784, HIDDEN, init="he", rng=SEED), lw.ReLU(),
                        lw.Dense(HIDDEN, 10, rng=SEED))
    clock = Clock()
    net.fit(X, y, loss="ce", optimizer=lw.SGD(lr=LR, momentum=MOMENTUM), epochs=args.epochs,
            batch_size=BATCH, rng=SEED, verbose=0, callbacks=[clock], threads=args.threads,
            comm="auto")
    acc = float((net.predict(Xt).argmax(axis=1) == yt).mean())
    steps = -(-len(X) // BATCH)
    result = {"threads": args.threads, "epoch_seconds": clock.seconds, "test_accuracy": acc,
              "steps_per_epoch": steps, "n_params": net.n_params(), "processes": 1}
    from layerwise import distributed
    comm = distributed.resolve_comm("auto")
    if comm is not None:
        from mpi4py import MPI
        g = net.flat_parameters()[0].grad
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(args.reps):
            comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
        allreduce = (time.perf_counter() - t0) / args.reps
        result.update(processes=comm.Get_size(), allreduce_seconds=allreduce,
                      message_bytes=g.nbytes)
        if comm.Get_rank() != 0:
            return
    print("RESULT " + json.dumps(result), flush=True)


def launch(cmd: list[str]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    line = next(t for t in out.stdout.splitlines() if t.startswith("RESULT "))
    return dict(json.loads(line[7:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rows", type=int, default=60000, help="training rows (a subset: fewer)")
    p.add_argument("--reps", type=int, default=50, help="Allreduces timed")
    p.add_argument("--bandwidth", default="1.25,12.5",
                   help="GB/s, for the projection: 10 and 100 Gbit/s by default")
    p.add_argument("--latency", type=float, default=5.0, help="µs, for the projection")
    p.add_argument("--json", help="also write every number here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    me = [sys.executable, str(Path(__file__).resolve()), "--worker", "--epochs",
          str(args.epochs), "--rows", str(args.rows), "--reps", str(args.reps)]
    mpiexec = str(Path(sys.executable).with_name("mpiexec"))
    flags = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    one = launch([*me, "--threads", "2"])
    two = launch([mpiexec, *flags, "-n", "2", *me, "--threads", "1"])
    one1 = launch([*me, "--threads", "1"])          # the projection's per-step compute
    steps = one["steps_per_epoch"]
    step_1 = min(one1["epoch_seconds"]) / steps
    step_2 = min(two["epoch_seconds"]) / steps
    share = two["allreduce_seconds"] / step_2
    M, lat = two["message_bytes"], args.latency * 1e-6
    projection: dict[str, dict[int, dict[str, float]]] = {}
    for bw_text in args.bandwidth.split(","):
        bw = float(bw_text) * 1e9
        rows = projection[f"{float(bw_text):g} GB/s"] = {}
        for R in (1, 2, 4, 8, 16, 32, 64):
            t_ar = 2 * (R - 1) / R * M / bw + 2 * (R - 1) * lat
            rows[R] = {"allreduce_ms": t_ar * 1e3, "strong_step_ms": (step_1 / R + t_ar) * 1e3,
                       "strong_speedup": step_1 / (step_1 / R + t_ar),
                       "weak_speedup": R * step_1 / (step_1 + t_ar)}
    print(f"MNIST {args.rows} training rows, {args.epochs} epochs, 784-{HIDDEN}-10, batch "
          f"{BATCH}, SGD momentum; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print(f"{'set-up':<28}{'epoch (s, best)':>16}{'test accuracy':>15}")
    for name, r in (("1 process x 2 threads", one), ("2 processes x 1 thread", two),
                    ("1 process x 1 thread", one1)):
        print(f"{name:<28}{min(r['epoch_seconds']):>16.2f}{r['test_accuracy']:>15.4f}")
    print(f"Allreduce of {M / 1e6:.2f} MB (the flat float32 gradient, {one['n_params']:,} "
          f"parameters): {two['allreduce_seconds'] * 1e3:.3f} ms, {share:.1%} of a 2-process "
          f"step ({step_2 * 1e3:.2f} ms)")
    print(f"PROJECTION (a model, not a measurement): one process per node, ring Allreduce, "
          f"assumed latency {args.latency:g} µs, measured compute {step_1 * 1e3:.2f} ms per "
          f"step of {BATCH} rows on one core")
    for net_name, rows in projection.items():
        print(f"  network {net_name}:")
        for R, v in rows.items():
            print(f"    R={R:<3} Allreduce {v['allreduce_ms']:6.2f} ms  strong (batch {BATCH}): "
                  f"step {v['strong_step_ms']:6.2f} ms, speed-up {v['strong_speedup']:5.2f}x"
                  f"  weak (batch {BATCH}·R): speed-up {v['weak_speedup']:5.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "one_process_2_threads": one, "two_processes_1_thread": two,
            "one_process_1_thread": one1, "allreduce_share": share,
            "projection": projection, "args": vars(args)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
