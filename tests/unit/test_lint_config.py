"""`make lint` enforces the layers: the import-linter contracts in pyproject.toml hold for the real
tree, and each kind of violation they exist for breaks them. The violating module goes into a copy
of services/ in a temporary directory, never into the working tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
DOMAIN = "domain is pure"
SERVICE_LAYER = "service layer depends on ports"
INDEPENDENT = "services never import each other"
COMMON = "common imports no service"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter over ``root`` (which holds pyproject.toml and services/)."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=root, capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(REPO / "services", root / "services", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_real_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_copied_tree_keeps_every_contract(tree: Path) -> None:
    """The copy is what the violations below are measured against."""
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("module", "source", "contract"), [
    ("intake/domain/_bad.py", "import sqlalchemy\n", DOMAIN),
    ("review/domain/_bad.py", "from services.review.adapters import repository\n", DOMAIN),
    ("authorization/domain/_bad.py", "from ur.common.v1 import types_pb2\n", DOMAIN),
    ("review/domain/_bad.py", "import durable.lang\n", DOMAIN),
    ("intake/service_layer/_bad.py", "import kafka\n", SERVICE_LAYER),
    ("authorization/service_layer/_bad.py", "from services.authorization.adapters import repository\n",
     SERVICE_LAYER),
    ("intake/adapters/_bad.py", "from services.review.domain import task\n", INDEPENDENT),
    ("common/_bad.py", "from services.intake.domain import model\n", COMMON),
], ids=lambda v: v.split("\n")[0] if isinstance(v, str) else v)
def test_a_layer_violation_breaks_its_contract(tree: Path, module: str, source: str, contract: str) -> None:
    bad = tree / "services" / module
    bad.write_text(source, encoding="utf-8")
    try:
        result = lint_imports(tree)
    finally:
        bad.unlink()
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert len(broken) == 1, result.stdout
    assert broken[0].startswith(contract), result.stdout
