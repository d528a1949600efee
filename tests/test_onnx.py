"""ONNX export (issue 15): every layer and activation, float32 and float64, run by ONNX Runtime
and compared with ``model.predict``: norm-wise relative error max|a − b| / max|b| at most 1e-5
(float32) and 1e-10 (float64), on random inputs and the bundled digits, batches of 1 and 1000.
ONNX Runtime is the independent computation: nothing of layerwise runs inside it."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest

import layerwise as lw

onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install '.[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install "
                                                "onnxruntime")
from layerwise import onnx_export  # noqa: E402

TOL = {np.float32: 1e-5, np.float64: 1e-10}
ACTIVATIONS = [lw.Identity(), lw.ReLU(), lw.LeakyReLU(0.1), lw.LeakyReLU(3.0), lw.Sigmoid(),
               lw.Tanh(), lw.ELU(0.7), lw.Softplus(threshold=1.0), lw.GELU(),
               lw.GELU("tanh"), lw.Softmax()]
OPSETS = sorted({onnx_export.MIN_OPSET, onnx_export.DEFAULT_OPSET, 18, 20})   # 20: ORT 1.17


# -- helpers --------------------------------------------------------------------------------------
# About 1 run in 20 of this file, a one-row float32 predict right after an ONNX Runtime
# session warned "invalid value encountered in dot" from NumPy's check of the CPU's
# floating-point flags, with finite inputs, weights and results (the flag was left by code
# outside layerwise; it did not reproduce outside pytest). Every comparison below checks the
# values themselves, so that warning alone is not an error here.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning")


def session(proto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run(proto, X):
    """Every output of ``proto`` for X, by name."""
    s = session(proto)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, {"X": X})))


def rel_err(actual, expected):
    a, b = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def assert_matches(model, X, outputs=None):
    """The ONNX output equals ``predict`` to the dtype's tolerance (and the file checks)."""
    proto = onnx_export.export(model) if outputs is None else outputs
    onnx.checker.check_model(proto, full_check=True)
    got = run(proto, X)
    err = rel_err(got["output"], model.predict(X))
    assert err <= TOL[model.dtype.type], f"relative error {err:.2e}"
    return got


def with_stats(model, rng):
    """Give every BatchNorm running statistics away from (0, 1), and Standardize in front."""
    for layer in model.layers:
        if isinstance(layer, lw.BatchNorm):
            layer.running_mean[...] = rng.normal(size=layer.n)
            layer.running_var[...] = rng.uniform(0.3, 3.0, layer.n)
            layer.gamma[...] = rng.uniform(0.5, 2.0, layer.n)
            layer.beta[...] = rng.normal(size=layer.n)
    n, dt = model.n_in, model.dtype
    first = lw.Standardize(rng.normal(size=n), rng.uniform(0.5, 2.0, n), dtype=dt)
    return lw.Sequential([first, *model.layers])


# -- every layer and activation ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm", [None, "layer", "batch"])
@pytest.mark.parametrize("act", ACTIVATIONS, ids=repr)
def test_every_activation_and_norm_matches_predict(act, norm, dtype):
    rng = np.random.default_rng(0)
    for opset in OPSETS:
        net = lw.mlp([5, 7, 6, 3], activation=type(act)(**act.config()), norm=norm,
                     dropout=0.3, output=type(act)(**act.config()), dtype=dtype, rng=1)
        model = with_stats(net, rng)
        proto = onnx_export.export(model, opset=opset)
        assert proto.opset_import[0].version == opset
        for B in (1, 1000):
            X = (3 * rng.standard_normal((B, 5))).astype(dtype)
            assert_matches(model, X, proto)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edge_shapes_one_feature_one_row_no_bias(dtype):
    model = lw.Sequential(lw.Dense(1, 4, bias=False, rng=0), lw.Tanh(),
                          lw.Dense(4, 1, rng=0, bias_init="normal:1.0")).astype(dtype)
    for B in (1, 3):
        X = np.linspace(-2, 2, B, dtype=dtype)[:, None]
        got = assert_matches(model, X)
        assert got["output"].dtype == dtype and set(got) == {"output"}


