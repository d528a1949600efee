"""Time to accuracy on MNIST, layerwise, PyTorch and JAX side by side, with the same recipe.

Recipe (every library): 784-800-10 MLP, ReLU, softmax cross-entropy, SGD with momentum 0.9,
lr 0.1 with cosine decay stepped once per epoch (lr_e = 0.05·(1 + cos(π e / E)): PyTorch's
``CosineAnnealingLR(T_max=E)``, layerwise's ``schedule="cosine"``), batch 128, 20 epochs, float32,
inputs scaled to [0, 1], a fresh seeded shuffle every epoch (each library its own), no label
smoothing. Each library keeps its default weight initialisation (layerwise: He normal; PyTorch:
``nn.Linear``'s uniform ±1/√n_in).

Clocks measure training only. The test set is evaluated after every epoch, but the clock is
paused around that evaluation, so "elapsed" is cumulative training time. layerwise's clock starts
just before its single ``fit`` call (so it includes fit's one-time input checks); PyTorch's
counts its epochs only, with the data already in tensors.

The two libraries take turns, epoch by epoch: at the end of each layerwise epoch a callback
pauses layerwise's clock and runs one PyTorch epoch. On a shared machine the speed of the cores
drifts over tens of seconds, and this way both libraries see the same conditions; running one
after the other let that drift move the ratio by ±30% between runs (``--sequential`` does that).

- layerwise: ONE ``model.fit(..., epochs=E, schedule="cosine", verbose=0)`` call (calling fit per
  epoch would restart the schedule) with a callback that records time and test accuracy at the
  end of every epoch. Its training loop also counts training-batch accuracy; that cost is
  included.
- PyTorch: ``nn.Sequential(Linear, ReLU, Linear)``, ``CrossEntropyLoss``, ``optim.SGD``, no
  DataLoader: each batch indexes the preloaded tensor with a slice of ``torch.randperm``. It runs
  with 1 or 2 threads, whichever finishes one warm-up epoch (on a throwaway model) faster, or
  with ``--torch-threads N`` (one warm-up epoch too), chosen before layerwise starts.
- JAX (when installed): one ``jax.jit``-compiled step (forward, ``jax.grad`` of the mean
  cross-entropy, then torch.optim.SGD's momentum update v ← μv + g, W ← W − ηv) that gathers
  its batch from the data already on the device, so each step is one dispatch. It starts from
  layerwise's initial weights (He normal), shuffles with its own seeded NumPy generator, and
  compiles both batch shapes (full and the short last one) before its clock starts; the
  compile time is printed apart.

    python benchmarks/bench_mnist.py                     # 20 epochs, both libraries
    python benchmarks/bench_mnist.py --json out.json     # also write every number as JSON
    python benchmarks/bench_mnist.py --epochs 5 --skip-torch --skip-jax
    python benchmarks/bench_mnist.py --sequential        # layerwise's 20 epochs, then torch's

PyTorch or JAX missing: skipped with a note. Targets (issue 4): a layerwise epoch takes at most 0.6x
PyTorch's time, and layerwise reaches 98.0% test accuracy in less training time than PyTorch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np

import layerwise as lw

HIDDEN = 800
LR = 0.1
MOMENTUM = 0.9
TARGET_ACC = 0.98
SEED = 0
EPOCH_RATIO_TARGET = 0.6


def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST as float32 in [0, 1] (N, 784) and int64 labels."""
    d = lw.datasets.load("mnist")
    assert d.X_test is not None and d.y_test is not None
    scale = np.float32(1 / 255)
    return (d.X_train * scale, d.y_train.astype(np.int64),
            d.X_test * scale, d.y_test.astype(np.int64))


def first_reaching(accs: list[float], elapsed: list[float], target: float) -> float | None:
    """Training seconds at the end of the first epoch whose test accuracy is >= target."""
    for acc, t in zip(accs, elapsed):
        if acc >= target:
            return t
    return None


