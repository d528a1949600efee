"""How layerwise uses BLAS beyond ``np.dot``: fused vector updates and thread counts.

Fused in-place vector updates, ``y ← a·x + b·y``, go through the BLAS NumPy has already loaded.

NumPy has no fused multiply-add over arrays: ``W −= η·v`` costs two passes (η·v into a scratch
buffer, then the subtraction), each streaming the whole parameter buffer through memory. BLAS's
``axpy`` and ``axpby`` do it in one pass, on OpenBLAS's threads (BENCHMARKS.md measures the
gain with ``benchmarks/profile_step.py``).

The library called is the OpenBLAS that NumPy's own wheels bundle, opened from the same file, so
the loader hands back the instance NumPy already uses: one thread pool, which ``threadpoolctl``
limits as usual. A second BLAS (SciPy's, say) would bring its own pool and fight NumPy's for the
cores. When no bundled OpenBLAS is found (NumPy built against MKL, Accelerate or a system BLAS),
or for small arrays where a foreign call costs more than it saves, the same updates run as
NumPy calls. The two paths agree up to rounding: BLAS may fuse a·x + y into one FMA.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

#: arrays shorter than this take the NumPy path: below it the ctypes call (about 2 µs) costs
#: more than the pass it saves, since such arrays sit in cache.
MIN_SIZE = 1 << 15

_UNLOADED: Any = object()
_funcs: Any = _UNLOADED    # {(routine, dtype): ctypes function}, or None when unavailable


def _candidates() -> list[str]:
    """OpenBLAS files shipped inside the installed NumPy (wheels: numpy.libs, numpy/.dylibs)."""
    import glob  # only needed once, on first use

    root = os.path.dirname(np.__file__)
    found: list[str] = []
    for folder in (root + ".libs", os.path.join(root, ".dylibs"), root):
        found += sorted(glob.glob(os.path.join(folder, "*openblas*")))
    return [f for f in found if f.endswith((".so", ".dylib", ".dll")) or ".so." in f]


def _bind(lib: Any, name: str, int_t: Any, real_t: Any, scaled_y: bool) -> Any:
    fn = getattr(lib, name)
    fn.restype = None
    # cblas_?axpy(n, a, x, incx, y, incy); cblas_?axpby(n, a, x, incx, b, y, incy)
    fn.argtypes = ([int_t, real_t, ctypes.c_void_p, int_t]
                   + ([real_t] if scaled_y else []) + [ctypes.c_void_p, int_t])
    return fn


def _load() -> Any:
    """Find axpy/axpby for float32 and float64, check them on a small case, or give None."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, int_t in (("scipy_cblas_", "64_", ctypes.c_int64),
                                      ("cblas_", "64_", ctypes.c_int64),
                                      ("scipy_cblas_", "", ctypes.c_int),
                                      ("cblas_", "", ctypes.c_int)):
            try:
                funcs = {
                    (routine, np.dtype(dt)): _bind(lib, f"{prefix}{ch}{routine}{suffix}", int_t,
                                                   real_t, routine == "axpby")
                    for routine in ("axpy", "axpby")
                    for ch, dt, real_t in (("s", np.float32, ctypes.c_float),
                                           ("d", np.float64, ctypes.c_double))
                }
            except AttributeError:
                continue
            if _works(funcs):
                return funcs
    return None


def _works(funcs: Any) -> bool:
    """A wrong integer width or calling convention shows up here rather than in training."""
    for dt in (np.float32, np.float64):
        x = np.arange(1, 6, dtype=dt)
        y = np.full(5, 2, dtype=dt)
        funcs["axpby", np.dtype(dt)](5, 3.0, x.ctypes.data, 1, 0.5, y.ctypes.data, 1)
        funcs["axpy", np.dtype(dt)](5, -1.0, x.ctypes.data, 1, y.ctypes.data, 1)
        if not np.array_equal(y, 2 * x + 1):              # (3x + 0.5·2) − x
            return False
    return True


