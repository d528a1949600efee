"""Normalisation layers over the features of a batch of rows: ``LayerNorm`` and ``BatchNorm``.

Both compute ``y = γ ⊙ x̂ + β`` with ``x̂ = (x − μ) / √(σ² + ε)``; they differ in what μ and σ²
are averaged over. LayerNorm: over the features of each row, the same in training and inference.
BatchNorm: over the rows of the batch for each feature in training, while keeping running
averages (momentum m, as ``torch.nn.BatchNorm1d``) that replace them in inference.

Backward, with dx̂ = dy ⊙ γ and the sums over the N values a statistic was averaged over, is the
classic three-term formula (μ and σ² depend on every x, hence the last two terms)::

    dγ = Σ_batch dy ⊙ x̂            dβ = Σ_batch dy
    dx = (1/N)·(1/√(σ² + ε))·(N·dx̂ − Σ dx̂ − x̂ ⊙ Σ (dx̂ ⊙ x̂))

computed as ``rstd ⊙ (dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂))``. In inference BatchNorm is affine
(fixed statistics), so there ``dx = dx̂ / √(running_var + ε)``.

γ and β are not weight-decayed unless the optimizer has ``decay_biases=True`` (they set a
scale and a shift, as a bias does). The layers are self-describing (see :class:`Layer`), so
they save, load, train and explain with no code elsewhere knowing them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils import as_float_dtype, buffer, fraction, positive_float, positive_int
from .errors import ValidationError
from .layers import Layer, config_size


class _Norm(Layer):
    """What both share: n features, ε, the affine γ, β, the buffers and their backward."""

    _ARRAYS: tuple[str, ...] = ("gamma", "beta")     # what arrays() holds, in order
    _STAT_AXIS = 1                                   # the axis μ and σ² average over
    _batch_stats = True                              # the last forward used its own μ, σ²

    def __init__(self, n: int, eps: float, dtype: Any) -> None:
        super().__init__()
        name = type(self).__name__
        self.n = positive_int(f"{name} n", n)
        self.eps = positive_float(f"{name} eps", eps)
        dt = as_float_dtype(dtype)
        self._gamma = self.add_param("gamma", np.ones(self.n, dt), decay=False)   # γ
        self._beta = self.add_param("beta", np.zeros(self.n, dt), decay=False)    # β
        self._v: dict[str, np.ndarray] = {}

    @property
    def n_in(self) -> int:
        """Input features (the layer keeps the width)."""
        return self.n

    @property
    def gamma(self) -> np.ndarray:
        return self._gamma.value

    @property
    def beta(self) -> np.ndarray:
        return self._beta.value

    @classmethod
    def array_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        n = config_size(config, "n")
        return {name: (n,) for name in cls._ARRAYS}


    @classmethod
    def from_config(cls, config: dict[str, Any], dtype: Any = np.float32) -> _Norm:
        return cls(**config, dtype=dtype)

    def _views(self, A: np.ndarray) -> dict[str, np.ndarray]:
        """Buffer views for a batch of this shape (made again only when it changes)."""
        if A.shape != self._shape:
            B, dt = A.shape[0], A.dtype
            stat = (B, 1) if self._STAT_AXIS == 1 else (1, self.n)     # μ, σ² and their kin
            v = {k: buffer(self._buf, k, B, (self.n,), dt) for k in ("xhat", "out", "dx", "t")}
            v.update({k: buffer(self._buf, k, stat[0], stat[1:], dt)
                      for k in ("mu", "rstd", "s1", "s2")})
            self._v, self._shape = v, A.shape
        return self._v

    def backward(self, dA: np.ndarray, input_grad: bool = True) -> np.ndarray:
        v = self._v
        xhat, t, dx = v["xhat"], v["t"], v["dx"]
        np.multiply(dA, xhat, out=t)
        np.sum(t, axis=0, out=self._gamma.grad)            # dγ = Σ_batch dy ⊙ x̂
        np.sum(dA, axis=0, out=self._beta.grad)            # dβ = Σ_batch dy
        if not input_grad:
            return None  # type: ignore[return-value]
        np.multiply(dA, self._gamma.value, out=dx)         # dx̂ = dy ⊙ γ
        rstd = v["rstd"]                                   # 1/√(σ² + ε) of the forward pass
        if not self._batch_stats:                          # fixed statistics: affine
            dx *= rstd                                     # dx = dx̂ ⊙ rstd
            return dx
        ax = self._STAT_AXIS
        s1, s2 = v["s1"], v["s2"]
        np.mean(dx, axis=ax, keepdims=True, out=s1)        # mean(dx̂)
        np.multiply(dx, xhat, out=t)
        np.mean(t, axis=ax, keepdims=True, out=s2)         # mean(dx̂ ⊙ x̂)
        np.multiply(xhat, s2, out=t)
        dx -= s1
        dx -= t                                            # dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂)
        dx *= rstd                                         # dx = rstd ⊙ (…)  (three terms)
        return dx

    @staticmethod
    def _scale_shift(xhat: np.ndarray, gamma: np.ndarray, beta: np.ndarray, out: np.ndarray
                     ) -> np.ndarray:
        np.multiply(xhat, gamma, out=out)
        out += beta                                        # y = γ ⊙ x̂ + β
        return out


class LayerNorm(_Norm):
    """Layer normalisation over the features of each row (Ba, Kiros & Hinton, 2016).

    ``μ_i = (1/n) Σ_j x_ij``, ``σ²_i = (1/n) Σ_j (x_ij − μ_i)²``, ``x̂ = (x − μ)/√(σ² + ε)``,
    ``y = γ ⊙ x̂ + β``; the same in training and inference. Backward: see the module.

    Parameters
    ----------
    n : int
        Features (the input and output width). γ starts at 1 and β at 0, shape (n,).
    eps : float, default 1e-5
        Added to σ² (torch.nn.LayerNorm's default).
    dtype : float32 (default) or float64
    """

    kind = "layernorm"

    def __init__(self, n: int, *, eps: float = 1e-5, dtype: Any = np.float32) -> None:
        super().__init__(n, eps, dtype)

    def _normalise(self, A: np.ndarray, mu: np.ndarray, rstd: np.ndarray, xhat: np.ndarray,
                   out: np.ndarray) -> np.ndarray:
        np.mean(A, axis=1, keepdims=True, out=mu)          # μ_i = (1/n) Σ_j x_ij
        np.subtract(A, mu, out=xhat)                       # x − μ
        np.multiply(xhat, xhat, out=out)                   # (x − μ)²  (out as scratch)
        np.mean(out, axis=1, keepdims=True, out=rstd)      # σ²_i
        rstd += self.eps
        np.sqrt(rstd, out=rstd)
        np.reciprocal(rstd, out=rstd)                      # rstd = 1/√(σ² + ε)
        xhat *= rstd                                       # x̂ = (x − μ)·rstd
        return self._scale_shift(xhat, self._gamma.value, self._beta.value, out)

    def forward(self, A: np.ndarray, training: bool = False) -> np.ndarray:
        v = self._views(A)
        return self._normalise(A, v["mu"], v["rstd"], v["xhat"], v["out"])

    def infer(self, A: np.ndarray) -> np.ndarray:
        B = A.shape[0]                                     # forward's calls, into new arrays
        return self._normalise(A, np.empty((B, 1), A.dtype), np.empty((B, 1), A.dtype),
                               np.empty_like(A), np.empty_like(A))

    def config(self) -> dict[str, Any]:
        return {"n": self.n, "eps": self.eps}


class BatchNorm(_Norm):
    """Batch normalisation over the rows of a batch, per feature (Ioffe & Szegedy, 2015), as
    ``torch.nn.BatchNorm1d``.

    Training: ``μ_j = (1/B) Σ_i x_ij``, ``σ²_j = (1/B) Σ_i (x_ij − μ_j)²`` normalise the batch,
    and the running statistics move towards them::

        running_mean ← (1 − m)·running_mean + m·μ
        running_var  ← (1 − m)·running_var  + m·σ²·B/(B − 1)     (the unbiased variance)

    Inference (``training=False``, ``predict``): ``x̂ = (x − running_mean)/√(running_var + ε)``.
    Both give ``y = γ ⊙ x̂ + β``. The running statistics are saved with the model (not trained).

    Parameters
    ----------
    n : int
        Features (the input and output width).
    momentum : float, default 0.1
        m above, in [0, 1] (torch's default and meaning; Keras' momentum is 1 − m).
    eps : float, default 1e-5
    dtype : float32 (default) or float64
    """

    min_batch = 2     # rows per training batch: a variance needs two (fit checks it first)

    kind = "batchnorm"
    _ARRAYS = ("gamma", "beta", "running_mean", "running_var")
    _STAT_AXIS = 0

    def __init__(self, n: int, *, momentum: float = 0.1, eps: float = 1e-5,
                 dtype: Any = np.float32) -> None:
        super().__init__(n, eps, dtype)
        self.momentum = fraction("BatchNorm momentum", momentum, upper_open=False)
        dt = self._gamma.value.dtype
        self.add_state("running_mean", np.zeros(self.n, dt))
        self.add_state("running_var", np.ones(self.n, dt))

    @property
    def running_mean(self) -> np.ndarray:
        return self._state["running_mean"]

    @property
    def running_var(self) -> np.ndarray:
        return self._state["running_var"]

    def _fixed(self, A: np.ndarray, rstd: np.ndarray, xhat: np.ndarray, out: np.ndarray
               ) -> np.ndarray:
        """Inference: the running statistics normalise."""
        np.subtract(A, self.running_mean, out=xhat)        # x − running_mean
        np.add(self.running_var, self.eps, out=rstd)
        np.sqrt(rstd, out=rstd)
        np.reciprocal(rstd, out=rstd)                      # rstd = 1/√(running_var + ε)
        xhat *= rstd                                       # x̂
        return self._scale_shift(xhat, self._gamma.value, self._beta.value, out)

    def forward(self, A: np.ndarray, training: bool = False) -> np.ndarray:
        v = self._views(A)
        mu, rstd, xhat, out = v["mu"][0], v["rstd"][0], v["xhat"], v["out"]
        self._batch_stats = training
        if not training:
            return self._fixed(A, rstd, xhat, out)
        B = A.shape[0]
        if B < 2:
            raise ValidationError(
                "BatchNorm needs at least 2 rows per training batch to estimate a variance; "
                "received 1. Choose a batch_size that leaves no batch of one row, or use "
                "LayerNorm.")
        m, scratch = self.momentum, v["s1"][0]
        np.mean(A, axis=0, out=mu)                         # μ_j = (1/B) Σ_i x_ij
        np.subtract(A, mu, out=xhat)                       # x − μ
        np.multiply(xhat, xhat, out=out)                   # (x − μ)²  (out as scratch)
        np.mean(out, axis=0, out=rstd)                     # σ²_j (biased: it normalises)
        rm, rv = self.running_mean, self.running_var
        rm *= 1.0 - m
        np.multiply(mu, m, out=scratch)
        rm += scratch                                      # running_mean ← (1−m)·r + m·μ
        rv *= 1.0 - m
        np.multiply(rstd, m * B / (B - 1), out=scratch)
        rv += scratch                                      # running_var ← (1−m)·r + m·σ²·B/(B−1)
        rstd += self.eps
        np.sqrt(rstd, out=rstd)
        np.reciprocal(rstd, out=rstd)                      # rstd = 1/√(σ² + ε)
        xhat *= rstd                                       # x̂ = (x − μ)·rstd
        return self._scale_shift(xhat, self._gamma.value, self._beta.value, out)

    def infer(self, A: np.ndarray) -> np.ndarray:
        return self._fixed(A, np.empty(self.n, A.dtype), np.empty_like(A), np.empty_like(A))

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy stored arrays in, refusing a negative running variance (√ would be NaN)."""
        if np.any(np.asarray(arrays["running_var"]) < 0):
            raise ValidationError("BatchNorm running_var must be >= 0 (it is a variance); "
                                  "the stored one has negative values.")
        super().set_arrays(arrays)

    def config(self) -> dict[str, Any]:
        return {"n": self.n, "momentum": self.momentum, "eps": self.eps}


#: the ``norm`` names ``mlp``, the command line and the estimators accept.
NORMS: dict[str, type[_Norm]] = {"layer": LayerNorm, "batch": BatchNorm}