# -- layerwise ----------------------------------------------------------------------------------
class EpochClock(lw.Callback):
    """Record cumulative training time and test accuracy after every epoch.

    The clock is paused while the test set is evaluated, and while ``between_epochs`` (PyTorch's
    turn, when interleaved) runs.
    """

    def __init__(self, X_test: np.ndarray, y_test: np.ndarray, t_start: float,
                 between_epochs: Callable[[], None] | None = None) -> None:
        self.X_test, self.y_test = X_test, y_test
        self.t_start = t_start
        self.between_epochs = between_epochs
        self.paused = 0.0                               # seconds not spent training
        self.elapsed: list[float] = []
        self.accuracy: list[float] = []

    def on_epoch_end(self, state: lw.callbacks.TrainState, logs: dict[str, float]) -> None:
        t_pause = time.perf_counter()
        self.elapsed.append(t_pause - self.t_start - self.paused)
        acc = state.model.evaluate(self.X_test, self.y_test)["accuracy"]
        self.accuracy.append(acc)
        print_epoch("layerwise", state.epoch + 1, state.epochs, acc, self.elapsed)
        if self.between_epochs is not None:
            self.between_epochs()
        self.paused += time.perf_counter() - t_pause


def run_layerwise(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, yt: np.ndarray, epochs: int,
                  batch_size: int, between_epochs: Callable[[], None] | None = None
                  ) -> dict[str, Any]:
    model = lw.mlp([X.shape[1], HIDDEN, 10], activation="relu", rng=SEED)
    opt = lw.SGD(lr=LR, momentum=MOMENTUM)
    t_start = time.perf_counter()
    clock = EpochClock(Xt, yt, t_start, between_epochs)
    model.fit(X, y, loss=lw.CrossEntropy(), optimizer=opt, epochs=epochs,
              batch_size=batch_size, schedule="cosine", shuffle=True, rng=SEED,
              callbacks=[clock], verbose=0)
    return {"elapsed": clock.elapsed, "accuracy": clock.accuracy}


# -- PyTorch ------------------------------------------------------------------------------------
class TorchRun:
    """The same recipe in PyTorch, one epoch per ``epoch()`` call, timed by its own clock."""

    def __init__(self, torch: Any, X: np.ndarray, y: np.ndarray, Xt: np.ndarray, yt: np.ndarray,
                 epochs: int, batch_size: int) -> None:
        self.torch, self.epochs, self.batch_size = torch, epochs, batch_size
        self.Xtr, self.ytr = torch.from_numpy(X), torch.from_numpy(y)
        self.Xte, self.yte = torch.from_numpy(Xt), torch.from_numpy(yt)
        self.ce = torch.nn.CrossEntropyLoss()
        self.elapsed: list[float] = []
        self.accuracy: list[float] = []
        self.threads = 0
        self.warmup: dict[int, float] = {}

    def build(self) -> tuple[Any, Any, Any, Any]:
        torch = self.torch
        torch.manual_seed(SEED)
        net = torch.nn.Sequential(torch.nn.Linear(self.Xtr.shape[1], HIDDEN), torch.nn.ReLU(),
                                  torch.nn.Linear(HIDDEN, 10))
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)
        gen = torch.Generator().manual_seed(SEED)
        return net, opt, sched, gen

    def train_epoch(self, net: Any, opt: Any, gen: Any) -> None:
        net.train()
        N, bs = len(self.Xtr), self.batch_size
        order = self.torch.randperm(N, generator=gen)
        for s in range(0, N, bs):
            idx = order[s:s + bs]
            xb, yb = self.Xtr[idx], self.ytr[idx]       # gather from the preloaded tensors
            opt.zero_grad(set_to_none=True)
            self.ce(net(xb), yb).backward()
            opt.step()

    def test_accuracy(self, net: Any) -> float:
        net.eval()
        with self.torch.no_grad():
            return float((net(self.Xte).argmax(dim=1) == self.yte).float().mean())

    def warm_up(self, threads: int | None) -> None:
        """One epoch on a throwaway model per thread count; keep the faster count."""
        for n in (1, 2) if threads is None else (threads,):
            self.torch.set_num_threads(n)
            net, opt, _, gen = self.build()
            t0 = time.perf_counter()
            self.train_epoch(net, opt, gen)
            self.warmup[n] = time.perf_counter() - t0
        self.threads = min(self.warmup, key=lambda n: self.warmup[n])
        self.torch.set_num_threads(self.threads)
        tried = ", ".join(f"{n} thread(s) {t:.2f}s" for n, t in self.warmup.items())
        print(f"torch warm-up epoch: {tried}; using {self.threads} thread(s)")
        self.net, self.opt, self.sched, self.gen = self.build()

    def epoch(self) -> None:
        t0 = time.perf_counter()
        self.train_epoch(self.net, self.opt, self.gen)
        self.sched.step()                               # cosine, stepped per epoch
        took = time.perf_counter() - t0
        self.elapsed.append((self.elapsed[-1] if self.elapsed else 0.0) + took)
        self.accuracy.append(self.test_accuracy(self.net))     # not timed
        print_epoch("torch", len(self.elapsed), self.epochs, self.accuracy[-1], self.elapsed)

    def result(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed, "accuracy": self.accuracy, "threads": self.threads,
                "warmup_seconds": {str(k): v for k, v in self.warmup.items()},
                "version": self.torch.__version__}


