"""Input preprocessing as a layer, so a saved model takes raw inputs.

``Standardize`` computes ``A = (X − offset) / scale`` with per-feature constants fitted on the
training data only: mean and standard deviation ("standard"), or minimum and range ("minmax",
mapping training data to [0, 1]); or one global factor for every feature ("image": A = X / s,
s = the pixels' full scale, 255 for uint8 images, else the training rows' largest |x|). It has
no trainable parameters; its constants are stored in the model file like any other array.

Why images get one factor: per-pixel min-max fitted on training rows gives a pixel that is
always 0 in training the scale 1, so a test image with 24 there feeds the network 24 instead of
about 0.1; every MNIST reference divides all pixels by 255.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils import (
    as_array,
    as_float_dtype,
    buffer,
    cast_float,
    positive_int,
    require_finite,
)
from .errors import ConfigError, ValidationError
from .layers import Layer, config_size

SCALINGS = ("standard", "minmax", "image", "none")
#: what a layer's constants came from: a scaling fitted by ``fit``, or "inverse" (the command
#: line undoes a target scaling with one).
METHODS = (*SCALINGS, "inverse")


def _constants(values: Any, name: str, dt: np.dtype[Any]) -> np.ndarray:
    """The layer's own 1-D copy of ``offset`` or ``scale`` in ``dt``, refusing non-numbers."""
    A = as_array(values, f"Standardize {name}")
    if A.dtype.kind not in "biuf":
        raise ValidationError(f"Standardize {name} must be numbers; received dtype {A.dtype}.")
    return np.array(cast_float(A, dt, f"Standardize {name}")).reshape(-1)


