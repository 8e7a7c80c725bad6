"""The FHIR door's Subscription endpoints (R4 Subscriptions Backport, the PAS topic), as Starlette
routes the door mounts under its FHIR base:

    POST   [base]/Subscription                 create (201, Location, the Subscription as kept)
    GET    [base]/Subscription                 the caller's subscriptions (a searchset Bundle)
    GET    [base]/Subscription/{id}            read
    PUT    [base]/Subscription/{id}            replace (a new endpoint gets a new handshake)
    DELETE [base]/Subscription/{id}            delete (and whatever was still owed to it)
    GET    [base]/Subscription/{id}/$status    the backport's SubscriptionStatus (query-status)

Every call is made as the organization ``organization(request)`` names (the door's authentication):
an organization sees, replaces and deletes only its own subscriptions; another's answers 404, as
one that does not exist. A resolver that answers None makes the call 401. Bodies are
``application/fhir+json`` (``application/json`` is accepted too); problems answer an
OperationOutcome whose issues name the element (FHIRPath ``expression``): 400 when the body is not
a valid R4 Subscription, 422 when it is one the platform does not offer (another topic, channel or
payload). A database outage answers 503 with Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.clock import Clock, utcnow
from services.common.db import make_engine
from services.common.db_errors import as_unavailable
from services.common.errors import NotFound, ResourceExhausted, Unauthenticated
from services.common.settings import FhirSettings, sqlite_url
from services.intake.interop.pas.outcome import Problem, operation_outcome
from services.intake.interop.subscriptions import bootstrap
from services.intake.interop.subscriptions.domain.model import PAS_TOPIC, Subscription, SubscriptionRequest
from services.intake.interop.subscriptions.notification import status_bundle
from services.intake.interop.subscriptions.resource import (
    FHIR_JSON,
    LIMITS,
    EndpointPolicy,
    parse_subscription,
    subscription_resource,
)
from services.intake.interop.subscriptions.service_layer.handlers import SubscriptionService

logger = logging.getLogger(__name__)

OrganizationResolver = Callable[[Request], Awaitable[str | None]]
"""The authenticated organization a request is made for (None: not authenticated). It may also
raise the door's own refusal, which then answers as the door decides."""

#: Issue types that mean "valid FHIR, but not what the platform offers" (422, not 400).
_UNPROCESSABLE = frozenset({"not-supported", "value", "required", "invariant"})


