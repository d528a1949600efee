"""The ``layerwise`` command line.

For now it has one job: ``layerwise`` (or ``python -m layerwise``) trains an MLP on the bundled
UCI digits with a progress bar and reports the test accuracy. ``--version`` prints the version.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    p = argparse.ArgumentParser(
        prog="layerwise",
        description="Train a multilayer perceptron on the bundled UCI digits with explicit "
                    "backpropagation and report its test accuracy.",
        epilog="example:  layerwise --epochs 30 --hidden 128 --lr 3e-3 --seed 0",
    )
    p.add_argument("--version", action="version", version=f"layerwise {__version__}")
    p.add_argument("--hidden", type=int, default=128, help="hidden units (default 128)")
    p.add_argument("--epochs", type=int, default=30, help="passes over the data (default 30)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per step (default 32)")
    p.add_argument("--lr", type=float, default=3e-3,
                   help="Adam learning rate, decayed by a cosine schedule (default 3e-3)")
    p.add_argument("--label-smoothing", type=float, default=0.1,
                   help="cross-entropy label smoothing (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import layerwise as lw

    try:
        Xtr, ytr, Xte, yte = lw.datasets.load_digits()
        mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-6     # standardise with training stats
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
        model = lw.mlp([64, args.hidden, 10], rng=args.seed)
        print(f"digits: {len(Xtr)} training and {len(Xte)} test images, 8×8 pixels, 10 classes")
        model.summary()
        t0 = time.perf_counter()
        model.fit(Xtr, ytr, loss=lw.CrossEntropy(label_smoothing=args.label_smoothing),
                  optimizer=lw.Adam(lr=args.lr), epochs=args.epochs, schedule="cosine",
                  batch_size=args.batch_size, rng=args.seed, verbose=0 if args.quiet else 1)
        seconds = time.perf_counter() - t0
        result = model.evaluate(Xte, yte)
    except lw.LayerwiseError as exc:
        print(f"layerwise: error: {exc}", file=sys.stderr)
        return 2
    print(f"test accuracy {result['accuracy']:.2%}  test loss {result['loss']:.4f}  "
          f"({seconds:.1f}s, {args.epochs * len(Xtr) / seconds:,.0f} samples/s)")
    return 0
