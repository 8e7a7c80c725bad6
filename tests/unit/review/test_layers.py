"""Review's layers import inward only: the domain is pure, and the service layer reaches storage,
transports and other services through its ports (service_layer/ports.py), never directly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

REVIEW = REPO / "services" / "review"
FORBIDDEN = {
    "domain": ("sqlalchemy", "grpc", "kafka", "durable", "ur.", "google.protobuf", "services.review.adapters",
               "services.review.service_layer", "services.review.entrypoints"),
    "service_layer": ("sqlalchemy", "grpc", "kafka", "durable", "services.review.adapters",
                      "services.review.entrypoints"),
}


def imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


MODULES = [(layer, p) for layer in FORBIDDEN for p in sorted((REVIEW / layer).rglob("*.py"))]


@pytest.mark.parametrize(("layer", "path"), MODULES, ids=[str(p.relative_to(REPO)) for _, p in MODULES])
def test_a_layer_imports_inward_only(layer: str, path: Path) -> None:
    bad = [m for m in imports(path) if any(m == f.rstrip(".") or m.startswith(f if f.endswith(".") else f + ".")
                                           for f in FORBIDDEN[layer])]
    assert bad == []


def test_the_check_sees_an_import() -> None:
    assert "sqlalchemy" in imports(REVIEW / "adapters" / "repository.py")
