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
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from . import io
from ._utils import is_finite
from .callbacks import Callback
from .errors import ModelFileError, ValidationError

if TYPE_CHECKING:
    from .training import Run

FORMAT_VERSION = 2              # 2: callbacks' state and stop_training (1 had neither)


def _stateful(run: Run) -> list[Callback]:
    """The callbacks that keep state (override ``state_dict``); stateless ones need not match
    between the interrupted and the resumed fit."""
    return [cb for cb in run.callbacks if type(cb).state_dict is not Callback.state_dict]


def _callback_states(run: Run) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Each stateful callback's state_dict, split into JSON (with its class name) and arrays."""
    states, arrays = [], {}
    for i, cb in enumerate(_stateful(run)):
        d = cb.state_dict()
        plain = {k: v for k, v in d.items() if not isinstance(v, np.ndarray)}
        arrays.update({f"cb.{i}.{k}": v for k, v in d.items() if isinstance(v, np.ndarray)})
        states.append({"kind": type(cb).__name__, "state": plain,
                       "arrays": sorted(k for k, v in d.items() if isinstance(v, np.ndarray))})
    return states, arrays


def _split(d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A state_dict split into its JSON values and its arrays (top-level NumPy values)."""
    return ({k: v for k, v in d.items() if not isinstance(v, np.ndarray)},
            {k: v for k, v in d.items() if isinstance(v, np.ndarray)})


# checkpoint.json's own keys; every other one is the run's (``run.state_dict()``)
_OWN = ("format", "format_version", "fit", "optimizer", "schedule", "callbacks")


def save(path: str | os.PathLike[str], run: Run) -> None:
    """Write the run's complete state to ``path`` atomically (refusing non-finite state):
    the model file, then the state_dict of the run, the optimizer, the schedule and every
    stateful callback."""
    opt, opt_arrays = _split(run.opt.state_dict())
    bad = [k for k, v in opt_arrays.items() if not is_finite(v)]
    if bad:
        raise ValidationError(f"cannot write the checkpoint {str(path)!r}: the optimizer state "
                              f"{bad} holds NaN or infinite values.")
    state, run_arrays = _split(run.state_dict())
    callbacks, cb_arrays = _callback_states(run)
    meta = {"format": "layerwise-checkpoint", "format_version": FORMAT_VERSION, **state,
            "optimizer": opt, "fit": run.settings(), "callbacks": callbacks}
    schedule = run.sched.state_dict()
    if schedule:                                    # the built-in schedules keep none
        meta["schedule"] = schedule
    arrays = {**run_arrays, **{f"opt.{k}": v for k, v in opt_arrays.items()}, **cb_arrays}
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"cannot write the checkpoint {str(path)!r}: a callback's or "
                              f"the schedule's state_dict holds something JSON cannot store "
                              f"({exc}).") from None
    extra = {"checkpoint.json": text.encode()}
    extra.update({f"checkpoint/{k}.npy": io.npy_bytes(v) for k, v in arrays.items()})
    extra["checkpoint/arrays.json"] = json.dumps(sorted(arrays)).encode()
    io.save(run.model, path, extra=extra)


def restore(path: str | os.PathLike[str], run: Run) -> None:
    """Put the state saved in ``path`` into a freshly prepared run (same data and settings).

    Everything is read and checked first; the model changes only if all is valid.
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
        version = meta.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"format_version must be a positive integer; found {version!r}")
        if version > FORMAT_VERSION:
            raise ModelFileError(f"cannot resume from {str(path)!r}: it uses checkpoint format "
                                 f"{version}; upgrade layerwise.")
        expected = json.loads(json.dumps(run.settings()))
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
        # every layer's arrays, its state too (BatchNorm's running statistics), not only the
        # parameters: set back in place, after everything else is checked
        layer_arrays = [stored.arrays() for stored in saved.layers]
        if [a.shape for a in model_arrays] != [p.value.shape for p in own] or \
                len(saved.layers) != len(run.model.layers) or \
                [{k: v.shape for k, v in a.items()} for a in layer_arrays] != \
                [{k: v.shape for k, v in layer.arrays().items()} for layer in run.model.layers]:
            raise ValidationError(f"cannot resume from {str(path)!r}: it holds a model with "
                                  "another architecture than the one being trained.")
        # sizes allowed for each array member: the order, and optimizer state like a parameter
        n_params = sum(p.value.size for p in run.params)
        itemsize = np.dtype(run.model.dtype).itemsize
        limits = {f"checkpoint/{n}.npy": (run.N * 8 if n == "order" else n_params * itemsize)
                  + io.NPY_HEADER_MAX for n in names}
        data = io.read_members(path, list(limits), limits)
        arrays = {n: io.read_npy(data[f"checkpoint/{n}.npy"], n, path) for n in names}
        opt = meta.get("optimizer")
        if not isinstance(opt, dict):
            raise ValueError("optimizer must be an object")
        if "callbacks" in meta:                       # format 1 had none: they start afresh
            _restore_callbacks(path, run, meta["callbacks"], arrays)
        schedule = meta.get("schedule", {})           # absent: a stateless schedule
        if not isinstance(schedule, dict):
            raise ValueError("schedule must be an object")
        run.sched.load_state_dict(schedule)
        try:
            run.opt.load_state_dict({**opt, **{k[4:]: v for k, v in arrays.items()
                                               if k.startswith("opt.")}}, run.params)
        except ValidationError as exc:  # same optimizer and shapes (checked above): damaged
            raise ValueError(str(exc).rstrip(".")) from None
        state = {k: v for k, v in meta.items() if k not in _OWN}
        if "order" in arrays:
            state["order"] = arrays["order"]
        run.load_state_dict(state)                    # checks all before changing anything
        # all valid: now change the model
        for p, a in zip(own, model_arrays):
            p.value[...] = a
        for layer, stored in zip(run.model.layers, layer_arrays):
            layer.set_arrays(stored)
    except (ModelFileError, ValidationError):
        raise
    except (LookupError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ModelFileError(f"cannot resume from {str(path)!r}: the checkpoint is damaged or "
                             f"incomplete ({exc}).") from None


def _restore_callbacks(path: Any, run: Run, saved: Any, arrays: dict[str, np.ndarray]) -> None:
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
