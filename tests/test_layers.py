"""The import graph of src/fcsft, read from the source: no cycles, arrows only down the layers,
and no step importing another step.

Every `import` and `from ... import` counts, at module level or inside a function (a lazy import
is still a dependency). `from package import name` is an arrow to the submodule when `name` is
one, else to the package's `__init__`. Importing a submodule is not counted as importing its
parent package's `__init__`, which Python runs first: a package's `__init__` may gather its own
submodules without that being a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "fcsft"

# Every package with a step.py registers a step (see fcsft.step); memory sits beside them.
STEPS = (*sorted(path.parent.name for path in SRC.glob("*/step.py")), "memory")

# Bottom to top. A module belongs to the layer that lists its top-level name under fcsft (a
# file or a package); the package's own __init__ is the public face and sits on top.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "records",
        (
            "_version",
            "errors",
            "files",
            "intervals",
            "jsonl",
            "plots",
            "records",
            "section",
            "text",
            "tool_errors",
        ),
    ),
    ("formats", ("formats", "benchmarks", "convert")),
    ("models/tools", ("models", "tools", "testing", "hub")),
    ("agent", ("agent",)),
    # The contract every step implements (Outcome, Stage, StopStage) and the step registry.
    ("stage", ("stage", "step")),
    ("steps", STEPS),
    ("runner", ("config", "runner")),
    ("cli", ("cli", "__init__")),
]


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module under src/fcsft (`fcsft` is the package __init__)."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = ("fcsft", *path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _nearest(name: str) -> str | None:
    """The module `name` is or lives in (`fcsft.records.Tool` -> `fcsft.records`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """The fcsft modules `module` imports, anywhere in its file."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(_nearest(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                whole = f"{source}.{alias.name}"
                found.add(whole if whole in MODULES else _nearest(source))
    return {name for name in found if name and name.startswith("fcsft")} - {module}


GRAPH = {module: _imports(module) for module in MODULES}


def _top(module: str) -> str:
    """The name under fcsft that places a module: `fcsft.models.ask` -> `models`."""
    return module.split(".")[1] if "." in module else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    for index, (_, names) in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} is in no layer: add {top!r} to LAYERS in {__file__}")


def test_every_module_has_a_layer():
    unplaced = sorted({_top(m) for m in MODULES} - {n for _, names in LAYERS for n in names})
    assert not unplaced, f"add these to LAYERS in {__file__}: {unplaced}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in `graph`, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycles():
    cycle = _cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_arrows_point_down_the_layers():
    upward = []
    for module, targets in GRAPH.items():
        for target in targets:
            if _layer(target) > _layer(module):
                upward.append(
                    f"{module} ({LAYERS[_layer(module)][0]}) imports "
                    f"{target} ({LAYERS[_layer(target)][0]})"
                )
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_no_step_imports_another_step():
    crossing = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _top(module) in STEPS and _top(target) in STEPS and _top(module) != _top(target)
    )
    assert not crossing, "a step imports another step:\n" + "\n".join(crossing)


# The checks themselves, on graphs where the answer is known.


def test_a_cycle_is_found_and_named():
    graph = {"fcsft.a": {"fcsft.b"}, "fcsft.b": {"fcsft.c"}, "fcsft.c": {"fcsft.a"}}
    assert _cycle(graph) == ["fcsft.a", "fcsft.b", "fcsft.c", "fcsft.a"]
    assert _cycle({"fcsft.a": {"fcsft.b"}, "fcsft.b": set()}) is None


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import fcsft.records", {"fcsft.records"}),
        ("from fcsft.records import Tool", {"fcsft.records"}),
        (
            "from fcsft.formats import openai, FormatError",
            {"fcsft.formats.openai", "fcsft.formats"},
        ),
        ("def f():\n    from fcsft.stage import Stage\n", {"fcsft.stage"}),
        ("from . import base", {"fcsft.formats.base"}),
        ("from .base import FormatError", {"fcsft.formats.base"}),
        ("from .. import records", {"fcsft.records"}),
        ("import json\nfrom typing import Any", set()),
    ],
)
def test_imports_are_read_from_the_source(tmp_path, monkeypatch, source, expected):
    module = "fcsft.formats.probe"
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    monkeypatch.setitem(MODULES, module, path)
    assert _imports(module) == expected
