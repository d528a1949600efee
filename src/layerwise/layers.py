"""Layers: the ``Layer`` protocol, ``Dense`` and ``Dropout``.

Batches are rows: an activation A has shape (B, n). Every layer caches what its backward needs
during ``forward`` and writes its results into buffers it owns, sized for the largest batch seen
and sliced for a shorter one, so a training step allocates nothing once warmed up. The arrays a
layer returns are those buffers: they stay valid until the layer's next forward/backward call,
so copy them if you keep them.

Inference has its own pass, ``infer(A)``: the same computation as ``forward(A, training=False)``,
with the same calls in the same order (so the same bits), into new arrays and without writing
anything on the layer. Any number of threads can therefore run it on one model at once, also
while ``fit`` trains that model in another thread; the training buffers belong to ``fit``.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np

from . import initializers
from ._utils import (
    RngLike,
    as_float_dtype,
    as_generator,
    buffer,
    check_memory,
    fraction,
    is_finite,
    positive_int,
)
from .errors import ValidationError

_FALLBACK = threading.Lock()    # serialises inference through layers that only have forward


class Param:
    """A trainable parameter: its name, its value and its gradient (same shape and dtype).

    Optimizers update ``value`` in place, so the layer that owns it sees the change.
    ``no_decay`` lists the (start, stop) ranges of ``value.reshape(-1)`` that weight decay
    leaves alone unless the optimizer has ``decay_biases=True``: the biases (a bias Param is
    one whole range; the flat buffer of ``Sequential.flat_parameters`` one range per layer).
    """

    __slots__ = ("grad", "name", "no_decay", "value")

    def __init__(self, name: str, value: np.ndarray, grad: np.ndarray,
                 no_decay: tuple[tuple[int, int], ...] = ()) -> None:
        self.name, self.value, self.grad, self.no_decay = name, value, grad, no_decay

    def __repr__(self) -> str:
        return f"Param({self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"


class Layer:
    """The layer protocol: ``forward(A, training) -> A_out`` and ``backward(dA) -> dA_prev``."""

    #: name used in model files and summaries; registered in ``LAYERS``.
    kind: ClassVar[str] = "layer"
    #: whether the layer has parameters (the backward pass of training stops at the first one).
    trainable: ClassVar[bool] = False

    def __init__(self) -> None:
        self._buf: dict[str, np.ndarray] = {}
        self._shape: tuple[int, ...] = ()      # input shape the cached buffer views are for

    def forward(self, A: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dA: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def infer(self, A: np.ndarray) -> np.ndarray:
        """Inference output for ``A`` as a new array (or ``A`` itself where the layer is the
        identity), computed exactly as ``forward(A, training=False)`` but writing nothing on the
        layer, so any number of threads may call it at once.

        A layer that defines only ``forward`` gets that, run under a lock and copied: correct,
        but serialised (and not safe against ``fit`` training the same layer meanwhile).
        """
        with _FALLBACK:
            return np.array(self.forward(A, False), copy=True)

    def params(self) -> list[Param]:
        """This layer's trainable parameters (empty for activations)."""
        return []

    def astype(self, dtype: Any) -> Layer:
        """Cast parameters and drop buffers so they are re-made in the new dtype."""
        self._buf.clear()
        self._shape = ()
        return self

    def bind(self, name: str, value: np.ndarray, grad: np.ndarray) -> None:
        """Make parameter ``name`` (and its gradient ``d<name>``) these arrays.

        ``Sequential`` uses it to place every parameter in one contiguous buffer, so that an
        optimizer updates all of them in a couple of vectorised calls.
        """
        setattr(self, name, value)
        setattr(self, "d" + name, grad)

    def output_size(self, n_in: int) -> int:
        """Number of output features for ``n_in`` input features."""
        return n_in

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (JSON-serialisable)."""
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        """Named arrays stored in model files (parameters, and state such as running means)."""
        return {p.name: p.value for p in self.params()}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy stored arrays into this layer's parameters, in place."""
        for p in self.params():
            p.value[...] = arrays[p.name]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _finite_draw(A: np.ndarray, spec: str, what: str, dt: np.dtype[Any]) -> None:
    """Refuse an initialiser's draw that is not finite in ``dt`` (e.g. normal:1e40 in float32
    overflows to inf): training would only report a NaN loss and blame the learning rate."""
    if A.dtype.kind == "f" and not is_finite(A.astype(dt, copy=False)):
        raise ValidationError(
            f"{what}={spec!r} drew values that are not finite in {dt} (largest finite "
            f"{np.finfo(dt).max:.3g}); use a smaller scale, e.g. normal:1.0.")


