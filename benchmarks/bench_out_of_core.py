"""Peak memory of training on .npy files of growing size: flat while the file grows.

For each size, writes X.npy (float32 rows of --features values, random normal) and y.npy
(10 classes, a linear rule of X, so there is something to learn) into --dir, then runs in a
fresh child process

    layerwise train X.npy,y.npy --epochs 1 --layers 128 --batch-size 64 --quiet --no-plots

(X memory-mapped: outofcore) and reads the child's peak resident memory (VmHWM, which
counts the file's pages while they are mapped) and wall time. ``--in-memory-up-to`` also runs
the same command with the file read into memory (outofcore.MAP_BYTES raised), for the sizes
up to that many GB, as the baseline.

    python benchmarks/bench_out_of_core.py --sizes 0.25 1 4 --dir /tmp/ooc-bench

The files are deleted afterwards unless --keep. Sizes are decimal GB of X.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# The child reports its own peak (VmHWM): wait4's ru_maxrss would also count the parent's
# resident memory at the fork (Linux carries the old peak across exec), here the written file.
CHILD = """
import re, sys
import layerwise.outofcore as o
if sys.argv[1] == "memory":
    o.MAP_BYTES = 1 << 62
from layerwise.cli import main
code = main(sys.argv[2:])
status = open("/proc/self/status").read()
print("VmHWM", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), flush=True)
sys.exit(code)
"""


def write(folder: Path, gb: float, d: int, seed: int = 0) -> int:
    """X.npy of about ``gb`` GB of float32 rows and y.npy; returns the row count."""
    n = int(gb * 1e9) // (4 * d)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, 10)).astype(np.float32)
    X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float32, shape=(n, d))
    y = np.empty(n, dtype=np.int64)
    step = max(1, (64 << 20) // (4 * d))
    for s in range(0, n, step):
        block = rng.standard_normal((min(step, n - s), d), dtype=np.float32)
        X[s:s + step] = block
        y[s:s + step] = (block @ W).argmax(axis=1)
    X.flush()
    del X
    np.save(folder / "y.npy", y)
    return n


def run(folder: Path, mode: str, args: argparse.Namespace) -> tuple[float, float, str]:
    """(peak RSS in MiB, seconds, last output line) of one training run in a child process."""
    cmd = [sys.executable, "-c", CHILD, mode, "train", f"{folder / 'X.npy'},{folder / 'y.npy'}",
           "--epochs", "1", "--layers", "128", "--batch-size", "64", "--quiet", "--no-plots",
           "--seed", "0", "--threads", "1", "--out", str(folder / f"run-{mode}")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    code = proc.wait()
    seconds = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{mode} run failed:\n{out}")
    shutil.rmtree(folder / f"run-{mode}", ignore_errors=True)
    lines = out.strip().splitlines()
    return int(lines[-1].split()[1]) / 1024, seconds, lines[-2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    p.add_argument("--features", type=int, default=784)
    p.add_argument("--dir", default="/tmp/layerwise-ooc-bench")
    p.add_argument("--in-memory-up-to", type=float, default=1.0)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    root = Path(args.dir)
    print(f"{'X.npy':>9} {'rows':>10}  {'mode':<13} {'peak RSS':>10} {'wall':>8}  result")
    for gb in args.sizes:
        folder = root / f"{gb:g}GB"
        folder.mkdir(parents=True, exist_ok=True)
        n = write(folder, gb, args.features)
        size = (folder / "X.npy").stat().st_size / 1e9
        modes = ["memory-mapped"] + (["in memory"] if gb <= args.in_memory_up_to else [])
        for mode in modes:
            rss, seconds, last = run(folder, "mapped" if mode == "memory-mapped" else "memory",
                                     args)
            print(f"{size:7.2f}GB {n:>10,}  {mode:<13} {rss:8.0f}MiB {seconds:7.1f}s  {last}",
                  flush=True)
        if not args.keep:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
