"""Export a ``Sequential`` to ONNX, so a trained model runs without Python or layerwise
(ONNX Runtime, browsers, phones, databases).

    proto = layerwise.onnx_export.export(model, "model.onnx")     # or model.to_onnx(path)

The graph takes one input ``"X"`` of shape (N, n_in) in the model's dtype (float32 or float64;
N is dynamic) and gives:

- ``"output"``: the network's output, what ``model.predict`` returns (logits for a model
  trained with a loss on logits);
- classification models (loss ``ce`` or ``bce``), unless ``labels=False``: ``"label"``, the
  predicted class (argmax of the logits, or logit > 0 for ``bce``) mapped to the class names
  of ``model.metadata["classes"]`` (a string tensor, or int64 for integer classes or when the
  model has no class names), shape (N,); a 0/1 int64 matrix (N, K) for multi-label models;
  and ``"probabilities"``: softmax (``ce``) or sigmoid (``bce``) of the logits, with both
  columns (1 − p, p) for a binary model with one logit, as ``layerwise predict --proba``;
- Poisson models: ``"prediction"`` = exp(output), what the model predicts (μ = e^z).

The graph is built with the ``onnx`` package's helpers, one small function per layer kind,
found in ``CONVERTERS`` by the layer's ``kind``. A user-defined layer adds its own, either as
a method ``to_onnx(self, builder, x) -> str`` on the class or with ``@register("kind")``; both
receive a :class:`Builder` and the name of the input tensor and return the name of the output.

ONNX Runtime's CPU provider has no float64 kernel for Elu, Softplus and Erf: in float64
those are written out from ops it has (Exp, Log, Abs, Where, …), and the exact GELU's erf as
W. J. Cody's rational approximations (Math. Comp. 23, 1969; about 1e-16 relative), so float64
models agree with ``predict`` to float64 rounding there too.

This module imports ``onnx``; ``import layerwise`` does not load it. The skl2onnx converter
for the scikit-learn estimators is :func:`register_skl2onnx`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._utils import install_hint
from .errors import ConfigError, ValidationError

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:
    raise ImportError(f"ONNX export needs the onnx package, which is not installed; "
                      f"{install_hint('onnx', 'onnx')}.") from exc

if TYPE_CHECKING:
    from .layers import Layer
    from .network import Sequential

#: the opset used when none is given: LayerNormalization is an operator from 17 on, and
#: ONNX Runtime has supported 17 since 1.14.
DEFAULT_OPSET = 17
#: the oldest opset the exporter writes, and the tests run (ONNX 1.8, 2020). Where an operator
#: changed since (LeakyRelu's float64 in 16, LayerNormalization in 17, ReduceMean's axes input
#: in 18), the converters write the form of the opset asked for.
MIN_OPSET = 13

#: the graph's input and output names (see the module)
OUTPUTS = ("output", "label", "probabilities", "prediction")
_ONNX_TYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


class Builder:
    """Collects the nodes and constants of a graph; what a layer's converter is given.

    ``op(op_type, *inputs, **attributes)`` adds a node and returns the name of its output;
    ``const(value)`` adds a constant (floats in the model's dtype) and returns its name.
    ``dtype`` is the model's NumPy dtype, ``opset`` the opset being written.
    """

    def __init__(self, dtype: Any, opset: int) -> None:
        self.dtype = np.dtype(dtype)
        self.opset = int(opset)
        self.nodes: list[tuple[str, list[str], list[str], dict[str, Any]]] = []
        self.constants: dict[str, np.ndarray] = {}
        self._used: set[str] = {"X", *OUTPUTS}   # generated names never take these

    def name(self, hint: str) -> str:
        """A tensor name not used yet, from ``hint``."""
        name, i = hint, 1
        while name in self._used:
            name, i = f"{hint}_{i}", i + 1
        self._used.add(name)
        return name

    def const(self, value: Any, hint: str = "c") -> str:
        """A constant: floats are cast to the model's dtype, other arrays kept as they are."""
        a = np.asarray(value)
        if a.dtype.kind == "f":
            a = a.astype(self.dtype)
        name = self.name(hint)
        self.constants[name] = np.ascontiguousarray(a)
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attributes: Any) -> str:
        """Add the node ``op_type(inputs, attributes)``; returns its output's name (``out``
        exactly when given: the graph's outputs)."""
        y = out if out is not None else self.name(op_type.lower())
        self._used.add(y)
        self.nodes.append((op_type, list(inputs), [y], attributes))
        return y

    def rename(self, old: str, new: str) -> None:
        """Give the tensor ``old`` (a node's output) the name ``new`` everywhere."""
        self._used.add(new)
        for _, inputs, outputs, _ in self.nodes:
            inputs[:] = [new if n == old else n for n in inputs]
            outputs[:] = [new if n == old else n for n in outputs]

    def polynomial(self, x: str, coefficients: list[float]) -> str:
        """c₀ + c₁x + … + c_k x^k by Horner's rule (coefficients from c₀)."""
        acc = self.const(coefficients[-1], "coef")
        for c in reversed(coefficients[:-1]):
            acc = self.op("Add", self.op("Mul", acc, x), self.const(c, "coef"))
        return acc

    def proto_nodes(self) -> list[onnx.NodeProto]:
        return [helper.make_node(op, inputs, outputs, name=f"{outputs[0]}_node", **attrs)
                for op, inputs, outputs, attrs in self.nodes]

    def proto_constants(self) -> list[onnx.TensorProto]:
        return [numpy_helper.from_array(a, name) for name, a in self.constants.items()]


