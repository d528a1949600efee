"""The package's shape (issue 13, items 2 and 5): imports point one way, modules reach each
other only through public names, and the small promises of the packaging hold."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import _blas
from test_checkpoints import StopAt  # Ctrl-C after a number of steps

PACKAGE = Path(lw.__file__).parent


def _module_name(path: Path) -> str:
    return "__init__" if path.name == "__init__.py" else path.stem


def _module_level(body: list[ast.stmt]) -> list[ast.ImportFrom]:
    """The ``from . import`` / ``from .x import`` statements run when the module is imported:
    the top level, and inside top-level if/try/with blocks (``if TYPE_CHECKING`` included:
    what a module names in its signatures is a dependency a reader and mypy follow); not
    inside functions or classes, which run later, when the package is whole."""
    found: list[ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.append(node)
        elif isinstance(node, ast.If):
            found += _module_level(node.body) + _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(h.body for h in node.handlers)):
                found += _module_level(block)
        elif isinstance(node, ast.With):
            found += _module_level(node.body)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports at module level. ``from . import x`` is an
    edge to the submodule x when there is one, else to the package (``__init__``);
    ``from .x import y`` is an edge to x (y may be a submodule of a subpackage, not here)."""
    modules = {_module_name(p) for p in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(package.glob("*.py")):
        edges: set[str] = set()
        for node in _module_level(ast.parse(path.read_text(encoding="utf-8")).body):
            if node.module:
                edges.add(node.module.split(".")[0])
            else:
                edges |= {a.name if a.name in modules else "__init__" for a in node.names}
        graph[_module_name(path)] = edges - {_module_name(path)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first search, three colours)."""
    colour = dict.fromkeys(graph, 0)                   # 0 unseen, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if colour.get(n, 2) == 1:
                return [*stack[stack.index(n):], n]
            if colour.get(n) == 0 and (cycle := visit(n)):
                return cycle
        stack.pop()
        colour[m] = 2
        return None

    for m in sorted(graph):
        if colour[m] == 0 and (cycle := visit(m)):
            return cycle
    return None


# -- item 2: imports point one way --------------------------------------------------------------
def test_the_package_has_no_module_level_import_cycle():
    graph = import_graph()
    assert {"layers", "network", "training", "_blas", "checkpoints"} <= set(graph)
    assert find_cycle(graph) is None, f"module-level import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_cycles(tmp_path):
    """The checker itself: a package with a -> b -> a (one edge inside try), c -> d under
    TYPE_CHECKING, and d -> c inside a function (not an edge) is reported."""
    (tmp_path / "__init__.py").write_text("from . import a\n")
    (tmp_path / "a.py").write_text("from .b import f\n")
    (tmp_path / "b.py").write_text("try:\n    from .a import g\nexcept ImportError:\n    pass\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from .d import x\n")
    (tmp_path / "d.py").write_text("def f():\n    from .c import y\n")
    graph = import_graph(tmp_path)
    assert graph == {"__init__": {"a"}, "a": {"b"}, "b": {"a"}, "c": {"d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def _imports_anywhere(module: str) -> set[str]:
    """Every package module ``module`` imports, at any depth (functions included)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    return {node.module.split(".")[0] for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}


def test_blas_knows_nothing_of_layers_or_networks():
    assert not _imports_anywhere("_blas") & {"layers", "network", "training", "activations"}


def test_threads_follow_the_network_multiply_adds():
    model = lw.mlp([4, 8, 2], rng=0)
    assert model.macs() == 4 * 8 + 8 * 2                # Σ n_in·n_out over the Dense layers
    assert lw.Sequential(lw.ReLU()).macs() == 0
    assert _blas.is_small(_blas.SMALL_MACS) and not _blas.is_small(_blas.SMALL_MACS + 1)
    with _blas.threads_for(model.macs()) as th:         # small: held at one thread
        assert th.small


def test_initializers_do_not_import_activations():
    """The default initialiser lives with the activation (``default_init``), so the old cycle
    initializers -> activations -> layers -> initializers is gone, even inside functions."""
    assert "activations" not in _imports_anywhere("initializers")
    assert not hasattr(lw.initializers, "default_for")


def test_an_activation_names_its_default_initialiser():
    from layerwise import activations

    class Swishy(lw.ReLU):                              # a user's ReLU-like unit
        kind = "swishy"
        default_init = "lecun_normal"

    assert activations.default_init(Swishy()) == "lecun_normal"
    assert activations.default_init("relu") == lw.ReLU.default_init == "he_normal"
    assert activations.default_init(None) == lw.Tanh.default_init == "xavier_uniform"
    model = lw.mlp([3, 5, 2], activation=Swishy(), rng=0)
    assert model.layers[0].init == "lecun_normal"       # the hidden Dense takes Swishy's
    assert model.layers[2].init == "xavier_uniform"     # the linear output takes Glorot


def test_no_module_imports_another_modules_private_names():
    """Modules meet through public names: ``from .training import _x`` reaches into another
    module's internals (private modules such as ``_utils`` are the package's shared kit)."""
    reaching = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and \
                    not node.module.startswith("_"):
                reaching += [f"{path.name}: from .{node.module} import {a.name}"
                             for a in node.names if a.name.startswith("_")]
    assert reaching == []


def test_evaluate_uses_a_public_function_of_training():
    from layerwise import training
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 4)).astype(np.float32), rng.integers(0, 3, 30)
    model = lw.mlp([4, 5, 3], rng=0)
    model.loss = lw.CrossEntropy()
    Y = model.loss.prepare_target(y, 3, np.float32)
    assert training.evaluate_arrays(model, lw.CrossEntropy(), X, Y, batch_size=7) == \
        model.evaluate(X, y, batch_size=7)


