"""What every urctl command shares: exit codes, the errors a person reads, where the services are,
one gRPC call on a fresh channel, ``--json`` or rich output, and the parser registry the command
modules add their commands to.

It imports no command module: ``urctl`` imports the command modules, and they import this (and
:mod:`services.cli.render`, :mod:`services.cli.request_files`), never ``urctl`` nor each other.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.console import Console, RenderableType

from services.common import settings, tls
from services.common.errors import ConfigurationError
from services.common.tls import TransportSecurity, open_channel

T = TypeVar("T")

EXIT_OK = 0
EXIT_SERVICE_ERROR = 1
EXIT_USAGE = 2

DEFAULT_TIMEOUT_S = 10.0


# -- errors --------------------------------------------------------------------------------------------

class CliError(Exception):
    """An expected failure: ``str(exc)`` is what the user reads, ``exit_code`` what the shell gets."""

    exit_code = EXIT_SERVICE_ERROR


class UsageError(CliError):
    """Bad usage: an option or argument that cannot be used (exit 2)."""

    exit_code = EXIT_USAGE


class RequestFileError(CliError, ValueError):
    """A request file cannot be read or does not hold a SubmitRequestRequest. The message starts with
    the file's path and names the problem."""

    exit_code = EXIT_USAGE


class ServiceCallError(CliError):
    """A gRPC call failed; the message says which service, where, and what it answered."""

    def __init__(self, message: str, code: grpc.StatusCode | None) -> None:
        super().__init__(message)
        self.code = code


def field_violations(exc: grpc.RpcError) -> list[tuple[str, str]]:
    """(field, description) of every google.rpc.BadRequest field violation in the error's rich
    status details; empty when the error carries none."""
    try:
        status = rpc_status.from_call(exc)
    except ValueError:  # trailers disagree with the call's code/message
        return []
    if status is None:
        return []
    found: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found += [(v.field, v.description) for v in bad_request.field_violations]
    return found


def retry_hint(exc: grpc.RpcError) -> float | None:
    """The seconds a RESOURCE_EXHAUSTED or UNAVAILABLE answer asks the caller to wait before trying
    again (its google.rpc.RetryInfo), None when it gives none."""
    try:
        status = rpc_status.from_call(exc)
    except ValueError:
        return None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def describe_rpc_error(exc: grpc.RpcError, service: str, target: str, timeout_s: float | None = None,
                       subject: str = "the request") -> ServiceCallError:
    """Translate a failed call into the message a person needs (one line per field violation)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = (exc.details() if callable(getattr(exc, "details", None)) else None) or ""
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        violations = field_violations(exc)
        if not violations:
            return ServiceCallError(f"{service} rejected {subject}: {details or 'invalid argument'}", code)
        lines = [f"{service} rejected {subject} ({len(violations)} problem{'s' if len(violations) != 1 else ''}):"]
        lines += [f"  {field}: {description}" for field, description in violations]
        return ServiceCallError("\n".join(lines), code)
    if code is grpc.StatusCode.UNAVAILABLE:
        return ServiceCallError(f"cannot reach {service} at {target} — is the platform running? (make run)", code)
    if code is grpc.StatusCode.NOT_FOUND:
        return ServiceCallError(f"not found: {details or 'no such object'} ({service} at {target})", code)
    if code is grpc.StatusCode.ALREADY_EXISTS:
        return ServiceCallError(f"{service} refused {subject}: {details}", code)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return ServiceCallError(f"{service} at {target} does not know the caller: {details} (set "
                                f"{TOKEN_SETTINGS.get(service, 'a token')})", code)
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return ServiceCallError(f"{service} refused {subject}: {details}", code)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        within = f" within {timeout_s:g} s" if timeout_s is not None else " in time"
        return ServiceCallError(f"{service} at {target} did not answer{within} (try --timeout)", code)
    name = code.name if code is not None else "an unknown error"
    return ServiceCallError(f"{service} at {target} answered {name}: {details or '(no details)'}", code)


# -- the services --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Targets:
    intake: str
    review: str
    authorization: str


def targets_from(args: argparse.Namespace) -> Targets:
    """Command-line flags first, then the settings (environment, then defaults)."""
    return Targets(
        intake=getattr(args, "intake", None) or settings.get("UR_INTAKE_TARGET"),
        review=getattr(args, "review", None) or settings.get("UR_REVIEW_TARGET"),
        authorization=getattr(args, "authorization", None) or settings.get("UR_AUTHORIZATION_TARGET"),
    )


def transport_security() -> TransportSecurity | None:
    """TLS for urctl's calls, from the UR_GRPC_TLS_* settings (None: plaintext); a setting that names
    no file is a usage error."""
    try:
        return tls.for_clients()
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc


#: The setting holding the bearer token urctl sends to each service.
TOKEN_SETTINGS = {"intake": "UR_INTAKE_TOKEN", "review": "UR_REVIEWER_TOKEN", "authorization": "UR_AUTHORIZATION_TOKEN"}


def token_for(service: str) -> str | None:
    """The token urctl sends to ``service`` (its UR_*_TOKEN setting), None when unset."""
    return settings.get(TOKEN_SETTINGS[service]) or None


def call(service: str, target: str, timeout_s: float, subject: str, invoke: Callable[[grpc.Channel], T]) -> T:
    """Run ``invoke`` on a fresh channel (TLS when the settings say so) whose calls send the service's
    token (:data:`TOKEN_SETTINGS`) unless they carry their own; translate gRPC failures into
    :class:`ServiceCallError`."""
    with open_channel(target, transport_security(), token=token_for(service)) as channel:
        try:
            return invoke(channel)
        except grpc.RpcError as exc:
            raise describe_rpc_error(exc, service, target, timeout_s, subject) from exc


# -- output --------------------------------------------------------------------------------------------

def to_json(message: Message) -> str:
    """Protobuf JSON with proto field names (what ``--json`` prints)."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)


def emit(console: Console, args: argparse.Namespace, message: Message, human: Callable[[], RenderableType]) -> None:
    """``--json``: the message as protobuf JSON on stdout; otherwise what ``human`` renders."""
    if args.json:
        print(to_json(message))
    else:
        console.print(human())


# -- the command registry ------------------------------------------------------------------------------

#: What every command's ``handler`` default is: (parsed arguments, the services, the console) -> exit status.
Handler = Callable[[argparse.Namespace, Targets, Console], int]


@dataclass
class Parsers:
    """Where command modules add their commands: ``commands`` (urctl's subcommands), the shared
    ``connection`` options (service targets, --timeout) and ``output`` option (--json) to use as
    parents, and :meth:`group` for an ``urctl NOUN ACTION`` group that several modules add to."""

    commands: Any  # argparse's _SubParsersAction, private in typeshed
    connection: argparse.ArgumentParser
    output: argparse.ArgumentParser
    _groups: dict[str, Any] = field(default_factory=dict)

    def group(self, name: str, help_text: str, **parser_options: Any) -> Any:
        """The ``ACTION`` subparsers of ``urctl NAME``, made on first use (with ``parser_options``)
        and shared after, so that e.g. ``request show`` and ``request add-info`` live in two modules."""
        if name not in self._groups:
            self._groups[name] = self.commands.add_parser(name, help=help_text, **parser_options).add_subparsers(
                dest="action", required=True, metavar="ACTION")
        return self._groups[name]
