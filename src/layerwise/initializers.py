"""Weight initialisers: ``init(shape, rng, dtype) -> array`` with shape (n_out, n_in).

fan_in = n_in and fan_out = n_out, as in PyTorch's ``nn.Linear``. Numbers are drawn in float64
from the Generator and then cast, so float32 and float64 models start from the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._utils import lookup

if TYPE_CHECKING:
    Initializer = Callable[[tuple[int, int], np.random.Generator, Any], np.ndarray]
else:
    Initializer = Callable[..., np.ndarray]


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

# He initialisation keeps the variance of ReLU-like units constant across layers; Glorot does
# the same for units that are linear around zero (tanh, sigmoid, identity).
_DEFAULT_FOR_ACTIVATION = {
    "relu": "he_normal",
    "leaky_relu": "he_normal",
    "elu": "he_normal",
    "gelu": "he_normal",
}


def default_for(activation: Any) -> str:
    """The initialiser name that suits ``activation`` (a name, an activation layer or None):
    He for ReLU-like units, Glorot otherwise."""
    from .activations import Activation, get

    if activation is None:
        return "xavier_uniform"
    kind = activation.kind if isinstance(activation, Activation) else get(activation).kind
    return _DEFAULT_FOR_ACTIVATION.get(kind, "xavier_uniform")


def get(init: str | Initializer) -> Initializer:
    """Resolve an initialiser given by name or as a callable ``(shape, rng, dtype) -> array``."""
    if callable(init):
        return init
    return lookup(INITIALIZERS, init, "initializer (or pass a callable (shape, rng, dtype))")


def name_of(init: str | Initializer) -> str:
    """The canonical registry name of an initialiser ("he" → "he_normal"), for model files."""
    fn = get(init)
    for name, registered in INITIALIZERS.items():
        if registered is fn:
            return name
    return getattr(fn, "__name__", "custom")