# -- JAX ----------------------------------------------------------------------------------------
class JaxRun:
    """The same recipe in JAX, one epoch per ``epoch()`` call, timed by its own clock."""

    def __init__(self, X: np.ndarray, y: np.ndarray, Xt: np.ndarray, yt: np.ndarray,
                 epochs: int, batch_size: int) -> None:
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp, self.epochs, self.batch_size = jax, jnp, epochs, batch_size
        self.N = len(X)
        self.Xtr, self.ytr = jax.device_put(X), jax.device_put(y.astype(np.int32))
        self.Xte, self.yte = jax.device_put(Xt), yt
        start = lw.mlp([X.shape[1], HIDDEN, 10], activation="relu", rng=SEED)
        dense = [layer for layer in start.layers if isinstance(layer, lw.Dense)]
        # layerwise's initial weights, as (n_in, n_out) matrices for A @ W + b
        self.params = [(jnp.asarray(d.W.T.copy()), jnp.asarray(d.b.copy())) for d in dense]
        self.velocity = jax.tree_util.tree_map(jnp.zeros_like, self.params)
        self.gen = np.random.default_rng(SEED)
        self.elapsed: list[float] = []
        self.accuracy: list[float] = []

        def loss_fn(params: Any, Xb: Any, yb: Any) -> Any:
            (W1, b1), (W2, b2) = params
            Z = jax.nn.relu(Xb @ W1 + b1) @ W2 + b2
            logp = jax.nn.log_softmax(Z)
            return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

        def step(params: Any, velocity: Any, idx: Any, lr: Any) -> Any:
            Xb, yb = jnp.take(self.Xtr, idx, axis=0), jnp.take(self.ytr, idx, axis=0)
            g = jax.grad(loss_fn)(params, Xb, yb)
            velocity = jax.tree_util.tree_map(lambda v, g: MOMENTUM * v + g, velocity, g)
            params = jax.tree_util.tree_map(lambda p, v: p - lr * v, params, velocity)
            return params, velocity

        self.step = jax.jit(step)
        self.predict = jax.jit(lambda params, X: jnp.argmax(
            jax.nn.relu(X @ params[0][0] + params[0][1]) @ params[1][0] + params[1][1], axis=1))
        t0 = time.perf_counter()                        # compile both batch shapes, untimed
        shapes = {min(batch_size, self.N), self.N % batch_size or min(batch_size, self.N)}
        for n in sorted(shapes):
            idx = jnp.arange(n, dtype=jnp.int32)
            jax.block_until_ready(self.step(self.params, self.velocity, idx, jnp.float32(LR)))
        jax.block_until_ready(self.predict(self.params, self.Xte))
        self.compile_seconds = time.perf_counter() - t0
        print(f"jax {jax.__version__}: compiled the step for batches of {sorted(shapes)} rows "
              f"in {self.compile_seconds:.2f}s (not counted)")

    def epoch(self) -> None:
        jnp, e = self.jnp, len(self.elapsed)
        lr = jnp.float32(0.5 * LR * (1 + np.cos(np.pi * e / self.epochs)))   # cosine per epoch
        t0 = time.perf_counter()
        order = self.gen.permutation(self.N).astype(np.int32)
        params, velocity = self.params, self.velocity
        for s in range(0, self.N, self.batch_size):
            params, velocity = self.step(params, velocity, order[s:s + self.batch_size], lr)
        self.jax.block_until_ready(params)
        self.params, self.velocity = params, velocity
        took = time.perf_counter() - t0
        self.elapsed.append((self.elapsed[-1] if self.elapsed else 0.0) + took)
        pred = np.asarray(self.predict(self.params, self.Xte))                  # not timed
        self.accuracy.append(float(np.mean(pred == self.yte)))
        print_epoch("jax", len(self.elapsed), self.epochs, self.accuracy[-1], self.elapsed)

    def result(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed, "accuracy": self.accuracy,
                "compile_seconds": self.compile_seconds, "version": self.jax.__version__}