def _blas(routine: str, x: np.ndarray, y: np.ndarray) -> Any:
    """The BLAS routine for these arrays, or None to use NumPy."""
    global _funcs
    if (y.size < MIN_SIZE or x.dtype != y.dtype or x.shape != y.shape
            or not (x.flags.c_contiguous and y.flags.c_contiguous and y.flags.writeable)):
        return None
    if _funcs is _UNLOADED:
        _funcs = _load()
    return None if _funcs is None else _funcs.get((routine, y.dtype))


def axpy(a: float, x: np.ndarray, y: np.ndarray, tmp: np.ndarray) -> None:
    """y ← a·x + y, in place. ``tmp`` (shaped like y) is scratch for the NumPy path."""
    fn = _blas("axpy", x, y)
    if fn is not None:
        fn(y.size, a, x.ctypes.data, 1, y.ctypes.data, 1)
        return
    np.multiply(x, a, out=tmp)
    y += tmp


def axpby(a: float, x: np.ndarray, b: float, y: np.ndarray, tmp: np.ndarray) -> None:
    """y ← a·x + b·y, in place. ``tmp`` (shaped like y) is scratch for the NumPy path; it may
    be ``x`` itself when x is not needed afterwards (x is then overwritten by a·x)."""
    fn = _blas("axpby", x, y)
    if fn is not None:
        fn(y.size, a, x.ctypes.data, 1, b, y.ctypes.data, 1)
        return
    if b != 1:
        y *= b
    if a == 1:
        y += x
    else:
        np.multiply(x, a, out=tmp)
        y += tmp


# -- threads ------------------------------------------------------------------------------------
#: Below this many multiply-adds per batch (B·Σ n_in·n_out), a second BLAS thread costs more than
#: it saves, and on a busy machine it can make every step wait milliseconds for a core (digits
#: trained 17x slower with another process on the second core): small networks train and
#: predict with one BLAS thread.
SMALL_MACS = 1 << 22
_controller: Any = None
# The limit is process-wide (it sets the BLAS library's thread count) while threadpoolctl
# restores, on exit, the count it saw on entry. Overlapping limits from several threads would
# then leave one thread for good (A in, B in and sees A's 1, A out, B out restores 1), so one
# thread at a time holds the limit; others run under it while it lasts.
_limit_held = threading.Lock()


# -- the thread count chosen by timing real steps -----------------------------------------------
#: the largest thread count ``threads=`` accepts (a typo guard; OpenBLAS caps it at its own
#: build limit anyway)
MAX_THREADS = 1024
#: steps timed per candidate when measuring, after one untimed warm-up step each
PROBE_STEPS = 5
#: steps between drift checks of the chosen setting, and drift checks between re-measurements
WINDOW, RECHECK = 100, 10
#: a window's mean step time this far (relative) from the first window's after the decision
#: triggers a re-measure
DRIFT = 0.3
#: from the second pair of timed steps on, all threads this many times slower than one (by
#: mean) ends the measurement at once: on a busy machine each such step can cost ten one-thread
#: steps. (Not the other way round: a one-thread step costs at most a few several-thread ones,
#: and a mostly fast several-thread count needs all its samples to show its slow steps.)
EARLY = 2.0
#: several threads are kept only when at least this much faster than one (fewer threads is
#: kinder to a shared machine, and the two are then within 1.05x anyway)
MARGIN = 0.95
#: runs too short to complete one measurement keep the rule. Any longer run measures: at worst
#: the measurement runs half its steps with the slower count, where a blind guess could run
#: them all so (two threads on a busy 2-core machine: 10x slower per step)
MIN_STEPS = 2 * (1 + PROBE_STEPS)


