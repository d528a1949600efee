"""Inference paths compared: ``Sequential.infer`` (new arrays, what predict uses) against the
training ``forward`` (layer buffers, unsafe from several threads) and per-thread buffers
(``threading.local``, written here for the comparison).

Rounds interleave the three paths and rotate through four different inputs; the best round is
reported. ``N=10000`` goes through 1024-row chunks as ``predict`` does; ``B=1..256`` is a
serving user's single call. With ``--threads-demo`` it also times 8 threads predicting at once
with ``infer`` against the same calls serialised by a lock (what the estimators did before).

    python benchmarks/bench_infer.py                       # MNIST's 784-800-10, 1 BLAS thread
    python benchmarks/bench_infer.py --sizes 64,128,10     # the digits network
    python benchmarks/bench_infer.py --blas-threads 2 --threads-demo
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import layerwise as lw
from layerwise._utils import buffer
from layerwise.activations import ReLU

_local = threading.local()


def per_thread(model: lw.Sequential, X: np.ndarray) -> np.ndarray:
    """forward's buffered computation with buffers kept per thread (Dense and ReLU only)."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    A = X
    for i, layer in enumerate(model.layers):
        store = bufs.setdefault(i, {})
        if isinstance(layer, lw.Dense):
            Z = buffer(store, "Z", A.shape[0], (layer.n_out,), layer.W.dtype)
            np.dot(A, layer.W.T, out=Z)
            Z += layer.b
            A = Z
        elif isinstance(layer, ReLU):
            out = buffer(store, "A", A.shape[0], A.shape[1:], A.dtype)
            zero = store.get("zero")
            if zero is None:
                zero = store["zero"] = np.zeros(A.shape[1:], A.dtype)
            np.maximum(A, zero, out=out)
            A = out
    return A


PATHS: dict[str, Any] = {
    "infer": lambda m, X: m.infer(X),
    "forward": lambda m, X: m.forward(X, training=False),
    "per_thread": per_thread,
}


def predict(model: lw.Sequential, X: np.ndarray, path: Any, bs: int = 1024) -> np.ndarray:
    out = np.empty((len(X), model.n_out), dtype=model.dtype)
    for s in range(0, len(X), bs):
        out[s:s + bs] = path(model, X[s:s + bs])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="784,800,10")
    ap.add_argument("--blas-threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads-demo", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    model = lw.mlp(sizes, rng=0)
    rng = np.random.default_rng(0)
    print(f"network {sizes}, float32, {args.blas_threads} BLAS thread(s); microseconds per call")
    with threadpool_limits(args.blas_threads, user_api="blas"):
        for N, reps in ((10000, 5), (1, 2000), (8, 1000), (64, 300), (256, 100)):
            Xs = [rng.standard_normal((N, sizes[0])).astype(np.float32) for _ in range(4)]
            ref = predict(model, Xs[0], PATHS["forward"])
            for path in PATHS.values():                      # warm-up, and the same bits
                assert np.array_equal(predict(model, Xs[0], path), ref)
            best = dict.fromkeys(PATHS, np.inf)
            for _ in range(args.rounds):
                for name, path in PATHS.items():
                    t = time.perf_counter()
                    for i in range(reps):
                        predict(model, Xs[i % 4], path)
                    best[name] = min(best[name], (time.perf_counter() - t) / reps)
            print(f"N={N:6d}  " + "  ".join(f"{k} {v * 1e6:10.1f}" for k, v in best.items()))
        if args.threads_demo:
            threads_demo(model, sizes[0], rng)


def threads_demo(model: lw.Sequential, n_in: int, rng: np.random.Generator) -> None:
    """8 threads x 200 predict calls of 64 rows: infer in parallel against a lock."""
    Xs = [rng.standard_normal((64, n_in)).astype(np.float32) for _ in range(1600)]
    lock = threading.Lock()

    def locked(m: lw.Sequential, X: np.ndarray) -> np.ndarray:
        with lock:
            return m.forward(X, training=False).copy()

    for name, path in (("infer, parallel", PATHS["infer"]), ("forward under a lock", locked)):
        def work(t: int, path: Any = path) -> None:
            for i in range(t, len(Xs), 8):
                path(model, Xs[i])
        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        print(f"8 threads x 200 calls of 64 rows, {name}: {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
