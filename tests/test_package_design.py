"""The package's shape (issue 13, items 2 and 5): imports point one way, modules reach each
other only through public names, and the small promises of the packaging hold."""

from __future__ import annotations

import ast
from pathlib import Path

import layerwise as lw
from layerwise import _blas

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
