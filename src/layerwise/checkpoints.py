"""Checkpoints: everything needed to continue a ``fit`` bit for bit after an interruption.

A checkpoint is a model file (``lw.load`` reads it as the model at that moment) with extra
members: ``checkpoint.json`` (epoch, position in the epoch, running sums, learning-rate factor,
optimizer kind, settings and step count, every random generator's state, the history, each
callback's ``state_dict``, whether a callback stopped training, the BLAS thread count and its
measurements, and the fit settings it must be resumed with) and ``checkpoint/*.npy`` (the
optimizer's state arrays, the callbacks' arrays and the epoch's shuffled order). It is only
ever written at a step boundary, and never with a NaN or infinite parameter or optimizer state.
It is written like a model file: to a temporary file in the same folder, flushed and synced,
then renamed over the previous checkpoint, so a crash at any moment leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from . import io
from ._utils import is_finite
from .errors import ModelFileError, ValidationError
from .training import Callback

if TYPE_CHECKING:
    from .training import _Run

FORMAT_VERSION = 2              # 2: callbacks' state and stop_training (1 had neither)


def _fit_settings(run: _Run) -> dict[str, Any]:
    """What must be the same when resuming (else the continuation would differ)."""
    settings = {"n_train": run.N, "batch_size": run.batch_size, "epochs": run.epochs,
                "shuffle": run.shuffle, "loss": [run.loss.kind, run.loss.config()],
                "optimizer": run.opt.kind, "dtype": str(run.model.dtype),
                "weighted": run.weights is not None}
    # Weights-only decay is recorded only where it matters, so that checkpoints from before
    # decay_biases existed (which decayed the biases) resume with decay_biases=True.
    if run.opt.weight_decay and not run.opt.decay_biases:
        settings["decay_biases"] = False
    return settings


def _rng_states(run: _Run) -> dict[str, Any]:
    states = {"shuffle": run.gen.bit_generator.state}
    for i, layer in enumerate(run.model.layers):
        g = getattr(layer, "rng", None)
        if isinstance(g, np.random.Generator):
            states[str(i)] = g.bit_generator.state
    return states


def _stateful(run: _Run) -> list[Callback]:
    """The callbacks that keep state (override ``state_dict``); stateless ones need not match
    between the interrupted and the resumed fit."""
    return [cb for cb in run.callbacks if type(cb).state_dict is not Callback.state_dict]


def _callback_states(run: _Run) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Each stateful callback's state_dict, split into JSON (with its class name) and arrays."""
    states, arrays = [], {}
    for i, cb in enumerate(_stateful(run)):
        d = cb.state_dict()
        plain = {k: v for k, v in d.items() if not isinstance(v, np.ndarray)}
        arrays.update({f"cb.{i}.{k}": v for k, v in d.items() if isinstance(v, np.ndarray)})
        states.append({"kind": type(cb).__name__, "state": plain,
                       "arrays": sorted(k for k, v in d.items() if isinstance(v, np.ndarray))})
    return states, arrays


def save(path: str | os.PathLike[str], run: _Run) -> None:
    """Write the run's complete state to ``path`` atomically (refusing non-finite state)."""
    opt_arrays = run.opt.state_arrays()
    bad = [k for k, v in opt_arrays.items() if not is_finite(v)]
    if bad:
        raise ValidationError(f"cannot write the checkpoint {str(path)!r}: the optimizer state "
                              f"{bad} holds NaN or infinite values.")
    callbacks, cb_arrays = _callback_states(run)
    meta = {
        "format": "layerwise-checkpoint", "format_version": FORMAT_VERSION,
        "epoch": run.epoch, "position": run.position, "steps": run.steps,
        "loss_sum": run.loss_sum, "correct": run.correct, "seen": run.seen,
        "label_correct": run.label_correct,
        "seconds": run.seconds, "base_lr": run.state.base_lr, "lr_factor": run.state.lr_factor,
        "optimizer": {"kind": run.opt.kind, "config": run.opt.config(), "t": run.opt.t,
                      "lr": run.opt.lr},
        "rngs": _rng_states(run), "history": run.history.to_dict(), "fit": _fit_settings(run),
        "callbacks": callbacks, "stop_training": bool(run.model.stop_training),
        "threads": run.threads.state_dict(),
    }
    arrays = {"order": run.order, **{f"opt.{k}": v for k, v in opt_arrays.items()}, **cb_arrays}
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"cannot write the checkpoint {str(path)!r}: a callback's "
                              f"state_dict holds something JSON cannot store ({exc}).") from None
    extra = {"checkpoint.json": text.encode()}
    extra.update({f"checkpoint/{k}.npy": io.npy_bytes(v) for k, v in arrays.items()})
    extra["checkpoint/arrays.json"] = json.dumps(sorted(arrays)).encode()
    io.save(run.model, path, extra=extra)