async def door_organization(request: Request) -> str | None:
    """The organization the FHIR door authenticated (services/intake/entrypoints/fhir_http.py puts its
    ``Submitter`` on ``request.state.submitter``; its ``id`` is the organization), None without one."""
    submitter = getattr(request.state, "submitter", None)
    identifier = getattr(submitter, "id", None)
    return identifier if isinstance(identifier, str) and identifier else None


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def fhir_response(resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(resource, status_code=status, headers=headers, media_type=FHIR_JSON)


def outcome(status: int, code: str, message: str, expression: str = "", headers: dict[str, str] | None = None
            ) -> Response:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = [expression]
    return fhir_response({"resourceType": "OperationOutcome", "issue": [issue]}, status, headers)


def _problems(problems: Sequence[Problem]) -> Response:
    status = 422 if all(p.code in _UNPROCESSABLE for p in problems) else 400
    return fhir_response(operation_outcome(problems), status)


def capability_resource() -> dict[str, Any]:
    """The Subscription entry of the door's CapabilityStatement (``rest[0].resource``): the
    interactions offered, the PAS topic, and the $status operation."""
    return {
        "extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                              "capabilitystatement-subscriptiontopic-canonical", "valueCanonical": PAS_TOPIC}],
        "type": "Subscription",
        "supportedProfile": ["http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-subscription"],
        "interaction": [{"code": c} for c in ("create", "read", "update", "delete", "search-type")],
        "operation": [{"name": "status",
                       "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
                                     "backport-subscription-status"}],
    }


class _Api:
    def __init__(self, service: SubscriptionService, organization: OrganizationResolver, clock: Clock,
                 policy: EndpointPolicy) -> None:
        self._service = service
        self._organization = organization
        self._now = clock
        self._policy = policy

    async def _owner(self, request: Request) -> str:
        owner = await self._organization(request)
        if not owner:
            raise _Refused(outcome(401, "login", "authenticate as a submitting organization",
                                   headers={"WWW-Authenticate": "Bearer"}))
        return owner

    async def _asked(self, request: Request) -> SubscriptionRequest:
        kind = request.headers.get("content-type", FHIR_JSON).split(";")[0].strip().lower()
        if kind not in (FHIR_JSON, "application/json"):
            raise _Refused(outcome(415, "not-supported", f"send the Subscription as {FHIR_JSON}"))
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > LIMITS.max_bytes:
            raise _Refused(outcome(413, "too-long", f"a Subscription is at most {LIMITS.max_bytes} bytes"))
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > LIMITS.max_bytes:
                raise _Refused(outcome(413, "too-long", f"a Subscription is at most {LIMITS.max_bytes} bytes"))
        parsed = parse_subscription(body, self._now(), self._policy)
        if isinstance(parsed, list):
            raise _Refused(_problems(parsed))
        return parsed

    async def _call(self, request: Request, work: Callable[[str], Awaitable[Response]]) -> Response:
        """Authenticate, run ``work`` as the owner, answer the platform's errors as OperationOutcomes."""
        try:
            return await work(await self._owner(request))
        except _Refused as refused:
            return refused.response
        except NotFound as exc:
            return outcome(404, "not-found", str(exc))
        except Unauthenticated as exc:
            return outcome(401, "login", str(exc), headers={"WWW-Authenticate": "Bearer"})
        except ResourceExhausted as exc:
            return outcome(422, "business-rule", str(exc))
        except Exception as exc:
            unavailable = as_unavailable(exc)
            if unavailable is None:
                raise
            logger.warning("subscriptions: database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
            return outcome(503, "transient", str(unavailable), headers={"Retry-After": "1"})

    async def create(self, request: Request) -> Response:
        async def work(owner: str) -> Response:
            asked = await self._asked(request)
            sub = await run_in_threadpool(self._service.create, owner, asked)
            location = f"{request.url.path.rstrip('/')}/{sub.subscription_id}"
            return fhir_response(subscription_resource(sub), 201, {"Location": location})
        return await self._call(request, work)

    async def search(self, request: Request) -> Response:
        async def work(owner: str) -> Response:
            subs: list[Subscription] = await run_in_threadpool(self._service.search, owner)
            return fhir_response({"resourceType": "Bundle", "type": "searchset", "total": len(subs),
                                  "entry": [{"fullUrl": f"Subscription/{s.subscription_id}",
                                             "resource": subscription_resource(s), "search": {"mode": "match"}}
                                            for s in subs]})
        return await self._call(request, work)

    async def read(self, request: Request) -> Response:
        async def work(owner: str) -> Response:
            sub = await run_in_threadpool(self._service.get, owner, request.path_params["id"])
            return fhir_response(subscription_resource(sub))
        return await self._call(request, work)

    async def replace(self, request: Request) -> Response:
        async def work(owner: str) -> Response:
            asked = await self._asked(request)
            sub = await run_in_threadpool(self._service.replace, owner, request.path_params["id"], asked)
            return fhir_response(subscription_resource(sub))
        return await self._call(request, work)

    async def delete(self, request: Request) -> Response:
        async def work(owner: str) -> Response:
            await run_in_threadpool(self._service.delete, owner, request.path_params["id"])
            return Response(status_code=204)
        return await self._call(request, work)

    async def status(self, request: Request) -> Response:
        async def work(owner: str) -> Response:
            sub = await run_in_threadpool(self._service.get, owner, request.path_params["id"])
            return fhir_response(status_bundle(sub, self._now()))
        return await self._call(request, work)


def routes(service: SubscriptionService, organization: OrganizationResolver, *, clock: Clock = utcnow,
           policy: EndpointPolicy | None = None) -> list[Route]:
    """The Subscription routes, relative to the FHIR base the door mounts them under; ``policy``:
    which endpoints subscribers may name (default: https only)."""
    api = _Api(service, organization, clock, policy or EndpointPolicy())
    return [
        Route("/Subscription", api.create, methods=["POST"]),
        Route("/Subscription", api.search, methods=["GET"]),
        Route("/Subscription/{id}/$status", api.status, methods=["GET"]),
        Route("/Subscription/{id}", api.read, methods=["GET"]),
        Route("/Subscription/{id}", api.replace, methods=["PUT"]),
        Route("/Subscription/{id}", api.delete, methods=["DELETE"]),
    ]


@dataclass
class Mounted:
    """The Subscription routes as the door mounts them, its CapabilityStatement entry, and the engine
    on intake's database they hold (to dispose of when the door stops)."""

    routes: list[Route]
    capability: dict[str, Any]
    engine: Engine


def for_door(settings: FhirSettings, *, clock: Clock = utcnow) -> Mounted:
    """The routes on intake's database (``UR_INTAKE_DATABASE_URL``: where subscriptions are kept and
    intake's subscription worker delivers from), for the organization the door authenticated."""
    engine = make_engine(settings.intake_database_url or sqlite_url("intake", settings.var_dir), pool_size=4,
                         libpq=settings.libpq_options(), password_file=settings.database_password_file)
    service = bootstrap.subscription_service(engine, clock=clock)
    mounted = routes(service, door_organization, clock=clock,
                     policy=EndpointPolicy(allow_http=settings.subscriptions_plain_http))
    return Mounted(mounted, capability_resource(), engine)