def test_the_float64_erf_agrees_with_scipy_everywhere():
    """float64 GELU's erf is written out (no float64 Erf kernel in ONNX Runtime): over the whole
    line, the three regions' edges, ±0 and ±huge, it is scipy's to float64 rounding."""
    special = pytest.importorskip("scipy.special")
    model = lw.Sequential(lw.Dense(1, 1, init="constant:1.0"), lw.GELU()).astype(np.float64)
    x = np.concatenate([np.linspace(-40, 40, 100001), [0.0, -0.0, 1e-300, 4 * 2**0.5,
                        0.46875 * 2**0.5, 1e10, -1e10, 1e200, -1e200]])[:, None]
    out = run(onnx_export.export(model), x)["output"][:, 0]
    expected = 0.5 * x[:, 0] * (1 + special.erf(x[:, 0] / 2**0.5))
    assert np.all(np.isfinite(out))
    assert np.max(np.abs(out - expected)) <= 1e-15 * np.max(np.abs(x[np.abs(x) < 50]))
    keep = np.abs(x[:, 0]) < 1e100
    assert rel_err(out[keep], expected[keep]) <= 1e-15


# -- real data: the digits ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return lw.datasets.load_digits()


def trained(digits, dtype, **kw):
    Xtr, ytr, _, _ = digits
    scaler = lw.Standardize.fit(Xtr, dtype=dtype)
    model = lw.Sequential([scaler, *lw.mlp([64, 32, 10], dtype=dtype, rng=0, **kw).layers])
    model.fit(Xtr.astype(dtype), ytr, epochs=2, batch_size=64, rng=0, verbose=0)
    model.metadata.update(classes=[f"digit {k}" for k in range(10)], task="classification",
                          feature_names=[f"px{i}" for i in range(64)])
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_digits_classifier_gives_predictions_labels_and_probabilities(digits, dtype):
    model = trained(digits, dtype, norm="batch", dropout=0.2)
    _, _, Xte, _ = digits
    proto = onnx_export.export(model)
    for X in (Xte[:1].astype(dtype), np.tile(Xte, (2, 1))[:1000].astype(dtype)):
        got = assert_matches(model, X, proto)
        names = np.array(model.metadata["classes"])
        assert np.array_equal(got["label"], names[model.predict_classes(X)])
        assert rel_err(got["probabilities"], model.predict_proba(X)) <= TOL[dtype]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["layerwise_version"] == lw.__version__ and meta["task"] == "classification"
    assert json.loads(meta["classes"]) == model.metadata["classes"]
    assert json.loads(meta["feature_names"])[:2] == ["px0", "px1"]
    assert json.loads(meta["loss"]) == {"kind": "ce", "label_smoothing": 0.0}
    inputs = proto.graph.input[0].type.tensor_type
    assert proto.graph.input[0].name == "X"
    assert [d.dim_param or d.dim_value for d in inputs.shape.dim] == ["N", 64]
    assert [o.name for o in proto.graph.output] == ["output", "label", "probabilities"]


def test_labels_false_and_models_without_class_names(digits):
    model = trained(digits, np.float32)
    X = digits[2][:50]
    assert [o.name for o in onnx_export.export(model, labels=False).graph.output] == ["output"]
    model.metadata["classes"] = None
    got = run(onnx_export.export(model), X)
    assert got["label"].dtype == np.int64
    assert np.array_equal(got["label"], model.predict_classes(X))
    model.metadata["classes"] = list(range(10, 20))               # integer names: int64
    assert np.array_equal(run(onnx_export.export(model), X)["label"],
                          model.predict_classes(X) + 10)