#: layer kind -> converter(layer, builder, x) -> output name. Filled by ``register``.
Converter = Callable[["Layer", Builder, str], str]
CONVERTERS: dict[str, Converter] = {}


def register(kind: str) -> Callable[[Converter], Converter]:
    """Register ``fn(layer, builder, x) -> str`` as the converter of layers of ``kind``."""
    def decorate(fn: Converter) -> Converter:
        CONVERTERS[kind] = fn
        return fn
    return decorate


# -- the layers ----------------------------------------------------------------------------------
@register("dense")
def _dense(layer: Any, b: Builder, x: str) -> str:
    W = b.const(layer.W, "W")                              # (n_out, n_in)
    if not layer.bias:
        return b.op("Gemm", x, W, transB=1)                # Z = A_prev @ W.T
    return b.op("Gemm", x, W, b.const(layer.b, "b"), transB=1)     # Z = A_prev @ W.T + b


@register("dropout")
@register("identity")
def _identity(layer: Any, b: Builder, x: str) -> str:
    return x                                               # Dropout: the identity at inference


@register("relu")
def _relu(layer: Any, b: Builder, x: str) -> str:
    return b.op("Relu", x)                                 # max(z, 0)


@register("sigmoid")
def _sigmoid(layer: Any, b: Builder, x: str) -> str:
    return b.op("Sigmoid", x)                              # 1 / (1 + e^(−z))


@register("tanh")
def _tanh(layer: Any, b: Builder, x: str) -> str:
    return b.op("Tanh", x)


@register("softmax")
def _softmax(layer: Any, b: Builder, x: str) -> str:
    return b.op("Softmax", x, axis=1)                      # e^(z_k) / Σ_j e^(z_j), per row


@register("leaky_relu")
def _leaky_relu(layer: Any, b: Builder, x: str) -> str:
    if b.dtype == np.float32:
        return b.op("LeakyRelu", x, alpha=float(layer.alpha))  # z if z > 0 else αz
    # float64: the attribute α is a float32 (an error of 1e-9 relative), so as the layer
    # computes it: max(z, αz) (min for α > 1)
    return b.op("Max" if layer.alpha <= 1 else "Min", x,
                b.op("Mul", x, b.const(layer.alpha, "alpha")))


@register("elu")
def _elu(layer: Any, b: Builder, x: str) -> str:
    if b.dtype == np.float32:
        return b.op("Elu", x, alpha=float(layer.alpha))    # z if z > 0 else α(e^z − 1)
    # float64 (no Elu kernel in ONNX Runtime): α(e^min(z,0) − 1) + max(z, 0), as the layer
    zero, one = b.const(0.0, "zero"), b.const(1.0, "one")
    neg = b.op("Sub", b.op("Exp", b.op("Min", x, zero)), one)
    return b.op("Add", b.op("Mul", neg, b.const(layer.alpha, "alpha")), b.op("Relu", x))


