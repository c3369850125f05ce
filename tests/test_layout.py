"""The layout holds: no import circle, no arrow against the layering, short modules, a thin CLI root.

Floors from the bottom: `features/core` (imports nothing of ours), `features`, then `heads` and
`evaluation` (evaluation knows no models), then `pipeline` on top. Every import in a module counts,
inside functions too; only `if TYPE_CHECKING:` blocks are left out. Importing a package counts as an
arrow to its `__init__`; the implicit import of a module's parent packages does not.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "heads", "evaluation", "pipeline")
MAX_LINES = 300
FLOORS = {"features.core": 0, "features": 1, "heads": 2, "evaluation": 2, "pipeline": 3}
FORBIDDEN = {("evaluation", "heads")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: dict) -> set:
    """The modules of ours that `name` imports (a `from a import b` is a.b when that is a module)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _import_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        out.update(t for t in targets if t in known and t != name)
    return out


def graph() -> dict:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def floor_of(name: str) -> tuple:
    for prefix in sorted(FLOORS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return prefix, FLOORS[prefix]
    raise AssertionError(f"{name} is on no floor")


def cycles(g: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    assert cycles(graph()) == []


def test_no_arrow_against_the_layering():
    wrong = []
    for name, targets in graph().items():
        (floor, level) = floor_of(name)
        for t in sorted(targets):
            t_floor, t_level = floor_of(t)
            top = lambda f: f.split(".")[0]  # noqa: E731
            if t_level > level or (top(floor), top(t_floor)) in FORBIDDEN or (level == t_level and top(floor) != top(t_floor)):
                wrong.append(f"{name} -> {t}")
    assert wrong == []


def test_modules_are_short():
    long = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_cli_root_is_thin():
    lines = {name: len(p.read_text().splitlines()) for name, p in modules().items()}
    root = sum(n for name, n in lines.items() if name.count(".") == 1 and name.startswith("pipeline.")
               or name == "pipeline")
    assert root < 0.10 * sum(lines.values()), f"{root} of {sum(lines.values())} lines directly in pipeline/"


@pytest.mark.parametrize("edges, expected", [({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
                                             ({"a": {"b"}, "b": set()}, [])])
def test_the_circle_finder_finds_circles(edges, expected):
    assert cycles(edges) == expected


DOCUMENTED = ("pipeline/datasets", "evaluation/metrics.py", "pipeline/extraction", "pipeline/training", "pipeline/scoring",
              "pipeline/cli.py", "pipeline/arguments.py", "heads/options.py", "features/store_schema.py")
KERAS_OVERRIDES = {"call", "get_config", "compute_output_shape", "build"}


def test_public_functions_of_loaders_metrics_and_stages_have_docstrings():
    files = [p for entry in DOCUMENTED for p in ([ROOT / entry] if entry.endswith(".py")
                                                 else sorted((ROOT / entry).rglob("*.py")))]
    missing = []
    for path in files:
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith("_"):
                continue
            methods = node.body if isinstance(node, ast.ClassDef) else []
            members = [node] + [m for m in methods if isinstance(m, ast.FunctionDef)
                                and not m.name.startswith("_") and m.name not in KERAS_OVERRIDES
                                and not any(getattr(d, "id", "") == "property" for d in m.decorator_list)]
            missing += [f"{path.relative_to(ROOT)}:{m.lineno} {m.name}" for m in members if not ast.get_docstring(m)]
    assert missing == []


SCHEMA_KEYS = {"schema_version", "initialized", "appending", "appended", "grown", "groups", "status_codes", "created",
               "compression", "task_size"}


def test_only_the_schema_module_writes_the_store_attributes():
    """Records written into a store's attributes are built in `features/store_schema.py` alone."""
    writers = []
    for name, path in modules().items():
        if name == "features.store_schema":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                writers += [f"{name}: {key}" for key in sorted(keys & SCHEMA_KEYS)]
    assert writers == []
