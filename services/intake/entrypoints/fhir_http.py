"""Intake's standard front doors over HTTP (Starlette): Da Vinci PAS over FHIR R4 and the X12 278.

    GET  [base]/metadata          the CapabilityStatement (no authentication)
    POST [base]/auth/token        OAuth2 client credentials -> a short-lived bearer token
    POST [base]/Claim/$submit     a PAS request Bundle or Claim update -> the PAS response Bundle
    POST [base]/Claim/$inquire    a PAS inquiry Bundle -> Parameters of inquiry response Bundles
    POST /x12/278                 a raw X12 interchange of 278 requests -> 278 responses, 999 or TA1
    GET  /healthz                 liveness

``[base]`` is ``/fhir``. Everything but the metadata, the token endpoint and ``/healthz`` needs
``Authorization: Bearer <token from [base]/auth/token>`` (services/intake/service_layer/door_auth.py):
the :class:`Authenticated` middleware refuses anything else with 401 before a route runs, and puts
the :class:`~services.intake.service_layer.door_ports.Submitter` on ``request.state.submitter`` for
the routes, including those another module mounts (:func:`create_app`'s ``extra_routes``).

HTTP answers, in one place:

* 200: the PAS response (or the guide's error response: a ClaimResponse with outcome ``error``);
* 400 invalid FHIR/PAS (an OperationOutcome naming each element by FHIRPath); 401 no or a bad token;
  403 not allowed; 404/405 no such endpoint; 409 a Bundle identifier reused for other content;
  413 a body over UR_FHIR_MAX_BODY_BYTES (refused before it is read); 415 not FHIR JSON; 429 intake's
  rate limit (with Retry-After); 503 a dependency down (with Retry-After). Every FHIR error is an
  OperationOutcome in ``application/fhir+json``; never a 500 for what a client sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.errors import (
    FailedPrecondition,
    IdempotencyConflict,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)
from services.common.http_telemetry import HttpMetrics, HttpTelemetry
from services.intake.service_layer.door_auth import TokenIssuer
from services.intake.service_layer.door_ports import Submitter
from services.intake.service_layer.doors import Answer, PasDoor, X12Door

logger = logging.getLogger(__name__)

FHIR_BASE = "/fhir"
X12_BASE = "/x12"
FHIR_JSON = "application/fhir+json"
X12_MEDIA = "application/edi-x12"
#: Content types a FHIR POST may carry (the R4 one, plain JSON, and the STU3 one some clients send).
FHIR_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
PUBLIC = frozenset({f"{FHIR_BASE}/metadata", f"{FHIR_BASE}/auth/token", "/healthz"})
TOKEN_BODY_LIMIT = 8 * 1024
REALM = 'realm="ur-fhir"'

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


@dataclass
class Doors:
    """What the HTTP doors serve: the use cases, the token issuer, the CapabilityStatement (given the
    base URL), and the body limit. ``base_url`` overrides the base URL requests came to."""

    pas: PasDoor
    x12: X12Door
    tokens: TokenIssuer
    capability: Callable[[str], dict[str, Any]]
    max_body_bytes: int = 8 * 1024 * 1024
    base_url: str | None = None


# -- answers -----------------------------------------------------------------------------------------

def outcome(code: str, diagnostics: str, *, expression: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir(resource: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode(), status_code=status,
                    media_type=FHIR_JSON, headers={"cache-control": "no-store", **(headers or {})})


def _retry_after(seconds: float | None) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(seconds)))} if seconds is not None else {}


def _challenge(error: str | None) -> dict[str, str]:
    return {"www-authenticate": f'Bearer {REALM}' + (f', error="{error}"' if error else "")}


def error_response(exc: ServiceError, *, x12: bool = False) -> Response:
    """The HTTP answer to a service error that reached the transport (see the module docstring)."""
    status, code, headers = 500, "exception", {}
    if isinstance(exc, ValidationFailed):
        status, code = 400, "invalid"
    elif isinstance(exc, NotFound):
        status, code = 404, "not-found"
    elif isinstance(exc, (FailedPrecondition, IdempotencyConflict)):
        status, code = 409, "conflict"
    elif isinstance(exc, Unauthenticated):
        status, code, headers = 401, "login", _challenge("invalid_token")
    elif isinstance(exc, PermissionDenied):
        status, code = 403, "forbidden"
    elif isinstance(exc, ResourceExhausted):
        status, code, headers = 429, "throttled", _retry_after(exc.retry_after_s)
    elif isinstance(exc, Unavailable):
        status, code, headers = 503, "transient", _retry_after(exc.retry_after_s)
    if status == 500:
        logger.error("unexpected service error at the door: %s: %s", type(exc).__name__, exc)
    if x12:
        return PlainTextResponse(str(exc), status_code=status, headers=headers)
    return fhir(outcome(code, str(exc) or type(exc).__name__), status, headers)


_STATUS = {"ok": 200, "invalid": 400, "conflict": 409}


def answer(result: Answer) -> Response:
    return fhir(result.resource, _STATUS[result.outcome])


# -- reading bodies -----------------------------------------------------------------------------------

class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (:class:`BodyTooLarge`) as soon as it is known to exceed ``limit``: by its
    Content-Length before a byte is read, else while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


# -- authentication -----------------------------------------------------------------------------------

def submitter_of(request: Request) -> Submitter:
    """The authenticated submitter of a request under the FHIR base or the X12 door (set by
    :class:`Authenticated`); raises Unauthenticated outside them."""
    submitter = getattr(request.state, "submitter", None)
    if not isinstance(submitter, Submitter):
        raise Unauthenticated("this request is not authenticated")
    return submitter


async def organization_of(request: Request) -> str | None:
    """The authenticated submitting organization's id (None outside the authenticated routes): the
    resolver routes mounted with :func:`create_app`'s ``extra_routes`` take (the Subscription routes)."""
    submitter = getattr(request.state, "submitter", None)
    return submitter.id if isinstance(submitter, Submitter) else None