@register("softplus")
def _softplus(layer: Any, b: Builder, x: str) -> str:
    if b.dtype == np.float32:
        soft = b.op("Softplus", x)                         # log(1 + e^z)
    else:   # float64 (no Softplus kernel in ONNX Runtime): max(z, 0) + log(1 + e^(−|z|))
        tail = b.op("Exp", b.op("Neg", b.op("Abs", x)))
        soft = b.op("Add", b.op("Relu", x),
                    b.op("Log", b.op("Add", b.const(1.0, "one"), tail)))
    above = b.op("Greater", x, b.const(layer.threshold, "threshold"))
    return b.op("Where", above, x, soft)                   # z beyond the threshold, as torch


@register("gelu")
def _gelu(layer: Any, b: Builder, x: str) -> str:
    half_x = b.op("Mul", x, b.const(0.5, "half"))
    if layer.approximate == "tanh":     # ½ z (1 + tanh(√(2/π)(z + 0.044715 z³)))
        cube = b.op("Mul", b.op("Mul", x, x), x)
        inner = b.op("Add", x, b.op("Mul", cube, b.const(0.044715, "k")))
        t = b.op("Tanh", b.op("Mul", inner, b.const(math.sqrt(2 / math.pi), "sqrt_2_pi")))
    else:                               # ½ z (1 + erf(z / √2)) = z Φ(z)
        u = b.op("Div", x, b.const(math.sqrt(2), "sqrt2"))
        t = b.op("Erf", u) if b.dtype == np.float32 else _erf64(b, u)
    return b.op("Mul", half_x, b.op("Add", b.const(1.0, "one"), t))


# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969)
# 631–638 (netlib specfun CALERF): erf on |x| ≤ 0.46875, erfc·e^(x²) on (0.46875, 4] and
# (4, ∞). Numerators and denominators listed from the constant term up.
_ERF_P = [3.20937758913846947e3, 3.77485237685302021e2, 1.13864154151050156e2,
          3.16112374387056560e0, 1.85777706184603153e-1]
_ERF_Q = [2.84423683343917062e3, 1.28261652607737228e3, 2.44024637934444173e2,
          2.36012909523441209e1, 1.0]
_ERFC_P = [1.23033935479799725e3, 2.05107837782607147e3, 1.71204761263407058e3,
           8.81952221241769090e2, 2.98635138197400131e2, 6.61191906371416295e1,
           8.88314979438837594e0, 5.64188496988670089e-1, 2.15311535474403846e-8]
_ERFC_Q = [1.23033935480374942e3, 3.43936767414372164e3, 4.36261909014324716e3,
           3.29079923573345963e3, 1.62138957456669019e3, 5.37181101862009858e2,
           1.17693950891312499e2, 1.57449261107098347e1, 1.0]
_TAIL_P = [6.58749161529837803e-4, 1.60837851487422766e-2, 1.25781726111229246e-1,
           3.60344899949804439e-1, 3.05326634961232344e-1, 1.63153871373020978e-2]
_TAIL_Q = [2.33520497626869185e-3, 6.05183413124413191e-2, 5.27905102951428412e-1,
           1.87295284992346047e0, 2.56852019228982242e0, 1.0]


