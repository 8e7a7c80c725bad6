"""``urctl audit verify`` and ``urctl audit trail``: the services' audit logs, read from their
databases (read only; where they are: services/cli/databases.py).

    urctl audit verify [--service intake|review|authorization ...] [--json]
    urctl audit trail REQUEST_ID [--json]

``verify`` checks each service's hash chain (every entry's hash, and its link to the one before),
the chain head, and the signed checkpoints with the key of UR_AUDIT_KEY_FILE: it names the first bad
entry of a log that was edited, cut, reordered or truncated, and says how many entries came after
the last checkpoint (chained, but a cut among them would not show). The key is UR_AUDIT_KEY_FILE's,
else the one `make run` leaves in var/run/audit.key; without one, signatures are not checked (a note
says so). ``trail`` prints everything the three services recorded about one
request, in time order: who did what, when, and from which event.

Exit status: 0 every log verified (or the trail printed); 1 a log failed verification, a database
cannot be read or holds no entry of the request; 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from services.cli.base import EXIT_OK, EXIT_SERVICE_ERROR, CliError, Parsers, Targets, UsageError
from services.cli.databases import REPO, database_url
from services.common import settings
from services.common.audit.chain import AuditEntry, ChainHead, Checkpoint, Verification, verify
from services.common.audit.store import read_checkpoints, read_entries, read_head, read_key
from services.common.db import read_only_engine
from services.common.errors import ConfigurationError, NotFound

SERVICES = ("intake", "review", "authorization")


@dataclass(frozen=True)
class ServiceLog:
    """One service's log as read in one read-only transaction."""

    service: str
    location: str
    verification: Verification


def key_file() -> Path | None:
    """UR_AUDIT_KEY_FILE, else the key `make run` leaves in var/run/audit.key (when there is one)."""
    configured = settings.get("UR_AUDIT_KEY_FILE")
    if configured:
        return Path(configured)
    demo = REPO / "var" / "run" / "audit.key"
    return demo if demo.is_file() else None


def _key() -> bytes | None:
    path = key_file()
    if path is None:
        return None
    try:
        return read_key(path)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc


@dataclass(frozen=True)
class StoredLog:
    """What one read-only transaction found: the entries (all, or one request's), and for a whole
    log its checkpoints and chain head."""

    location: str
    entries: list[AuditEntry]
    checkpoints: list[Checkpoint]
    head: ChainHead | None


def _read(service: str, url: str, *, request_id: str | None = None) -> StoredLog:
    try:
        engine, location = read_only_engine(url, service)
    except (NotFound, ConfigurationError) as exc:
        raise CliError(f"{service}: {exc} (run `make run` or `make demo` first, or give --{service}-database-url)") \
            from exc
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if request_id is not None:
                return StoredLog(location, read_entries(conn, request_id=request_id), [], None)
            return StoredLog(location, read_entries(conn), read_checkpoints(conn), read_head(conn))
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise CliError(f"cannot read the {service} audit log at {location}: {str(cause).strip()}") from exc
    finally:
        engine.dispose()


def _url(args: argparse.Namespace, service: str) -> str:
    return database_url(service, getattr(args, f"{service}_database_url", None))


def describe(log: ServiceLog) -> str:
    """One service's verdict in words."""
    v = log.verification
    if v.problem is not None:
        return f"FAILED at entry {v.problem.seq} ({v.problem.kind}): {v.problem.detail}"
    if v.entries == 0:
        return "empty"
    if v.last_checkpoint_seq is None:
        covered = "no checkpoint yet: a truncation would go unnoticed"
    else:
        signed = "signed" if v.signed else "signature not checked: no UR_AUDIT_KEY_FILE"
        covered = f"checkpoint at entry {v.last_checkpoint_seq} ({signed})"
        if v.unverified_tail:
            covered += f"; {v.unverified_tail} entries after it are not covered by a checkpoint yet"
    return f"OK: {v.entries} entries, chain unbroken; {covered}"


