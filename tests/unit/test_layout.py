"""The package layout, and no import cycles between django_jobs' modules.

Every import statement counts, including the ones inside functions: a lazy import only
hides a cycle from the interpreter, not from a reader. ``if TYPE_CHECKING:`` blocks are
left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import django_jobs

PACKAGE = Path(django_jobs.__file__).resolve().parent
ROOT = "django_jobs"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (migrations included: they run too)."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Import nodes anywhere in ``tree`` except under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports_in(child)
            continue
        yield from _imports_in(node)


def _imports_in(node: ast.AST):
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports(node)


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The django_jobs module ``name`` stands for: itself, or the package it is in."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The django_jobs modules that module ``name`` imports."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                # ``from .`` in a package's __init__ is the package itself; elsewhere, the
                # package that holds the module.
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from pkg import mod`` depends on mod when mod is a module, else on pkg (the
            # name comes from its __init__). The parent packages Python also runs are left
            # out: they are imported first and never make a cycle of their own.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        for target in targets:
            if target == ROOT or target.startswith(ROOT + "."):
                resolved = _resolve(target, known)
                if resolved and resolved != name:
                    found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def all_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles found one at a time, breaking each one's last edge to look for the next."""
    graph = {node: set(edges) for node, edges in graph.items()}
    cycles = []
    while (cycle := find_cycle(graph)) is not None:
        cycles.append(cycle)
        graph[cycle[-2]].discard(cycle[-1])
    return cycles


def test_no_import_cycles_between_django_jobs_modules():
    cycles = all_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle_and_reads_imports_anywhere(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import registry, __version__\n"
        "from .runtime import worker\n"
        "from .storage import get_storage\n"
        "from .storage.base import Storage\n"
        "if TYPE_CHECKING:\n"
        "    from .models import Job\n"
        "else:\n"
        "    from .conf import jobs_settings\n"
        "def f():\n"
        "    import django_jobs.executor\n"
        "    class C:\n"
        "        from .checks import base\n"
    )
    known = {
        name: Path()
        for name in (
            "django_jobs",
            "django_jobs.registry",
            "django_jobs.runtime",
            "django_jobs.runtime.worker",
            "django_jobs.storage",
            "django_jobs.storage.base",
            "django_jobs.models",
            "django_jobs.conf",
            "django_jobs.executor",
            "django_jobs.checks",
            "django_jobs.checks.base",
            "django_jobs.mod",
        )
    }
    assert imported_modules("django_jobs.mod", source, known) == {
        "django_jobs",  # __version__ comes from the package's __init__
        "django_jobs.registry",
        "django_jobs.runtime.worker",
        "django_jobs.storage",
        "django_jobs.storage.base",
        "django_jobs.conf",
        "django_jobs.executor",
        "django_jobs.checks.base",
    }
    package_init = tmp_path / "__init__.py"
    package_init.write_text("from . import mod\nfrom .mod import thing\n")
    assert imported_modules("django_jobs", package_init, known) == {"django_jobs.mod"}


RUNTIME = {
    "worker", "supervisor", "daemon", "heartbeat", "lifeline", "watchdog", "recycling",
    "resilience", "runners", "proctitle", "status", "workoff",
}  # fmt: skip
ADMIN = {"actions", "charts", "dashboard", "display", "filters", "modeladmins", "paging"}


def test_admin_and_runtime_are_packages_and_no_flat_admin_modules_are_left():
    # django.contrib.admin's autodiscovery imports django_jobs.admin: it must be a package.
    assert (PACKAGE / "admin" / "__init__.py").is_file()
    assert {p.stem for p in (PACKAGE / "admin").glob("*.py")} >= ADMIN
    assert {p.stem for p in (PACKAGE / "runtime").glob("*.py")} >= RUNTIME
    flat = {p.stem for p in PACKAGE.glob("*.py")}
    leftovers = sorted(n for n in flat if n.startswith("admin_") or n in RUNTIME | ADMIN)
    assert leftovers == []