def _erf64(b: Builder, x: str) -> str:
    """erf(x) in float64 from ops ONNX Runtime runs in float64 (it has no float64 Erf):
    with y = |x|,

        y ≤ 0.46875:       erf = x·P(y²)/Q(y²)
        0.46875 < y ≤ 4:   erfc(y) = e^(−y²)·P(y)/Q(y)
        y > 4:             erfc(y) = e^(−y²)/y·(1/√π + z·P(z)/Q(z)),  z = 1/y²
        erf = sign(x)·(1 − erfc(y)).

    Every branch is computed and ``Where`` picks one (branches not taken may be inf/NaN).
    """
    y = b.op("Abs", x)
    y2 = b.op("Mul", y, y)
    small = b.op("Div", b.op("Mul", x, b.polynomial(y2, _ERF_P)), b.polynomial(y2, _ERF_Q))
    gauss = b.op("Exp", b.op("Neg", y2))                                     # e^(−y²)
    mid = b.op("Div", b.op("Mul", gauss, b.polynomial(y, _ERFC_P)), b.polynomial(y, _ERFC_Q))
    z = b.op("Reciprocal", y2)
    tail_r = b.op("Div", b.op("Mul", z, b.polynomial(z, _TAIL_P)), b.polynomial(z, _TAIL_Q))
    tail = b.op("Div", b.op("Mul", gauss, b.op("Sub", b.const(1 / math.sqrt(math.pi), "rsqrtpi"),
                                               tail_r)), y)
    erfc = b.op("Where", b.op("Greater", y, b.const(4.0, "four")), tail, mid)
    large = b.op("Mul", b.op("Sign", x), b.op("Sub", b.const(1.0, "one"), erfc))
    return b.op("Where", b.op("Greater", y, b.const(0.46875, "thresh")), large, small)


@register("layernorm")
def _layernorm(layer: Any, b: Builder, x: str) -> str:
    gamma, beta = b.const(layer.gamma, "gamma"), b.const(layer.beta, "beta")
    if b.opset >= 17:                   # μ and σ² in the model's dtype (stash_type)
        return b.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=float(layer.eps),
                    stash_type=int(_ONNX_TYPE[b.dtype]))
    mu = _mean_of_row(b, x)                                # μ_i = (1/n) Σ_j x_ij
    d = b.op("Sub", x, mu)                                 # x − μ
    var = _mean_of_row(b, b.op("Mul", d, d))               # σ²_i
    rstd = b.op("Reciprocal", b.op("Sqrt", b.op("Add", var, b.const(layer.eps, "eps"))))
    xhat = b.op("Mul", d, rstd)                            # x̂ = (x − μ)/√(σ² + ε)
    return b.op("Add", b.op("Mul", xhat, gamma), beta)     # y = γ ⊙ x̂ + β


def _mean_of_row(b: Builder, x: str) -> str:
    """ReduceMean over axis 1, keeping it (axes: an attribute before opset 18, an input from)."""
    if b.opset >= 18:
        return b.op("ReduceMean", x, b.const(np.array([1], np.int64), "axes"), keepdims=1)
    return b.op("ReduceMean", x, axes=[1], keepdims=1)


@register("batchnorm")
def _batchnorm(layer: Any, b: Builder, x: str) -> str:
    # inference: x̂ = (x − running_mean)/√(running_var + ε), y = γ ⊙ x̂ + β
    return b.op("BatchNormalization", x, b.const(layer.gamma, "gamma"),
                b.const(layer.beta, "beta"), b.const(layer.running_mean, "running_mean"),
                b.const(layer.running_var, "running_var"), epsilon=float(layer.eps))


@register("standardize")
def _standardize(layer: Any, b: Builder, x: str) -> str:
    # A = (X − offset) / scale (also the "inverse" layer that maps outputs back to targets)
    return b.op("Div", b.op("Sub", x, b.const(layer.offset, "offset")),
                b.const(layer.scale, "scale"))


def _convert(layer: Layer, i: int, b: Builder, x: str) -> str:
    hook = getattr(layer, "to_onnx", None)
    if callable(hook):
        out = hook(b, x)
    else:
        fn = CONVERTERS.get(type(layer).kind)
        if fn is None:
            kind = type(layer).kind
            raise ConfigError(
                f"the ONNX exporter has no converter for layer {i}, {type(layer).__name__} "
                f"(kind {kind!r}); give the class a method to_onnx(self, builder, x) -> str that "
                "adds its nodes with builder.op(...) and returns the output's name, or register "
                f"one: @layerwise.onnx_export.register({kind!r}) on a function "
                "(layer, builder, x) -> str.")
        out = fn(layer, b, x)
    if not isinstance(out, str):
        raise ConfigError(f"the ONNX converter of layer {i}, {type(layer).__name__}, returned "
                          f"{type(out).__name__}; it must return the name (str) of its output.")
    return out


