"""``urctl x12 submit FILE``: an X12 278 interchange through intake, as the door a clearinghouse uses
(POST /x12/278 on the FHIR door) would put it, printing the answer: the 278 responses, or the 999 /
TA1 when the interchange is refused.

urctl does what the door does (services/intake/service_layer/doors.py ``X12Door``) in-process:
translate, call intake's SubmitRequest (with UR_INTAKE_TOKEN when set), wait for the determination
(--wait-ms) and write the response. The payers' lines of business come from --payers (default
UR_FHIR_PAYERS_FILE, else deploy/sample/payers.yaml): a 278 carries no insurance type.

Exit status: 0 every transaction set answered with a 278 response (which may carry AAA rejections);
1 the interchange or some of its sets were refused (999 or TA1), or intake could not be reached;
2 the file cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from pathlib import Path

from rich.console import Console

from services.cli.base import EXIT_OK, EXIT_SERVICE_ERROR, CliError, Parsers, Targets, UsageError, transport_security
from services.common import settings
from services.common.clock import utcnow
from services.common.errors import ConfigurationError, ServiceError
from services.intake.adapters.door_intake import GrpcIntake
from services.intake.adapters.door_payers import read_payers
from services.intake.service_layer.door_ports import ControlNumbers, Submitter
from services.intake.service_layer.doors import DEFAULT_WAIT_MS, X12Answer, X12Door

SAMPLE_PAYERS = Path(__file__).resolve().parents[2] / "deploy" / "sample" / "payers.yaml"
MAX_FILE_BYTES = 8 * 1024 * 1024


class ClockControlNumbers(ControlNumbers):
    """Control numbers for one urctl run: from the time of day, then counting (a clearinghouse tells two
    answers apart by them; the door's come from its database)."""

    def __init__(self) -> None:
        self._numbers = itertools.count(int(time.time()) % 900_000_000 + 1)

    async def next_control_number(self) -> int:
        return next(self._numbers) % 999_999_999 + 1


def add_commands(parsers: Parsers) -> None:
    x12 = parsers.group("x12", "X12 278 interchanges")
    submit = x12.add_parser("submit", parents=[parsers.connection], help="submit a 278 interchange, print the answer")
    submit.add_argument("file", type=Path, metavar="FILE", help="the interchange (ISA ... IEA)")
    submit.add_argument("--wait-ms", type=int, default=DEFAULT_WAIT_MS,
                        help=f"how long intake waits for each determination (default {DEFAULT_WAIT_MS})")
    submit.add_argument("--payers", type=Path, metavar="FILE",
                        help="payers file (default UR_FHIR_PAYERS_FILE, else deploy/sample/payers.yaml)")
    submit.add_argument("--submitter", default="urctl",
                        help="who submits, for the idempotency keys (default urctl)")
    submit.set_defaults(handler=cmd_x12_submit)


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UsageError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


async def _submit(args: argparse.Namespace, targets: Targets, text: str) -> X12Answer:
    payers_file = args.payers or Path(settings.get("UR_FHIR_PAYERS_FILE") or SAMPLE_PAYERS)
    try:
        payers = read_payers(payers_file)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc
    intake = GrpcIntake(targets.intake, timeout_s=args.timeout, security=transport_security())
    door = X12Door(intake, ClockControlNumbers(), clock=utcnow, payers=payers, wait_ms=max(0, args.wait_ms))
    try:
        return await door.receive(text, Submitter(args.submitter, settings.get("UR_INTAKE_TOKEN")))
    except ServiceError as exc:
        raise CliError(f"intake at {targets.intake}: {exc}") from exc
    finally:
        await intake.close()


def cmd_x12_submit(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    answer = asyncio.run(_submit(args, targets, _read(args.file)))
    print(answer.body, end="" if answer.body.endswith("\n") else "\n")
    return EXIT_OK if answer.kind == "278" else EXIT_SERVICE_ERROR
