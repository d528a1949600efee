"""MNIST epochs on a quiet and on a busy machine: layerwise's automatic BLAS thread count beside
one thread, all threads, and PyTorch, under the same competition.

A busy machine is simulated by CPU-bound competing processes (a Python busy loop each, one per
core by default): OpenBLAS's threads then wait for cores they do not get, and a second thread
can cost more than it saves. Each competitor stops itself after ``--budget`` seconds and is
killed when its situation ends, so the benchmark can never leave load behind.

Recipe (the README's MNIST command, on ``--rows`` training rows): 784-800-10 MLP, ReLU, softmax
cross-entropy, SGD with momentum 0.9, lr 0.05, batch 64, float32 inputs in [0, 1].

Every trial is one ``fit(epochs=--epochs)`` call (layerwise) or as many epochs (PyTorch) on a
fresh model, timed alone (model construction excluded), and reported per epoch. The
implementations take turns, trial by trial, in a rotating order, ``--rounds`` times per
situation, so a drift of the machine's speed hits them alike; the table gives each one's
median seconds per epoch. layerwise "auto" measures its thread count inside every fit (its
first steps run alternately with 1 and all threads, 4 to 8 of them, then again every 1000
steps), so that cost is in its time: with one fit of 2 short epochs per trial it weighs more
than in a real run (the README's: one fit of 18,760 steps).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_contention.py
    python benchmarks/bench_contention.py --rows 6400 --epochs 1 --rounds 3 --competitors 2

Goal (issue 11): "auto" within 1.2x of the better of 1 and all threads in both situations.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info

import layerwise as lw

HIDDEN, LR, MOMENTUM, BATCH = 800, 0.05, 0.9, 64

BUSY_LOOP = ("import time\nend = time.monotonic() + {budget}\nx = 0\n"
             "while time.monotonic() < end:\n    x += 1\n")


def load(rows: int) -> tuple[np.ndarray, np.ndarray]:
    d = lw.datasets.load("mnist")
    return (d.X_train[:rows] * np.float32(1 / 255)).astype(np.float32), \
        d.y_train[:rows].astype(np.int64)


def layerwise_epoch(X: np.ndarray, y: np.ndarray, threads: int | str, epochs: int
                    ) -> Callable[[], float]:
    def run() -> float:
        model = lw.mlp([784, HIDDEN, 10], rng=0)
        opt = lw.SGD(LR, momentum=MOMENTUM)
        t0 = time.perf_counter()
        h = model.fit(X, y, optimizer=opt, epochs=epochs, batch_size=BATCH, rng=0, verbose=0,
                      threads=threads)
        seconds = time.perf_counter() - t0
        run.chosen.append([int(n) for n in h["threads"]])  # type: ignore[attr-defined]
        return seconds / epochs
    run.chosen = []  # type: ignore[attr-defined]
    return run


def torch_epoch(X: np.ndarray, y: np.ndarray, epochs: int) -> Callable[[], float] | None:
    try:
        import torch
    except ImportError:
        return None
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def run() -> float:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(784, HIDDEN), torch.nn.ReLU(),
                                  torch.nn.Linear(HIDDEN, 10))
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn = torch.nn.CrossEntropyLoss()
        t0 = time.perf_counter()
        for _ in range(epochs):
            perm = torch.randperm(len(Xt))
            for s in range(0, len(Xt), BATCH):
                idx = perm[s:s + BATCH]
                opt.zero_grad()
                loss_fn(net(Xt[idx]), yt[idx]).backward()
                opt.step()
        return (time.perf_counter() - t0) / epochs
    return run


def situation(name: str, runs: dict[str, Callable[[], float]], rounds: int, competitors: int,
              budget: float) -> dict[str, list[float]]:
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(budget=budget)])
             for _ in range(competitors)]
    try:
        time.sleep(0.5 if procs else 0)             # let the competitors start
        times: dict[str, list[float]] = {k: [] for k in runs}
        names = list(runs)
        for r in range(rounds):
            for k in names[r % len(names):] + names[:r % len(names)]:    # rotating order
                times[k].append(runs[k]())
        load1 = os.getloadavg()[0]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    print(f"  {name}: {competitors} competing processes, load average {load1:.1f} at the end",
          flush=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=9_600, help="MNIST training rows per epoch")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per trial (one fit)")
    ap.add_argument("--rounds", type=int, default=3, help="trials of each, per situation")
    ap.add_argument("--competitors", type=int, default=os.cpu_count() or 1,
                    help="busy-loop processes in the busy situation (default: one per core)")
    ap.add_argument("--budget", type=float, default=900.0,
                    help="seconds after which a competitor stops itself (default 900)")
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()

    X, y = load(args.rows)
    n_all = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    runs: dict[str, Callable[[], float]] = {
        "layerwise auto": layerwise_epoch(X, y, "auto", args.epochs),
        "layerwise 1 thread": layerwise_epoch(X, y, 1, args.epochs),
        f"layerwise {n_all} threads": layerwise_epoch(X, y, n_all, args.epochs),
    }
    torch_run = None if args.skip_torch else torch_epoch(X, y, args.epochs)
    if torch_run is not None:
        import torch
        runs[f"PyTorch ({torch.get_num_threads()} threads)"] = torch_run
    print(f"MNIST 784-{HIDDEN}-10, batch {BATCH}, {args.rows} rows per epoch; {os.cpu_count()} "
          f"cores; OpenBLAS default {n_all} threads; median of {args.rounds} trials of "
          f"{args.epochs} epochs", flush=True)
    results = {}
    for name, competitors in (("quiet", 0), ("busy", args.competitors)):
        for run in runs.values():
            if hasattr(run, "chosen"):
                run.chosen.clear()
        results[name] = situation(name, runs, args.rounds, competitors, args.budget)
        results[name + " chosen"] = {k: list(getattr(r, "chosen", [])) for k, r in runs.items()}

    print()
    print("| implementation | quiet: s/epoch | busy: s/epoch |")
    print("|---|---:|---:|")
    for k in runs:
        cells = [f"{statistics.median(results[s][k]):.2f}" for s in ("quiet", "busy")]
        print(f"| {k} | {cells[0]} | {cells[1]} |")
    for s in ("quiet", "busy"):
        med = {k: statistics.median(v) for k, v in results[s].items()}
        best = min(med["layerwise 1 thread"], med[f"layerwise {n_all} threads"])
        chosen = results[s + " chosen"]["layerwise auto"]
        print(f"{s}: auto / best fixed = {med['layerwise auto'] / best:.2f}x "
              f"(goal <= 1.2x); auto chose {chosen} threads")


if __name__ == "__main__":
    main()