# -- the model -----------------------------------------------------------------------------------
def _check_opset(opset: int | None) -> int:
    highest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, highest)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or \
            not MIN_OPSET <= opset <= highest:
        raise ValidationError(f"opset must be an integer from {MIN_OPSET} to {highest} (the "
                              f"newest this onnx {onnx.__version__} knows); received {opset!r}.")
    return int(opset)


def _classes(model: Sequential, k: int) -> np.ndarray | None:
    """The class names as a constant for Gather: int64 when every name is an integer, else
    strings; None when the model has none (labels are then class indices)."""
    classes = model.metadata.get("classes")
    if classes is None:
        return None
    if not isinstance(classes, list) or len(classes) != k:
        raise ValidationError(
            f"model.metadata['classes'] must list the {k} class names of the model's outputs; "
            f"received {classes!r}. Fix it, or set it to None to export class indices.")
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_))
           for c in classes):
        return np.array(classes, dtype=np.int64)
    return np.array([str(c) for c in classes], dtype=object)


def build(model: Sequential, *, opset: int | None = None, labels: bool = True
          ) -> tuple[Builder, list[tuple[str, int, list[Any]]]]:
    """The graph of ``model`` as a :class:`Builder` from input ``"X"``, and its outputs as
    (name, ONNX element type, shape). What :func:`export` and the skl2onnx converter share."""
    from .network import Sequential

    if not isinstance(model, Sequential):
        raise ConfigError(
            f"export takes a layerwise Sequential; received {type(model).__name__}. For a "
            "scikit-learn estimator or pipeline use estimator.to_onnx(path) or "
            "layerwise.sklearn.to_model(estimator).")
    n_in, n_out = model.n_in, model.n_out
    if n_in is None or n_out is None:
        raise ValidationError("ONNX export needs a model with a Dense layer (its input and "
                              "output widths); this one has none. Add lw.Dense(n_in, n_out).")
    dtype = model.dtype
    b = Builder(dtype, _check_opset(opset))
    x = "X"
    for i, layer in enumerate(model.layers):
        x = _convert(layer, i, b, x)                     # A_i = f_i(A_{i−1})
    if x == "X":                                         # (not reached: Dense gives a node)
        x = b.op("Identity", x)
    b.rename(x, "output")
    ftype = _ONNX_TYPE[dtype]
    outputs: list[tuple[str, int, list[Any]]] = [("output", ftype, ["N", n_out])]
    loss = model.loss
    kind = getattr(loss, "kind", None)
    if kind == "poisson":                                # μ = e^z
        b.op("Exp", "output", out="prediction")
        outputs.append(("prediction", ftype, ["N", n_out]))
    if not labels or kind not in ("ce", "bce"):
        return b, outputs
    multilabel = kind == "bce" and (n_out > 1 or model.metadata.get("multilabel") is True)
    if kind == "ce":
        b.op("Softmax", "output", axis=1, out="probabilities")      # softmax(z)
        index = b.op("ArgMax", "output", axis=1, keepdims=0)        # argmax_k z_k, (N,)
        n_classes = n_out
    else:
        from_logits = bool(getattr(loss, "from_logits", True))
        p = b.op("Sigmoid", "output") if from_logits else "output"  # σ(z)
        positive = b.op("Greater", "output", b.const(0.0 if from_logits else 0.5, "threshold"))
        index = b.op("Cast", positive, to=TensorProto.INT64)        # z > 0  ⇔  σ(z) > ½
        if multilabel:
            if p == "output":                                        # (probabilities already)
                b.op("Identity", p, out="probabilities")
            else:
                b.rename(p, "probabilities")
            b.rename(index, "label")                                 # 0/1 per label, (N, K)
            outputs += [("label", TensorProto.INT64, ["N", n_out]),
                        ("probabilities", ftype, ["N", n_out])]
            return b, outputs
        b.op("Concat", b.op("Sub", b.const(1.0, "one"), p), p, axis=1,
             out="probabilities")                                    # (1 − p, p)
        index = b.op("Reshape", index, b.const(np.array([-1], np.int64), "flat"))
        n_classes = 2
    names = _classes(model, n_classes)
    if names is None:
        b.rename(index, "label")
        label_type = TensorProto.INT64
    else:
        b.op("Gather", b.const(names, "classes"), index, axis=0, out="label")
        label_type = TensorProto.INT64 if names.dtype == np.int64 else TensorProto.STRING
    outputs += [("label", label_type, ["N"]), ("probabilities", ftype, ["N", n_classes])]
    return b, outputs


