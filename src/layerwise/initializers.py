"""Weight initialisers: ``init(shape, rng, dtype) -> array`` with shape (n_out, n_in).

fan_in = n_in and fan_out = n_out, as in PyTorch's ``nn.Linear``. Numbers are drawn in float64
from the Generator and then cast, so float32 and float64 models start from the same weights.

One grammar names an initialiser everywhere (``Dense(init=…, bias_init=…)``, ``lw.mlp``, the
estimators, ``--init`` and ``--bias-init``, model files)::

    NAME                 a registered name: "he_normal", "xavier", "normal" (std 0.01), …
    NAME:NUMBER          normal:STD   W ~ N(0, STD²)         e.g. "normal:1.0" (Nielsen's)
                         uniform:A    W ~ U(−A, A)           e.g. "uniform:0.05"
                         constant:C   every entry C          e.g. "constant:0.1"

Biases (shape (n_out,)) take the initialisers that need no fan: zeros, normal, uniform and
constant, or a callable given the shape (n_out,).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    Initializer = Callable[[tuple[int, int], np.random.Generator, Any], np.ndarray]
else:
    Initializer = Callable[..., np.ndarray]
#: What an init argument takes: a spec "NAME" or "NAME:NUMBER" (see ``parse``), or a callable
#: ``(shape, rng, dtype) -> array``.
InitLike: TypeAlias = str | Initializer


def zeros(shape: tuple[int, int], rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
    """All zeros (symmetric: every unit learns the same thing; use only for tests or biases)."""
    return np.zeros(shape, dtype=dtype)


def normal(shape: tuple[int, int], rng: np.random.Generator, dtype: Any = np.float32,
           std: float = 0.01) -> np.ndarray:
    """W ~ N(0, std²), std = 0.01 by default."""
    return (rng.standard_normal(shape) * std).astype(dtype)


def uniform(shape: tuple[int, int], rng: np.random.Generator, dtype: Any = np.float32,
            limit: float = 0.05) -> np.ndarray:
    """W ~ U(−limit, limit), limit = 0.05 by default."""
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def constant(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32,
             value: float = 0.0) -> np.ndarray:
    """Every entry ``value`` (e.g. Nielsen-style biases at 0.1: "constant:0.1")."""
    return np.full(shape, value, dtype=dtype)


def xavier_uniform(shape: tuple[int, int], rng: np.random.Generator, dtype: Any = np.float32
                   ) -> np.ndarray:
    """Glorot & Bengio (2010): W ~ U(−a, a), a = √(6 / (fan_in + fan_out))."""
    n_out, n_in = shape
    return uniform(shape, rng, dtype, limit=float(np.sqrt(6.0 / (n_in + n_out))))


def xavier_normal(shape: tuple[int, int], rng: np.random.Generator, dtype: Any = np.float32
                  ) -> np.ndarray:
    """Glorot & Bengio (2010): W ~ N(0, 2 / (fan_in + fan_out))."""
    n_out, n_in = shape
    return normal(shape, rng, dtype, std=float(np.sqrt(2.0 / (n_in + n_out))))


def he_uniform(shape: tuple[int, int], rng: np.random.Generator, dtype: Any = np.float32
               ) -> np.ndarray:
    """He et al. (2015), for ReLU: W ~ U(−a, a), a = √(6 / fan_in)."""
    return uniform(shape, rng, dtype, limit=float(np.sqrt(6.0 / shape[1])))


def he_normal(shape: tuple[int, int], rng: np.random.Generator, dtype: Any = np.float32
              ) -> np.ndarray:
    """He et al. (2015), for ReLU: W ~ N(0, 2 / fan_in)."""
    return normal(shape, rng, dtype, std=float(np.sqrt(2.0 / shape[1])))


def lecun_normal(shape: tuple[int, int], rng: np.random.Generator, dtype: Any = np.float32
                 ) -> np.ndarray:
    """LeCun et al. (1998): W ~ N(0, 1 / fan_in)."""
    return normal(shape, rng, dtype, std=float(np.sqrt(1.0 / shape[1])))


def lecun_uniform(shape: tuple[int, int], rng: np.random.Generator, dtype: Any = np.float32
                  ) -> np.ndarray:
    """LeCun et al. (1998): W ~ U(−a, a), a = √(3 / fan_in)."""
    return uniform(shape, rng, dtype, limit=float(np.sqrt(3.0 / shape[1])))


INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "normal": normal,
    "uniform": uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_uniform": xavier_uniform,
    "glorot_normal": xavier_normal,
    "xavier": xavier_uniform,
    "glorot": xavier_uniform,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "he": he_normal,
    "kaiming": he_normal,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "lecun": lecun_normal,
}

# NAME:NUMBER — the initialiser and the keyword its number sets.
PARAMETERISED: dict[str, tuple[Initializer, str]] = {
    "normal": (normal, "std"),
    "uniform": (uniform, "limit"),
    "constant": (constant, "value"),
}
# Initialisers that need no fan_in/fan_out, so they can draw biases of shape (n_out,).
FAN_FREE = ("zeros", "normal", "uniform", "constant")

GRAMMAR = ("NAME or NAME:NUMBER with NUMBER one of normal:STD (e.g. normal:1.0), "
           "uniform:LIMIT (e.g. uniform:0.05), constant:VALUE (e.g. constant:0.1)")


def parse(spec: Any, what: str = "initializer") -> tuple[str, float | None]:
    """Split a spec "name" or "name:number" into (canonical name, number or None), checking
    both; raises ``ConfigError`` naming the grammar and the registered names."""
    name, sep, number = str(spec).strip().partition(":")
    name = name.strip().lower().replace("-", "_")      # "He-Normal" is "he_normal"
    names = f"names: {sorted({*INITIALIZERS, *PARAMETERISED})}"
    if not sep:
        if name not in INITIALIZERS:
            hint = " (constant needs its value, e.g. constant:0.1)" if name == "constant" else ""
            raise ConfigError(f"unknown {what} {spec!r}{hint}; expected {GRAMMAR}; {names}. "
                              "Or pass a callable (shape, rng, dtype) -> array.")
        return name, None
    if name not in PARAMETERISED:
        raise ConfigError(f"the {what} {spec!r} has a number, which only "
                          f"{', '.join(PARAMETERISED)} take; expected {GRAMMAR}; {names}.")
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    keyword = PARAMETERISED[name][1]
    if not math.isfinite(value) or (name != "constant" and value <= 0):
        need = "a finite number" if name == "constant" else "a positive number"
        raise ConfigError(f"the {what} {spec!r} needs {need} after the colon ({name}:"
                          f"{keyword.upper()}); received {number!r}. Expected {GRAMMAR}.")
    return name, value


def get(init: InitLike) -> Initializer:
    """Resolve an initialiser: a spec "name" or "name:number" (see the module docstring), or
    a callable ``(shape, rng, dtype) -> array`` (returned as is)."""
    if callable(init):
        return init
    name, value = parse(init)
    if value is None:
        return INITIALIZERS[name]
    fn, keyword = PARAMETERISED[name]
    return functools.partial(fn, **{keyword: value})


def get_bias(init: InitLike) -> Initializer:
    """Resolve a bias initialiser: zeros, normal[:STD], uniform[:LIMIT], constant:VALUE, or a
    callable, which is given the shape (n_out,). Fan-based names are refused (no fan_in)."""
    if callable(init):
        return init
    name, _ = parse(init, "bias initializer")
    if name not in FAN_FREE:
        raise ConfigError(f"the bias initializer {init!r} scales by fan_in/fan_out, which a "
                          f"bias (shape (n_out,)) does not have; use zeros, normal:STD, "
                          "uniform:LIMIT, constant:VALUE or a callable (shape, rng, dtype).")
    return get(init)


def name_of(init: InitLike) -> str:
    """The canonical spec of an initialiser, for model files: registered names canonical
    ("he" → "he_normal"), "NAME:NUMBER" with the number as a float ("normal:1" →
    "normal:1.0"); a callable's registry name, or its ``__name__``."""
    if not callable(init):
        name, value = parse(init)
        if value is not None:
            return f"{name}:{value!r}"
    fn = get(init)
    for name, registered in INITIALIZERS.items():
        if registered is fn:
            return name
    return getattr(fn, "__name__", "custom")