def test_binary_multilabel_and_probability_outputs():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    binary = lw.mlp([4, 8, 1], rng=0).astype(np.float64)
    binary.fit(X, y, loss="bce", epochs=3, batch_size=32, rng=0, verbose=0)
    binary.metadata["classes"] = ["no", "yes"]
    got = assert_matches(binary, X)
    p = binary.predict_proba(X)[:, 0]
    assert np.array_equal(got["label"], np.array(["no", "yes"])[binary.predict_classes(X)[:, 0]])
    assert rel_err(got["probabilities"], np.column_stack([1 - p, p])) <= 1e-10

    Y = np.column_stack([y, X[:, 2] > 0.5, X[:, 3] < 0]).astype(np.int64)
    multi = lw.mlp([4, 8, 3], rng=0).astype(np.float64)
    multi.fit(X, Y, loss="bce", epochs=3, batch_size=32, rng=0, verbose=0)
    got = assert_matches(multi, X)
    assert got["label"].shape == (300, 3) and np.array_equal(got["label"],
                                                             multi.predict_classes(X))
    assert rel_err(got["probabilities"], multi.predict_proba(X)) <= 1e-10

    probs = lw.Sequential(lw.Dense(4, 1, rng=0), lw.Sigmoid()).astype(np.float64)
    probs.loss = lw.BinaryCrossEntropy(from_logits=False)        # outputs are p: threshold ½
    got = assert_matches(probs, X)
    assert np.array_equal(got["label"], probs.predict_classes(X)[:, 0])


def test_regression_with_target_unscaling_and_poisson():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 3))
    net = lw.mlp([3, 6, 2], activation="gelu", rng=0).astype(np.float64)
    model = lw.Sequential([*net.layers, lw.Standardize([-2.0, 5.0], [0.01, 3.0],
                                                       method="inverse", dtype=np.float64)])
    model.loss = lw.MSE()
    got = assert_matches(model, X)
    assert set(got) == {"output"}
    counts = rng.poisson(np.exp(X[:, :1] * 0.5))
    poisson = lw.mlp([3, 6, 1], rng=0).astype(np.float64)
    poisson.fit(X, counts, loss="poisson", epochs=3, batch_size=32, rng=0, verbose=0)
    got = assert_matches(poisson, X)
    assert rel_err(got["prediction"], poisson.loss.output_transform(poisson.predict(X))) <= 1e-10


def test_to_onnx_writes_the_file(tmp_path):
    model = lw.mlp([3, 4, 2], rng=0)
    path = tmp_path / "m.onnx"
    proto = model.to_onnx(path, opset=13)
    assert onnx.load(str(path)) == proto and proto.opset_import[0].version == 13
    assert proto.ir_version == 7                     # the oldest IR that carries opset 13
    X = np.ones((2, 3), np.float32)
    assert rel_err(run(proto, X)["output"], model.predict(X)) <= 1e-5


# -- errors and user-defined layers --------------------------------------------------------------
class Cube(lw.Layer):
    """A user's layer: A = Z³."""

    kind = "cube_for_onnx_test"

    def forward(self, A, training=False):
        return A**3

    def infer(self, A):
        return A**3


class CubeWithHook(Cube):
    kind = "cube_with_hook_for_onnx_test"

    def to_onnx(self, builder, x):
        return builder.op("Mul", builder.op("Mul", x, x), x)      # Z³


def test_an_unknown_layer_is_named_with_how_to_add_a_hook():
    model = lw.Sequential(lw.Dense(2, 3, rng=0), Cube(), lw.Dense(3, 1, rng=0))
    with pytest.raises(lw.ConfigError, match=r"layer 1, Cube \(kind 'cube_for_onnx_test'\).*"
                                             r"to_onnx\(self, builder, x\).*register"):
        onnx_export.export(model)


def test_a_custom_layer_with_its_own_hook_or_a_registered_converter(monkeypatch):
    X = np.random.default_rng(0).standard_normal((20, 2)).astype(np.float32)
    model = lw.Sequential(lw.Dense(2, 3, rng=0), CubeWithHook(), lw.Dense(3, 1, rng=0))
    assert_matches(model, X)
    monkeypatch.setitem(onnx_export.CONVERTERS, Cube.kind, None)     # removed at teardown
    onnx_export.register(Cube.kind)(lambda layer, b, x: b.op("Pow", x, b.const(3.0)))
    assert_matches(lw.Sequential(lw.Dense(2, 3, rng=0), Cube(), lw.Dense(3, 1, rng=0)), X)
    onnx_export.register(Cube.kind)(lambda layer, b, x: None)
    with pytest.raises(lw.ConfigError, match="must return the name"):
        onnx_export.export(lw.Sequential(lw.Dense(2, 3, rng=0), Cube()))


