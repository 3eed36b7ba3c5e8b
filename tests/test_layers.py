"""The import graph of ``uda`` stays layered: no import runs back up a floor, and no circles.

Every ``import`` statement is read, those inside functions included, so a lazy import cannot
hide an upward dependency. ``docs/architecture.md`` draws the same floors.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Floors, lowest first. A unit is a top-level module or package of ``uda`` (``cli/`` installs
#: as ``uda.cli``). A unit may import units on lower floors only, and on its own floor only on
#: the foundation floor (where the graph must still be free of circles).
FLOORS: list[tuple[str, ...]] = [
    # foundation: the contract, errors, small helpers and the Numba kernels (pure array code)
    ("uda", "uda.errors", "uda.contract", "uda.durations", "uda.versions", "uda.arrays",
     "uda.kernels"),
    ("uda.scales", "uda.engines"),
    # storage and the city model
    ("uda.store", "uda.city"),
    # the generator: its models, then the orchestration
    ("uda.synth",),
    ("uda.generate",),
    # engine-free domain code
    ("uda.forecasting", "uda.waterq"),
    # importers of outside formats (they produce forecasting panels)
    ("uda.io",),
    ("uda.quality", "uda.routing", "uda.realism"),
    # the tasks: engine plumbing, the task registry and the usage rules of the funnel
    ("uda.tasks",),
    ("uda.harness",),
    ("uda.cli",),
]
FLOOR = {unit: i for i, units in enumerate(FLOORS) for unit in units}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "cli":
        parts = ["uda", "cli", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return module
    return f"uda.{parts[1]}"


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every uda module the file imports, with the line, relative imports resolved."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
            if names[0] == "uda":  # ``from uda import store`` imports the unit uda.store
                names = [f"uda.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(name, node.lineno) for name in names if name == "uda" or name.startswith("uda.")]
    return found


def _sources() -> list[Path]:
    return sorted([*ROOT.glob("uda/**/*.py"), *ROOT.glob("cli/**/*.py")])


def _edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = {}
    for path in _sources():
        source = _unit(_module(path))
        for name, line in _imports(path):
            target = _unit(name)
            if target != source:
                edges.setdefault((source, target), []).append(f"{path.relative_to(ROOT)}:{line}")
    return edges


def test_every_unit_has_a_floor():
    units = {_unit(_module(path)) for path in _sources()}
    missing = sorted(units - set(FLOOR))
    assert not missing, f"give these a floor in FLOORS (and in docs/architecture.md): {missing}"


def _upward(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """The edges that run up a floor, or sideways above the foundation."""
    return [f"{a} (floor {FLOOR[a]}) imports {b} (floor {FLOOR[b]}) at {', '.join(where)}"
            for (a, b), where in edges.items()
            if a in FLOOR and b in FLOOR and (FLOOR[b] > FLOOR[a] or (FLOOR[b] == FLOOR[a] > 0))]


def test_no_import_runs_back_up():
    wrong = _upward(_edges())
    assert not wrong, "\n".join(wrong)


def test_no_circles_between_units():
    graph: dict[str, set[str]] = {}
    for a, b in _edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [])):
            pytest.fail("circle: " + " -> ".join(cycle))


def test_the_check_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The reader finds imports inside functions and resolves relative ones (so it can fail)."""
    pkg = tmp_path / "uda" / "kernels"
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text("def f():\n    from ..harness import runner\n    import uda.cli.main\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _imports(pkg / "bad.py") == [("uda.harness", 2), ("uda.cli.main", 3)]
    assert _upward({("uda.kernels", "uda.harness"): ["bad.py:2"]})
    assert _upward({("uda.quality", "uda.routing"): ["x.py:1"]})  # domains do not import each other
    assert not _upward({("uda.tasks", "uda.kernels"): ["x.py:1"], ("uda.errors", "uda"): ["x.py:1"]})


def test_pyproject_lists_every_package():
    """A package missing from pyproject's explicit list is missing from a clean install."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {_module(init) for init in [*ROOT.glob("uda/**/__init__.py"), *ROOT.glob("cli/__init__.py")]}
    assert listed == found, f"pyproject.toml packages: add {sorted(found - listed)}, drop {sorted(listed - found)}"
