"""One training step of an MLP, timed side by side, interleaved, on rotating batches.

A step is forward, softmax cross-entropy, backward and a plain SGD update (lr 0.01), float32,
ReLU hidden layers. Every implementation steps through the same 20 different batches in turn,
as an epoch does (a single repeated batch would stay in cache), and the implementations take
turns round after round (rotating which goes first); each keeps its best round, so drift of a
shared machine hits all alike and the ratios of one run are comparable:

- ``layerwise fit``: ``training.train_step`` on the flat parameter buffer (what ``fit`` runs);
- ``layerwise tour``: the README's loop, ``model.forward / loss / model.backward(...,
  input_grad=False) / opt.step(model.parameters())``;
- ``numpy loop``: the same step written plainly in NumPy (``Z = A @ W.T; Z += b``, ReLU in
  place, softmax, ``dW = dZ.T @ A``, ``dX = dZ @ W``, ``W -= lr·dW``);
- ``GEMMs``: the step's matrix products alone, the roofline nothing can beat with these BLAS
  calls;
- ``torch``: ``torch.nn`` + ``torch.optim.SGD`` eager, the faster of 1 and 2 threads;
- ``jax``: one ``jax.jit``-compiled step (value_and_grad and the update), when jax is
  installed.

scikit-learn's ``MLPClassifier`` (``partial_fit`` epochs, per step = epoch / batches) is timed
after, on its own. NumPy's BLAS runs with its default threads (``--blas-threads`` to set them,
through threadpoolctl); the machine's float32 GEMM rate (2048³) is measured in the same run.

    python benchmarks/bench_step.py                  # all configurations
    python benchmarks/bench_step.py --configs tiny,small --rounds 5 --json out.json

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


N_BATCHES = 20


def data(sizes: list[int], B: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], B).astype(np.int64)
    return X, y


def batches(sizes: list[int], B: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [data(sizes, B, seed) for seed in range(N_BATCHES)]


def layerwise_steps(sizes: list[int], B: int, data_: list[Any]) -> dict[str, Callable[[int], Any]]:
    fit_model, tour_model = lw.mlp(sizes, rng=0), lw.mlp(sizes, rng=0)
    fit_loss, tour_loss = lw.CrossEntropy(), lw.CrossEntropy()
    fit_opt, tour_opt = lw.SGD(lr=LR), lw.SGD(lr=LR)
    params = fit_model.flat_parameters()                # what fit uses
    Ys = [fit_loss.prepare_target(y, sizes[-1], np.float32) for _, y in data_]

    def fit_step(i: int) -> None:
        lw.training.train_step(fit_model, fit_loss, fit_opt, data_[i][0], Ys[i], params)

    def tour_step(i: int) -> None:                      # README: "A tour of the API"
        A = tour_model.forward(data_[i][0], training=True)
        tour_loss.forward(A, Ys[i])
        tour_model.backward(tour_loss.backward(), input_grad=False)
        tour_opt.step(tour_model.parameters())
    return {"layerwise fit": fit_step, "layerwise tour": tour_step}


def numpy_steps(sizes: list[int], B: int, data_: list[Any]) -> dict[str, Callable[[int], Any]]:
    rng = np.random.default_rng(0)
    Ws = [(rng.standard_normal((o, n)) * np.sqrt(2 / n)).astype(np.float32)
          for n, o in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(o, np.float32) for o in sizes[1:]]
    rows = np.arange(B)

    def loop(i: int) -> None:
        X, y = data_[i]
        A = [X]
        for k, (W, b) in enumerate(zip(Ws, bs)):
            Z = A[-1] @ W.T
            Z += b
            if k < len(Ws) - 1:
                np.maximum(Z, 0, out=Z)
            A.append(Z)
        P = A[-1]
        P -= P.max(axis=1, keepdims=True)
        np.exp(P, out=P)
        P /= P.sum(axis=1, keepdims=True)
        P[rows, y] -= 1
        P /= B                                          # dL/dZ of the mean cross-entropy
        dZ = P
        for k in range(len(Ws) - 1, -1, -1):
            dW, db = dZ.T @ A[k], dZ.sum(axis=0)
            dX = None
            if k > 0:
                dX = dZ @ Ws[k]
                dX *= A[k] > 0
            Ws[k] -= LR * dW
            bs[k] -= LR * db
            dZ = dX

    def gemms(i: int) -> None:                          # the products alone: the roofline
        A = [data_[i][0]]
        for W in Ws:
            A.append(A[-1] @ W.T)
        dZ = A[-1]
        for k in range(len(Ws) - 1, -1, -1):
            dZ.T @ A[k]
            if k > 0:
                dZ = dZ @ Ws[k]
    return {"numpy loop": loop, "GEMMs": gemms}


def torch_steps(sizes: list[int], B: int, data_: list[Any]) -> dict[str, Callable[[int], Any]]:
    try:
        import torch
    except ImportError:
        return {}
    out: dict[str, Callable[[int], Any]] = {}
    tensors = [(torch.from_numpy(X), torch.from_numpy(y)) for X, y in data_]
    for threads in (1, 2):
        torch.manual_seed(0)
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        net = torch.nn.Sequential(*layers)
        ce = torch.nn.CrossEntropyLoss()
        opt = torch.optim.SGD(net.parameters(), lr=LR)

        def step(i: int, net: Any = net, ce: Any = ce, opt: Any = opt, t: int = threads) -> None:
            torch.set_num_threads(t)
            opt.zero_grad(set_to_none=True)
            ce(net(tensors[i][0]), tensors[i][1]).backward()
            opt.step()
        out[f"torch {threads}t"] = step
    return out


def jax_steps(sizes: list[int], B: int, data_: list[Any]) -> dict[str, Callable[[int], Any]]:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return {}
    rng = np.random.default_rng(0)
    params = [(jnp.asarray((rng.standard_normal((n, o)) * np.sqrt(2 / n)).astype(np.float32)),
               jnp.zeros(o, jnp.float32)) for n, o in zip(sizes[:-1], sizes[1:])]
    device = [(jnp.asarray(X), jnp.asarray(y)) for X, y in data_]

    def loss_fn(params: Any, X: Any, y: Any) -> Any:
        A = X
        for k, (W, b) in enumerate(params):
            A = A @ W + b
            if k < len(params) - 1:
                A = jax.nn.relu(A)
        logp = jax.nn.log_softmax(A)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def update(params: Any, X: Any, y: Any) -> Any:
        grads = jax.grad(loss_fn)(params, X, y)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)

    state = [params]

    def step(i: int) -> None:
        state[0] = update(state[0], *device[i])
        jax.block_until_ready(state[0])
    return {"jax jit": step}


def interleaved(steps: dict[str, Callable[[int], Any]], rounds: int, seconds: float
                ) -> dict[str, float]:
    """Best seconds per step of each implementation over ``rounds`` rounds; in each round
    every implementation runs whole passes over the batches for about ``seconds``, the
    order rotating from round to round."""
    names = list(steps)
    for name in names:                                  # warm-up: buffers, caches, jit
        for i in range(N_BATCHES):
            steps[name](i)
    best = dict.fromkeys(names, float("inf"))
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            f, n = steps[name], 0
            t0 = time.perf_counter()
            while True:
                for i in range(N_BATCHES):
                    f(i)
                n += N_BATCHES
                if time.perf_counter() - t0 >= seconds:
                    break
            best[name] = min(best[name], (time.perf_counter() - t0) / n)
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
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (best kept)")
    p.add_argument("--seconds", type=float, default=0.2, help="length of one turn")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="NumPy's BLAS threads (0: its default)")
    p.add_argument("--no-sklearn", action="store_true", help="skip MLPClassifier")
    p.add_argument("--json", default=None, help="write results to this JSON file")
    args = p.parse_args(argv)

    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        p.error(f"unknown configs {sorted(unknown)}; choose from {list(CONFIGS)}")
    limits = None
    if args.blas_threads:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(args.blas_threads, user_api="blas")
    gemm = gemm_rate()
    print(f"layerwise {lw.__version__}, numpy {np.__version__}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, BLAS: {blas_info()}")
    print(f"NumPy float32 GEMM (2048³): {gemm / 1e9:.1f} GFLOP/s; {N_BATCHES} rotating "
          f"batches, {args.rounds} interleaved rounds, best round per implementation")
    rows, missing = [], set()
    for name in names:
        sizes, B = CONFIGS[name]
        data_ = batches(sizes, B)
        steps = {**layerwise_steps(sizes, B, data_), **numpy_steps(sizes, B, data_)}
        for peer, make in (("torch", torch_steps), ("jax", jax_steps)):
            more = make(sizes, B, data_)
            if not more:
                missing.add(peer)
            steps.update(more)
        t = interleaved(steps, args.rounds, args.seconds)
        torch_t = min((v for k, v in t.items() if k.startswith("torch")), default=None)
        t_sk = None if args.no_sklearn else bench_sklearn(sizes, B, args.seconds, 3)
        if t_sk is None and not args.no_sklearn:
            missing.add("sklearn")
        us = {k: v * 1e6 for k, v in t.items()}
        lw_t = t["layerwise fit"]
        rows.append({"config": name, "sizes": sizes, "batch": B, "us": us,
                     "torch_best_us": None if torch_t is None else torch_t * 1e6,
                     "sklearn_us": None if t_sk is None else t_sk * 1e6,
                     "layerwise_over_numpy": t["numpy loop"] / lw_t,
                     "roofline_fraction": t["GEMMs"] / lw_t,
                     "tour_over_fit": lw_t / t["layerwise tour"],
                     "vs_torch": None if torch_t is None else torch_t / lw_t,
                     "vs_jax": t["jax jit"] / lw_t if "jax jit" in t else None,
                     "layerwise_gflops": flops_per_step(sizes, B) / lw_t / 1e9})
        print(f"  measured {name}", file=sys.stderr)
    if limits is not None:
        limits.restore_original_limits()

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    head = ["config", "B", "layerwise fit µs", "tour µs", "numpy loop µs", "GEMMs µs",
            "torch µs", "jax µs", "sklearn µs", "of roofline", "numpy/lw", "torch/lw",
            "jax/lw"]
    table = [head]
    for r in rows:
        u = r["us"]
        table.append([r["config"], str(r["batch"]), f"{u['layerwise fit']:.1f}",
                      f"{u['layerwise tour']:.1f}", f"{u['numpy loop']:.1f}",
                      f"{u['GEMMs']:.1f}", f(r["torch_best_us"], ".1f"),
                      f(u.get("jax jit"), ".1f"), f(r["sklearn_us"], ".1f"),
                      f"{r['roofline_fraction']:.2f}", f"{r['layerwise_over_numpy']:.2f}x",
                      f(r["vs_torch"], ".2f") + "x", f(r["vs_jax"], ".2f") + "x"])
    widths = [max(len(row[c]) for row in table) for c in range(len(head))]
    print()
    for row in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    print("(ratios > 1x: layerwise fit is faster; of roofline: GEMMs µs / layerwise fit µs)")
    for peer in sorted(missing):
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
