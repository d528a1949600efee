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
from .errors import ConfigError, LayerwiseError, ValidationError

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


class ParamList(list[Param]):
    """What ``Sequential.parameters()`` returns: a list of Params, one per array, that also
    knows when the arrays are consecutive views of the model's one flat buffer (they are from
    construction on; see ``Sequential.flat_parameters``).

    ``flat()`` gives that buffer as a single Param while the list still holds exactly the
    arrays it was made with, else None. An optimizer given the list steps the flat Param
    instead: the update rules are elementwise, so the numbers are the same, and the step is a
    few vectorised calls whatever the depth, as in ``fit``.
    """

    __slots__ = ("_arrays", "_flat")

    def __init__(self, params: list[Param], flat: Param | None) -> None:
        super().__init__(params)
        self._flat = flat
        self._arrays = [(p.value, p.grad) for p in params]

    def _intact(self) -> bool:
        """Whether the list and its Params still hold exactly the arrays it was made with."""
        return len(self) == len(self._arrays) and all(
            p.value is v and p.grad is g for p, (v, g) in zip(self, self._arrays))

    def holds(self, params: list[Param]) -> bool:
        """Whether this list still holds, unchanged, exactly the arrays of ``params`` (the
        layers' own Params, in order)."""
        return self._intact() and len(params) == len(self._arrays) and all(
            q.value is v and q.grad is g for q, (v, g) in zip(params, self._arrays))

    def flat(self) -> Param | None:
        """The flat Param the list's arrays are views of, or None once the list or one of its
        Params was changed (then each Param is stepped on its own, as any list is)."""
        return self._flat if self._flat is not None and self._intact() else None


#: every Layer subclass that declares a ``kind``, by kind: how model files find the class.
#: Filled by ``Layer.__init_subclass__``, so a layer defined anywhere (user code too) is known.
LAYERS: dict[str, type[Layer]] = {}
#: layer widths beyond this are not plausible (a model file declaring more is refused).
MAX_UNITS = 2**31 - 1


def config_size(config: dict[str, Any], key: str) -> int:
    """``config[key]`` as a layer width, checked before anything is allocated for it."""
    v = config.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_UNITS:
        raise ValueError(f"{key} must be an integer in 1..{MAX_UNITS}; found {v!r}")
    return v