class Standardize(Layer):
    """``A = (X − offset) / scale`` per feature; backward ``dX = dA / scale``.

    Build it with :meth:`fit` from training data, or directly from arrays of shape (n,).
    """

    kind = "standardize"

    def __init__(self, offset: Any, scale: Any, *, method: str = "standard",
                 dtype: Any = np.float32) -> None:
        super().__init__()
        dt = as_float_dtype(dtype)
        if not isinstance(method, str) or method not in METHODS:
            raise ConfigError(f"unknown Standardize method {method!r}; expected one of "
                              f"{list(METHODS)}.")
        self.offset = _constants(offset, "offset", dt)
        self.scale = _constants(scale, "scale", dt)
        if self.offset.shape != self.scale.shape or self.offset.size == 0:
            raise ConfigError(
                f"offset and scale must have the same shape, not empty; received "
                f"{self.offset.shape} and {self.scale.shape}."
            )
        # A = (X − offset) / scale: a zero or non-finite constant makes every output NaN or inf
        require_finite(self.offset, "Standardize offset")
        require_finite(self.scale, "Standardize scale")
        if not np.all(self.scale != 0):
            raise ValidationError("Standardize scale must be non-zero (A = (X − offset) / scale); "
                                  f"it has {int(np.sum(self.scale == 0))} zeros.")
        self.method = method
        self.n = self.offset.size

    @classmethod
    def fit(cls, X: np.ndarray, method: str = "standard", dtype: Any = np.float32, *,
            full_scale: float | None = None) -> Standardize:
        """Fit on training data: ``standard`` (mean, std) or ``minmax`` (min, max − min) per
        feature, or ``image``: offset 0 and one scale for every feature, ``full_scale`` (the
        pixels' full scale, e.g. 255 for uint8 images) or else the largest |x| of ``X``.

        Constant features (and an all-zero ``X`` under ``image``) get scale 1, so they map to
        0 instead of dividing by zero.
        """
        from . import outofcore
        if outofcore.is_large(X) and method in SCALINGS:    # memory-mapped: one streaming pass
            offset, scale = outofcore.feature_stats(X, method, full_scale)
            return cls(offset, np.where(scale > 1e-12, scale, 1.0), method=method, dtype=dtype)
        X = np.asarray(X, dtype=np.float64)
        if method == "standard":
            # Values beyond 1e150 would overflow the squares of the variance: compute the
            # statistics of X / s and scale them back by s = max|X| per feature.
            s = np.abs(X).max(axis=0, initial=0.0)
            s = np.where(np.isfinite(s) & (s > 1e150), s, 1.0)
            offset, scale = (X / s).mean(axis=0) * s, (X / s).std(axis=0) * s
        elif method == "minmax":
            offset, scale = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
        elif method == "image":
            # A = X / s for every pixel alike: s is the full scale, or the training rows' max |x|
            s = float(full_scale) if full_scale is not None else float(
                np.abs(X).max(initial=0.0))
            offset, scale = np.zeros(X.shape[1]), np.full(X.shape[1], s)
        elif method == "none":
            offset, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        else:
            raise ConfigError(f"unknown scaling {method!r}; expected one of {list(SCALINGS)}.")
        scale = np.where(scale > 1e-12, scale, 1.0)
        return cls(offset, scale, method=method, dtype=dtype)

    @property
    def n_in(self) -> int:
        """Input features (the layer keeps the width)."""
        return self.n

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply to a whole array (returns a new array)."""
        return (np.asarray(X, self.offset.dtype) - self.offset) / self.scale

    def forward(self, A: np.ndarray, training: bool = False) -> np.ndarray:
        out = buffer(self._buf, "A", A.shape[0], (self.n,), self.offset.dtype)
        np.subtract(A, self.offset, out=out)
        out /= self.scale                               # A = (X − offset) / scale
        return out

    def infer(self, A: np.ndarray) -> np.ndarray:
        out = np.empty((A.shape[0], self.n), dtype=self.offset.dtype)
        np.subtract(A, self.offset, out=out)
        out /= self.scale                               # A = (X − offset) / scale
        return out

    def backward(self, dA: np.ndarray, input_grad: bool = True) -> np.ndarray:
        dX = buffer(self._buf, "dX", dA.shape[0], (self.n,), dA.dtype)
        np.divide(dA, self.scale, out=dX)               # dX = dA / scale
        return dX

    def astype(self, dtype: Any) -> Standardize:
        dt = as_float_dtype(dtype)
        self.offset, self.scale = self.offset.astype(dt), self.scale.astype(dt)
        return super().astype(dt)  # type: ignore[return-value]

    def config(self) -> dict[str, Any]:
        return {"n": self.n, "method": self.method}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"offset": self.offset, "scale": self.scale}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy stored constants in, refusing a zero or non-finite scale or offset (what the
        constructor refuses), so a model file cannot make every output NaN or inf."""
        offset = np.asarray(arrays["offset"]).reshape(self.offset.shape)
        scale = np.asarray(arrays["scale"]).reshape(self.scale.shape)
        require_finite(offset, "Standardize offset")
        require_finite(scale, "Standardize scale")
        if not np.all(scale != 0):
            raise ValidationError("Standardize scale must be non-zero (A = (X − offset) / scale); "
                                  f"it has {int(np.sum(scale == 0))} zeros.")
        self.offset[...] = offset
        self.scale[...] = scale

    @classmethod
    def array_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        n = config_size(config, "n")
        return {"offset": (n,), "scale": (n,)}

    @classmethod
    def from_config(cls, config: dict[str, Any] | int,
                    dtype: Any = np.float32, *, method: str = "standard") -> Standardize:
        """An identity-initialised layer of ``n`` features (model files fill the arrays): from a
        ``config()`` dict (the layer protocol) or, as before, ``from_config(n, method=...)``."""
        if isinstance(config, dict):
            config = dict(config)
            n = config.pop("n", None)
            method = config.pop("method", "standard")
            if config:
                raise TypeError(f"unexpected Standardize settings {sorted(config)}")
        else:
            n = config
        n = positive_int("n", n)
        return cls(np.zeros(n), np.ones(n), method=method, dtype=dtype)