def _metadata(model: Sequential) -> dict[str, str]:
    from ._version import __version__
    meta = model.metadata
    loss = model.loss
    props = {"layerwise_version": __version__,
             "task": str(meta.get("task") or getattr(loss, "task", "") or ""),
             "loss": "" if loss is None else json.dumps({"kind": loss.kind, **loss.config()})}
    for key in ("feature_names", "classes", "target_name", "multilabel"):
        if meta.get(key) is not None:
            props[key] = json.dumps(meta[key])
    return props


def export(model: Sequential, path: str | os.PathLike[str] | None = None, *,
           opset: int | None = None, name: str = "layerwise", labels: bool = True
           ) -> onnx.ModelProto:
    """The ONNX model of ``model`` (checked by ``onnx.checker``), written to ``path`` if given.

    Parameters
    ----------
    model : Sequential
        Every layer of the package converts (Dense, every activation, Dropout as the
        identity, LayerNorm, BatchNorm with its running statistics, Standardize); another
        layer needs a converter (see the module).
    path : str or PathLike, optional
        Where to write the ``.onnx`` file (atomically: a failed write leaves no half file).
    opset : int, optional
        ONNX opset, from ``MIN_OPSET`` (13) to the newest the installed onnx knows; default
        ``DEFAULT_OPSET`` (17).
    name : str
        The graph's name.
    labels : bool, default True
        Add ``"label"`` and ``"probabilities"`` outputs to a classification model.

    Returns
    -------
    onnx.ModelProto
        Input ``"X"`` (N, n_in) in the model's dtype; outputs as the module describes;
        ``metadata_props``: layerwise_version, task, loss, feature_names, classes,
        target_name, multilabel (lists as JSON).
    """
    from ._version import __version__

    b, outputs = build(model, opset=opset, labels=labels)
    ftype = _ONNX_TYPE[model.dtype]
    graph = helper.make_graph(
        b.proto_nodes(), str(name),
        [helper.make_tensor_value_info("X", ftype, ["N", model.n_in])],
        [helper.make_tensor_value_info(n, t, shape) for n, t, shape in outputs],
        initializer=b.proto_constants())
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", b.opset)],
                              producer_name="layerwise", producer_version=__version__)
    # the oldest IR version that carries this opset, so older runtimes load the file too
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))
    helper.set_model_props(proto, _metadata(model))
    onnx.checker.check_model(proto)
    if path is not None:
        from .io import atomic_write
        data = proto.SerializeToString()
        atomic_write(path, lambda f: f.write(data))
    return proto



# -- skl2onnx ------------------------------------------------------------------------------------
def register_skl2onnx() -> None:
    """Register converters for ``LayerwiseClassifier`` and ``LayerwiseRegressor`` with skl2onnx,
    so ``skl2onnx.to_onnx(pipeline, X[:1])`` converts a pipeline ending in one like any
    scikit-learn pipeline: a classifier gives skl2onnx's ``label`` and ``probabilities`` (a
    ZipMap of them unless ``options={"zipmap": False}``; ``"nocl"`` is supported), a
    regressor its ``variable`` (N, n_outputs) (μ = e^z for Poisson). Call it once before
    converting (as for skl2onnx's LightGBM and XGBoost converters); calling again is harmless.
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:
        raise ImportError(f"register_skl2onnx needs skl2onnx, which is not installed; "
                          f"{install_hint('skl2onnx', 'test')}.") from exc
    from .sklearn import LayerwiseClassifier, LayerwiseRegressor
    update_registered_converter(LayerwiseClassifier, "LayerwiseClassifier", _skl_shapes,
                                _skl_convert, options={"zipmap": [True, False, "columns"],
                                                       "nocl": [True, False]})
    update_registered_converter(LayerwiseRegressor, "LayerwiseRegressor", _skl_shapes,
                                _skl_convert)


def _skl_classes(est: Any, nocl: bool) -> list[Any] | None:
    """The class names as the label output gives them: int64 for integer (and bool) classes,
    strings for string classes, indices with skl2onnx's ``nocl`` option."""
    classes = np.asarray(est.classes_)
    if nocl or est._multilabel:
        return None
    if classes.dtype.kind in "iub" or (classes.dtype.kind == "f" and
                                        np.all(classes == np.round(classes))):
        return [int(c) for c in classes]
    if classes.dtype.kind in "OUS":
        return [str(c) for c in classes]
    raise ValidationError(f"skl2onnx labels are int64 or strings; the classes {classes!r} are "
                          "neither. Fit with integer or string labels.")


