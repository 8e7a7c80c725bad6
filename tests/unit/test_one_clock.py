"""One clock for all code: nothing under a service's ``domain/`` or ``service_layer/`` reads the wall
clock; the time comes in through the injected ``Clock`` (services/common/clock.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

LAYERS = sorted(p for package in ("intake", "review", "authorization", "intake/interop/subscriptions")
                for layer in ("domain", "service_layer")
                for p in (REPO / "services" / package / layer).rglob("*.py"))
DATETIME_READS = {"now", "utcnow", "today"}  # on datetime / date
TIME_READS = {"time", "time_ns", "localtime", "gmtime"}  # on the time module
WALL_CLOCK_IMPORTS = {"utcnow"}


def wall_clock_reads(path: Path) -> list[str]:
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func.value).split(".")[-1]
            if (node.func.attr in DATETIME_READS and target in {"datetime", "date", "dt"}) or \
                    (node.func.attr in TIME_READS and target == "time"):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node.func)}()")
        if isinstance(node, ast.ImportFrom) and any(a.name in WALL_CLOCK_IMPORTS for a in node.names):
            found.append(f"{name}:{node.lineno}: imports utcnow")
    return found


def test_the_layers_exist() -> None:
    assert len(LAYERS) > 10


@pytest.mark.parametrize("path", LAYERS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_domain_or_service_layer_module_reads_the_wall_clock(path: Path) -> None:
    assert wall_clock_reads(path) == []


def test_the_check_catches_a_wall_clock_read(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import datetime as dt\nfrom services.common.clock import utcnow\n"
                      "import time\ndef f():\n"
                      "    return dt.datetime.now(dt.UTC), dt.date.today(), time.time(), dt.time(1, 2)\n")
    assert len(wall_clock_reads(sneaky)) == 4  # dt.time(1, 2) builds a time of day
