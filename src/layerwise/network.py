"""``Sequential``: a stack of layers, forward in order and backward in reverse.

    forward:   A_0 = X,  A_i = layer_i.forward(A_{i−1})
    backward:  dA_K = dL/dA_K,  dA_{i−1} = layer_i.backward(dA_i)   (filling each dW, db)
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import activations
from . import losses as losses_mod
from ._blas import Threads, check_threads, is_small
from ._utils import (
    RngLike,
    as_float_dtype,
    as_generator,
    as_input,
    as_sparse_input,
    check_memory,
    fraction,
    is_sparse,
    lookup,
    per_layer,
    positive_int,
)
from .errors import ConfigError, ValidationError
from .layers import Dense, Dropout, Layer, Param, ParamList
from .normalization import NORMS

if TYPE_CHECKING:
    from .initializers import InitLike
    from .optimizers import OptimizerLike


class _Plan:
    """The layer calls of ``Sequential.forward`` and ``backward`` for one list of layers.

    An ``in_place`` activation right after a ``Dense`` layer writes its output over the Z that
    layer returns (``forward_over``), and one right before a ``Dense`` layer writes dZ over the
    dA that layer hands back (``backward_over``): those are the Dense layer's own buffers, which
    nothing reads afterwards (its backward needs A_prev and W, not Z). Other layers get their
    plain ``forward`` and ``backward``. ``first`` is the first layer with parameters, where
    training's backward pass stops.
    """

    __slots__ = ("first", "layers", "over_Z", "over_dA")

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = list(layers)
        n = len(layers)
        # in_place as the layer's own class declares it (not inherited by a subclass that may
        # have changed _f or _df)
        ok = [isinstance(layer, activations.Activation)
              and type(layer).__dict__.get("in_place", False) is True for layer in layers]
        #: (layer, whether it writes A over its input Z), in order
        self.over_Z = [(layer, ok[i] and i > 0 and type(layers[i - 1]) is Dense)
                       for i, layer in enumerate(layers)]
        #: (layer, whether it writes dZ over the dA it is given), in order
        self.over_dA = [(layer, ok[i] and i + 1 < n and type(layers[i + 1]) is Dense)
                        for i, layer in enumerate(layers)]
        self.first = next((i for i, layer in enumerate(layers) if layer.trainable), 0)


class Sequential:
    """A feedforward network: layers applied one after the other.

    Parameters
    ----------
    *layers : Layer
        ``Dense``, activation and ``Dropout`` layers (a single list is accepted too).

    Examples
    --------
    >>> import layerwise as lw
    >>> model = lw.Sequential(lw.Dense(64, 128, init="he", rng=0), lw.ReLU(),
    ...                       lw.Dense(128, 10, rng=0))
    >>> model.forward(np.zeros((2, 64), np.float32)).shape
    (2, 10)
    """

    def __init__(self, *layers: Layer | Iterable[Layer]) -> None:
        if len(layers) == 1 and not isinstance(layers[0], Layer):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ConfigError(
                    f"Sequential takes Layer objects; item {i} is {type(layer).__name__}. "
                    "Wrap activations as layers, e.g. lw.ReLU(), not 'relu'."
                )
        self.layers: list[Layer] = list(layers)  # type: ignore[arg-type]
        n = None                                 # width flowing out of the layers so far
        for i, layer in enumerate(self.layers):
            n_in = getattr(layer, "n_in", None)  # layers with a fixed input width declare it
            if n_in is not None:
                if n is not None and n_in != n:
                    raise ValidationError(
                        f"layer {i} ({type(layer).__name__}) expects {n_in} inputs but the layer "
                        f"before it gives {n}; set n_in={n}."
                    )
                n = n_in
            if n is not None:
                n = layer.output_size(n)
        #: the loss used by the last ``fit`` (or stored in the model file); used by evaluate.
        self.loss: losses_mod.Loss | None = None
        #: free-form JSON-serialisable information saved with the model (e.g. preprocessing).
        self.metadata: dict[str, Any] = {}
        self.stop_training = False
        #: the output of the last ``forward`` (a buffer of the last layer, not a copy); what
        #: training reads. Inference (``infer``, ``predict``, ``evaluate``) never sets it.
        self.output: np.ndarray | None = None
        self._flat: Param | None = None
        self._params: ParamList | None = None   # the last parameters(), while it holds
        self._passes: _Plan | None = None       # how forward and backward call the layers
        # Parameters live in one buffer from the start, unless their layers already work in
        # another model's buffer (a model built around the layers of one in training, as the
        # CLI's metrics in original units do, must not move that model's arrays away from
        # the buffer its fit is updating).
        if all(p.value.base is None and p.grad.base is None
               for layer in self.layers for p in layer.params()):
            self.flat_parameters()

    def __getstate__(self) -> dict[str, Any]:
        """Pickles (and deep copies) leave out the cached ``parameters()`` list and plan."""
        state = self.__dict__.copy()
        state.pop("_params", None)
        state.pop("_passes", None)
        return state

    # -- structure ------------------------------------------------------------------------------
    @property
    def n_in(self) -> int | None:
        """Input features (from the first layer with a fixed input width), or None."""
        for layer in self.layers:
            n_in = getattr(layer, "n_in", None)
            if n_in is not None:
                return int(n_in)
        return None

    @property
    def n_out(self) -> int | None:
        """Output features: the width flowing out of the last layer (each layer's
        ``output_size``), or None for a model without parameters or a declared input width."""
        if not any(layer.trainable for layer in self.layers):
            return None
        n = None
        for layer in self.layers:
            n_in = getattr(layer, "n_in", None)
            if n_in is not None:
                n = int(n_in)
            if n is not None:
                n = layer.output_size(n)
        return n

    @property
    def dtype(self) -> np.dtype[Any]:
        """The parameters' dtype (float32 unless changed with ``astype``)."""
        for layer in self.layers:
            for p in layer.params():
                return p.value.dtype
        return np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"

    # -- the two passes -------------------------------------------------------------------------
    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """Run every layer in order; returns the output (B, n_out).

        The result lives in a buffer of the last layer: copy it to keep it past the next call.
        X is used as is (no validation or copy); ``predict`` is the checked entry point.
        """
        A = X
        for layer, over in self._plan().over_Z:
            if over:                            # A_i = f_i(A_{i−1}), over the Dense's Z
                A = layer.forward_over(A, training)  # type: ignore[attr-defined]
            else:
                A = layer.forward(A, training)  # A_i = f_i(A_{i−1})
        self.output = A
        return A

    def _plan(self) -> _Plan:
        """How forward and backward call the layers, remade when ``layers`` changed."""
        plan = getattr(self, "_passes", None)           # (absent in older pickles)
        layers = self.layers
        if plan is None or len(plan.layers) != len(layers) or not all(
                map(operator.is_, plan.layers, layers)):       # the same layer objects
            plan = self._passes = _Plan(layers)
        return plan

    def infer(self, X: np.ndarray) -> np.ndarray:
        """The output for X (B, n_in) in inference mode, as a new array; (B, n_out).

        The same numbers, bit for bit, as ``forward(X, training=False)``, but no layer buffer is
        used and nothing on the model is written (not even ``output``), so any number of threads
        may call it at once on one model, also while ``fit`` trains it in another thread (the
        result then uses the parameters as they are at that moment, possibly between two
        layers' updates). X is used as is: ``predict`` is the checked entry point.
        """
        A = X
        for layer in self.layers:
            A = layer.infer(A)                  # A_i = f_i(A_{i−1}), into new arrays
        return A

    def backward(self, dA: np.ndarray, input_grad: bool = True) -> np.ndarray:
        """Run every layer's backward in reverse, filling gradients; returns dL/dX.

        With ``input_grad=False`` (what training uses) the pass stops at the first layer with
        parameters, which skips computing its dA_prev: nothing before it needs a gradient. None
        is returned then.
        """
        plan = self._plan()
        first = 0 if input_grad else plan.first
        for i in range(len(plan.over_dA) - 1, first - 1, -1):
            layer, over = plan.over_dA[i]
            if i == first and not input_grad:
                layer.backward(dA, input_grad=False)    # its dA_prev is not needed
                return None  # type: ignore[return-value]
            if over:                            # dA_{i−1}, over the Dense's dA
                dA = layer.backward_over(dA)  # type: ignore[attr-defined]
            else:
                dA = layer.backward(dA)         # dA_{i−1} = backward_i(dA_i)
        return dA

    def parameters(self) -> ParamList:
        """Every trainable parameter, named ``"<layer index>.<name>"`` (``"0.W"``, ``"0.b"``,
        ...): Params sharing the layers' arrays, which optimizers update in place. While the
        layers hold the same arrays, and the list and its Params are as they were returned,
        the same list is returned again (a training loop calls this at every step).

        The arrays are views of one flat buffer (``flat_parameters``), so the list also carries
        it (``ParamList.flat``): an optimizer given this list steps the buffer in one go, as
        ``fit`` does, with the same numbers.
        """
        own = [p for layer in self.layers for p in layer.params()]
        cached = getattr(self, "_params", None)            # (absent in older pickles)
        if cached is not None and cached.holds(own):        # the same arrays as last time
            return cached
        out = []
        for i, layer in enumerate(self.layers):
            for p in layer.params():
                out.append(Param(f"{i}.{p.name}", p.value, p.grad, p.no_decay))
        flat = self._flat
        if flat is not None and not all(p.value.base is flat.value and p.grad.base is flat.grad
                                        for p in out):
            flat = None
        self._params = ParamList(out, flat)
        return self._params

    def flat_parameters(self) -> list[Param]:
        """Every parameter as ONE ``Param`` spanning a single contiguous buffer.

        Construction (and ``astype``) moves each layer's parameters (their ``value`` and
        ``grad``) into two flat arrays and makes each layer's own ``Param`` hold views of them,
        so an optimizer step is a handful of vectorised calls whatever the depth (the update
        rules are elementwise, so the result is identical). This returns those buffers while
        the layers still use them, and packs again if a parameter was replaced (``dense.W =
        array``) or a layer added. With mixed dtypes the per-array list of ``parameters()`` is
        returned instead.
        """
        params = self.parameters()
        if not params or any(p.value.dtype != params[0].value.dtype for p in params):
            return list(params)
        flat = params.flat()
        if flat is not None:
            return [flat]
        total = sum(p.value.size for p in params)
        value = np.empty(total, dtype=params[0].value.dtype)
        grad = np.zeros(total, dtype=params[0].value.dtype)
        start = 0
        no_decay: list[tuple[int, int]] = []       # the biases' ranges in the flat buffer
        for layer in self.layers:
            for p in layer.params():
                stop = start + p.value.size
                no_decay += [(start + a, start + b) for a, b in p.no_decay]
                value[start:stop] = p.value.reshape(-1)
                grad[start:stop] = p.grad.reshape(-1)
                # the layer reads p.value / p.grad at each use, so it now works in the buffer
                p.value = value[start:stop].reshape(p.value.shape)
                p.grad = grad[start:stop].reshape(p.grad.shape)
                start = stop
        self._flat = Param("all", value, grad, tuple(no_decay))
        return [self._flat]

    def n_params(self) -> int:
        """Total number of trainable scalars."""
        return sum(p.value.size for p in self.parameters())

    def macs(self) -> int:
        """Multiply-adds of one sample's forward pass: Σ n_in·n_out over the Dense layers
        (Z = A_prev @ W.T); activations and the rest are O(n) beside them. The BLAS thread
        rule reads ``macs() * batch`` (``_blas.is_small``)."""
        return sum(layer.n_in * layer.n_out for layer in self.layers if isinstance(layer, Dense))

    def astype(self, dtype: Any) -> Sequential:
        """Cast every parameter and buffer to ``dtype`` (float32 or float64); returns self."""
        dt = as_float_dtype(dtype)
        for layer in self.layers:
            layer.astype(dt)
        self.flat_parameters()          # the cast arrays, packed into one buffer again
        return self

    def summary(self, print_fn: Any = print) -> str:
        """Print (and return) a table of layers, output shapes and parameter counts."""
        rows = [("#", "layer", "output shape", "params")]
        n = self.n_in
        for i, layer in enumerate(self.layers):
            n = layer.output_size(n) if n is not None else None
            count = sum(p.value.size for p in layer.params())
            rows.append((str(i), repr(layer), f"(B, {n})", f"{count:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        fmt = lambda r: "  ".join(  # noqa: E731
            r[c].rjust(widths[c]) if c in (0, 3) else r[c].ljust(widths[c]) for c in range(4))
        text = "\n".join([fmt(rows[0]), line, *map(fmt, rows[1:]), line,
                          f"total parameters: {self.n_params():,} ({self.dtype})"])
        if print_fn is not None:
            print_fn(text)
        return text

    # -- training and inference -----------------------------------------------------------------
    def check_input(self, X: Any, name: str = "X") -> Any:
        """``X`` checked for this model (2-D, numeric, finite, ``n_in`` features) in its dtype:
        a C-contiguous array, or for a scipy.sparse ``X`` a CSR matrix (never densified).

        Only a ``Dense`` first layer takes sparse rows (Z = X·Wᵀ + b and dW = dZᵀ·X on the
        stored values); any other first layer is refused here, before any work: centring
        (Standardize, LayerNorm) would make every row dense, and activations or Dropout act
        on each element. ``fit``, ``predict`` and ``evaluate`` check X with it.
        """
        if not is_sparse(X):
            return as_input(X, self.n_in, self.dtype, name)
        first = self.layers[0] if self.layers else None
        if not isinstance(first, Dense):
            what = type(first).__name__ if first is not None else "missing"
            raise ValidationError(
                f"{name} is a scipy.sparse {type(X).__name__}, but the model's first layer is "
                f"{what}: only a Dense first layer takes sparse input (Z = X·Wᵀ + b on the "
                f"stored values). Put a Dense layer first, scale the data before (e.g. "
                f"scikit-learn's MaxAbsScaler keeps it sparse), or pass {name}.toarray()."
            )
        return as_sparse_input(X, self.n_in, self.dtype, name)

    def fit(self, X: Any, y: Any, loss: losses_mod.LossLike = "ce",
            optimizer: OptimizerLike = "adam", epochs: int = 10,
            batch_size: int = 32, **kwargs: Any) -> Any:
        """Train with mini-batch gradient descent; see :func:`layerwise.training.fit`."""
        from .training import fit
        return fit(self, X, y, loss=loss, optimizer=optimizer, epochs=epochs,
                   batch_size=batch_size, **kwargs)

    def predict(self, X: Any, batch_size: int = 1024, threads: int | str | None = "auto"
                ) -> np.ndarray:
        """Network outputs for X (N, n_in) in inference mode, computed in chunks; (N, n_out).
        X may be a scipy.sparse matrix (see ``check_input``): each chunk is then a CSR slice.

        Outputs are what the last layer gives: logits when trained with a loss on logits.
        Use ``predict_proba`` for probabilities and ``predict_classes`` for labels.
        Thread-safe, like ``predict_proba``, ``predict_classes`` and ``evaluate``: they run
        ``infer``, which shares no buffer (see there).

        ``threads`` ("auto" or an int) sets the BLAS thread count as in ``fit``: "auto" uses
        one thread for small networks, and for calls of at least 8 chunks times the first
        ones with one thread and with all and keeps the faster. Results of large networks can
        differ in the last bits between thread counts: force a count to reproduce them exactly.
        """
        X = self.check_input(X)                # an array, or CSR rows (sliced per chunk)
        bs = positive_int("batch_size", batch_size)
        setting = check_threads(threads)
        out: np.ndarray | None = None
        N = X.shape[0]
        with Threads(setting, is_small(self.macs() * min(bs, N)), -(-N // bs),
                     fit=False) as th:
            for s in range(0, X.shape[0], bs):
                t0 = th.start_step()
                A = self.infer(X[s:s + bs])
                th.end_step(t0)
                if out is None:
                    out = np.empty((X.shape[0], *A.shape[1:]), dtype=A.dtype)
                out[s:s + bs] = A
        assert out is not None
        return out

    def predict_proba(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities: softmax of the logits (CrossEntropy) or sigmoid (BCE)."""
        loss = self._require_loss(None)
        return loss.output_transform(self.predict(X, batch_size))

    def predict_classes(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """Predicted class labels (argmax for CrossEntropy, 0/1 per output for BCE)."""
        from .metrics import labels_from_outputs
        return labels_from_outputs(self.predict(X, batch_size), self._require_loss(None))

    def evaluate(self, X: Any, y: Any, loss: losses_mod.LossLike | None = None,
                 batch_size: int = 1024,
                 threads: int | str | None = "auto") -> dict[str, float]:
        """Loss and metrics on (X, y): "accuracy" (argmax) for labels or one-hot targets,
        whatever the loss; "subset_accuracy" and "label_accuracy" for multi-label targets
        (BCE); MSE, MAE and R² for regression losses (see ``metrics.for_loss``).
        ``threads``: BLAS threads, as for ``predict``."""
        from .training import evaluate_arrays
        if self.n_out is None:
            raise ConfigError("this model has no layer with parameters (no Dense layer), so it "
                              "has no outputs to evaluate; add lw.Dense(n_in, n_out).")
        L = self._require_loss(loss)
        X = self.check_input(X)
        Y = L.prepare_target(y, self.n_out or X.shape[1], self.dtype)
        if len(Y) != X.shape[0]:
            raise ValidationError(
                f"X and y must have the same number of samples; received {X.shape[0]} and "
                f"{len(Y)}."
            )
        return evaluate_arrays(self, L, X, Y, positive_int("batch_size", batch_size),
                               check_threads(threads))

    def _require_loss(self, loss: losses_mod.LossLike | None) -> losses_mod.Loss:
        if loss is not None:
            return losses_mod.get(loss)
        if self.loss is None:
            raise ConfigError(
                "this model has no loss yet: it was neither trained with fit nor loaded with one. "
                "Pass loss=..., e.g. model.evaluate(X, y, loss='ce')."
            )
        return self.loss

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to one file (see :func:`layerwise.io.save`)."""
        from .io import save
        save(self, path)

    def to_onnx(self, path: str | os.PathLike[str] | None = None, *, opset: int | None = None,
                labels: bool = True) -> Any:
        """The model as an ``onnx.ModelProto``, written to ``path`` if given; see
        :func:`layerwise.onnx_export.export` (needs the onnx package: the ``onnx`` extra)."""
        from .onnx_export import export
        return export(self, path, opset=opset, labels=labels)


def mlp(sizes: Sequence[int],
        activation: activations.ActivationLike | Sequence[activations.ActivationLike] = "relu",
        output: activations.ActivationLike | None = None, *,
        init: InitLike | Sequence[InitLike | None] | None = None,
        dropout: float | Sequence[float] = 0.0, bias: bool = True, dtype: Any = np.float32,
        rng: RngLike = 0, bias_init: InitLike = "zeros",
        norm: str | Sequence[str | None] | None = None) -> Sequential:
    """Build a multilayer perceptron from layer sizes: per hidden layer Dense (→ norm) →
    activation (→ Dropout), then the output Dense (→ output activation). The one builder: the
    command line and the estimators call it.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_in, hidden_1, …, hidden_K, n_out]``; at least two entries.
    activation : str, Activation, or a sequence of K of them
        Hidden activation ("relu", "tanh", "sigmoid", "gelu", …), one for all hidden layers or
        one per hidden layer.
    output : str, Activation or None
        Output activation; None leaves logits (what CrossEntropy, BCE and MSE expect).
    init : str, callable, None, or a sequence of K + 1 of them
        Weight initialiser of every Dense layer, or one per Dense layer (the output's last): a
        name, a "NAME:NUMBER" spec such as "normal:1.0", or a callable; None picks He for
        ReLU-like activations and Glorot otherwise (from the activation that follows).
    bias_init : str or callable
        Bias initialiser of every Dense layer: "zeros" (default), "normal:STD",
        "uniform:LIMIT", "constant:VALUE" or a callable given the shape (n_out,).
    dropout : float or a sequence of K floats
        Dropout rate after each hidden activation, or per hidden layer (0 for none).
    norm : "layer", "batch", None, or a sequence of K of them
        Normalisation after each hidden Dense layer, before its activation: ``LayerNorm`` or
        ``BatchNorm`` (None for none), for all hidden layers or per hidden layer.
    rng : int, Generator or None
        Seed for the weights and the dropout masks.

    Examples
    --------
    >>> model = lw.mlp([64, 128, 10])        # 64 → Dense 128 → ReLU → Dense 10
    >>> model = lw.mlp([784, 300, 100, 10], activation=["tanh", "relu"], dropout=[0, 0.2])
    """
    sizes = list(sizes)
    if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
        raise ValidationError(
            "mlp sizes must be at least two positive integers [n_in, ..., n_out]; "
            f"received {sizes}."
        )
    k = len(sizes) - 2                               # hidden layers
    acts = per_layer("activation", activation, k, activations.get)
    rates = per_layer("dropout", dropout, k, lambda p: fraction("dropout", p))
    norms = per_layer("norm", norm, k, lambda n: n if n is None or isinstance(n, type)
                      else lookup(NORMS, n, "norm"))          # a name, or the class itself
    inits = per_layer("init", init, k + 1, lambda i: i)
    g = as_generator(rng)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < k
        w_init = inits[i] if inits[i] is not None else \
            activations.default_init(acts[i] if hidden else output)
        layers.append(Dense(int(n_in), int(n_out), init=w_init, bias=bias, dtype=dtype, rng=g,
                            bias_init=bias_init))
        if hidden:
            if norms[i] is not None:                # Dense → norm → activation
                layers.append(norms[i](int(n_out), dtype=dtype))
            act = acts[i]                           # a fresh layer each time (own buffers)
            layers.append(type(act)(**act.config()))
            if rates[i] > 0:
                layers.append(Dropout(rates[i], rng=g))
    if output is not None:
        out_act = activations.get(output)
        layers.append(type(out_act)(**out_act.config()))
    return Sequential(layers)


def check_ensemble(model: Sequential, k: int) -> None:
    """Refuse, before anything is trained or allocated, what :func:`ensemble` could not make
    of ``k`` networks shaped like ``model``: a layer that mixes units across members (norms,
    Softmax, Standardize), outputs that are not a Dense layer's, or merged weights beyond this
    machine's memory (the hidden layers are block-diagonal: k² times their size)."""
    for layer in model.layers:
        ok = isinstance(layer, (Dense, Dropout)) or (
            isinstance(layer, activations.Activation) and
            not isinstance(layer, activations.Softmax))
        if not ok:
            raise ValidationError(
                f"ensemble can merge Dense layers, elementwise activations and Dropout; "
                f"{layer!r} mixes units across members. Average the models' predictions "
                "yourself instead.")
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    if not dense or model.layers[-1] is not dense[-1]:
        raise ValidationError(
            f"ensemble needs the last layer to be Dense (linear outputs, whose mean a Dense "
            f"layer can compute); the models end with {model.layers[-1]!r}. Train them on "
            "logits (loss='ce' or 'bce') or without an output activation.")
    # merged W: first k·n_out × n_in, hidden k·n_out × k·n_in, last n_out × k·n_in (+ biases)
    sizes = [(k if i > 0 else 1) * d.n_in * (k if d is not dense[-1] else 1) * d.n_out
             + d.n_out * (k if d is not dense[-1] else 1) for i, d in enumerate(dense)]
    check_memory(f"an ensemble of {k} networks", sum(sizes) * model.dtype.itemsize,
                 "average fewer networks, or smaller ones.")


def ensemble(models: Sequence[Sequential]) -> Sequential:
    """One network whose output is the mean of the outputs of K networks of one shape.

    K MLPs (Dense layers, elementwise activations, Dropout; the last layer Dense) are put side
    by side, member k's hidden units feeding only member k's next layer:

        first Dense:   W = [W₁; …; W_K],  b = [b₁; …; b_K]      every member sees the input
        hidden Dense:  W = diag(W₁, …, W_K), b = [b₁; …; b_K]   block-diagonal
        last Dense:    W = [W₁ … W_K] / K, b = (b₁ + … + b_K)/K  z = (1/K) Σ_k z_k

    Elementwise activations and Dropout act on each unit alone, so one layer serves all K
    blocks. The result is an ordinary ``Sequential`` (saved, loaded, exported like any other)
    whose outputs equal the mean of the members' outputs, to rounding: for a classifier the
    mean of the logits, for a regression the mean of the predictions. Averaging K networks
    trained from different initial weights lowers the variance of a small data set's fit.
    """
    models = list(models)
    if not models or not all(isinstance(m, Sequential) for m in models):
        raise ValidationError(f"ensemble takes a non-empty list of Sequential models; "
                              f"received {[type(m).__name__ for m in models]}.")
    K, first = len(models), models[0]
    shape = [(layer.kind, layer.config()) for layer in first.layers]
    for i, m in enumerate(models[1:], 2):
        if [(layer.kind, layer.config()) for layer in m.layers] != shape:
            raise ValidationError(f"ensemble needs networks of one shape; model {i} differs "
                                  f"from model 1: {m.layers} against {first.layers}.")
    check_ensemble(first, K)
    dense = [i for i, layer in enumerate(first.layers) if isinstance(layer, Dense)]
    dtype = first.dtype
    layers: list[Layer] = []
    for i, layer in enumerate(first.layers):
        if not isinstance(layer, Dense):
            layers.append(type(layer).from_config(layer.config(), dtype))
            continue
        members = [m.layers[i] for m in models]
        Ws = [d.W for d in members if isinstance(d, Dense)]
        bs = [d.b for d in members if isinstance(d, Dense)] if layer.bias else None
        if i == dense[-1]:                              # the mean of the members' outputs
            W = np.hstack(Ws) / K if i != dense[0] else np.mean(Ws, axis=0)
            b = None if bs is None else np.mean(bs, axis=0)
        elif i == dense[0]:                             # all see the input
            W = np.vstack(Ws)
            b = None if bs is None else np.concatenate(bs)
        else:                                           # member k's units feed member k's
            W = np.zeros((K * layer.n_out, K * layer.n_in), dtype)
            for k, Wk in enumerate(Ws):
                W[k * layer.n_out:(k + 1) * layer.n_out, k * layer.n_in:(k + 1) * layer.n_in] = Wk
            b = None if bs is None else np.concatenate(bs)
        config = {**layer.config(), "n_out": W.shape[0], "n_in": W.shape[1]}
        merged = Dense.from_config(config, dtype)
        merged.set_arrays({"W": W.astype(dtype), **({} if b is None else {"b": b.astype(dtype)})})
        layers.append(merged)
    out = Sequential(layers)
    out.loss = first.loss
    out.metadata = {**first.metadata, "ensemble": K}
    return out