def _int(meta: dict[str, Any], key: str, low: int, high: int) -> int:
    v = meta.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ValueError(f"{key} must be an integer in [{low}, {high}]; found {v!r}")
    return v


def _num(meta: dict[str, Any], key: str, positive: bool = False) -> float:
    v = meta.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (
            positive and v <= 0):
        raise ValueError(f"{key} must be a finite {'positive ' if positive else ''}number; "
                         f"found {v!r}")
    return float(v)


def restore(path: str | os.PathLike[str], run: _Run) -> None:
    """Put the state saved in ``path`` into a freshly prepared run (same data and settings).

    Everything is read and checked first; the run and its model change only if all is valid.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ModelFileError(f"resume expects a checkpoint path; received {type(path).__name__}.")
    # checks the model part thoroughly; the run's own model is as big as a valid checkpoint's
    n = sum(a.size for layer in run.model.layers for a in layer.arrays().values())
    saved = io.load(path, max_params=max(io.MAX_PARAMS, n),
                    max_layers=max(io.MAX_LAYERS, len(run.model.layers)))
    small = {"checkpoint.json": io.MAX_JSON_BYTES, "checkpoint/arrays.json": 1 << 20}
    members = io.read_members(path, list(small), small)
    try:
        meta = json.loads(members["checkpoint.json"])
        names = json.loads(members["checkpoint/arrays.json"])
        if not isinstance(meta, dict) or meta.get("format") != "layerwise-checkpoint" or \
                not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("not a layerwise checkpoint")
        if _int(meta, "format_version", 1, 1 << 30) > FORMAT_VERSION:
            raise ModelFileError(f"cannot resume from {str(path)!r}: it uses checkpoint format "
                                 f"{meta['format_version']}; upgrade layerwise.")
        expected = json.loads(json.dumps(_fit_settings(run)))
        if meta.get("fit") != expected:
            fit = meta.get("fit")
            got: dict[str, Any] = fit if isinstance(fit, dict) else {}
            diff = {k: (got.get(k), expected.get(k)) for k in {**expected, **got}
                    if got.get(k) != expected.get(k)}
            hint = ("; decay_biases must match too: None here means the biases were decayed "
                    "(decay_biases=True, and every checkpoint from before the option)"
                    if "decay_biases" in diff else "")
            raise ValidationError(
                f"cannot resume from {str(path)!r}: it was written by a fit with other data or "
                f"settings (checkpoint vs now: {diff}){hint}; call fit with the same data and "
                "arguments."
            )
        own = run.model.parameters()
        model_arrays = [p.value for p in saved.parameters()]
        if [a.shape for a in model_arrays] != [p.value.shape for p in own]:
            raise ValidationError(f"cannot resume from {str(path)!r}: it holds a model with "
                                  "another architecture than the one being trained.")
        # sizes allowed for each array member: the order, and optimizer state like a parameter
        n_params = sum(p.value.size for p in run.params)
        itemsize = np.dtype(run.model.dtype).itemsize
        limits = {f"checkpoint/{n}.npy": (run.N * 8 if n == "order" else n_params * itemsize)
                  + io.NPY_HEADER_MAX for n in names}
        data = io.read_members(path, list(limits), limits)
        arrays = {n: io.read_npy(data[f"checkpoint/{n}.npy"], n, path) for n in names}
        order = arrays.get("order")
        if order is None or order.shape != (run.N,) or order.dtype.kind not in "iu" or \
                not np.array_equal(np.sort(order), np.arange(run.N)):
            raise ValueError("the saved sample order is not a permutation of the data")
        epoch = _int(meta, "epoch", 0, run.epochs)
        position = _int(meta, "position", 0, run.N)
        steps = _int(meta, "steps", 0, 1 << 53)
        seen = _int(meta, "seen", 0, run.N)
        loss_sum, correct, seconds = (_num(meta, k) for k in ("loss_sum", "correct", "seconds"))
        # checkpoints from before multi-label metrics have no label count (it was unused)
        label_correct = _num(meta, "label_correct") if "label_correct" in meta else 0.0
        base_lr, lr_factor = _num(meta, "base_lr", True), _num(meta, "lr_factor", True)
        opt_meta = meta.get("optimizer")
        if not isinstance(opt_meta, dict):
            raise ValueError("optimizer must be an object")
        t, lr = _int(opt_meta, "t", 0, 1 << 53), _num(opt_meta, "lr", True)
        hist = meta.get("history")
        if not isinstance(hist, dict) or not all(isinstance(v, list) for v in hist.values()):
            raise ValueError("history must map names to lists")
        epochs_done = hist.get("epoch", [])
        if any(len(v) != len(epochs_done) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
               for v in hist.values()):
            raise ValueError("history columns must be numbers of equal length")
        rngs = meta.get("rngs")
        if not isinstance(rngs, dict) or "shuffle" not in rngs:
            raise ValueError("rngs must hold the shuffling generator's state")
        # check the generator states on copies before touching the run
        probe = np.random.default_rng()
        probe.bit_generator.state = rngs["shuffle"]
        layer_rngs = {}
        for i, layer in enumerate(run.model.layers):
            g = getattr(layer, "rng", None)
            if isinstance(g, np.random.Generator) and str(i) in rngs:
                probe.bit_generator.state = rngs[str(i)]
                layer_rngs[i] = rngs[str(i)]
        opt_arrays = {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
        stop = meta.get("stop_training", False)
        if not isinstance(stop, bool):
            raise ValueError("stop_training must be true or false")
        if "callbacks" in meta:                       # format 1 had none: they start afresh
            _restore_callbacks(path, run, meta["callbacks"], arrays)
        if "threads" in meta:                         # applied when the run starts
            run.threads.load_state_dict(meta["threads"])
        # all valid: now change the run
        run.opt.load_state(run.params, opt_arrays, t)
        for p, a in zip(own, model_arrays):
            p.value[...] = a
        run.opt.lr = lr
        run.gen.bit_generator.state = rngs["shuffle"]
        for i, state in layer_rngs.items():
            run.model.layers[i].rng.bit_generator.state = state  # type: ignore[attr-defined]
        run.order = order.astype(np.int64)
        run.epoch, run.position, run.steps, run.seen = epoch, position, steps, seen
        run.loss_sum, run.correct, run.seconds = loss_sum, correct, seconds
        run.label_correct = label_correct
        run.state.base_lr, run.state.lr_factor = base_lr, lr_factor
        run.model.stop_training = stop
        columns = {k: v for k, v in hist.items() if k != "epoch"}
        for k, e in enumerate(epochs_done):
            run.history.append(int(e), {key: values[k] for key, values in columns.items()})
    except (ModelFileError, ValidationError):
        raise
    except (LookupError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ModelFileError(f"cannot resume from {str(path)!r}: the checkpoint is damaged or "
                             f"incomplete ({exc}).") from None


def _restore_callbacks(path: Any, run: _Run, saved: Any, arrays: dict[str, np.ndarray]) -> None:
    """Give each stateful callback of ``run`` the state saved for it (same ones, same order)."""
    if not isinstance(saved, list) or not all(
            isinstance(c, dict) and isinstance(c.get("state"), dict) and
            isinstance(c.get("arrays"), list) for c in saved):
        raise ValueError("callbacks must be a list of {kind, state, arrays}")
    callbacks = _stateful(run)
    kinds, now = [c.get("kind") for c in saved], [type(cb).__name__ for cb in callbacks]
    if kinds != now:
        raise ValidationError(
            f"cannot resume from {str(path)!r}: it was written by a fit with the stateful "
            f"callbacks {kinds}, but this fit has {now}; pass the same callbacks, in the same "
            "order."
        )
    for i, (cb, c) in enumerate(zip(callbacks, saved)):
        state = dict(c["state"])
        for k in c["arrays"]:
            if not isinstance(k, str) or f"cb.{i}.{k}" not in arrays:
                raise ValueError(f"callback {i}'s array {k!r} is missing")
            state[k] = arrays[f"cb.{i}.{k}"]
        cb.load_state_dict(state)