def check_threads(threads: Any, name: str = "threads") -> int | None:
    """``threads`` validated: a positive int, or None for "auto" (None or the string)."""
    if threads is None or (isinstance(threads, str) and threads.strip().lower() == "auto"):
        return None
    if isinstance(threads, str) and threads.strip().isdigit():
        threads = int(threads)
    if isinstance(threads, (int, np.integer)) and not isinstance(threads, bool) \
            and 1 <= threads <= MAX_THREADS:
        return int(threads)
    from .errors import ValidationError
    raise ValidationError(
        f"{name} must be 'auto' (time one and all BLAS threads on the first steps and keep the "
        f"faster) or a thread count from 1 to {MAX_THREADS}; received {threads!r}."
    )


def is_small(macs: int) -> bool:
    """At most SMALL_MACS multiply-adds per batch (``model.macs() * batch``): one BLAS thread,
    whatever the machine."""
    return macs <= SMALL_MACS


_libs: list[Any] | None = None
_fits, _fits_guard = 0, threading.Lock()    # fits running (any thread): predicts defer to them
_holder_fit = False                         # whether a fit holds _limit_held (else a predict)


_libs_seen = -1                 # len(sys.modules) when _libs was listed


def _libraries() -> list[Any]:
    """threadpoolctl's controllers of the loaded BLAS libraries ([] without threadpoolctl):
    set_num_threads and num_threads are one foreign call each. Listing them takes
    milliseconds, so it is redone only after new imports (scipy brings its own OpenBLAS)."""
    global _controller, _libs, _libs_seen
    if _libs is None or len(sys.modules) != _libs_seen:
        _libs_seen = len(sys.modules)
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
        except ImportError:
            _libs = []
            return _libs
        _controller = ThreadpoolController()
        _libs = list(_controller.select(user_api="blas").lib_controllers)
    return _libs


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


