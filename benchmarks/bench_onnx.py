"""Predict throughput: layerwise ``model.predict`` against ONNX Runtime running the exported
model, with the plain NumPy forward pass beside them, on the MNIST network (784-800-10 with
image scaling in front, what ``layerwise train mnist --layers 800`` builds), one thread each.

Rounds alternate the three paths and rotate through four different inputs; each round times
``--calls`` calls per path, and the median round is reported, as µs per call and rows per
second. Weights are random (He init): the time does not depend on their values, and the run
needs no MNIST download. The outputs are checked to agree first (1e-5 relative).

    python benchmarks/bench_onnx.py                        # batches 1, 64, 1000
    python benchmarks/bench_onnx.py --sizes 64,128,10 --batches 1,1000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits

import layerwise as lw


def numpy_forward(W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """The textbook forward pass written out: A = max(X/255 @ W1.T + b1, 0) @ W2.T + b2."""
    def run(X: np.ndarray) -> np.ndarray:
        A = np.maximum((X / np.float32(255)) @ W1.T + b1, 0)
        return A @ W2.T + b2
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="784,800,10")
    ap.add_argument("--batches", default="1,64,1000")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--calls", type=int, default=0,
                    help="calls per round and path (default: about 20 ms of work)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    net = lw.mlp(sizes, rng=0)
    scaler = lw.Standardize(np.zeros(sizes[0]), np.full(sizes[0], 255.0), method="image")
    model = lw.Sequential([scaler, *net.layers])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.to_onnx().SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
    dense = [layer for layer in model.layers if isinstance(layer, lw.Dense)]
    plain = numpy_forward(dense[0].W, dense[0].b, dense[-1].W, dense[-1].b) \
        if len(dense) == 2 else None
    paths: dict[str, Callable[[np.ndarray], Any]] = {
        "layerwise predict": lambda X: model.predict(X, threads=1),
        "onnxruntime": lambda X: sess.run(["output"], {"X": X})[0],
    }
    if plain is not None:
        paths["numpy (plain loop)"] = plain
    rng = np.random.default_rng(0)
    print(f"network {sizes} (+ image scaling), float32, one thread each (BLAS and ONNX Runtime "
          f"intra_op_num_threads=1); onnxruntime {ort.__version__}, numpy {np.__version__}, "
          f"layerwise {lw.__version__}; median of {args.rounds} interleaved rounds")
    print(f"{'batch':>6}  {'path':<20}{'µs/call':>12}{'rows/s':>14}{'vs layerwise':>14}")
    with threadpool_limits(1, user_api="blas"):
        for B in (int(b) for b in args.batches.split(",")):
            inputs = [rng.integers(0, 256, (B, sizes[0])).astype(np.float32) for _ in range(4)]
            ref = model.predict(inputs[0])
            for name, fn in paths.items():                  # the same numbers, and warm-up
                out = np.asarray(fn(inputs[0]))
                err = np.max(np.abs(out - ref)) / np.max(np.abs(ref))
                assert err <= 1e-5, f"{name} differs from predict by {err:.2e}"
            calls = args.calls or max(1, int(0.02 / max(_once(paths, inputs[0]), 1e-7)))
            times: dict[str, list[float]] = {name: [] for name in paths}
            for r in range(args.rounds):
                order = list(paths) if r % 2 == 0 else list(reversed(paths))   # alternate
                for name in order:
                    fn = paths[name]
                    t0 = time.perf_counter()
                    for c in range(calls):
                        fn(inputs[(r + c) % 4])
                    times[name].append((time.perf_counter() - t0) / calls)
            base = statistics.median(times["layerwise predict"])
            for name, ts in times.items():
                t = statistics.median(ts)
                print(f"{B:>6}  {name:<20}{t * 1e6:>12,.1f}{B / t:>14,.0f}{base / t:>13.2f}x")


def _once(paths: dict[str, Callable[[np.ndarray], Any]], X: np.ndarray) -> float:
    """The slowest path's time for one call (sets the calls per round)."""
    worst = 0.0
    for fn in paths.values():
        t0 = time.perf_counter()
        fn(X)
        worst = max(worst, time.perf_counter() - t0)
    return worst


if __name__ == "__main__":
    main()
