"""The import graph of ``src/rareflow``: no cycle, no import from a lower layer to a higher one.

The layer table is read from ``docs/architecture.md`` (its one place); every ``import`` of every
module is parsed with :mod:`ast`, imports inside functions included.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

SRC = REPO / "src"
DOC = REPO / "docs" / "architecture.md"


def layer_table() -> list[tuple[str, list[str]]]:
    """``[(layer, [module prefixes])]`` bottom first, from the table in docs/architecture.md."""
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1].startswith("`rareflow"):
            rows.append((cells[0], re.findall(r"`(rareflow[\w.]*)`", cells[1])))
    return rows


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "rareflow").rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """rareflow modules that ``name`` imports anywhere in its body (a package import counts as
    the package; ``from pkg import sub`` counts as the submodule when ``sub`` is one)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name if is_pkg else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}".strip(".")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # `import rareflow.flows.model as m` -> the module itself
                t = t.rpartition(".")[0]
            if t.startswith("rareflow") and t != name:
                out.add(t)
    return out


def layer_of(name: str, table: list[tuple[str, list[str]]]) -> int:
    """Index of the layer whose longest prefix matches ``name``."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(table):
        for p in prefixes:
            inside = name == p or (p != "rareflow" and name.startswith(p + "."))  # bare `rareflow`: the package only
            if inside and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {n: imports_of(n, p, modules) for n, p in modules.items()}


def test_layer_table_is_read() -> None:
    table = layer_table()
    names = [n for n, _ in table]
    assert names[0] == "mechanisms" and names[-1] == "cli"
    assert names.index("io") < names.index("iact") < names.index("detectors") < names.index("evaluation")


def test_every_module_has_a_layer() -> None:
    table = layer_table()
    missing = [n for n in all_modules() if layer_of(n, table) < 0]
    assert not missing, f"modules without a layer in docs/architecture.md: {missing}"


def test_no_upward_import() -> None:
    table = layer_table()
    upward = []
    for name, deps in graph().items():
        mine = layer_of(name, table)
        for dep in sorted(deps):
            theirs = layer_of(dep, table)
            if theirs > mine:
                upward.append(f"{name} ({table[mine][0]}) imports {dep} ({table[theirs][0]})")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``g`` (a list of modules, first == last), or None."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        stack.append(n)
        for d in sorted(g.get(n, ())):
            if colour.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in colour and (found := visit(d)):
                return found
        stack.pop()
        colour[n] = 2
        return None

    for n in sorted(g):
        if n not in colour and (found := visit(n)):
            return found
    return None


def test_no_import_cycle() -> None:
    g = graph()
    # a package's __init__ importing its own submodules is how packages re-export; the
    # submodule -> package edge back is then no cycle Python can trip on, but any other loop is
    for pkg in [n for n in g if (SRC / Path(*n.split("."))).is_dir()]:
        g[pkg] = {d for d in g[pkg] if not d.startswith(pkg + ".")} | {
            d for d in g[pkg] if d.startswith(pkg + ".") and pkg not in g.get(d, set())
        }
    cycle = find_cycle(g)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_can_fail() -> None:
    """The cycle finder finds a planted cycle, and the layer lookup ranks io below evaluation."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    table = layer_table()
    assert layer_of("rareflow.io.tables", table) < layer_of("rareflow.evaluation.runner", table)
    assert layer_of("rareflow.detectors.thresholds", table) < layer_of("rareflow.config", table)