# -- checkpoints go through state_dict / load_state_dict -------------------------------------
def test_checkpoints_touch_the_run_only_through_public_methods():
    """checkpoints.py never assigns a field of the run, and reads only its state_dicts, its
    settings and the parts it hands to io (model, parameters, optimizer, schedule,
    callbacks, sample count)."""
    allowed = {"settings", "state_dict", "load_state_dict", "model", "params", "opt", "sched",
               "callbacks", "N"}
    tree = ast.parse((PACKAGE / "checkpoints.py").read_text(encoding="utf-8"))
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "run"}
    assigned = [ast.unparse(t) for node in ast.walk(tree)
                if isinstance(node, ast.Assign | ast.AugAssign)
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if any(isinstance(n, ast.Name) and n.id == "run" for n in ast.walk(t))]
    assert used <= allowed, used - allowed
    assert assigned == []


def test_the_optimizer_state_dict_round_trips():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.integers(0, 2, 16)
    model = lw.mlp([3, 4, 2], rng=0).astype(np.float64)
    opt = lw.Adam(1e-2)
    model.fit(X, y, optimizer=opt, epochs=1, batch_size=4, rng=0, verbose=0)
    state = opt.state_dict()
    assert state["kind"] == "adam" and state["t"] == 4 and state["lr"] == opt.lr
    assert {k for k, v in state.items() if isinstance(v, np.ndarray)} == set(opt.state_arrays())
    params = model.flat_parameters()
    twin = lw.Adam(1e-2)
    twin.load_state_dict(state, params)
    assert twin.t == opt.t and all(np.array_equal(twin.state_arrays()[k], a)
                                   for k, a in opt.state_arrays().items())
    for p in params:
        p.grad[...] = 0.01
    before = [p.value.copy() for p in params]
    opt.step(params)
    after = [p.value.copy() for p in params]
    for p, b in zip(params, before):
        p.value[...] = b
    twin.step(params)                                   # the same update from the loaded state
    assert all(np.array_equal(p.value, a) for p, a in zip(params, after))
    with pytest.raises(lw.ValidationError, match="wrong shape"):
        lw.Adam(1e-2).load_state_dict({**state, "0.m": np.zeros(3)}, params)
    with pytest.raises(lw.ValidationError, match="step count"):
        lw.Adam(1e-2).load_state_dict({**state, "t": -1}, params)