class Layer:
    """The layer protocol.

    A subclass implements ``forward(A, training) -> A_out`` and ``backward(dA, input_grad=True)
    -> dA_prev`` and describes itself, so the rest of the package needs no branch per kind:

    - ``kind`` (class attribute): its name in model files; defining the class registers it in
      ``LAYERS`` (``__init_subclass__``), in the package or in user code alike.
    - ``config()`` / ``from_config(config, dtype)``: the JSON settings that rebuild it.
    - ``add_param(name, value) -> Param``: its trainable arrays, owned by name. Read them as
      ``param.value`` / ``param.grad`` at each use: ``Sequential.flat_parameters`` moves them
      into one buffer by replacing those two attributes, and ``astype`` by casting them.
    - ``add_state(name, value)``: arrays saved with the model but not trained (running means).
    - ``array_shapes(config)``: the shapes of ``arrays()`` for a config, so a model file is
      checked before anything is built from it.
    """

    #: name used in model files and summaries; registered in ``LAYERS``.
    kind: ClassVar[str] = "layer"
    # the fewest rows a training batch may hold (BatchNorm: 2); fit refuses splits below it
    min_batch: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:          # abstract bases (Activation) inherit a kind
            return
        known = LAYERS.get(cls.kind)
        if known is not None and (known.__module__, known.__qualname__) != (
                cls.__module__, cls.__qualname__):
            raise ConfigError(
                f"the layer kind {cls.kind!r} of {cls.__module__}.{cls.__qualname__} is already "
                f"taken by {known.__module__}.{known.__qualname__}; give the class another kind.")
        LAYERS[cls.kind] = cls                  # (re-defining the same class replaces it)

    def __init__(self) -> None:
        self._buf: dict[str, np.ndarray] = {}
        self._shape: tuple[int, ...] = ()      # input shape the cached buffer views are for
        self._params: dict[str, Param] = {}
        self._state: dict[str, np.ndarray] = {}

    # -- what a layer declares ---------------------------------------------------------------
    def add_param(self, name: str, value: np.ndarray, *, decay: bool = True) -> Param:
        """Own ``value`` as the trainable parameter ``name`` (a zero gradient is made beside it).

        ``decay=False`` exempts it from weight decay unless the optimizer has
        ``decay_biases=True`` (biases, and the shift β of a normalisation).
        """
        if not isinstance(name, str) or not name.isidentifier() or name in self._params \
                or name in self._state:
            raise ConfigError(f"{type(self).__name__}.add_param: the name {name!r} must be a "
                              "new identifier among this layer's arrays.")
        value = np.ascontiguousarray(value)
        p = Param(name, value, np.zeros_like(value),
                  () if decay else ((0, value.size),))
        self._params[name] = p
        return p

    def add_state(self, name: str, value: np.ndarray) -> None:
        """Own ``value`` as the array ``name``, saved in model files but not trained; read it
        back as ``self.state(name)`` (``astype`` replaces the array)."""
        if not isinstance(name, str) or not name.isidentifier() or name in self._params \
                or name in self._state:
            raise ConfigError(f"{type(self).__name__}.add_state: the name {name!r} must be a "
                              "new identifier among this layer's arrays.")
        self._state[name] = np.ascontiguousarray(value)

    def state(self, name: str) -> np.ndarray:
        """The non-trained array ``name`` (see ``add_state``)."""
        return self._state[name]

    @classmethod
    def array_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The shape of every array in ``arrays()`` for a layer built from ``config``.

        Model files are checked against it before a layer is built. The default builds the
        layer (in float32) to look; a layer whose arrays grow with its settings overrides it
        with arithmetic, checking sizes with ``config_size``, so a forged file cannot make
        ``load`` allocate. Raise ValueError for settings that are not valid.
        """
        try:
            layer = cls.from_config(config, np.dtype(np.float32))
        except (TypeError, KeyError, OverflowError, LayerwiseError) as exc:
            raise ValueError(str(exc)) from None
        return {name: a.shape for name, a in layer.arrays().items()}

    @classmethod
    def from_config(cls, config: dict[str, Any], dtype: Any = np.float32) -> Layer:
        """A layer of these settings (``config()``) and dtype; model files then ``set_arrays``.

        The default calls ``cls(**config)`` and casts the result to ``dtype``.
        """
        return cls(**config).astype(dtype)

    # -- the passes --------------------------------------------------------------------------
    def forward(self, A: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dA: np.ndarray, input_grad: bool = True) -> np.ndarray:
        """Fill the parameters' gradients and return dL/dA_prev.

        ``input_grad=False`` (the first layer with parameters, in training) may skip dA_prev
        and return None: nothing before it needs a gradient.
        """
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

    # -- what the package reads --------------------------------------------------------------
    def params(self) -> list[Param]:
        """This layer's trainable parameters, in the order they were added (empty for
        activations). The Params are the layer's own: their ``value`` and ``grad`` are what
        forward and backward use."""
        return list(self._params.values())

    @property
    def trainable(self) -> bool:
        """Whether the layer has trainable parameters (training's backward pass stops at the
        first such layer)."""
        return bool(self._params)

    def astype(self, dtype: Any) -> Layer:
        """Cast parameters, gradients and state, and drop buffers so they are re-made in the
        new dtype."""
        dt = as_float_dtype(dtype)
        for p in self._params.values():
            p.value, p.grad = p.value.astype(dt), p.grad.astype(dt)
        for name, a in self._state.items():
            self._state[name] = a.astype(dt)
        self._buf.clear()
        self._shape = ()
        return self

    def output_size(self, n_in: int) -> int:
        """Number of output features for ``n_in`` input features."""
        return n_in

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (JSON-serialisable)."""
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        """Named arrays stored in model files: the parameters, then the state."""
        return {**{name: p.value for name, p in self._params.items()}, **self._state}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy stored arrays into this layer's parameters and state, in place."""
        for name, a in self.arrays().items():
            a[...] = arrays[name]

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

    A_prev may be a scipy.sparse CSR batch (a first layer given sparse X): Z and dW are then
    formed on the batch's non-zero columns only (``_nonzero_columns``), and dA_prev, which
    training never asks of the first layer, is still dZ @ W, dense, when asked.
    """

    kind = "dense"

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
        self._W = self.add_param("W", np.ascontiguousarray(W, dtype=dt))
        # b after W, from the same generator; zeros draws nothing, so W is as it always was
        with np.errstate(over="ignore", invalid="ignore"):
            b = np.asarray(bias_fn((self.n_out,), gen, dt))  # type: ignore[arg-type]  # (n_out,)
        _finite_draw(b, self.bias_init, "bias_init", dt)
        if b.shape != (self.n_out,):
            raise ValidationError(
                f"the bias initializer {self.bias_init!r} returned shape {b.shape}; Dense needs "
                f"b of shape (n_out,) = {(self.n_out,)}, so make it use the shape it is given."
            )
        b = np.ascontiguousarray(b, dtype=dt)
        if self.bias:                           # biases: not weight-decayed by default
            self._b = self.add_param("b", b, decay=False)
        else:                                   # stored (zeros) so model files keep "b"
            self.add_state("b", b)
        self._A_prev: Any = None                # the input, or (A_cols, cols) for sparse input
        self._dA: np.ndarray | None = None      # dA_prev's buffer, made when first needed

    # The public names of the textbook: W, b and their gradients dW, db, which are the values
    # of the layer's Params. Assigning one replaces the Param's array (as an attribute would).
    @property
    def W(self) -> np.ndarray:
        return self._W.value

    @W.setter
    def W(self, value: np.ndarray) -> None:
        self._W.value = value

    @property
    def dW(self) -> np.ndarray:
        return self._W.grad

    @dW.setter
    def dW(self, value: np.ndarray) -> None:
        self._W.grad = value

    @property
    def b(self) -> np.ndarray:
        return self._b.value if self.bias else self._state["b"]

    @b.setter
    def b(self, value: np.ndarray) -> None:
        if self.bias:
            self._b.value = value
        else:
            self._state["b"] = value

    @property
    def db(self) -> np.ndarray:
        return self._b.grad if self.bias else np.zeros_like(self._state["b"])

    @db.setter
    def db(self, value: np.ndarray) -> None:
        if self.bias:
            self._b.grad = value

    def forward(self, A: np.ndarray, training: bool = False) -> np.ndarray:
        if A.shape != self._shape:              # views of the buffers for this batch size
            B = A.shape[0]
            self._Z = buffer(self._buf, "Z", B, (self.n_out,), self.W.dtype)
            self._dA = None                     # made by the first backward that needs it
            self._ones = np.ones(B, dtype=self.W.dtype)
            self._shape = A.shape
        Z = self._Z
        self._A_prev = A                        # cached for dW = dZ.T @ A_prev
        if isinstance(A, np.ndarray):
            np.dot(A, self._W.value.T, out=Z)   # Z = A_prev @ W.T   (BLAS; refuses mixed dtypes)
        else:                                   # A_prev CSR: on its non-zero columns only
            assert A.dtype == Z.dtype, "sparse input in another dtype than the layer's"
            A_cols, cols = self._A_prev = _nonzero_columns(A)
            Z[...] = A_cols @ _columns(self._W.value, cols).T   # Z = A_prev @ W.T
        if self.bias:
            Z += self._b.value                  #     + b
        return Z

    def infer(self, A: np.ndarray) -> np.ndarray:
        if isinstance(A, np.ndarray):
            Z = np.empty((A.shape[0], self.n_out), dtype=self.W.dtype)
            np.dot(A, self.W.T, out=Z)          # Z = A_prev @ W.T   (forward's call, new array)
        else:                                   # A_prev CSR: forward's calls, a new array
            assert A.dtype == self.W.dtype, "sparse input in another dtype than the layer's"
            A_cols, cols = _nonzero_columns(A)
            Z = np.asarray(A_cols @ _columns(self.W, cols).T)   # Z = A_prev @ W.T
        if self.bias:
            Z += self.b                         #     + b
        return Z

    def backward(self, dZ: np.ndarray, input_grad: bool = True) -> np.ndarray:
        """Fill ``dW`` and ``db`` and return dA_prev (``None`` when ``input_grad`` is False)."""
        A_prev = self._A_prev
        assert A_prev is not None, "backward called before forward"
        if isinstance(A_prev, np.ndarray):
            np.dot(dZ.T, A_prev, out=self._W.grad)  # dW = dZ.T @ A_prev
        elif A_prev[1] is None:                 # sparse A_prev, as forward kept it: all columns
            self._W.grad[...] = (A_prev[0].T @ dZ).T        # dW = dZ.T @ A_prev = (A_prev.T @ dZ).T
        else:                                   # only the columns holding a stored value
            A_cols, cols = A_prev
            self._W.grad.fill(0.0)              # dW = dZ.T @ A_prev: 0 where a column is all 0
            self._W.grad[:, cols] = (A_cols.T @ dZ).T       # (scipy: sparse @ dense only)
        if self.bias:
            np.dot(self._ones, dZ, out=self._b.grad)    # db = Σ_batch dZ = 1ᵀ·dZ  (a GEMV)
        if not input_grad:                      # the first layer's dX is not needed to train
            return None  # type: ignore[return-value]
        if self._dA is None:
            self._dA = buffer(self._buf, "dA", dZ.shape[0], (self.n_in,), self.W.dtype)
        dA_prev = self._dA
        np.dot(dZ, self._W.value, out=dA_prev)  # dA_prev = dZ @ W
        return dA_prev

    def output_size(self, n_in: int) -> int:
        return self.n_out

    def config(self) -> dict[str, Any]:
        config = {"n_in": self.n_in, "n_out": self.n_out, "init": self.init, "bias": self.bias}
        if self.bias_init != "zeros":       # written only when set: files stay readable by
            config["bias_init"] = self.bias_init    # versions without bias_init
        return config

    @classmethod
    def array_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        n_in, n_out = config_size(config, "n_in"), config_size(config, "n_out")
        return {"W": (n_out, n_in), "b": (n_out,)}

    @classmethod
    def from_config(cls, config: dict[str, Any], dtype: Any = np.float32) -> Dense:
        """Zero weights (nothing drawn) of the stored settings, for ``set_arrays`` to fill; the
        initialisers' names are kept as they were."""
        layer = cls(**{**config, "init": "zeros", "bias_init": "zeros"}, dtype=dtype)
        layer.init = str(config.get("init", "zeros"))
        layer.bias_init = str(config.get("bias_init", "zeros"))
        return layer


