"""services/cli imports one way: urctl imports the command modules, they import the shared helpers
(base, render, request_files), and no import, at module level or inside a function, leads back. And
the CLI reads no service's tables: stored cases come through review's read-only queries."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from tests.conftest import REPO

CLI = "services.cli"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (a directory under ``root``) by dotted name; a package's
    ``__init__.py`` under the package's own name."""
    found: dict[str, Path] = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that importing ``name`` imports: every import statement anywhere in
    the file (a lazy import inside a function closes a cycle as surely as one at the top), with
    ``from P import m`` counting the submodule ``P.m``, and each imported module's parent packages."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets.update(_ancestors(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets.update(_ancestors(source))
            targets.update(f"{source}.{alias.name}" for alias in node.names)
    return (targets & known) - {name}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = module_names(root, package)
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def cycle_through(graph: dict[str, set[str]], prefix: str) -> list[str] | None:
    """One import cycle that passes through a module named ``prefix...``, or None."""
    reverse: dict[str, set[str]] = {n: set() for n in graph}
    for node, targets in graph.items():
        for target in targets:
            reverse[target].add(node)

    def reach(start: set[str], edges: dict[str, set[str]]) -> set[str]:
        seen, todo = set(start), list(start)
        while todo:
            for nxt in edges[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    ours = {n for n in graph if n == prefix or n.startswith(prefix + ".")}
    # A cycle through one of ours lies among the modules both reachable from ours and reaching them.
    involved = reach(ours, graph) & reach(ours, reverse)
    try:
        tuple(graphlib.TopologicalSorter({n: graph[n] & involved for n in involved}).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_services_cli_has_no_import_cycle() -> None:
    graph = import_graph(REPO, "services")
    assert {"services.cli.urctl", "services.cli.base", "services.cli.criteria.replay"} <= set(graph)
    assert {"services.cli.reviewer", "services.cli.criteria.commands"} <= graph["services.cli.urctl"]
    cycle = cycle_through(graph, CLI)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_command_module_imports_urctl_and_no_helper_imports_a_command() -> None:
    graph = import_graph(REPO, "services")
    importers = {n for n, targets in graph.items() if "services.cli.urctl" in targets}
    assert importers <= {"services.cli.workload"}  # workload reuses decision_latency_ms (see urctl.__all__)
    commands = {"services.cli.service_commands", "services.cli.reviewer", "services.cli.criteria.commands"}
    for helper in ("services.cli.base", "services.cli.render", "services.cli.request_files"):
        assert not graph[helper] & (commands | {"services.cli.urctl"}), helper


@pytest.mark.parametrize("name", sorted(n for n in module_names(REPO, CLI)))
def test_the_cli_reads_no_service_tables(name: str) -> None:
    path = module_names(REPO, CLI)[name]
    tables = {f"services.{s}.adapters.tables" for s in ("intake", "review", "authorization")}
    known = set(module_names(REPO, "services"))
    assert not imports_of(name, path, known) & tables


def test_the_check_catches_a_lazy_import_cycle(tmp_path: Path) -> None:
    """The shape services/cli had: urctl imported its command modules inside build_parser, and they
    imported urctl at the top."""
    package = tmp_path / "pkg" / "cli"
    (package / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text("def build():\n    from pkg.cli import cmd\n    return cmd\n")
    (package / "cmd.py").write_text("from . import helpers\n")
    (package / "helpers.py").write_text("from .sub.deep import thing\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "deep.py").write_text("import pkg.cli.main\nthing = 1\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.cli.cmd"] == {"pkg", "pkg.cli", "pkg.cli.helpers"}
    assert "pkg.cli.sub.deep" in graph["pkg.cli.helpers"]
    cycle = cycle_through(graph, "pkg.cli")
    assert cycle is not None
    assert {"pkg.cli.main", "pkg.cli.cmd", "pkg.cli.helpers", "pkg.cli.sub.deep"} <= set(cycle)
    (package / "sub" / "deep.py").write_text("thing = 1\n")
    assert cycle_through(import_graph(tmp_path, "pkg"), "pkg.cli") is None