# A checkpoint written by layerwise 0.1.0 before the state_dicts (tests/data, made with this
# script's fit(...) interrupted at step 7): it must still resume.
OLD_CHECKPOINT = Path(__file__).parent / "data" / "checkpoint-format2-v0.1.0.lw"
_rng = np.random.default_rng(0)
X_CK, Y_CK = _rng.standard_normal((40, 4)).astype(np.float32), _rng.integers(0, 3, 40)


def _ck_fit(model, schedule="cosine", callbacks=(), **kw):
    return model.fit(X_CK, Y_CK, optimizer=lw.Adam(1e-2), epochs=3, batch_size=8, rng=5,
                     verbose=0, schedule=schedule, validation_split=0.2,
                     callbacks=[lw.ReduceLROnPlateau(patience=1), *callbacks], **kw)


def _flat(model):
    return np.concatenate([p.value.ravel() for p in model.parameters()])


def test_a_checkpoint_written_before_the_state_dicts_resumes_bit_for_bit():
    """The old file resumes, the same way every time, to the run it was cut from. The file's
    first 7 steps ran on another CPU, whose BLAS kernels may round a float32 sum differently in
    the last bit (seen: one parameter 1 ulp apart on a CPU without AVX-512), so the run on this
    machine is compared to float32 rounding; a second resume is compared bit for bit."""
    reference = lw.mlp([4, 6, 3], dropout=0.2, rng=1)
    h_ref = _ck_fit(reference)
    resumed, again = lw.mlp([4, 6, 3], dropout=0.2, rng=1), lw.mlp([4, 6, 3], dropout=0.2, rng=1)
    h = _ck_fit(resumed, resume=OLD_CHECKPOINT)
    h_again = _ck_fit(again, resume=OLD_CHECKPOINT)
    assert np.array_equal(_flat(resumed), _flat(again)) and h["loss"] == h_again["loss"]
    np.testing.assert_allclose(_flat(resumed), _flat(reference), rtol=1e-5, atol=1e-6)
    assert h.epoch == h_ref.epoch
    np.testing.assert_allclose(h["loss"], h_ref["loss"], rtol=1e-5)


def test_the_checkpoint_file_is_written_as_before(tmp_path):
    """The same members and the same checkpoint.json as the file from before the state_dicts,
    but for the timings (seconds, thread measurements). Each .npy member has the same header,
    and the same values to float32 rounding: the old file was written on another CPU, whose
    BLAS kernels may round a sum differently in the last bit."""
    import io as io_
    import json
    import zipfile
    ck = tmp_path / "ck.lw"
    with pytest.raises(lw.TrainingInterrupted):
        _ck_fit(lw.mlp([4, 6, 3], dropout=0.2, rng=1), callbacks=[StopAt(7)], checkpoint=ck,
                checkpoint_every=1)
    with zipfile.ZipFile(ck) as new, zipfile.ZipFile(OLD_CHECKPOINT) as old:
        assert sorted(new.namelist()) == sorted(old.namelist())
        for name in new.namelist():
            if name.startswith("checkpoint/") and name.endswith(".npy"):
                a, b = (np.load(io_.BytesIO(z.read(name))) for z in (new, old))
                header = len(new.read(name)) - a.nbytes
                assert new.read(name)[:header] == old.read(name)[:header], name
                assert a.dtype == b.dtype and a.shape == b.shape, name
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=name)
        meta_new, meta_old = (json.loads(z.read("checkpoint.json")) for z in (new, old))
    for meta in (meta_new, meta_old):
        meta.pop("seconds"), meta.pop("threads"), meta["history"].pop("seconds")
    assert meta_new == meta_old