def _nonzero_columns(A: Any) -> tuple[Any, np.ndarray | None]:
    """A CSR batch A (B, n_in) as (A_cols, cols): ``cols`` the columns holding a stored value
    (sorted), and A_cols = A[:, cols], CSR (B, len(cols)) sharing A's values, so that

        Z  = A @ W.T  = A_cols @ W[:, cols].T
        dW = dZ.T @ A : dW[:, cols] = (A_cols.T @ dZ).T, and 0 in every other column

    cost O(nnz·n_out) in scipy's sparse-times-dense kernels, not O(n_in·n_out): with TF-IDF
    or one-hot rows a training batch touches a small part of the vocabulary. A batch with at
    least n_in/2 stored values (predict's chunks of 1024 rows) is returned whole, cols None:
    gathering most of W costs more than scipy's one copy of W.T. Either way each row's sum
    runs over the same values in the same order, so the bits are the same.
    """
    if 2 * A.nnz >= A.shape[1]:
        return A, None
    cols, inv = np.unique(A.indices, return_inverse=True)
    return type(A)((A.data, inv, A.indptr), shape=(A.shape[0], len(cols))), cols


def _columns(W: np.ndarray, cols: np.ndarray | None) -> np.ndarray:
    """W[:, cols], or W itself for cols None (all columns)."""
    return W if cols is None else W[:, cols]


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

    def backward(self, dA: np.ndarray, input_grad: bool = True) -> np.ndarray:
        if self._mask is None:
            return dA
        dZ = buffer(self._buf, "dZ", dA.shape[0], dA.shape[1:], dA.dtype)
        np.multiply(dA, self._mask, out=dZ)     # dZ = dA ⊙ M
        return dZ

    def config(self) -> dict[str, Any]:
        return {"p": self.p}
