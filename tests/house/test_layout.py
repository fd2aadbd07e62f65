"""The house keeps its shape: small modules, short signatures, imports that only run down the floors, no cycles.

The floors, lowest first. A module may import (at the top or inside a function) from its own package and from
packages on lower floors, never from a higher one: the export walk from the CLI to report.json runs one way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "edgekit"
FLOORS = [
    {"errors", "_version", "_optional", "progress", "stats", "fsutil", "cpuinfo", "dist"},
    {"graph", "prune", "formats"},  # ONNX facts and export; pruning plans; mobile converters (model in, file out)
    {"models"},  # cards, weight sources, preprocessing, opening a model
    {"data", "backends"},  # images and calibration sources; runtimes behind one runner protocol
    {"quantize", "measure"},
    {"report"},  # the document, its table, check and compare
    {"pipeline"},  # the jobs, stage by stage
    {"recipe"},
    {"api", "cli", "__init__", "__main__"},
]
FLOOR = {name: i for i, names in enumerate(FLOORS) for name in names}
MAX_LINES = 300
MAX_PARAMS = 8


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG).with_suffix("").parts)
        yield path, parts


def _imports(path: Path, parts: list[str]):
    """(line, imported module as a list of names under edgekit) for every relative import in the file."""
    package = parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            mod = base + (node.module.split(".") if node.module else [])
            if node.module:
                yield node.lineno, mod
            else:
                for alias in node.names:
                    yield node.lineno, mod + [alias.name]


def test_every_module_is_on_a_floor():
    tops = {parts[0] for _, parts in _modules()}
    assert tops - set(FLOOR) == set(), "a new top-level module or package: put it on a floor in FLOORS"


def test_no_module_over_300_lines():
    long = {str(p.relative_to(PKG)): n for p, _ in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _is_cli_command(path: Path, node) -> bool:
    """Typer takes a command's options as its parameters: one per flag is the CLI's nature, not a long signature.
    Everything a command does past parsing goes through a request object."""
    return path.parent.name == "cli" and not node.name.startswith("_") and ast.get_docstring(node) is not None \
        and any(isinstance(d, ast.Call) for d in node.args.defaults)


def test_no_function_with_more_than_8_parameters():
    wide = []
    for path, _ in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_cli_command(path, node):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                n = len(names) - (names[:1] in (["self"], ["cls"])) + bool(a.vararg) + bool(a.kwarg)
                if n > MAX_PARAMS:
                    wide.append(f"{path.relative_to(PKG)}:{node.lineno} {node.name} ({n})")
    assert wide == []


def test_imports_only_run_down_the_floors():
    up = []
    for path, parts in _modules():
        here = FLOOR[parts[0]]
        for line, mod in _imports(path, parts):
            if mod and mod[0] != parts[0] and mod[0] in FLOOR and FLOOR[mod[0]] > here:
                up.append(f"{path.relative_to(PKG)}:{line} imports {'.'.join(mod)} (floor {FLOOR[mod[0]]} > {here})")
    assert up == []


def test_no_import_cycles_between_modules():
    names = {".".join(p[:-1] if p[-1] == "__init__" else p) for _, p in _modules()}
    graph = {}
    for path, parts in _modules():
        me = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        targets = set()
        for _, mod in _imports(path, parts):
            dotted = ".".join(mod)
            while dotted and dotted not in names:  # `from .x import name`: the module is x
                dotted = dotted.rpartition(".")[0]
            if dotted and dotted != me and not me.startswith(dotted + "."):  # a package's __init__ is not a cycle
                targets.add(dotted)
        graph[me] = targets
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize("floor", range(len(FLOORS)))
def test_floors_hold_real_modules(floor):
    """A floor that names nothing real would let a typo hide a violation."""
    tops = {parts[0] for _, parts in _modules()}
    assert FLOORS[floor] <= tops