class Remembering(lw.Schedule):
    """A schedule with state: the rate halves at every call, so it depends on every call
    before (a resumed run that lost them would train at another rate)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, epoch, base_lr):
        self.calls.append(epoch)
        return base_lr * 0.5 ** len(self.calls)

    def state_dict(self):
        return {"calls": list(self.calls)}

    def load_state_dict(self, state):
        calls = state.get("calls")
        if not isinstance(calls, list) or not all(isinstance(c, int) for c in calls):
            raise lw.ValidationError(f"calls must be a list of epochs; received {calls!r}.")
        self.calls = list(calls)


def test_a_stateful_schedule_is_carried_by_the_checkpoint(tmp_path):
    reference, sched = lw.mlp([4, 6, 3], dropout=0.2, rng=1), Remembering()
    _ck_fit(reference, schedule=sched)
    assert sched.calls == [0, 1, 2]
    ck, first = tmp_path / "ck.lw", Remembering()
    with pytest.raises(lw.TrainingInterrupted):
        _ck_fit(lw.mlp([4, 6, 3], dropout=0.2, rng=1), schedule=first, callbacks=[StopAt(7)],
                checkpoint=ck, checkpoint_every=1)
    resumed, second = lw.mlp([4, 6, 3], dropout=0.2, rng=1), Remembering()
    _ck_fit(resumed, schedule=second, resume=ck)
    assert second.calls == [0, 1, 2]                    # not [2]: the state came back
    assert np.array_equal(_flat(resumed), _flat(reference))
    assert lw.CosineDecay(10).state_dict() == {}
    with pytest.raises(lw.ValidationError, match="no state"):
        lw.CosineDecay(10).load_state_dict({"calls": [1]})


# -- item 5: the small items --------------------------------------------------------------------
def test_cli_errors_are_layerwise_errors_reported_in_one_line(monkeypatch, capsys):
    from layerwise import cli
    assert issubclass(cli.CLIError, lw.LayerwiseError)
    for error, shown in ((cli.CLIError("--lr: keep lr=0.1 as written"),
                          "--lr: keep lr=0.1 as written"),            # already in flags
                         (lw.ValidationError("lr=0.5 is too large"),  # the library's words
                          "--lr 0.5 is too large")):
        def command(args, error=error):
            raise error
        monkeypatch.setitem(cli.COMMANDS, "recipes", command)
        assert cli.main(["recipes"]) == 2
        assert capsys.readouterr().err == f"layerwise: error: {shown}\n"


def test_cli_error_from_a_real_command(tmp_path, capsys):
    from layerwise import cli
    assert cli.main(["train", "digits", "--init", "bogus", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise: error: --init: unknown initializer 'bogus'")
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_training_clone_is_gone_and_busy_error_names_the_stdlib_copy():
    import inspect

    from layerwise import training
    assert not hasattr(training, "clone")
    assert "copy.deepcopy(model)" in inspect.getsource(training)


def test_tests_needing_scikit_learn_skip_without_it(tmp_path):
    """With scikit-learn made unimportable, test files that use it for a few tests (reference
    metrics, estimators, the iris and wine tables) skip those and pass the rest."""
    import os
    import subprocess
    import sys
    blocker = tmp_path / "sklearn"
    blocker.mkdir()
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'sklearn'\", name='sklearn')\n")
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(tests / "test_classification_losses.py"),
                        str(tests / "test_init_decay.py"), str(tests / "test_recipes.py"),
                        "-k", "not torch"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tests.parent)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "skipped" in r.stdout and "needs scikit-learn" in r.stdout


def test_onnx_loads_only_for_an_export():
    """``onnx_export`` imports onnx, so no module imports it at module level (``to_onnx`` and
    ``layerwise export`` import it when called), and the package, the estimators and the
    command line load without onnx."""
    import subprocess
    import sys
    graph = import_graph()
    assert "onnx_export" in graph
    assert not [m for m, edges in graph.items() if "onnx_export" in edges]
    assert not graph["onnx_export"] & {"sklearn", "cli", "training", "io", "datasets"}
    code = ("import sys, layerwise, layerwise.network, layerwise.cli; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'skl2onnx', "
            "'layerwise.onnx_export') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=_env_with_package()).stdout.strip()
    assert out == "[]"


def test_without_onnx_the_onnx_tests_skip_and_export_says_how_to_install(tmp_path):
    """With onnx made unimportable, tests/test_onnx.py skips with the install hint and
    `layerwise export` fails in one line naming what to install."""
    import subprocess
    import sys
    blocker = tmp_path / "blocked"
    (blocker / "onnx").mkdir(parents=True)
    (blocker / "onnx" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'onnx'\", name='onnx')\n")
    env = _env_with_package()
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), env["PYTHONPATH"]])
    tests = Path(__file__).parent
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                        str(tests / "test_onnx.py")], capture_output=True, text=True,
                       timeout=300, env=env, cwd=tmp_path)
    # the whole module skips, so nothing is collected: pytest's exit status 5, not a failure
    assert r.returncode == 5, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 skipped" in r.stdout and "onnx not installed: pip install '.[onnx]'" in r.stdout
    lw.mlp([3, 4, 2], rng=0).save(tmp_path / "m.lw")
    r = subprocess.run([sys.executable, "-m", "layerwise", "export", "m.lw", "m.onnx"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("layerwise: error: ONNX export needs the onnx package")
    assert "pip install onnx" in r.stderr and not (tmp_path / "m.onnx").exists()


def _env_with_package() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}


def test_the_sklearn_extra_asks_for_the_scikit_learn_the_code_needs():
    """validate_data and __sklearn_tags__ are new in scikit-learn 1.6: the extra's floor is
    that, and an older scikit-learn is refused on import with the version to install."""
    import re
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    floor = re.search(r'^sklearn = \["scikit-learn>=([\d.]+)"\]', pyproject, re.M)
    assert floor is not None and floor.group(1) == "1.6"


@pytest.mark.sklearn
def test_an_older_scikit_learn_is_refused_with_the_version_to_install(monkeypatch):
    import importlib
    import sys

    import sklearn

    from layerwise import sklearn as lw_sklearn
    assert tuple(lw_sklearn.SKLEARN_MIN) == (1, 6)
    monkeypatch.setattr(sklearn, "__version__", "1.5.2")
    monkeypatch.delitem(sys.modules, "layerwise.sklearn")
    with pytest.raises(ImportError, match=r"scikit-learn >= 1.6 .* found 1.5.2; pip install"):
        importlib.import_module("layerwise.sklearn")


def test_public_signatures_name_real_types_not_any():
    """The registry arguments say what they take: a name or an instance (LossLike, …)."""
    import inspect

    from layerwise import activations, initializers, losses, optimizers, schedules, training
    assert losses.LossLike == str | lw.Loss
    assert optimizers.OptimizerLike == str | lw.Optimizer
    assert activations.ActivationLike == str | activations.Activation
    assert schedules.ScheduleLike == str | lw.Schedule | None
    assert str in initializers.InitLike.__args__
    typed = {"loss", "optimizer", "schedule", "activation", "output", "output_activation",
             "init", "bias_init", "checkpoint", "resume"}
    functions = [training.fit, lw.Sequential.fit, lw.Sequential.evaluate, lw.mlp,
                 losses.get, optimizers.get, activations.get, schedules.get, initializers.get]
    try:
        from layerwise.sklearn import LayerwiseClassifier, LayerwiseRegressor
        functions += [LayerwiseClassifier.__init__, LayerwiseRegressor.__init__]
    except ImportError:                                 # without scikit-learn
        pass
    untyped = [f"{f.__qualname__}({name})" for f in functions
               for name, p in inspect.signature(f).parameters.items()
               if name in typed | {"opt", "name"}
               and p.annotation in ("Any", inspect.Parameter.empty)]
    assert untyped == []