# -- reporting ----------------------------------------------------------------------------------
def print_epoch(name: str, epoch: int, epochs: int, acc: float, elapsed: list[float]) -> None:
    took = elapsed[-1] - (elapsed[-2] if len(elapsed) > 1 else 0.0)
    print(f"{name:>9}  epoch {epoch:>2}/{epochs}  test acc {acc:.4f}  epoch {took:6.2f}s  "
          f"elapsed {elapsed[-1]:7.2f}s", flush=True)


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    el = res["elapsed"]
    per_epoch = [b - a for a, b in zip([0.0, *el[:-1]], el)]
    return {"epoch_seconds": per_epoch, "mean_epoch_seconds": statistics.fmean(per_epoch),
            "total_seconds": el[-1], "final_accuracy": res["accuracy"][-1],
            "seconds_to_target": first_reaching(res["accuracy"], el, TARGET_ACC)}


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
        info = [f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} "
                f"threads={d.get('num_threads')}" for d in threadpool_info()
                if d.get("user_api") == "blas"]
        return "; ".join(info)
    except ImportError:
        return "unknown (install threadpoolctl to report it)"


def optional_peer(name: str, skip: bool, notes: list[str]) -> Any:
    """The peer's module, or None with a note when it was skipped or is not installed."""
    if skip:
        notes.append(f"{name} was skipped (--skip-{name}).")
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        notes.append(f"{name} is not installed, so it was skipped.")
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=20, help="passes over the data (default 20)")
    p.add_argument("--batch-size", type=int, default=128, help="samples per step (default 128)")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="PyTorch threads (default: the faster of 1 and 2 on a warm-up epoch)")
    p.add_argument("--skip-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--skip-jax", action="store_true", help="leave JAX out")
    p.add_argument("--sequential", action="store_true",
                   help="run all of layerwise's epochs, then all of PyTorch's (default: take "
                        "turns epoch by epoch, so both see the same machine conditions)")
    p.add_argument("--json", default=None, help="write results to this JSON file")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch-size must be positive")
    if args.torch_threads is not None and args.torch_threads < 1:
        p.error("--torch-threads must be positive")

    X, y, Xt, yt = load_mnist()
    blas = blas_info()
    print(f"layerwise {lw.__version__}, numpy {np.__version__}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, BLAS: {blas}")
    print(f"MNIST {len(X)} train / {len(Xt)} test; {X.shape[1]}-{HIDDEN}-10 ReLU, SGD lr {LR} "
          f"momentum {MOMENTUM}, cosine per epoch, batch {args.batch_size}, "
          f"{args.epochs} epochs, float32")
    print("times are training only: the clock is paused while the test set is evaluated")
    load = os.getloadavg()
    print(f"load average before the run: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min); other "
          "work on these cores slows both libraries' 2-thread BLAS/OpenMP sharply")
    print()

    notes: list[str] = []
    torch_run = None
    torch = optional_peer("torch", args.skip_torch, notes)
    if torch is not None:
        torch_run = TorchRun(torch, X, y, Xt, yt, args.epochs, args.batch_size)
        torch_run.warm_up(args.torch_threads)
        print()
    jax_run = None
    if optional_peer("jax", args.skip_jax, notes) is not None:
        jax_run = JaxRun(X, y, Xt, yt, args.epochs, args.batch_size)
        print()
    peers = [r for r in (torch_run, jax_run) if r is not None]
    interleave = bool(peers) and not args.sequential

    def peers_epoch() -> None:
        for r in peers:
            r.epoch()
    lw_res = run_layerwise(X, y, Xt, yt, args.epochs, args.batch_size,
                           between_epochs=peers_epoch if interleave else None)
    lw_sum = summarize(lw_res)
    if peers and not interleave:
        for r in peers:
            print()
            for _ in range(args.epochs):
                r.epoch()
    torch_res = None if torch_run is None else torch_run.result()
    t_sum = None if torch_res is None else summarize(torch_res)
    jax_res = None if jax_run is None else jax_run.result()
    j_sum = None if jax_res is None else summarize(jax_res)

    def secs(v: float | None) -> str:
        return "not reached" if v is None else f"{v:.2f}s"

    print()
    print(f"{'':>22}{'layerwise':>14}{'torch':>14}{'jax':>14}")
    rows = [("mean epoch (s)", "mean_epoch_seconds", "{:.3f}"),
            ("total training (s)", "total_seconds", "{:.2f}"),
            ("final test accuracy", "final_accuracy", "{:.4f}")]
    for label, key, fmt in rows:
        cells = ["-" if d is None else fmt.format(d[key]) for d in (lw_sum, t_sum, j_sum)]
        print(f"{label:>22}" + "".join(f"{c:>14}" for c in cells))
    cells = ["-" if d is None else secs(d["seconds_to_target"]) for d in (lw_sum, t_sum, j_sum)]
    print(f"{f'time to {TARGET_ACC:.1%}':>22}" + "".join(f"{c:>14}" for c in cells))
    if torch_res is not None:
        print(f"{'torch threads':>22}{'':>14}{torch_res['threads']:>14}")

    ratio = None
    targets: dict[str, bool | None] = {}
    if t_sum is not None:
        ratio = lw_sum["mean_epoch_seconds"] / t_sum["mean_epoch_seconds"]
        lw_t, t_t = lw_sum["seconds_to_target"], t_sum["seconds_to_target"]
        targets["epoch_time"] = ratio <= EPOCH_RATIO_TARGET
        targets["time_to_target"] = lw_t is not None and (t_t is None or lw_t < t_t)
        pairs = [a / b for a, b in zip(lw_sum["epoch_seconds"], t_sum["epoch_seconds"])]
        print()
        print(f"epoch time layerwise/torch: {ratio:.2f}x (target <= {EPOCH_RATIO_TARGET}x: "
              f"{'met' if targets['epoch_time'] else 'MISSED'}); epoch by epoch: median "
              f"{statistics.median(pairs):.2f}x, from {min(pairs):.2f}x to {max(pairs):.2f}x")
        print(f"{TARGET_ACC:.1%} reached sooner by layerwise: {secs(lw_t)} vs {secs(t_t)} "
              f"({'met' if targets['time_to_target'] else 'MISSED'})")
    jax_ratio = None
    if j_sum is not None:
        jax_ratio = lw_sum["mean_epoch_seconds"] / j_sum["mean_epoch_seconds"]
        lw_t, j_t = lw_sum["seconds_to_target"], j_sum["seconds_to_target"]
        targets["epoch_time_vs_jax"] = jax_ratio <= 1.0
        targets["time_to_target_vs_jax"] = lw_t is not None and (j_t is None or lw_t < j_t)
        pairs = [a / b for a, b in zip(lw_sum["epoch_seconds"], j_sum["epoch_seconds"])]
        print(f"epoch time layerwise/jax: {jax_ratio:.2f}x; epoch by epoch: median "
              f"{statistics.median(pairs):.2f}x, from {min(pairs):.2f}x to {max(pairs):.2f}x")
        print(f"{TARGET_ACC:.1%} reached: layerwise {secs(lw_t)}, jax {secs(j_t)}")
    for note in notes:
        print(f"note: {note}")

    if args.json:
        result = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "processor": platform.processor(), "python": platform.python_version(),
                        "numpy": np.__version__, "blas": blas, "loadavg_before": load,
                        "torch": None if torch_res is None else torch_res["version"]},
            "command": " ".join(["python", *sys.argv]),
            "recipe": {"sizes": [X.shape[1], HIDDEN, 10], "lr": LR, "momentum": MOMENTUM,
                       "schedule": "cosine per epoch", "batch_size": args.batch_size,
                       "epochs": args.epochs, "dtype": "float32", "seed": SEED,
                       "target_accuracy": TARGET_ACC},
            "layerwise": {**lw_res, **lw_sum, "version": lw.__version__},
            "torch": None if torch_res is None else {**torch_res, **(t_sum or {})},
            "jax": None if jax_res is None else {**jax_res, **(j_sum or {})},
            "epoch_ratio_layerwise_over_torch": ratio,
            "epoch_ratio_layerwise_over_jax": jax_ratio,
            "interleaved": interleave,
            "targets_met": targets, "notes": notes,
        }
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