def _skl_shapes(operator: Any) -> None:
    """skl2onnx shape calculator: the outputs' types from the input's (float or double)."""
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )
    est = operator.raw_operator
    x_type = operator.inputs[0].type
    if not isinstance(x_type, (FloatTensorType, DoubleTensorType)):
        raise ValidationError(f"{type(est).__name__} takes float or double inputs in ONNX; "
                              f"received {type(x_type).__name__}. Cast the input to float.")
    N = operator.inputs[0].get_first_dimension()
    ftype = type(x_type)
    if not hasattr(est, "classes_"):
        operator.outputs[0].type = ftype([N, est.n_outputs_])
        return
    K = len(est.classes_)
    options = operator.scope_inst.get_options(est, {"nocl": False})
    classes = _skl_classes(est, bool(options.get("nocl")))
    if est._multilabel:
        operator.outputs[0].type = Int64TensorType([N, K])
    elif classes is not None and isinstance(classes[0], str):
        operator.outputs[0].type = StringTensorType([N])
    else:
        operator.outputs[0].type = Int64TensorType([N])
    operator.outputs[1].type = ftype([N, K])


def _skl_convert(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter: the nodes of :func:`build`, renamed into skl2onnx's scope, between
    the operator's input (cast to the model's dtype) and its outputs (cast back)."""
    from skl2onnx.common.data_types import DoubleTensorType

    from .sklearn import to_model
    est = operator.raw_operator
    model = to_model(est)
    classify = hasattr(est, "classes_")
    if classify:
        options = scope.get_options(est, {"nocl": False})
        model.metadata["classes"] = _skl_classes(est, bool(options.get("nocl")))
        wanted = ["label", "probabilities"]
    else:
        wanted = ["prediction" if getattr(model.loss, "kind", None) == "poisson" else "output"]
    b, _ = build(model, opset=container.target_opset, labels=True)
    names: dict[str, str] = {}

    def rename(n: str) -> str:
        if n not in names:
            names[n] = scope.get_unique_variable_name(n)
        return names[n]

    x_var = operator.inputs[0]
    io_dtype = np.dtype(np.float64 if isinstance(x_var.type, DoubleTensorType) else np.float32)
    if io_dtype == b.dtype:
        names["X"] = x_var.full_name
    else:
        container.add_node("Cast", x_var.full_name, rename("X"), to=_ONNX_TYPE[b.dtype],
                           name=scope.get_unique_operator_name("Cast"))
    for name, a in b.constants.items():
        if a.dtype == object:
            container.add_initializer(rename(name), TensorProto.STRING, list(a.shape),
                                      [str(v) for v in a])
        else:
            container.add_initializer(rename(name), None, None, numpy_helper.from_array(a))
    for op, inputs, outputs, attrs in b.nodes:
        container.add_node(op, [rename(n) for n in inputs], [rename(n) for n in outputs],
                           name=scope.get_unique_operator_name(op), **attrs)
    for var, mine in zip(operator.outputs, wanted):
        is_float = mine != "label"
        if is_float and io_dtype != b.dtype:
            container.add_node("Cast", names[mine], var.full_name, to=_ONNX_TYPE[io_dtype],
                               name=scope.get_unique_operator_name("Cast"))
        else:
            container.add_node("Identity", names[mine], var.full_name,
                               name=scope.get_unique_operator_name("Identity"))
