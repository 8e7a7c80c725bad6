"""The service layers depend on ports, not on storage: they import no SQLAlchemy (not even
indirectly) and no adapters; and no code under services/ narrows types with ``assert`` (it vanishes
under ``python -O``). The import-linter contracts (tests/unit/test_lint_config.py) hold the rest of
the layering."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SERVICES = ("intake", "review", "authorization")
SERVICE_LAYER_MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts) for s in SERVICES
    for p in (REPO / "services" / s / "service_layer").glob("*.py") if p.name != "__init__.py")
NO_ASSERTS = sorted((REPO / "services").rglob("*.py"))
STORAGE = ("sqlalchemy", "alembic", "psycopg", "kafka", "grpc")


def test_importing_the_service_layers_loads_no_storage_nor_transport_library_and_no_adapter() -> None:
    probe = (f"import sys\nimport {', '.join(SERVICE_LAYER_MODULES)}\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))\n"
             "print(sorted(m for m in sys.modules if '.adapters' in m or '.entrypoints' in m))\n")
    result = subprocess.run([sys.executable, "-c", probe, *STORAGE], capture_output=True, text=True, check=True,
                            cwd=REPO)
    assert result.stdout.splitlines() == ["[]", "[]"]


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_service_layer_modules_import_neither_sqlalchemy_nor_adapters(service: str) -> None:
    for path in (REPO / "services" / service / "service_layer").rglob("*.py"):
        offending = [n for n in _imports(path) if n.split(".")[0] in STORAGE or ".adapters" in n]
        assert offending == [], path


@pytest.mark.parametrize("path", NO_ASSERTS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_assert_in_service_code(path: Path) -> None:
    asserts = [node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.Assert)]
    assert asserts == []