class Dense(Layer):
    """Fully connected layer ``Z = A_prev @ W.T + b``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output features. ``W`` has shape (n_out, n_in), ``b`` shape (n_out,).
    init : str or callable, default "xavier_uniform"
        Weight initialiser: a name or "NAME:NUMBER" spec such as "normal:1.0" (see
        :mod:`layerwise.initializers`), or a callable; ``lw.mlp`` picks He for ReLU.
    bias_init : str or callable, default "zeros"
        Bias initialiser: "zeros", "normal:STD", "uniform:LIMIT", "constant:VALUE", or a
        callable given the shape (n_out,). Drawn after W from the same ``rng``.
    bias : bool, default True
    dtype : float32 (default) or float64
    rng : int, Generator or None
        Source of the initial weights.

    Notes
    -----
    Forward and backward, with batches as rows (the textbook's column form transposed)::

        Z       = A_prev @ W.T + b        (B, n_out)
        dW      = dZ.T @ A_prev           (n_out, n_in)     textbook: dW = dZ·A_prevᵀ
        db      = Σ_batch dZ = 1ᵀ dZ      (n_out,)
        dA_prev = dZ @ W                  (B, n_in)         textbook: dX = Wᵀ·dZ
    """

    kind = "dense"
    trainable = True

    def __init__(self, n_in: int, n_out: int, *, init: Any = "xavier_uniform", bias: bool = True,
                 dtype: Any = np.float32, rng: RngLike = None, bias_init: Any = "zeros") -> None:
        super().__init__()
        self.n_in = positive_int("n_in", n_in)
        self.n_out = positive_int("n_out", n_out)
        self.init = initializers.name_of(init)
        self.bias = bool(bias)
        bias_fn = initializers.get_bias(bias_init)
        self.bias_init = initializers.name_of(bias_init)
        if not self.bias and self.bias_init != "zeros":
            raise ValidationError(f"bias_init={self.bias_init!r} was given to a Dense layer "
                                  "with bias=False; drop bias_init or set bias=True.")
        dt = as_float_dtype(dtype)
        check_memory(f"Dense({self.n_in}, {self.n_out}) (W and its gradient dW)",
                     2 * self.n_in * self.n_out * dt.itemsize, "use fewer units.")
        gen = as_generator(rng)
        with np.errstate(over="ignore", invalid="ignore"):   # refused below, by name
            W = np.asarray(initializers.get(init)((self.n_out, self.n_in), gen, dt))
        if W.shape != (self.n_out, self.n_in):
            raise ValidationError(
                f"the initializer {self.init!r} returned shape {W.shape}; Dense needs W of shape "
                f"(n_out, n_in) = {(self.n_out, self.n_in)}, so make it use the shape it is given."
            )
        _finite_draw(W, self.init, "init", dt)
        self.W: np.ndarray = np.ascontiguousarray(W, dtype=dt)
        # b after W, from the same generator; zeros draws nothing, so W is as it always was
        with np.errstate(over="ignore", invalid="ignore"):
            b = np.asarray(bias_fn((self.n_out,), gen, dt))  # type: ignore[arg-type]  # (n_out,)
        _finite_draw(b, self.bias_init, "bias_init", dt)
        if b.shape != (self.n_out,):
            raise ValidationError(
                f"the bias initializer {self.bias_init!r} returned shape {b.shape}; Dense needs "
                f"b of shape (n_out,) = {(self.n_out,)}, so make it use the shape it is given."
            )
        self.b: np.ndarray = np.ascontiguousarray(b, dtype=dt)
        self.dW: np.ndarray = np.zeros_like(self.W)
        self.db: np.ndarray = np.zeros_like(self.b)
        self._A_prev: np.ndarray | None = None

    def forward(self, A: np.ndarray, training: bool = False) -> np.ndarray:
        if A.shape != self._shape:              # views of the buffers for this batch size
            B = A.shape[0]
            self._Z = buffer(self._buf, "Z", B, (self.n_out,), self.W.dtype)
            self._dA = buffer(self._buf, "dA", B, (self.n_in,), self.W.dtype)
            self._ones = np.ones(B, dtype=self.W.dtype)
            self._shape = A.shape
        Z = self._Z
        self._A_prev = A                        # cached for dW = dZ.T @ A_prev
        np.dot(A, self.W.T, out=Z)              # Z = A_prev @ W.T   (BLAS; refuses mixed dtypes)
        if self.bias:
            Z += self.b                         #     + b
        return Z

    def infer(self, A: np.ndarray) -> np.ndarray:
        Z = np.empty((A.shape[0], self.n_out), dtype=self.W.dtype)
        np.dot(A, self.W.T, out=Z)              # Z = A_prev @ W.T   (forward's call, new array)
        if self.bias:
            Z += self.b                         #     + b
        return Z

    def backward(self, dZ: np.ndarray, input_grad: bool = True) -> np.ndarray:
        """Fill ``dW`` and ``db`` and return dA_prev (``None`` when ``input_grad`` is False)."""
        A_prev = self._A_prev
        assert A_prev is not None, "backward called before forward"
        np.dot(dZ.T, A_prev, out=self.dW)       # dW = dZ.T @ A_prev
        if self.bias:
            np.dot(self._ones, dZ, out=self.db) # db = Σ_batch dZ = 1ᵀ·dZ  (a GEMV)
        if not input_grad:                      # the first layer's dX is not needed to train
            return None  # type: ignore[return-value]
        dA_prev = self._dA
        np.dot(dZ, self.W, out=dA_prev)         # dA_prev = dZ @ W
        return dA_prev

    def params(self) -> list[Param]:
        ps = [Param("W", self.W, self.dW)]
        if self.bias:                           # biases: not weight-decayed by default
            ps.append(Param("b", self.b, self.db, no_decay=((0, self.n_out),)))
        return ps

    def astype(self, dtype: Any) -> Dense:
        dt = as_float_dtype(dtype)
        self.W, self.b = self.W.astype(dt), self.b.astype(dt)
        self.dW, self.db = self.dW.astype(dt), self.db.astype(dt)
        return super().astype(dt)  # type: ignore[return-value]

    def output_size(self, n_in: int) -> int:
        return self.n_out

    def config(self) -> dict[str, Any]:
        config = {"n_in": self.n_in, "n_out": self.n_out, "init": self.init, "bias": self.bias}
        if self.bias_init != "zeros":       # written only when set: files stay readable by
            config["bias_init"] = self.bias_init    # versions without bias_init
        return config

    def arrays(self) -> dict[str, np.ndarray]:
        return {"W": self.W, "b": self.b}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.W[...] = arrays["W"]
        self.b[...] = arrays["b"]


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``p`` and scale by 1/(1−p).

    ``A = Z ⊙ M`` with ``M_ij = 𝟙[u_ij ≥ p] / (1 − p)``, ``u ~ U[0, 1)``; ``dZ = dA ⊙ M``.
    With ``training=False`` it is the identity, so inference needs no rescaling.
    """

    kind = "dropout"

    def __init__(self, p: float = 0.5, *, rng: RngLike = None) -> None:
        super().__init__()
        self.p = fraction("dropout p", p)
        self.rng = as_generator(rng)
        self._mask: np.ndarray | None = None

    def forward(self, A: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.p == 0.0:
            self._mask = None
            return A
        B, n = A.shape
        M = buffer(self._buf, "M", B, (n,), A.dtype)
        self.rng.random(out=M, dtype=M.dtype)   # u ~ U[0, 1)
        keep = buffer(self._buf, "keep", B, (n,), np.bool_)
        np.greater_equal(M, self.p, out=keep)   # 𝟙[u ≥ p]
        np.copyto(M, keep)                      # (a bool × float multiply would allocate)
        M *= 1.0 / (1.0 - self.p)               # M = 𝟙[u ≥ p] / (1 − p)
        self._mask = M
        out = buffer(self._buf, "A", B, (n,), A.dtype)
        np.multiply(A, M, out=out)              # A = Z ⊙ M
        return out

    def infer(self, A: np.ndarray) -> np.ndarray:
        return A                                # the identity at inference (no _mask reset)

    def backward(self, dA: np.ndarray) -> np.ndarray:
        if self._mask is None:
            return dA
        dZ = buffer(self._buf, "dZ", dA.shape[0], dA.shape[1:], dA.dtype)
        np.multiply(dA, self._mask, out=dZ)     # dZ = dA ⊙ M
        return dZ

    def config(self) -> dict[str, Any]:
        return {"p": self.p}
