"""The training step of two source trees, timed side by side: did a change cost speed?

Runs ``train_step`` (what ``fit`` runs per batch: forward, loss, backward, the divergence
checks and the guarded optimizer update) of each tree in its own subprocess, taking turns round
after round so the machine's drift hits both alike, rotating through 20 different batches as an
epoch does, on one BLAS thread. Prints each round's best-of-5 µs per step and the ratio of the
medians (B / A).

    git worktree add /tmp/base <rev>
    python benchmarks/ab_step.py /tmp/base/src src                  # tiny, small, medium
    python benchmarks/ab_step.py /tmp/base/src src --configs tiny --optimizers sgd --rounds 5
    python benchmarks/ab_step.py /tmp/base/src src --optimizers sgdwd,adamw   # weight decay
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CONFIGS = {"tiny": ([64, 32, 10], 32, 4000), "small": ([784, 128, 10], 64, 600),
           "medium": ([784, 512, 256, 10], 128, 150)}    # sizes, batch, steps per repeat

CHILD = """
import sys, time, numpy as np, layerwise as lw
from threadpoolctl import threadpool_limits
from layerwise.training import train_step
sizes, B, n, optimizer = {sizes!r}, {B}, {n}, {optimizer!r}
rng = np.random.default_rng(0)
Xs = [rng.normal(size=(B, sizes[0])).astype(np.float32) for _ in range(20)]
ys = [rng.integers(0, sizes[-1], B) for _ in range(20)]
model, loss = lw.mlp(sizes, rng=0), lw.CrossEntropy()
opt = {{"sgd": lambda: lw.SGD(lr=0.01, momentum=0.9), "adam": lambda: lw.Adam(lr=1e-3),
       # with weight decay (each tree's default: since decay_biases, weights only)
       "sgdwd": lambda: lw.SGD(lr=0.01, momentum=0.9, weight_decay=1e-4),
       "adamw": lambda: lw.AdamW(lr=1e-3, weight_decay=0.01)}}[optimizer]()
params = model.flat_parameters()
with threadpool_limits(1), np.errstate(all="ignore"):
    for i in range(50):
        train_step(model, loss, opt, Xs[i % 20], ys[i % 20], params)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for i in range(n):
            train_step(model, loss, opt, Xs[i % 20], ys[i % 20], params)
        best = min(best, (time.perf_counter() - t) / n)
print(best * 1e6)
"""


def run(src: str, code: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return float(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="source folder of tree A (holding layerwise/)")
    p.add_argument("b", help="source folder of tree B")
    p.add_argument("--configs", default="tiny,small,medium")
    p.add_argument("--optimizers", default="sgd,adam",
                   help="comma-separated: sgd, adam, sgdwd (SGD with weight decay), adamw")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(f"{'config':8} {'opt':5} {'A µs/step (rounds)':28} {'B µs/step (rounds)':28} B/A")
    for name in args.configs.split(","):
        sizes, B, n = CONFIGS[name]
        for optimizer in args.optimizers.split(","):
            code = CHILD.format(sizes=sizes, B=B, n=n, optimizer=optimizer)
            a, b = [], []
            for _ in range(args.rounds):            # interleaved: A, B, A, B, ...
                a.append(run(args.a, code))
                b.append(run(args.b, code))
            ratio = statistics.median(b) / statistics.median(a)
            fa, fb = (" ".join(f"{v:.1f}" for v in x) for x in (a, b))
            print(f"{name:8} {optimizer:5} {fa:28} {fb:28} {ratio:.3f}")


if __name__ == "__main__":
    main()
