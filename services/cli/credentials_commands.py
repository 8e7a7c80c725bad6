"""``urctl credentials``: look after a credentials file (UR_CREDENTIALS_FILE, services/common/credentials.py)
without ever writing a token into it.

    urctl credentials scopes                      every scope and what it allows
    urctl credentials salt                        a random salt for a new file
    urctl credentials token --file FILE           a new random token, and the line that lists it in FILE
    urctl credentials hash --file FILE < token    the line of an existing token (read from stdin)
    urctl credentials check FILE                  validate FILE; its principals, scopes and names

They work offline: nothing is sent to a service.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from services.cli.base import EXIT_OK, Parsers, Targets, UsageError
from services.cli.render import plain
from services.common.config_files import load_model
from services.common.credentials import (
    SCOPES,
    CredentialsFile,
    CredentialsFileError,
    load_credentials,
    new_salt,
    new_token,
    token_digest,
)


def _salt_of(path: Path) -> str:
    try:
        doc = load_model(CredentialsFile, path, CredentialsFileError, redact=True)
    except CredentialsFileError as exc:
        raise UsageError(str(exc)) from exc
    if doc.salt is None:
        raise UsageError(f"{path}: has no 'salt' yet: add one (urctl credentials salt) before any token")
    return doc.salt


def cmd_scopes(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    table = Table(title="Scopes a principal may hold", box=box.SIMPLE_HEAVY)
    table.add_column("scope")
    table.add_column("allows")
    for scope, meaning in SCOPES.items():
        table.add_row(plain(scope, "bold"), plain(meaning))
    console.print(table)
    return EXIT_OK


def cmd_salt(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    print(f"salt: {new_salt()}")
    return EXIT_OK


def cmd_token(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    salt = _salt_of(args.file)
    token = new_token()
    print(f"token (give it to the caller; it is not stored anywhere): {token}")
    print(f"add to the principal's tokens in {args.file}:")
    print(f"      - hmac_sha256: {token_digest(salt, token)}")
    return EXIT_OK


def cmd_hash(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    salt = _salt_of(args.file)
    token = sys.stdin.readline().strip()
    if not token:
        raise UsageError("give the token on standard input (one line)")
    print(f"      - hmac_sha256: {token_digest(salt, token)}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    try:
        credentials = load_credentials(args.file)
    except CredentialsFileError as exc:
        raise UsageError(str(exc)) from exc
    tokens: dict[str, int] = {}
    for principal in credentials.by_digest.values():
        tokens[principal.id] = tokens.get(principal.id, 0) + 1
    names: dict[str, list[str]] = {}
    for (kind, name), principal in credentials.by_certificate.items():
        names.setdefault(principal.id, []).append(f"{kind}={name}")
    table = Table(title=f"{args.file}" + (" (development: plain tokens)" if credentials.development else ""),
                  box=box.SIMPLE_HEAVY)
    for column in ("principal", "scopes", "tokens", "certificate names"):
        table.add_column(column)
    for principal in credentials.principals():
        table.add_row(plain(principal.id, "bold"), plain(", ".join(sorted(principal.scopes)) or "(none)"),
                      plain(str(tokens.get(principal.id, 0))), plain(", ".join(names.get(principal.id, []))))
    console.print(table)
    return EXIT_OK


def add_commands(parsers: Parsers) -> None:
    """``credentials scopes|salt|token|hash|check``."""
    group = parsers.group("credentials", "credentials files (offline)", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    group.add_parser("scopes", help="every scope and what it allows").set_defaults(handler=cmd_scopes)
    group.add_parser("salt", help="a random salt for a new credentials file").set_defaults(handler=cmd_salt)
    token = group.add_parser("token", help="a new token and the line that lists it")
    token.add_argument("--file", type=Path, required=True, help="the credentials file (for its salt)")
    token.set_defaults(handler=cmd_token)
    digest = group.add_parser("hash", help="the line of a token read from standard input")
    digest.add_argument("--file", type=Path, required=True, help="the credentials file (for its salt)")
    digest.set_defaults(handler=cmd_hash)
    check = group.add_parser("check", help="validate a credentials file and list its principals")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=cmd_check)