class Authenticated:
    """ASGI middleware: every HTTP request but those to :data:`PUBLIC` paths carries a live bearer token
    of ``tokens``; the submitter it stands for goes on the scope's state (``request.state.submitter``).
    Anything else is answered 401 here."""

    def __init__(self, app: ASGIApp, tokens: TokenIssuer) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path in PUBLIC:
            await self.app(scope, receive, send)
            return
        x12 = path.startswith(X12_BASE + "/")
        headers = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
        scheme, _, token = headers[0].partition(" ") if len(headers) == 1 else ("", "", "")
        if len(headers) > 1 or (headers and (scheme.lower() != "bearer" or not token.strip())):
            response = self._refusal("expected one 'Authorization: Bearer <token>' header", "invalid_request", x12)
        elif not headers:
            response = self._refusal("authentication required: send 'Authorization: Bearer <token>' with a token "
                                     f"from POST {FHIR_BASE}/auth/token", None, x12)
        else:
            try:
                submitter = self.tokens.submitter(token.strip())
            except Unauthenticated as exc:
                response = self._refusal(str(exc), "invalid_token", x12)
            else:
                scope.setdefault("state", {})["submitter"] = submitter
                await self.app(scope, receive, send)
                return
        await response(scope, receive, send)

    @staticmethod
    def _refusal(message: str, error: str | None, x12: bool) -> Response:
        if x12:
            return PlainTextResponse(message, status_code=401, headers=_challenge(error))
        return fhir(outcome("login", message), 401, _challenge(error))


# -- the endpoints ------------------------------------------------------------------------------------

