"""Activation layers: ``A = f(Z)`` forward, ``dZ = dA ⊙ f′(Z)`` backward.

Each activation is its own layer, so a Dense layer stays the affine map of the textbook. Where
f′ is exact as a function of the output it is computed from A (sigmoid: A(1−A), tanh: 1−A²,
ReLU: 𝟙[A>0], ELU: A+α below zero); otherwise the input Z is kept by reference. Results go into
buffers the layer owns (see :mod:`layerwise.layers`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, TypeAlias

import numpy as np

from ._utils import buffer, finite_float, lookup, positive_float
from .errors import ConfigError
from .layers import Layer

_NOTHING = np.empty((0, 0))


class Activation(Layer):
    """Base class: subclasses fill ``_f(Z, A)`` and ``_df(dA, dZ)``.

    ``default_init`` names the initialiser of the Dense layer feeding this activation when
    none is given (``mlp``, the estimators): Glorot keeps the variance of units that are
    linear around zero (tanh, sigmoid, identity) constant across layers; ReLU-like units
    zero half their inputs, so they take He (twice the variance).
    """

    default_init: ClassVar[str] = "xavier_uniform"
    #: f′ needs only the output A, and ``_f(Z, Z)`` and ``_df(dA, dA)`` are right when their
    #: output is their input: ``Sequential`` then has the activation write A over the Z a Dense
    #: layer hands it (``forward_over``) and dZ over the dA the next Dense hands back
    #: (``backward_over``), buffers nothing else reads afterwards. The numbers are the same
    #: bits; a step touches two buffers fewer. Only a class that sets it itself is run so (a
    #: subclass with its own ``_f`` or ``_df`` is not, unless it says so too).
    in_place: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self._Z: np.ndarray = _NOTHING        # input of the last forward (kept by reference)
        self._A: np.ndarray = _NOTHING        # the output buffer of forward (our own)
        self._out: np.ndarray = _NOTHING      # the last forward's output: _A, or Z overwritten
        self._dZ: np.ndarray = _NOTHING       # gradient buffer handed back by backward
        self._mask: np.ndarray = _NOTHING     # boolean scratch (ReLU-like derivatives)
        self._dtype: Any = None

    def _views(self, Z: np.ndarray) -> None:
        """Buffer views for inputs of this shape and dtype (grown only for a larger batch)."""
        B, tail = Z.shape[0], Z.shape[1:]
        self._A = buffer(self._buf, "A", B, tail, Z.dtype)
        self._dZ = buffer(self._buf, "dZ", B, tail, Z.dtype)
        self._mask = buffer(self._buf, "mask", B, tail, np.bool_)
        self._shape, self._dtype = Z.shape, Z.dtype

    def forward(self, Z: np.ndarray, training: bool = False) -> np.ndarray:
        if Z.shape != self._shape or Z.dtype != self._dtype:
            self._views(Z)
        self._Z = Z
        self._f(Z, self._A)
        self._out = self._A
        return self._A

    def forward_over(self, Z: np.ndarray, training: bool = False) -> np.ndarray:
        """``forward``, writing A = f(Z) over Z itself (for ``in_place`` activations, when Z is
        a buffer of the layer before that nothing reads afterwards)."""
        if Z.shape != self._shape or Z.dtype != self._dtype:
            self._views(Z)
        self._Z = Z
        self._f(Z, Z)                           # A = f(Z), over Z
        self._out = Z
        return Z

    def infer(self, Z: np.ndarray) -> np.ndarray:
        A = np.empty_like(Z)
        self._f(Z, A)                           # A = f(Z), forward's call into a new array
        return A

    def backward(self, dA: np.ndarray, input_grad: bool = True) -> np.ndarray:
        self._df(dA, self._dZ)
        return self._dZ

    def backward_over(self, dA: np.ndarray, input_grad: bool = True) -> np.ndarray:
        """``backward``, writing dZ = dA ⊙ f′ over dA itself (for ``in_place`` activations,
        when dA is a buffer of the layer after that nothing reads afterwards)."""
        self._df(dA, dA)
        return dA

    def _f(self, Z: np.ndarray, A: np.ndarray) -> None:
        raise NotImplementedError

    def _df(self, dA: np.ndarray, dZ: np.ndarray) -> None:
        raise NotImplementedError


class Identity(Activation):
    """f(z) = z, f′(z) = 1."""

    kind = "identity"

    def forward(self, Z: np.ndarray, training: bool = False) -> np.ndarray:
        return Z

    def infer(self, Z: np.ndarray) -> np.ndarray:
        return Z

    def backward(self, dA: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return dA


class ReLU(Activation):
    """f(z) = max(z, 0), f′(z) = 𝟙[z > 0] = 𝟙[A > 0]."""

    kind = "relu"
    default_init = "he_normal"
    _zero: np.ndarray = _NOTHING

    def _views(self, Z: np.ndarray) -> None:
        super()._views(Z)
        # NumPy vectorises maximum against an array but not against a scalar 0, which is 2.5x
        # slower, so the zero is a row broadcast over the batch.
        self._zero = np.zeros(Z.shape[1:], dtype=Z.dtype)

    def _f(self, Z: np.ndarray, A: np.ndarray) -> None:
        np.maximum(Z, self._zero, out=A)        # A = max(Z, 0)

    def infer(self, Z: np.ndarray) -> np.ndarray:
        A = np.empty_like(Z)
        np.maximum(Z, np.zeros(Z.shape[1:], Z.dtype), out=A)   # A = max(Z, 0), own zero row
        return A

    in_place = True

    def _df(self, dA: np.ndarray, dZ: np.ndarray) -> None:
        A = self._out                           # (dZ may be dA itself: see in_place)
        if A.size < 4096:                       # small: fewer, cheaper calls
            d = self._dZ
            np.sign(A, out=d)                   # f′ = 𝟙[A > 0] = sign(A), as A ≥ 0
            np.multiply(dA, d, out=dZ)          # dZ = dA ⊙ f′
        else:                                   # large: np.sign is not vectorised
            np.greater(A, 0, out=self._mask)    # f′ = 𝟙[A > 0]
            np.multiply(dA, self._mask, out=dZ) # dZ = dA ⊙ f′


class LeakyReLU(Activation):
    """f(z) = z if z > 0 else αz; f′(z) = 1 if z > 0 else α (α = 0.01, PyTorch's default)."""

    kind = "leaky_relu"
    default_init = "he_normal"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = finite_float("LeakyReLU alpha", alpha)

    def _f(self, Z: np.ndarray, A: np.ndarray) -> None:
        np.multiply(Z, self.alpha, out=A)       # αZ
        np.maximum(Z, A, out=A) if self.alpha <= 1 else np.minimum(Z, A, out=A)

    def _df(self, dA: np.ndarray, dZ: np.ndarray) -> None:
        mask = self._mask
        np.greater(self._Z, 0, out=mask)
        np.multiply(dA, self.alpha, out=dZ)     # α dA   (z ≤ 0)
        np.copyto(dZ, dA, where=mask)           # dA     (z > 0)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(Activation):
    """σ(z) = 1 / (1 + e^(−z)), σ′ = σ(1 − σ) = A(1 − A)."""

    kind = "sigmoid"

    def _f(self, Z: np.ndarray, A: np.ndarray) -> None:
        with np.errstate(over="ignore"):        # e^(−z) → inf gives σ = 0, as it should
            np.negative(Z, out=A)
            np.exp(A, out=A)
        A += 1
        np.reciprocal(A, out=A)                 # A = 1 / (1 + e^(−Z))

    in_place = True

    def _df(self, dA: np.ndarray, dZ: np.ndarray) -> None:
        A, d = self._out, self._dZ              # (dZ may be dA itself: see in_place)
        np.subtract(1, A, out=d)                # 1 − A
        d *= A                                  # σ′ = A(1 − A)
        np.multiply(dA, d, out=dZ)              # dZ = dA ⊙ σ′


class Tanh(Activation):
    """f(z) = tanh z, f′ = 1 − tanh² z = 1 − A²."""

    kind = "tanh"

    def _f(self, Z: np.ndarray, A: np.ndarray) -> None:
        np.tanh(Z, out=A)

    in_place = True

    def _df(self, dA: np.ndarray, dZ: np.ndarray) -> None:
        A, d = self._out, self._dZ              # (dZ may be dA itself: see in_place)
        np.multiply(A, A, out=d)
        np.subtract(1, d, out=d)                # f′ = 1 − A²
        np.multiply(dA, d, out=dZ)              # dZ = dA ⊙ f′


class ELU(Activation):
    """f(z) = z if z > 0 else α(e^z − 1); f′ = 1 if z > 0 else α e^z = A + α.

    The branch is taken on Z (kept by reference), since for α < 0 the output is positive on
    both sides of zero.
    """

    kind = "elu"
    default_init = "he_normal"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = finite_float("ELU alpha", alpha)

    def _f(self, Z: np.ndarray, A: np.ndarray) -> None:
        np.minimum(Z, 0, out=A)
        np.expm1(A, out=A)
        A *= self.alpha                         # α(e^min(z,0) − 1)
        np.add(A, np.maximum(Z, 0), out=A)      # + max(z, 0)

    def _df(self, dA: np.ndarray, dZ: np.ndarray) -> None:
        A = self._A
        np.add(A, self.alpha, out=dZ)           # A + α   (z ≤ 0)
        np.copyto(dZ, 1, where=self._Z > 0)     # 1       (z > 0)
        dZ *= dA

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Softplus(Activation):
    """f(z) = log(1 + e^z), f′ = σ(z) = 1 − e^(−A).

    As in PyTorch, f(z) = z for z > ``threshold`` (20), where the two agree to float64 precision.
    """

    kind = "softplus"

    def __init__(self, threshold: float = 20.0) -> None:
        super().__init__()
        self.threshold = positive_float("Softplus threshold", threshold)

    def _f(self, Z: np.ndarray, A: np.ndarray) -> None:
        np.logaddexp(Z, 0, out=A)               # A = log(e^z + 1), stable for large |z|
        np.copyto(A, Z, where=Z > self.threshold)

    def _df(self, dA: np.ndarray, dZ: np.ndarray) -> None:
        A = self._A
        np.negative(A, out=dZ)
        np.expm1(dZ, out=dZ)
        np.negative(dZ, out=dZ)                 # σ(z) = 1 − e^(−A), without cancellation
        np.copyto(dZ, 1, where=self._Z > self.threshold)
        dZ *= dA

    def config(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to double precision: SciPy's when installed, else the standard library's, vectorised."""
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - scipy is optional
        return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    return erf(x)


class GELU(Activation):
    """Gaussian error linear unit, f(z) = z Φ(z), f′(z) = Φ(z) + z φ(z).

    ``approximate="none"`` (PyTorch's default) uses Φ(z) = ½(1 + erf(z/√2)); ``"tanh"`` uses
    f(z) = ½ z (1 + tanh(√(2/π)(z + 0.044715 z³))), which needs nothing beyond NumPy and is faster.
    """

    kind = "gelu"
    default_init = "he_normal"

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ConfigError(
                f"GELU approximate must be 'none' or 'tanh'; received {approximate!r}.")
        self.approximate = approximate

    def _f(self, Z: np.ndarray, A: np.ndarray) -> None:
        if self.approximate == "tanh":
            u = math.sqrt(2 / math.pi) * (Z + 0.044715 * Z**3)
            np.multiply(0.5 * Z, 1 + np.tanh(u), out=A)
        else:
            np.multiply(0.5 * Z, 1 + _erf(Z / math.sqrt(2)), out=A)   # z Φ(z)

    def _df(self, dA: np.ndarray, dZ: np.ndarray) -> None:
        Z = self._Z
        if self.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            t = np.tanh(k * (Z + 0.044715 * Z**3))
            d = 0.5 * (1 + t) + 0.5 * Z * (1 - t * t) * k * (1 + 3 * 0.044715 * Z * Z)
        else:
            cdf = 0.5 * (1 + _erf(Z / math.sqrt(2)))                    # Φ(z)
            pdf = np.exp(-0.5 * Z * Z) / math.sqrt(2 * math.pi)        # φ(z)
            d = cdf + Z * pdf                                          # f′ = Φ + zφ
        np.multiply(dA, d, out=dZ)

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class Softmax(Activation):
    """Row-wise softmax, A_k = e^(z_k) / Σ_j e^(z_j), with its full Jacobian-vector product.

    The Jacobian is ∂A_k/∂z_j = A_k(δ_kj − A_j), so ``dZ = A ⊙ (dA − Σ_k dA_k A_k)``. For
    classification prefer ``CrossEntropy`` on logits, which fuses both and is more stable.
    """

    kind = "softmax"

    def _f(self, Z: np.ndarray, A: np.ndarray) -> None:
        np.subtract(Z, Z.max(axis=1, keepdims=True), out=A)  # shift for stability
        np.exp(A, out=A)
        A /= A.sum(axis=1, keepdims=True)

    def _df(self, dA: np.ndarray, dZ: np.ndarray) -> None:
        A = self._A
        s = np.einsum("ij,ij->i", dA, A)[:, None]          # Σ_k dA_k A_k per row
        np.subtract(dA, s, out=dZ)
        dZ *= A                                             # dZ = A ⊙ (dA − s)


ACTIVATIONS: dict[str, Callable[[], Activation]] = {
    "identity": Identity,
    "linear": Identity,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "leakyrelu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "elu": ELU,
    "softplus": Softplus,
    "gelu": GELU,
    "softmax": Softmax,
}


#: What an activation argument takes: a registered name ("relu", "tanh", …) or a layer.
ActivationLike: TypeAlias = str | Activation


def get(name: ActivationLike) -> Activation:
    """An activation layer from its name ("relu", "tanh", …) or an instance (returned as is)."""
    if isinstance(name, Activation):
        return name
    return lookup(ACTIVATIONS, name, "activation")()


def default_init(activation: ActivationLike | None) -> str:
    """The initialiser name that suits ``activation`` (a name, an activation layer or None, a
    linear output): its class's ``default_init``, He for ReLU-like units, Glorot otherwise."""
    if activation is None:
        return Activation.default_init
    return get(activation).default_init
