"""Checkpoints: everything needed to continue a ``fit`` bit for bit after an interruption.

A checkpoint is a model file (``lw.load`` reads it as the model at that moment) with extra
members: ``checkpoint.json`` (epoch, position in the epoch, running sums, learning-rate factor,
optimizer kind, settings and step count, every random generator's state, the history, and the
fit settings it must be resumed with) and ``checkpoint/*.npy`` (the optimizer's state arrays and
the epoch's shuffled order). It is written like a model file: to a temporary file in the same
folder, flushed and synced, then renamed over the previous checkpoint, so a crash at any moment
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from . import io
from .errors import ModelFileError, ValidationError

if TYPE_CHECKING:
    from .training import _Run

FORMAT_VERSION = 1


def _fit_settings(run: _Run) -> dict[str, Any]:
    """What must be the same when resuming (else the continuation would differ)."""
    return {"n_train": run.N, "batch_size": run.batch_size, "epochs": run.epochs,
            "shuffle": run.shuffle, "loss": [run.loss.kind, run.loss.config()],
            "optimizer": run.opt.kind, "dtype": str(run.model.dtype),
            "weighted": run.weights is not None}


def _rng_states(run: _Run) -> dict[str, Any]:
    states = {"shuffle": run.gen.bit_generator.state}
    for i, layer in enumerate(run.model.layers):
        g = getattr(layer, "rng", None)
        if isinstance(g, np.random.Generator):
            states[str(i)] = g.bit_generator.state
    return states


def save(path: str | os.PathLike[str], run: _Run) -> None:
    """Write the run's complete state to ``path`` atomically."""
    meta = {
        "format": "layerwise-checkpoint", "format_version": FORMAT_VERSION,
        "epoch": run.epoch, "position": run.position, "steps": run.steps,
        "loss_sum": run.loss_sum, "correct": run.correct, "seen": run.seen,
        "seconds": run.seconds, "base_lr": run.state.base_lr, "lr_factor": run.state.lr_factor,
        "optimizer": {"kind": run.opt.kind, "config": run.opt.config(), "t": run.opt.t,
                      "lr": run.opt.lr},
        "rngs": _rng_states(run), "history": run.history.to_dict(), "fit": _fit_settings(run),
    }
    arrays = {"order": run.order, **{f"opt.{k}": v for k, v in run.opt.state_arrays().items()}}
    extra = {"checkpoint.json": json.dumps(meta).encode()}
    extra.update({f"checkpoint/{k}.npy": io.npy_bytes(v) for k, v in arrays.items()})
    extra["checkpoint/arrays.json"] = json.dumps(sorted(arrays)).encode()
    io.save(run.model, path, extra=extra)


def restore(path: str | os.PathLike[str], run: _Run) -> None:
    """Put the state saved in ``path`` into a freshly prepared run (same data and settings)."""
    saved = io.load(path)                             # checks the model part thoroughly
    members = io.read_members(path, ["checkpoint.json", "checkpoint/arrays.json"])
    try:
        meta = json.loads(members["checkpoint.json"])
        names = json.loads(members["checkpoint/arrays.json"])
        if meta.get("format") != "layerwise-checkpoint" or not isinstance(names, list):
            raise ValueError("not a layerwise checkpoint")
        if meta["format_version"] > FORMAT_VERSION:
            raise ModelFileError(f"cannot resume from {str(path)!r}: it uses checkpoint format "
                                 f"{meta['format_version']}; upgrade layerwise.")
        data = io.read_members(path, [f"checkpoint/{n}.npy" for n in names])
        arrays = {n: io.read_npy(data[f"checkpoint/{n}.npy"], n, path) for n in names}
        expected = _fit_settings(run)
        if meta["fit"] != json.loads(json.dumps(expected)):
            diff = {k: (meta["fit"].get(k), v) for k, v in expected.items()
                    if meta["fit"].get(k) != json.loads(json.dumps(v))}
            raise ValidationError(
                f"cannot resume from {str(path)!r}: it was written by a fit with other data or "
                f"settings (checkpoint vs now: {diff}); call fit with the same data and arguments."
            )
        model_arrays = [p.value for p in saved.parameters()]
        own = run.model.parameters()
        if [a.shape for a in model_arrays] != [p.value.shape for p in own]:
            raise ValidationError(f"cannot resume from {str(path)!r}: it holds a model with "
                                  "another architecture than the one being trained.")
        for p, a in zip(own, model_arrays):
            p.value[...] = a
        opt_arrays = {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
        run.opt.load_state(run.params, opt_arrays, meta["optimizer"]["t"])
        run.opt.lr = float(meta["optimizer"]["lr"])
        run.gen.bit_generator.state = meta["rngs"]["shuffle"]
        for i, layer in enumerate(run.model.layers):
            g = getattr(layer, "rng", None)
            if isinstance(g, np.random.Generator) and str(i) in meta["rngs"]:
                g.bit_generator.state = meta["rngs"][str(i)]
        order = arrays["order"]
        if order.shape != (run.N,):
            raise ValueError("the saved sample order does not match the data")
        run.order = order.astype(np.int64)
        run.epoch, run.position, run.steps = meta["epoch"], meta["position"], meta["steps"]
        run.loss_sum, run.correct, run.seen = meta["loss_sum"], meta["correct"], meta["seen"]
        run.seconds = meta["seconds"]
        run.state.base_lr, run.state.lr_factor = meta["base_lr"], meta["lr_factor"]
        hist = meta["history"]
        for k, epoch in enumerate(hist.pop("epoch")):
            run.history.append(epoch, {key: values[k] for key, values in hist.items()})
    except (ModelFileError, ValidationError):
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"cannot resume from {str(path)!r}: the checkpoint is damaged or "
                             f"incomplete ({exc}).") from None
