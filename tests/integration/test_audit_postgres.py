"""The audit log on PostgreSQL: `urctl audit verify` passes on an untouched log and names the first
bad entry after an edit, a deletion, a reorder and a truncation made behind the service's back; and
appends from several processes at once form one unbroken chain."""

from __future__ import annotations

import itertools
import json
import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.cli import urctl
from services.common import migrations
from services.common.audit.chain import AuditRecord, verify
from services.common.audit.store import AuditLog, read_checkpoints, read_entries, read_head
from services.common.db import make_engine
from services.intake.adapters import tables
from services.intake.adapters.repository import SqlIntakeUnitOfWork

pytestmark = pytest.mark.integration

KEY = b"0123456789abcdef0123456789abcdef"
ENTRIES = 20
CHECKPOINTED = 15


def _log() -> AuditLog:
    log = AuditLog.of(tables.metadata, service="intake", key=KEY)
    if log is None:
        raise AssertionError("intake's metadata has no audit tables")
    return log


def _append(engine: Engine, records: list[AuditRecord]) -> None:
    with SqlIntakeUnitOfWork(engine, tables.outbox, tables.processed_events, audit=_log()) as uow:
        uow.audit(*records)
        uow.commit()


@pytest.fixture
def audited(make_database: Callable[[str], str]) -> Iterator[tuple[str, Engine]]:
    """A migrated intake database whose log holds 20 entries, a signed checkpoint at entry 15."""
    url = make_database("audit")
    engine = make_engine(url)
    migrations.upgrade("intake", engine)
    for i in range(1, ENTRIES + 1):
        _append(engine, [AuditRecord("request.viewed", f"req-{i}", {"status": "in_review"}, actor="anonymous")])
        if i == CHECKPOINTED:
            assert _log().checkpoint(engine) is not None
    yield url, engine
    engine.dispose()


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.key"
    path.write_bytes(KEY + b"\n")
    monkeypatch.setenv("UR_AUDIT_KEY_FILE", str(path))
    return path


def run_verify(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    status = urctl.main(["audit", "verify", "--service", "intake", "--intake-database-url", url, "--json"])
    (report,) = json.loads(capsys.readouterr().out)
    return status, report


def test_an_untouched_log_verifies(audited: tuple[str, Engine], key_file: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = audited
    status, report = run_verify(url, capsys)
    assert status == 0, report
    assert report["ok"]
    assert report["signatures_checked"]
    assert (report["entries"], report["last_checkpoint"], report["after_last_checkpoint"]) == (20, 15, 5)


def test_an_edit_is_named(audited: tuple[str, Engine], key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, engine = audited
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET refs = '{\"status\":\"approved\"}' WHERE seq = 7"))
    status, report = run_verify(url, capsys)
    assert status == 1
    assert (report["first_bad_entry"], report["problem"]) == (7, "altered")


def test_a_deletion_is_named(audited: tuple[str, Engine], key_file: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    url, engine = audited
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 7"))
    status, report = run_verify(url, capsys)
    assert status == 1
    assert (report["first_bad_entry"], report["problem"]) == (7, "missing")


def test_a_reorder_is_named(audited: tuple[str, Engine], key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, engine = audited
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET seq = -7 WHERE seq = 7"))
        conn.execute(text("UPDATE audit_log SET seq = 7 WHERE seq = 8"))
        conn.execute(text("UPDATE audit_log SET seq = 8 WHERE seq = -7"))
    status, report = run_verify(url, capsys)
    assert status == 1
    assert (report["first_bad_entry"], report["problem"]) == (7, "out_of_order")


def test_a_truncation_is_named(audited: tuple[str, Engine], key_file: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    url, engine = audited
    with engine.begin() as conn:
        # Cut the tail and move the head back so that the chain itself looks whole.
        conn.execute(text("DELETE FROM audit_log WHERE seq > 12"))
        conn.execute(text("UPDATE audit_head SET seq = 12, hash = (SELECT hash FROM audit_log WHERE seq = 12)"))
    status, report = run_verify(url, capsys)
    assert status == 1
    assert (report["first_bad_entry"], report["problem"]) == (13, "truncated")
    assert "entries 13 to 15 are gone" in report["detail"]


def test_the_human_report_names_the_first_bad_entry(audited: tuple[str, Engine], key_file: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    url, engine = audited
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    assert urctl.main(["audit", "verify", "--service", "intake", "--intake-database-url", url]) == 1
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal's width
    assert "FAILED at entry 3 (missing): entry 3 is missing" in out


# -- concurrency -------------------------------------------------------------------------------------

PROCESSES, APPENDS = 4, 200


def _appender(url: str, worker: int, start: Any) -> None:
    """A separate process: APPENDS transactions of one record each, begun together with the others."""
    engine = make_engine(url, pool_size=1)
    start.wait()
    for i in range(APPENDS):
        _append(engine, [AuditRecord("request.viewed", f"w{worker}-{i}", {"count": i}, actor=f"caller:w{worker}")])
    engine.dispose()


def test_appends_from_several_processes_form_one_unbroken_chain(make_database: Callable[[str], str]) -> None:
    url = make_database("audit_concurrent")
    engine = make_engine(url)
    migrations.upgrade("intake", engine)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    workers = [context.Process(target=_appender, args=(url, w, start)) for w in range(PROCESSES)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=300)
    assert [p.exitcode for p in workers] == [0] * PROCESSES
    with engine.connect() as conn:
        entries = read_entries(conn)
        result = verify("intake", entries, read_checkpoints(conn), KEY, read_head(conn))
    engine.dispose()
    assert result.ok, result.problem
    assert [e.seq for e in entries] == list(range(1, PROCESSES * APPENDS + 1))
    # Every append is there once, and the processes' appends interleave (they ran at once).
    assert sorted(e.request_id for e in entries) == sorted(f"w{w}-{i}" for w in range(PROCESSES)
                                                          for i in range(APPENDS))
    switches = sum(1 for a, b in itertools.pairwise(entries) if a.actor != b.actor)
    assert switches > PROCESSES
