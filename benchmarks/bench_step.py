"""One training step of an MLP, timed side by side: layerwise, PyTorch eager, scikit-learn.

A step is forward, softmax cross-entropy, backward and a plain SGD update, in float32, on a
fixed synthetic batch (ReLU hidden layers). PyTorch runs ``torch.nn`` + ``torch.optim.SGD`` with
1 and 2 threads and keeps the faster; scikit-learn runs ``MLPClassifier(solver="sgd",
momentum=0)`` through ``partial_fit`` epochs, one step per batch (per step = epoch / batches).
Each timing is the median of several repeats; the machine's float32 GEMM rate (a 2048³ NumPy
matmul) is measured in the same run, so ratios and fractions are comparable across machines.

    python benchmarks/bench_step.py                  # all configurations
    python benchmarks/bench_step.py --json out.json  # also write the results as JSON
    python benchmarks/bench_step.py --configs tiny,small --repeats 5

Peers that are not installed are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np

import layerwise as lw

CONFIGS: dict[str, tuple[list[int], int]] = {
    "tiny": ([64, 32, 10], 32),
    "small": ([784, 128, 10], 64),
    "medium": ([784, 512, 256, 10], 128),
    "large": ([2048, 2048, 2048, 2048, 10], 512),
}
LR = 0.01


def flops_per_step(sizes: list[int], B: int) -> int:
    """6·B·n_in·n_out per dense layer: forward, dW and dX, two flops per multiply-add."""
    return sum(6 * B * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def time_steps(step: Callable[[], Any], target_seconds: float, repeats: int) -> float:
    """Median seconds per call over ``repeats`` runs of about ``target_seconds`` each."""
    for _ in range(3):                                  # warm-up: buffers, caches, threads
        step()
    t0 = time.perf_counter()
    step()
    once = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(target_seconds / once))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def data(sizes: list[int], B: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], B).astype(np.int64)
    return X, y


def bench_layerwise(sizes: list[int], B: int, seconds: float, repeats: int) -> float:
    X, y = data(sizes, B)
    model = lw.mlp(sizes, rng=0)
    loss, opt = lw.CrossEntropy(), lw.SGD(lr=LR)
    params = model.flat_parameters()                    # what fit uses
    return time_steps(lambda: lw.training.train_step(model, loss, opt, X, y, params), seconds,
                      repeats)


def bench_torch(sizes: list[int], B: int, seconds: float, repeats: int
                ) -> tuple[float, int] | None:
    try:
        import torch
    except ImportError:
        return None
    X, y = data(sizes, B)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    best: tuple[float, int] | None = None
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        net = torch.nn.Sequential(*layers)
        ce = torch.nn.CrossEntropyLoss()
        opt = torch.optim.SGD(net.parameters(), lr=LR)

        def step(net: Any = net, ce: Any = ce, opt: Any = opt) -> None:
            opt.zero_grad(set_to_none=True)
            ce(net(Xt), yt).backward()
            opt.step()

        t = time_steps(step, seconds, repeats)
        if best is None or t < best[0]:
            best = (t, threads)
    return best


def bench_sklearn(sizes: list[int], B: int, seconds: float, repeats: int) -> float | None:
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    n_batches = max(4, min(64, int(2e6 // max(1, flops_per_step(sizes, B) // 1000))))
    X, y = data(sizes, B * n_batches)
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver="sgd", momentum=0.0,
                        learning_rate_init=LR, batch_size=B, alpha=0.0, shuffle=False,
                        random_state=0)
    classes = np.arange(sizes[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.partial_fit(X, y, classes=classes)          # allocates weights; then time epochs
        per_epoch = time_steps(lambda: clf.partial_fit(X, y), seconds, repeats)
    return per_epoch / n_batches


def gemm_rate(repeats: int = 5) -> float:
    """The machine's float32 GEMM rate through NumPy, FLOP/s, on 2048×2048 matrices."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048)).astype(np.float32)
    b = rng.standard_normal((2048, 2048)).astype(np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * 2048**3 / best


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
        info = [f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} "
                f"threads={d.get('num_threads')}" for d in threadpool_info()
                if d.get("user_api") == "blas"]
        return "; ".join(info)
    except ImportError:
        return "unknown (install threadpoolctl to report it)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per measurement")
    p.add_argument("--seconds", type=float, default=0.3, help="length of one repeat")
    p.add_argument("--json", default=None, help="write results to this JSON file")
    args = p.parse_args(argv)

    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        p.error(f"unknown configs {sorted(unknown)}; choose from {list(CONFIGS)}")
    gemm = gemm_rate()
    print(f"layerwise {lw.__version__}, numpy {np.__version__}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, BLAS: {blas_info()}")
    print(f"NumPy float32 GEMM (2048³): {gemm / 1e9:.1f} GFLOP/s")
    notes = []
    rows = []
    for name in names:
        sizes, B = CONFIGS[name]
        flops = flops_per_step(sizes, B)
        t_lw = bench_layerwise(sizes, B, args.seconds, args.repeats)
        torch_res = bench_torch(sizes, B, args.seconds, args.repeats)
        t_sk = bench_sklearn(sizes, B, args.seconds, args.repeats)
        if torch_res is None and "torch" not in notes:
            notes.append("torch")
        if t_sk is None and "sklearn" not in notes:
            notes.append("sklearn")
        row = {
            "config": name, "sizes": sizes, "batch": B, "flops_per_step": flops,
            "layerwise_us": t_lw * 1e6, "layerwise_gflops": flops / t_lw / 1e9,
            "layerwise_samples_per_s": B / t_lw,
            "torch_us": None if torch_res is None else torch_res[0] * 1e6,
            "torch_threads": None if torch_res is None else torch_res[1],
            "sklearn_us": None if t_sk is None else t_sk * 1e6,
            "speedup_vs_torch": None if torch_res is None else torch_res[0] / t_lw,
            "speedup_vs_sklearn": None if t_sk is None else t_sk / t_lw,
            "fraction_of_gemm": flops / t_lw / gemm,
        }
        rows.append(row)
        print(f"  measured {name}", file=sys.stderr)

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    head = ["config", "layers", "B", "layerwise µs", "samples/s", "GFLOP/s", "of GEMM",
            "torch µs (thr)", "sklearn µs", "vs torch", "vs sklearn"]
    table = [head]
    for r in rows:
        torch_cell = "-" if r["torch_us"] is None else f"{r['torch_us']:.1f} ({r['torch_threads']})"
        table.append([r["config"], "-".join(map(str, r["sizes"])), str(r["batch"]),
                      f"{r['layerwise_us']:.1f}", f"{r['layerwise_samples_per_s']:,.0f}",
                      f"{r['layerwise_gflops']:.1f}", f"{r['fraction_of_gemm']:.0%}", torch_cell,
                      f(r["sklearn_us"], ".1f"), f(r["speedup_vs_torch"], ".2f") + "x",
                      f(r["speedup_vs_sklearn"], ".2f") + "x"])
    widths = [max(len(row[c]) for row in table) for c in range(len(head))]
    print()
    for row in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    for peer in notes:
        print(f"note: {peer} is not installed, so it was skipped.")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                   "numpy": np.__version__, "blas": blas_info(),
                                   "gemm_gflops": gemm / 1e9},
                       "command": " ".join(["python", *sys.argv]), "results": rows}, fh,
                      indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