def cmd_verify(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    key = _key()
    logs = []
    for service in args.service or SERVICES:
        stored = _read(service, _url(args, service))
        logs.append(ServiceLog(service, stored.location,
                               verify(service, stored.entries, stored.checkpoints, key, stored.head)))
    failed = [log for log in logs if not log.verification.ok]
    if args.json:
        print(json.dumps([{"service": log.service, "database": log.location, "ok": log.verification.ok,
                           "entries": log.verification.entries, "last_checkpoint": log.verification.last_checkpoint_seq,
                           "after_last_checkpoint": log.verification.unverified_tail,
                           "signatures_checked": log.verification.signed,
                           "first_bad_entry": log.verification.problem.seq if log.verification.problem else None,
                           "problem": log.verification.problem.kind if log.verification.problem else None,
                           "detail": log.verification.problem.detail if log.verification.problem else None}
                          for log in logs], indent=2))
    else:
        for log in logs:
            style = "red" if not log.verification.ok else "green"
            console.print(f"[bold]{log.service}[/bold] ({log.location}): [{style}]{describe(log)}[/{style}]")
        if key is None:
            console.print("note: no audit key (UR_AUDIT_KEY_FILE), so checkpoint signatures were not checked")
    return EXIT_SERVICE_ERROR if failed else EXIT_OK


def _details(entry: AuditEntry) -> str:
    return " ".join(f"{k}={v}" for k, v in entry.refs.items())


def trail(entries: Sequence[tuple[str, AuditEntry]]) -> list[tuple[str, AuditEntry]]:
    """The entries of several services in time order (ties: the order a request travels, then
    each service's own order)."""
    rank = {s: i for i, s in enumerate(SERVICES)}
    return sorted(entries, key=lambda se: (se[1].at, rank.get(se[0], 9), se[1].seq))


def cmd_trail(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    found: list[tuple[str, AuditEntry]] = []
    for service in SERVICES:
        found += [(service, e) for e in _read(service, _url(args, service), request_id=args.request_id).entries]
    if not found:
        raise CliError(f"no audit entry names request {args.request_id}")
    ordered = trail(found)
    if args.json:
        print(json.dumps([{"service": s, "seq": e.seq, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                           "refs": dict(e.refs), "event_id": e.event_id, "hash": e.hash} for s, e in ordered],
                         indent=2))
        return EXIT_OK
    table = Table(title=f"Audit trail of request {args.request_id}", box=box.SIMPLE_HEAVY)
    for column in ("time (UTC)", "service", "#", "actor", "action", "what", "event"):
        table.add_column(column, overflow="fold")
    for service, e in ordered:
        table.add_row(e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], service, str(e.seq), e.actor, e.action,
                      _details(e), e.event_id[:8])
    console.print(table)
    return EXIT_OK


def add_commands(parsers: Parsers) -> None:
    """``urctl audit verify|trail``."""
    group = parsers.group("audit", "verify the audit logs; the trail of one request",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    databases = argparse.ArgumentParser(add_help=False)
    for service in SERVICES:
        databases.add_argument(f"--{service}-database-url", default=None, metavar="URL",
                               help=f"{service}'s database (default: UR_{service.upper()}_DATABASE_URL, else the "
                                    "SQLite file `make run` leaves in var/run/)")
    check = group.add_parser("verify", parents=[parsers.output, databases],
                             help="check each service's hash chain and signed checkpoints; name the first bad entry")
    check.add_argument("--service", action="append", choices=SERVICES, default=None,
                       help="only this service (repeat for several; default: all three)")
    check.set_defaults(handler=cmd_verify)
    story = group.add_parser("trail", parents=[parsers.output, databases],
                             help="everything the services recorded about one request, in time order")
    story.add_argument("request_id", metavar="REQUEST_ID")
    story.set_defaults(handler=cmd_trail)