class Threads:
    """The BLAS thread count of one ``fit`` or ``predict``: forced, or chosen by timing.

    ``setting`` None ("auto"): a small model (``is_small``) and a short run keep the rule (one
    thread when small, else the library's count); otherwise the first steps alternate between
    one thread and all of them (one untimed warm-up step each, then PROBE_STEPS timed ones,
    interleaved so a change of load hits both alike), and the faster by mean step time is kept
    (one thread at once when all are more than EARLY times slower, after two pairs). Means,
    not medians: on a busy machine the several-thread steps are mostly fast and now and then
    ten times slower, when a thread waits for a core, and the mean is what an epoch costs.
    The first WINDOW steps after the decision give the chosen count's baseline; every later
    window's mean is compared with it: a drift beyond DRIFT, or RECHECK windows without one,
    measures again. The measured steps are real steps of the run. ``clock`` is injectable so
    the decisions can be tested without timing anything.

    The count is process-wide (it is the BLAS library's), so one Threads at a time holds it:
    the first to enter sets it and restores the count it found when it leaves; one entered
    meanwhile changes nothing and runs under it. Fits (``fit=True``) come first: while any fit
    runs, a predict takes no hold; a fit entering while a predict holds the count waits for
    that one call to end; a fit entering under another fit's count runs under it and takes
    the count over at its first step after that fit ends.
    """

    def __init__(self, setting: int | None, small: bool, steps: int,
                 clock: Callable[[], float] = time.perf_counter, fit: bool = True) -> None:
        self.setting, self.small, self.steps_planned, self.clock = setting, small, steps, clock
        self.fit = fit
        self.current = 0            # the count in force (0 before entering)
        self.all = 0                # the library's count on entry: "all threads"
        self.auto = False           # measuring and re-measuring
        self.reason = ""
        self.choices: list[dict[str, Any]] = []     # every measurement and what it chose
        self.step = 0
        self.plan: list[int] = []                   # counts for the probe steps still to run
        self.warm: list[bool] = []
        self.samples: dict[int, list[float]] = {}
        self.window: list[float] = []
        self.windows = 0
        self.settled = 0.0          # baseline seconds per step of the chosen count (0: not yet)
        self.why = "start"
        self._libs: list[Any] = []
        self._held = self._waiting = False
        self._entry: list[int] = []
        self._loaded: dict[str, Any] | None = None

    # -- entering and leaving -------------------------------------------------------------------
    def __enter__(self) -> Threads:
        global _fits
        libs = _libraries()
        if self.fit:
            with _fits_guard:
                _fits += 1
        self._waiting = bool(libs) and self.fit
        if not libs:
            self.current, self.reason = 0, "no threadpoolctl"      # 0: not controlled
        elif not self._take():              # another call holds the process-wide count
            self.current = max(lib.num_threads for lib in libs)
            self.reason = "held elsewhere"
        return self

    def _take(self) -> bool:
        """Hold the process-wide count if no other call does, and apply the setting. A fit
        tries again before every step until it succeeds."""
        global _holder_fit
        if not self.fit and _fits:
            return False
        got = _limit_held.acquire(blocking=False)
        # a fit waits out a predict's hold (one predict call: predicts take no new hold while
        # a fit runs); under another fit's hold it runs on and tries again at each step
        while not got and self.fit and not _holder_fit:
            got = _limit_held.acquire(timeout=0.01)
        if not got:
            return False
        self._held, self._waiting = True, False
        _holder_fit = self.fit
        self._libs = libs = _libraries()
        self._entry = [lib.num_threads for lib in libs]
        self.all = max(self._entry, default=1)
        if self.setting is not None:
            self.reason = "forced"
            self._set(self.setting)
        elif self.small:
            self.reason = "small model"
            self._set(1)
        elif self.all == 1:
            self.reason = "one thread available"
            self._set(1)
        elif self.steps_planned < MIN_STEPS:
            self.reason = "too few steps to measure"
            self._set(self.all)
        else:
            self.reason, self.auto = "measured", True
            self._set(self.all)
            self._measure("start")
        if self._loaded is not None:        # resuming: continue the checkpoint's choice
            self._apply_state(self._loaded)
        return True

    def __exit__(self, *exc: Any) -> None:
        global _fits
        if self.fit:
            with _fits_guard:
                _fits -= 1
        self._waiting = False
        if not self._held:
            return
        try:
            for lib, n in zip(self._libs, self._entry):
                lib.set_num_threads(n)
        finally:
            self._held, _holder_fit = False, False
            _limit_held.release()

    def _set(self, n: int) -> None:
        for lib in self._libs:
            lib.set_num_threads(n)
        self.current = n

    # -- around each step (the hot path: two clock reads and a few comparisons) -------------------
    def start_step(self) -> float:
        if self._waiting:
            self._take()
        if self.plan and self.plan[0] != self.current:
            self._set(self.plan[0])
        return self.clock()

    def end_step(self, t0: float) -> None:
        self.step += 1
        if not self.auto:
            return
        dt = self.clock() - t0
        if self.plan:
            n, warm = self.plan.pop(0), self.warm.pop(0)
            if not warm:
                self.samples[n].append(dt)
                one, many = self.samples[1], self.samples[self.all]
                if len(one) == len(many) >= 2:
                    a, b = _mean(one), _mean(many)
                    if b > EARLY * a:           # all threads are clearly slower: stop now
                        self.plan.clear()
                        self.warm.clear()
            if not self.plan:
                self._decide()
            return
        self.window.append(dt)
        if len(self.window) >= WINDOW:
            mean = _mean(self.window)
            self.window.clear()
            self.windows += 1
            if not self.settled:                # the first window: the baseline
                self.settled = mean
            elif abs(mean / self.settled - 1) > DRIFT:
                self._measure("drift")
            elif self.windows >= RECHECK:
                self._measure("periodic")

    def _measure(self, why: str) -> None:
        """Plan the next steps: a warm-up step with each count, then PROBE_STEPS timed each."""
        first = [self.current, 1 if self.current != 1 else self.all]
        self.plan = first + first * PROBE_STEPS
        self.warm = [True, True] + [False] * (2 * PROBE_STEPS)
        self.samples = {1: [], self.all: []}
        self.why = why

    def _decide(self) -> None:
        one, many = _mean(self.samples[1]), _mean(self.samples[self.all])
        n = self.all if many < MARGIN * one else 1
        self._set(n)
        self.settled = 0.0                      # set by the first window from here
        self.window.clear()
        self.windows = 0
        self.choices.append({"step": self.step, "reason": self.why, "threads": n,
                             "us_per_step": {"1": round(one * 1e6, 1),
                                             str(self.all): round(many * 1e6, 1)}})

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON state: the setting, the count in force, and where the measuring stands."""
        return {"setting": self.setting, "current": self.current, "all": self.all,
                "auto": self.auto, "reason": self.reason, "step": self.step,
                "plan": list(self.plan), "warm": list(self.warm),
                "samples": {str(k): list(v) for k, v in self.samples.items()},
                "window": list(self.window), "windows": self.windows, "settled": self.settled,
                "why": self.why, "choices": self.choices}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take a checkpoint's state (checked here; applied on entering). A resumed fit with
        threads="auto" continues the checkpoint's setting, a forced one included; a fit given
        a thread count keeps it."""
        def count(v: Any) -> int:
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_THREADS:
                raise ValueError(f"thread counts must be integers in [1, {MAX_THREADS}]; "
                                 f"found {v!r}")
            return v

        def seconds(xs: Any) -> list[float]:
            if not isinstance(xs, list) or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 1e9
                    for x in xs):
                raise ValueError("step times must be lists of non-negative numbers")
            return [float(x) for x in xs]

        if not isinstance(state, dict):
            raise ValueError("threads must be an object")
        setting = state.get("setting")
        checked: dict[str, Any] = {
            "setting": None if setting is None else count(setting),
            "current": count(state.get("current")), "all": count(state.get("all")),
            "auto": bool(state.get("auto")), "reason": str(state.get("reason", "")),
            "step": int(state.get("step", 0)),
            "plan": [count(v) for v in state.get("plan", [])],
            "warm": [bool(v) for v in state.get("warm", [])],
            "samples": {count(int(k)): seconds(v)
                        for k, v in dict(state.get("samples", {})).items()},
            "window": seconds(state.get("window", [])), "windows": int(state.get("windows", 0)),
            "settled": seconds([state.get("settled", 0.0)])[0],
            "why": str(state.get("why", "start")), "choices": list(state.get("choices", [])),
        }
        if len(checked["plan"]) != len(checked["warm"]):
            raise ValueError("the thread measurement state is inconsistent")
        self._loaded = checked

    def _apply_state(self, s: dict[str, Any]) -> None:
        self.choices[:] = s["choices"]
        self.step = s["step"]
        if self.setting is not None:        # a count given to this fit wins
            return
        if s["setting"] is not None or not s["auto"]:
            self.setting, self.plan, self.warm = s["setting"], [], []
            self.auto, self.reason = False, "resumed" if s["setting"] is None else "forced"
            self._set(s["current"])
            return
        if s["all"] != self.all:            # another machine or limit: measure afresh
            self.auto, self.reason = True, "measured"
            self._measure("resumed")
            return
        self.auto, self.reason, self.why = True, "measured", s["why"]
        self.plan, self.warm, self.samples = s["plan"], s["warm"], s["samples"]
        self.window, self.windows, self.settled = s["window"], s["windows"], s["settled"]
        self._set(s["current"])


def threads_for(macs: int) -> Threads:
    """A context with one BLAS thread when a batch costs at most SMALL_MACS multiply-adds
    (``macs = model.macs() * batch``), else the library's count: ``Threads`` without
    measuring, holding the count as a predict does (safe to enter from several threads)."""
    return Threads(None, is_small(macs), 1, fit=False)