class FhirDoor:
    """The route handlers over :class:`Doors`."""

    def __init__(self, doors: Doors) -> None:
        self.doors = doors

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})

    async def metadata(self, request: Request) -> Response:
        base = self.doors.base_url or f"{request.url.scheme}://{request.url.netloc}{FHIR_BASE}"
        return fhir(self.doors.capability(base))

    async def token(self, request: Request) -> Response:
        """RFC 6749 section 4.4: grant_type=client_credentials; the client authenticates with HTTP Basic
        or the client_id and client_secret form fields."""
        if media_type(request) != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request", "POST application/x-www-form-urlencoded", 400)
        try:
            body = await read_body(request, TOKEN_BODY_LIMIT)
        except BodyTooLarge:
            return _oauth_error("invalid_request", "the token request is too large", 400)
        form = urllib.parse.parse_qs(body.decode("latin-1"), keep_blank_values=True, max_num_fields=20)
        if any(len(v) > 1 for v in form.values()):
            return _oauth_error("invalid_request", "a parameter is repeated", 400)
        fields = {k: v[0] for k, v in form.items()}
        if fields.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "only grant_type=client_credentials", 400)
        if "client_assertion" in fields:
            return _oauth_error("invalid_request", "JWT client assertions (SMART Backend Services) are not supported "
                                                   "yet: authenticate with the client id and secret", 400)
        basic = _basic(request.headers.get("authorization", ""))
        if basic is not None and ("client_id" in fields or "client_secret" in fields):
            return _oauth_error("invalid_request", "authenticate one way: HTTP Basic or the form fields", 400)
        client_id, secret = basic or (fields.get("client_id", ""), fields.get("client_secret", ""))
        try:
            issued = self.doors.tokens.issue(client_id, secret)
        except Unauthenticated as exc:
            headers = {"www-authenticate": f"Basic {REALM}"} if basic is not None else {}
            return _oauth_error("invalid_client", str(exc), 401, headers)
        return JSONResponse({"access_token": issued.access_token, "token_type": issued.token_type,
                             "expires_in": issued.expires_in},
                            headers={"cache-control": "no-store", "pragma": "no-cache"})

    async def submit(self, request: Request) -> Response:
        return await self._fhir_post(request, self.doors.pas.submit)

    async def inquire(self, request: Request) -> Response:
        return await self._fhir_post(request, self.doors.pas.inquire)

    async def _fhir_post(self, request: Request,
                         use_case: Callable[[bytes, Submitter], Awaitable[Answer]]) -> Response:
        kind = media_type(request)
        if kind and kind not in FHIR_TYPES:
            return fhir(outcome("not-supported", f"the body must be {FHIR_JSON}, not {kind[:80]}"), 415)
        try:
            body = await read_body(request, self.doors.max_body_bytes)
            return answer(await use_case(body, submitter_of(request)))
        except BodyTooLarge as exc:
            return fhir(outcome("too-long", str(exc), expression="Bundle"), 413)
        except ServiceError as exc:
            return error_response(exc)

    async def x12(self, request: Request) -> Response:
        try:
            body = await read_body(request, self.doors.max_body_bytes)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = body.decode("latin-1")  # X12's extended character set is single-byte
            result = await self.doors.x12.receive(text, submitter_of(request))
        except BodyTooLarge as exc:
            return PlainTextResponse(str(exc), status_code=413)
        except ServiceError as exc:
            return error_response(exc, x12=True)
        return Response(result.body.encode("utf-8"), media_type=X12_MEDIA,
                        headers={"x-ur-x12-answer": result.kind, "cache-control": "no-store"})


def _oauth_error(error: str, description: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={"cache-control": "no-store", "pragma": "no-cache", **(headers or {})})


def _basic(header: str) -> tuple[str, str] | None:
    """(client id, secret) of an HTTP Basic header (each part form-urlencoded, RFC 6749 2.3.1), or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, _, secret = decoded.partition(":")
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    code = "not-supported" if status == 405 else "not-found"
    message = f"{request.method} {request.url.path[:200]}: " + ("method not allowed" if status == 405 else
                                                               "no such endpoint; see GET /fhir/metadata")
    if request.url.path.startswith(X12_BASE):
        return PlainTextResponse(message, status_code=status)
    return fhir(outcome(code, message), status)


async def _defect(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error answering %s %s", request.method, request.url.path[:200], exc_info=exc)
    return fhir(outcome("exception", "internal error; see the door's log"), 500)


def create_app(doors: Doors, *, extra_routes: Sequence[BaseRoute] = (), lifespan: Lifespan | None = None,
               metrics: HttpMetrics | None = None) -> ASGIApp:
    """The ASGI application. ``extra_routes`` are mounted under the FHIR base next to the doors' (e.g.
    the Subscription resource): they run after authentication and read ``request.state.submitter``
    (:func:`submitter_of`). ``lifespan`` opens and closes what the doors hold."""
    door = FhirDoor(doors)
    fhir_routes: list[BaseRoute] = [
        Route("/metadata", door.metadata, methods=["GET"]),
        Route("/auth/token", door.token, methods=["POST"]),
        Route("/Claim/$submit", door.submit, methods=["POST"]),
        Route("/Claim/$inquire", door.inquire, methods=["POST"]),
        *extra_routes,
    ]
    routes: list[BaseRoute] = [
        Route("/healthz", door.healthz, methods=["GET"]),
        Mount(FHIR_BASE, routes=fhir_routes),
        Mount(X12_BASE, routes=[Route("/278", door.x12, methods=["POST"])]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _not_found, Exception: _defect})
    app.state.tokens = doors.tokens
    guarded = Authenticated(app, doors.tokens)
    return HttpTelemetry(guarded, metrics) if metrics is not None else guarded