def test_bad_arguments_are_refused_clearly():
    model = lw.mlp([3, 4, 2], rng=0)
    for opset in (12, 10**6, "17", True):
        with pytest.raises(lw.ValidationError, match="opset must be an integer from 13"):
            onnx_export.export(model, opset=opset)
    with pytest.raises(lw.ConfigError, match="takes a layerwise Sequential"):
        onnx_export.export(model.layers[0])
    with pytest.raises(lw.ValidationError, match="needs a model with a Dense layer"):
        onnx_export.export(lw.Sequential(lw.ReLU()))
    model.loss, model.metadata["classes"] = lw.CrossEntropy(), ["a", "b", "c"]
    with pytest.raises(lw.ValidationError, match="must list the 2 class names"):
        onnx_export.export(model)


def test_without_onnx_the_import_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.delitem(sys.modules, "layerwise.onnx_export")
    with pytest.raises(ImportError, match=r"pip install onnx .*\.\[onnx\]"):
        importlib.import_module("layerwise.onnx_export")
    with pytest.raises(ImportError, match=r"pip install onnx"):
        lw.mlp([2, 2]).to_onnx()


# -- the command line -----------------------------------------------------------------------------
def test_the_export_command(tmp_path, capsys):
    from layerwise.cli import main
    assert main([]) == 0 and "export" in capsys.readouterr().out         # listed in --help
    assert lw.onnx_export is onnx_export                                  # lazy, like plots
    run_dir = tmp_path / "run"
    assert main(["train", "digits", "--epochs", "1", "--layers", "8", "--quiet", "--no-plots",
                 "--out", str(run_dir)]) == 0
    capsys.readouterr()
    out = tmp_path / "digits.onnx"
    assert main(["export", str(run_dir / "model.lw"), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    model = lw.load(run_dir / "model.lw")
    X = lw.datasets.load_digits()[2]
    got = run(onnx.load(str(out)), X)
    assert rel_err(got["output"], model.predict(X)) <= 1e-5
    names = np.array(model.metadata["classes"])
    assert np.array_equal(got["label"], names[model.predict_classes(X)])

    assert main(["export", str(run_dir / "model.lw"), str(out)]) == 2       # no overwrite
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists; pass --force" in err
    assert main(["export", str(run_dir / "model.lw"), str(out), "--force", "--no-labels",
                 "--opset", "13"]) == 0
    proto = onnx.load(str(out))
    assert [o.name for o in proto.graph.output] == ["output"]
    assert proto.opset_import[0].version == 13
    assert main(["export", str(run_dir / "model.lw"), str(tmp_path / "x.onnx"),
                 "--opset", "99"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise: error: opset must be an integer from 13")
    assert not (tmp_path / "x.onnx").exists()


# -- scikit-learn: the estimators and skl2onnx ----------------------------------------------------


@pytest.fixture(scope="module")
def sklearn_parts():
    pytest.importorskip("sklearn", reason="needs scikit-learn")
    skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx not installed: pip install "
                                                      "skl2onnx")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from layerwise.sklearn import LayerwiseClassifier, LayerwiseRegressor
    onnx_export.register_skl2onnx()
    onnx_export.register_skl2onnx()                     # twice: harmless
    return skl2onnx, make_pipeline, StandardScaler, LayerwiseClassifier, LayerwiseRegressor


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_estimators_export_themselves(digits, sklearn_parts):
    _, make_pipeline, StandardScaler, Classifier, Regressor = sklearn_parts
    Xtr, ytr, Xte, _ = digits
    clf = Classifier((16,), max_iter=3, random_state=0).fit(Xtr, np.array(list("abcdefghij"))[ytr])
    got = run(clf.to_onnx(), Xte)
    assert np.array_equal(got["label"], clf.predict(Xte))
    assert rel_err(got["probabilities"], clf.predict_proba(Xte)) <= 1e-5
    binary = Classifier((8,), max_iter=3, random_state=0, dtype=np.float64).fit(Xtr, ytr > 4)
    got = run(binary.to_onnx(), Xte.astype(np.float64))
    assert np.array_equal(got["label"], np.array(["False", "True"])[binary.predict(Xte) * 1])
    assert rel_err(got["probabilities"], binary.predict_proba(Xte)) <= 1e-10
    reg = make_pipeline(StandardScaler(), Regressor((8,), max_iter=3, random_state=0,
                                                    loss="poisson")).fit(Xtr, ytr)
    got = run(reg[-1].to_onnx(), reg[0].transform(Xte).astype(np.float32))
    assert rel_err(got["prediction"][:, 0], reg.predict(Xte)) <= 1e-5


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("labels", ["int", "str", "binary", "multilabel"])
def test_a_pipeline_converts_with_skl2onnx(digits, sklearn_parts, labels):
    skl2onnx, make_pipeline, StandardScaler, Classifier, _ = sklearn_parts
    Xtr, ytr, Xte, _ = digits
    y = {"int": ytr, "str": np.array(list("abcdefghij"))[ytr], "binary": (ytr > 4) * 1,
         "multilabel": np.column_stack([ytr > 4, ytr % 2 == 0]).astype(np.int64)}[labels]
    pipe = make_pipeline(StandardScaler(), Classifier((16,), max_iter=3, random_state=0))
    pipe.fit(Xtr, y)
    expected_p = pipe.predict_proba(Xte)
    # skl2onnx's default: label and a ZipMap of the probabilities (float inputs, as ZipMap is
    # float only, as for scikit-learn's own classifiers)
    proto = skl2onnx.to_onnx(pipe, Xtr[:1].astype(np.float32))
    s = session(proto)
    label, zipped = s.run(None, {"X": Xte.astype(np.float32)})
    assert np.array_equal(label, pipe.predict(Xte))
    if labels != "multilabel":
        P = np.array([[row[c] for c in pipe.classes_] for row in zipped])
        assert rel_err(P, expected_p) <= 1e-5
    # and without ZipMap, from float64 inputs: probabilities in float64
    proto = skl2onnx.to_onnx(pipe, Xtr[:1].astype(np.float64),
                             options={Classifier: {"zipmap": False}})
    label, P = session(proto).run(None, {"X": Xte.astype(np.float64)})
    assert np.array_equal(label, pipe.predict(Xte)) and P.dtype == np.float64
    assert rel_err(P, expected_p) <= 1e-5


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_regressor_pipeline_converts_with_skl2onnx(digits, sklearn_parts):
    skl2onnx, make_pipeline, StandardScaler, _, Regressor = sklearn_parts
    Xtr, ytr, Xte, _ = digits
    for loss in ("squared_error", "poisson"):
        pipe = make_pipeline(StandardScaler(), Regressor((8,), max_iter=3, random_state=0,
                                                          loss=loss)).fit(Xtr, ytr)
        proto = skl2onnx.to_onnx(pipe, Xtr[:1].astype(np.float32))
        (pred,) = session(proto).run(None, {"X": Xte.astype(np.float32)})
        assert pred.shape == (len(Xte), 1)
        assert rel_err(pred[:, 0], pipe.predict(Xte)) <= 1e-5


def test_an_ensemble_exports_like_any_model():
    """lw.ensemble's block-diagonal network is plain layers: it exports with no converter of
    its own, and the ONNX output is the members' mean."""
    members = [lw.mlp([4, 6, 3], activation="tanh", rng=k).astype(np.float64) for k in range(3)]
    model = lw.ensemble(members)
    X = np.random.default_rng(5).standard_normal((40, 4))
    got = assert_matches(model, X)
    mean = np.mean([m.predict(X) for m in members], axis=0)
    assert rel_err(got["output"], mean) <= 1e-10
