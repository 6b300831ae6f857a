"""The code's shape, as design.md and the README describe it: imports flow down the layers, no
module-level import circle, no source file over 400 lines.

Read from the source text (ast), so a violation fails here before anyone notices it in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "imgclf"

# Top to bottom; a module may import from its own layer and the layers below it, never above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("cli", ("__init__", "__main__", "cli")),
    ("api", ("api",)),
    ("serve", ("serve",)),
    ("workflows", ("tune", "retrain", "registry")),
    ("evaluate", ("evaluate",)),
    ("export", ("export",)),
    ("predict", ("predict", "predict_inputs", "predict_distributed")),
    ("train", ("train",)),
    ("inference", ("inference",)),
    ("models", ("models",)),
    ("data", ("data",)),
    ("core", ("errors", "progress", "device", "runs", "launch", "_version")),
]
# Beyond the order: the service answers requests with a trained model; it never trains.
FORBIDDEN = {"serve": ("train", "workflows")}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(SRC).with_suffix("").parts): p for p in sorted(SRC.rglob("*.py"))}


def _layer(module: str) -> str:
    top = module.split(".")[0]
    top = "api" if top.startswith("api_") else top  # api.py's parts (api_tune.py, ...)
    for name, tops in LAYERS:
        if top in tops:
            return name
    raise AssertionError(f"imgclf.{module} belongs to no layer: add its top-level name to LAYERS in {__file__}")


def _imports(module: str, path: Path, *, module_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported imgclf module, line) for every import of imgclf code in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    nodes = tree.body if module_level_only else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.split(".")[0] == "imgclf":
                target = node.module.partition(".")[2]
            else:
                continue
            names = [a.name for a in node.names]
            for name in names:  # `from . import x` imports the submodule x
                sub = f"{target}.{name}" if target else name
                found.append((sub if sub in _ALL else target, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "imgclf":
                    found.append((alias.name.partition(".")[2], node.lineno))
    return sorted({(t, line) for t, line in found if t})


_ALL = set(_modules())
_ORDER = [name for name, _ in LAYERS]


def test_imports_flow_down_the_layers():
    problems = []
    for module, path in _modules().items():
        here = _layer(module)
        for target, line in _imports(module, path):
            there = _layer(target)
            if _ORDER.index(there) < _ORDER.index(here) or there in FORBIDDEN.get(here, ()):
                problems.append(f"{path.relative_to(SRC.parent)}:{line}: {here} imports {there} (imgclf.{target})")
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_no_module_level_import_circle():
    graph = {m: {t for t, _ in _imports(m, p, module_level_only=True) if t != m} for m, p in _modules().items()}
    # A package's __init__ importing its own submodules is how re-exports work, not a circle.
    graph = {m: {t for t in ts if not (m.endswith("__init__") and t.startswith(m.rsplit(".", 1)[0]))} for m, ts in graph.items()}

    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        seen[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            t = t if t in graph else f"{t}.__init__"
            if t not in graph:
                continue
            if seen.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in seen and (cycle := visit(t)):
                return cycle
        stack.pop()
        seen[m] = 2
        return None

    for m in sorted(graph):
        if m not in seen and (cycle := visit(m)):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_no_source_file_over_the_limit():
    long = {str(p.relative_to(SRC.parent)): n for p in SRC.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"source files over {MAX_LINES} lines (split them by purpose): {long}"
