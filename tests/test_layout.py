"""The package's house rules, read from the source: no import cycles, data flowing one way.

Every import counts, including those inside functions (a lazy import is still a dependency),
except those under ``if TYPE_CHECKING:``, which exist for annotations only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
# Where SQL text may live: the store writes, the read models and the evaluation read.
SQL_HOMES = ("presrm.store", "presrm.inspect", "presrm.eval")
# Not SQL the code runs: the `presrm sql` command's examples shown to the user.
SQL_EXAMPLES = ("presrm.cli",)
SQL_RE = re.compile(
    r"\b(SELECT\b[\s\S]+\bFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|CREATE\s+(TABLE|VIEW))\b"
)
# What the Textual app may use of the library: read models, the store, errors, display helpers.
TUI_MAY_IMPORT = ("presrm.inspect", "presrm.store", "presrm.errors", "presrm.display", "presrm.tui")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "tui":
        parts = ["presrm", "tui", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*(ROOT / "presrm").rglob("*.py"), *(ROOT / "tui").rglob("*.py")]
    return {_module_name(p): p for p in files}


SOURCES = _sources()


def _imports(name: str) -> set[str]:
    """The presrm modules ``name`` imports (a ``from pkg import submodule`` names the submodule)."""
    tree = ast.parse(SOURCES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # annotations only: widgets name their app's type, nothing runs
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = []
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("presrm")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("presrm"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in SOURCES else node.module)
    return {m for m in out if m in SOURCES and m != name}


GRAPH = {name: _imports(name) for name in SOURCES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_detector_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_library_never_imports_the_tui_or_the_cli() -> None:
    library = [m for m in GRAPH if not m.startswith("presrm.tui") and m != "presrm.cli"]
    bad = {m: sorted(d for d in GRAPH[m] if d.startswith("presrm.tui") or d == "presrm.cli") for m in library}
    assert {m: d for m, d in bad.items() if d} == {}


def test_tui_uses_only_read_models_store_errors_and_display() -> None:
    bad = {
        m: sorted(d for d in deps if not d.startswith(TUI_MAY_IMPORT))
        for m, deps in GRAPH.items()
        if m.startswith("presrm.tui")
    }
    assert {m: d for m, d in bad.items() if d} == {}


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_sql_text_lives_only_in_store_inspect_and_eval() -> None:
    outside = [
        f"{name}:{line}"
        for name, path in SOURCES.items()
        if not name.startswith(SQL_HOMES) and name not in SQL_EXAMPLES
        for line, text in _string_constants(path)
        if SQL_RE.search(text)
    ]
    assert outside == []


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_module_is_small(name: str) -> None:
    lines = SOURCES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{SOURCES[name]} has {lines} lines"


def test_a_checkout_imports_the_tui_as_presrm_tui() -> None:
    from presrm import CheckoutTuiFinder

    spec = CheckoutTuiFinder().find_spec("presrm.tui")
    assert spec is not None and spec.origin == str(ROOT / "tui" / "__init__.py")
    assert spec.submodule_search_locations == [str(ROOT / "tui")]
    assert CheckoutTuiFinder().find_spec("presrm.tuix") is None
