"""Where one layerwise training step spends its time, part by part.

Runs the same step as ``bench_step.py`` (or MNIST's 784-800-10 with SGD momentum 0.9) and times
each part inside the step, as the step runs it: every layer's forward, the loss forward and
backward, every layer's backward, the gradient norm (the divergence guard) and the optimizer
update (``guarded_step``, as ``train_step`` calls it: the overflow bound, then the
update). Timing in place keeps the cache effects a part has in a real step (the update, for
instance, is twice as slow after the GEMMs have evicted the parameters as in a loop of its own).
The clock calls add about 0.1 µs per part, so the parts sum to slightly more than a step.
For the tiny network that is about 1 µs in 21. The steps rotate through 20 different batches,
as an epoch does and as ``bench_step.py`` times them: one repeated batch would stay in cache and
hide what reading a new batch costs the first layer.

    python benchmarks/profile_step.py tiny
    python benchmarks/profile_step.py mnist --steps 500
    python benchmarks/profile_step.py mnist --numpy-updates    # optimizer without BLAS axpy
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import layerwise as lw
from layerwise import _blas
from layerwise.training import global_norm

CONFIGS = {   # name: (layer sizes, batch, SGD momentum)
    "tiny": ([64, 32, 10], 32, 0.0),
    "small": ([784, 128, 10], 64, 0.0),
    "medium": ([784, 512, 256, 10], 128, 0.0),
    "large": ([2048, 2048, 2048, 2048, 10], 512, 0.0),
    "mnist": ([784, 800, 10], 128, 0.9),
}


N_BATCHES = 20     # different batches the steps rotate through


def profile(sizes: list[int], B: int, opt: lw.Optimizer, steps: int) -> dict[str, float]:
    """Mean microseconds per step for each part, after 20 warm-up steps."""
    rng = np.random.default_rng(0)
    model = lw.mlp(sizes, activation="relu", rng=0)
    loss = lw.CrossEntropy()
    batches = [(rng.random((B, sizes[0]), dtype=np.float32),
                loss.prepare_target(rng.integers(0, sizes[-1], B), sizes[-1], np.float32))
               for _ in range(N_BATCHES)]
    params = model.flat_parameters()
    layers = model.layers
    first = next(i for i, layer in enumerate(layers) if layer.trainable)
    backward = list(range(len(layers) - 1, first - 1, -1))
    names = ([f"forward  {i} {layer!r}" for i, layer in enumerate(layers)]
             + ["loss forward", "loss backward"]
             + [f"backward {i} {layers[i]!r}" for i in backward]
             + ["gradient norm", "optimizer"])
    total = [0.0] * len(names)
    clock = time.perf_counter
    for step in range(steps + 20):
        if step == 20:
            total = [0.0] * len(names)
        X, y = batches[step % N_BATCHES]
        k = 0
        t0 = clock()
        A = X
        for layer in layers:                        # the step of train_step, part by part
            A = layer.forward(A, training=True)
            t1 = clock(); total[k] += t1 - t0; t0 = t1; k += 1  # noqa: E702
        loss.forward(A, y)
        t1 = clock(); total[k] += t1 - t0; t0 = t1; k += 1      # noqa: E702
        dA = loss.backward()
        t1 = clock(); total[k] += t1 - t0; t0 = t1; k += 1      # noqa: E702
        for i in backward:
            layer = layers[i]
            dA = layer.backward(dA, input_grad=False) if i == first else layer.backward(dA)
            t1 = clock(); total[k] += t1 - t0; t0 = t1; k += 1  # noqa: E702
        norm = global_norm(params)
        t1 = clock(); total[k] += t1 - t0; t0 = t1; k += 1      # noqa: E702
        opt.guarded_step(params, norm)                  # as train_step: bound, then update
        t1 = clock(); total[k] += t1 - t0                       # noqa: E702
    return {name: seconds / steps * 1e6 for name, seconds in zip(names, total)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", choices=list(CONFIGS), help="network and batch to profile")
    p.add_argument("--steps", type=int, default=0,
                   help="timed steps (default: about two seconds' worth)")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw", "rmsprop"],
                   help="sgd (default; with the configuration's momentum) or another, at its "
                        "defaults")
    p.add_argument("--numpy-updates", action="store_true",
                   help="run the optimizer's fused updates as NumPy calls instead of BLAS "
                        "axpy/axpby (what a NumPy without bundled OpenBLAS does)")
    args = p.parse_args(argv)
    if args.numpy_updates:
        _blas.MIN_SIZE = 1 << 62
    sizes, B, momentum = CONFIGS[args.config]
    flops = 6 * B * sum(a * b for a, b in zip(sizes, sizes[1:]))
    steps = args.steps or max(20, int(2 / (flops / 4e11 + 2e-5)))    # about 2 s at 400 GFLOP/s
    opt = (lw.SGD(lr=0.01, momentum=momentum) if args.optimizer == "sgd"
           else lw.optimizers.get(args.optimizer, lr=1e-3))
    parts = profile(sizes, B, opt, steps)
    step = sum(parts.values())
    print(f"{args.config}: layers {'-'.join(map(str, sizes))}, batch {B}, {opt!r}, "
          f"float32; {steps} steps; updates through "
          f"{'NumPy' if args.numpy_updates else 'BLAS where available'}")
    width = max(map(len, parts))
    for name, us in parts.items():
        print(f"  {name:<{width}} {us:10.1f} µs  {us / step:6.1%}")
    print(f"  {'sum of the parts':<{width}} {step:10.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
