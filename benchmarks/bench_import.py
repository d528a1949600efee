"""Import cost of layerwise against NumPy's, in fresh interpreters, side by side.

Each sample starts a new Python process and times the import inside it with
``time.perf_counter`` (interpreter start-up excluded); the two imports alternate so machine noise
hits both alike. The target is ``import layerwise`` <= 1.3x ``import numpy``.

Both are timed from bytecode, as pip leaves an installed package: NumPy's wheel install compiled
its modules, so layerwise's are compiled first too (``compileall``; an editable install under
PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module on every import).

    python benchmarks/bench_import.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

PROBE = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def sample(module: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE.format(mod=module)], check=True,
                         capture_output=True, text=True).stdout
    return float(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=30, help="samples of each import (default 30)")
    args = p.parse_args(argv)
    import compileall
    import importlib.util
    spec = importlib.util.find_spec("layerwise")
    assert spec is not None and spec.submodule_search_locations
    compileall.compile_dir(spec.submodule_search_locations[0], quiet=1)
    times: dict[str, list[float]] = {"numpy": [], "layerwise": []}
    for _ in range(args.runs):
        for module in times:
            times[module].append(sample(module))
    med = {m: statistics.median(v) for m, v in times.items()}
    for m, v in med.items():
        print(f"import {m:<10} median {v * 1e3:6.1f} ms  (min {min(times[m]) * 1e3:.1f} ms, "
              f"{args.runs} runs)")
    print(f"ratio layerwise / numpy: {med['layerwise'] / med['numpy']:.2f}  (target <= 1.30)")
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys, layerwise; print(sorted(m for m in "
         "('matplotlib', 'sklearn', 'tqdm', 'scipy', 'torch', 'layerwise.cli', "
         "'layerwise.datasets', 'layerwise.training', 'layerwise.io') if m in sys.modules))"],
        check=True, capture_output=True, text=True).stdout.strip()
    print(f"loaded by import layerwise among the optional/lazy modules: {heavy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
