"""The workbench over HTTP (Starlette): routes, the session cookie, CSRF, security headers, and
service errors turned into pages a reviewer can read.

Security, in one place:

* The session cookie holds a random id only (the reviewer's token stays on the server). It is
  HttpOnly, SameSite=Lax and, unless configured off for plain-HTTP development, Secure with the
  ``__Host-`` prefix (no Domain, Path=/). It is replaced at sign-in (no fixation) and cleared at
  sign-out; the session itself ends after the idle timeout or its maximum age.
* Every state-changing request (POST) presents the session's CSRF token, as the ``csrf_token``
  form field or the ``X-CSRF-Token`` header htmx sends; a mismatch is refused with 403 before
  anything is called. A request whose Origin names another site is refused too. The sign-in form,
  before any session exists, carries a token bound to a short-lived cookie (double submit, signed).
* Pages go out with a strict Content-Security-Policy (scripts and styles from this origin only),
  ``frame-ancestors 'none'``, ``Referrer-Policy: same-origin`` (task ids stay out of other sites'
  logs) and ``Cache-Control: no-store`` (patient data stays out of shared caches).
* Nothing here decides who may do what: review refuses, and the refusal is shown.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from ur.common.v1 import types_pb2
from ur.review.v1 import review_pb2

from services.common.clock import Clock
from services.common.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)
from services.workbench.entrypoints import presentation
from services.workbench.entrypoints.telemetry import HttpMetrics, HttpTelemetry, route_of
from services.workbench.service_layer.pages import (
    CASE_MANAGER,
    QUEUE_LIMIT,
    QUEUE_PAGE,
    SUPERVISOR,
    Pages,
    QueueFilters,
)
from services.workbench.service_layer.ports import Platform, Session
from services.workbench.service_layer.sessions import Sessions, csrf_ok, new_secret

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parents[1]
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

SIGNIN_COOKIE = "ur-workbench-signin"
SIGNIN_MAX_AGE_S = 900

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

STATUS_OF: dict[type[ServiceError], int] = {
    ValidationFailed: 400, PermissionDenied: 403, NotFound: 404, FailedPrecondition: 409, ResourceExhausted: 429,
    Unauthenticated: 401, Unavailable: 503}

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def status_of(exc: ServiceError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return 500


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response, and ``Cache-Control: no-store`` to all
    but the static files (which are versioned by content and may be cached)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items())
                headers.append((b"cache-control", b"public, max-age=3600" if static else b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Workbench:
    """The routes, built from the service layer and the cookie policy."""

    def __init__(self, sessions: Sessions, pages: Pages, platform: Platform, *, clock: Clock,
                 cookie_secure: bool, idle_timeout_s: float) -> None:
        self.sessions = sessions
        self.pages = pages
        self.platform = platform
        self.now = clock
        self.secure = cookie_secure
        self.cookie = "__Host-ur-workbench" if cookie_secure else "ur-workbench"
        self.idle_timeout_s = idle_timeout_s
        self._signin_key = new_secret().encode()
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(label=presentation.label, words=presentation.words, when=presentation.when,
                                iso=presentation.iso, date=presentation.date, fact=presentation.fact,
                                status_word=presentation.status_word, regime=presentation.regime)
        self.env.globals.update(types=types_pb2, roles=review_pb2, LABELS=presentation.LABELS)
        self.env.tests["search"] = lambda value, needle: needle in str(value)

    # -- plumbing ---------------------------------------------------------------------------------
    def render(self, request: Request, template: str, context: Mapping[str, Any], *, me: Session | None = None,
               status: int = 200) -> HTMLResponse:
        now = self.now()
        flashes = list(me.flashes) if me is not None else []
        if me is not None:
            me.flashes.clear()
        html = self.env.get_template(template).render(
            request=request, me=me, now=now, flashes=flashes, csrf=me.csrf if me else "",
            countdown=lambda ts: presentation.countdown(ts, now), overdue=lambda ts: presentation.overdue(ts, now),
            is_supervisor=me is not None and me.role == SUPERVISOR,
            is_case_manager=me is not None and me.role == CASE_MANAGER, idle_minutes=int(self.idle_timeout_s // 60),
            **context)
        return HTMLResponse(html, status_code=status)

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.current(request.cookies.get(self.cookie))

    def to_signin(self, request: Request) -> Response:
        if request.method == "GET" and request.headers.get("hx-request") != "true":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/signin?next={_safe_next(target)}", status_code=303)
        response: Response = PlainTextResponse("Your session has ended; sign in again.", status_code=401)
        if request.headers.get("hx-request") == "true":
            response.headers["HX-Redirect"] = "/signin"
        return response

    @staticmethod
    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.headers.get("host", "")

    async def guarded(self, request: Request) -> tuple[Session | None, FormData | None, Response | None]:
        """The session of a state-changing request and its form, or the response refusing it:
        no session → sign in; another site's Origin or a wrong CSRF token → 403."""
        me = self.session_of(request)
        if me is None:
            return None, None, self.to_signin(request)
        form = await request.form()
        presented = request.headers.get("x-csrf-token") or _text(form, "csrf_token")
        if not self.same_origin(request) or not csrf_ok(me, presented):
            # The route's template, not the path: a path may hold a member id.
            logger.warning("refused a request without a valid CSRF token from %s to %s", me.reviewer_id,
                           route_of(request.scope))
            return me, form, PlainTextResponse("This form has expired or did not come from the workbench. "
                                               "Reload the page and try again.", status_code=403)
        return me, form, None

    def error_page(self, request: Request, me: Session | None, exc: ServiceError) -> Response:
        if isinstance(exc, Unauthenticated) and me is not None:
            self.sessions.sign_out(me)
            return self.to_signin(request)
        return self.render(request, "error.html", {"message": str(exc), "status": status_of(exc)}, me=me,
                           status=status_of(exc))

    # -- sign in and out --------------------------------------------------------------------------
    def _signin_token(self, nonce: str) -> str:
        return hmac.new(self._signin_key, nonce.encode(), hashlib.sha256).hexdigest()

    async def signin_form(self, request: Request, *, error: str = "", status: int = 200) -> Response:
        nonce = new_secret()
        response = self.render(request, "signin.html", {
            "error": error, "signin_csrf": self._signin_token(nonce),
            "next": _safe_next(request.query_params.get("next", "/"))}, status=status)
        response.set_cookie(SIGNIN_COOKIE, nonce, max_age=SIGNIN_MAX_AGE_S, httponly=True, secure=self.secure,
                            samesite="strict", path="/signin")
        return response

    async def signin(self, request: Request) -> Response:
        form = await request.form()
        nonce = request.cookies.get(SIGNIN_COOKIE, "")
        presented = _text(form, "csrf_token")
        if not nonce or not self.same_origin(request) or not hmac.compare_digest(self._signin_token(nonce),
                                                                                   presented):
            return await self.signin_form(request, error="The sign-in form expired; please try again.", status=403)
        try:
            me = await self.sessions.sign_in(_text(form, "token"))
        except Unauthenticated:
            return await self.signin_form(request, error="That access token was not recognised.", status=401)
        except ServiceError as exc:
            return await self.signin_form(request, error=f"Sign-in is unavailable: {exc}", status=503)
        old = self.session_of(request)
        if old is not None:
            self.sessions.sign_out(old)
        response = RedirectResponse(_safe_next(_text(form, "next") or _home(me)), status_code=303)
        response.set_cookie(self.cookie, me.session_id, httponly=True, secure=self.secure, samesite="lax", path="/")
        response.delete_cookie(SIGNIN_COOKIE, path="/signin")
        return response

    async def signout(self, request: Request) -> Response:
        me, _, refused = await self.guarded(request)
        if refused is not None:
            return refused
        if me is not None:
            self.sessions.sign_out(me)
        response = RedirectResponse("/signin?signed_out=1", status_code=303)
        response.delete_cookie(self.cookie, path="/", secure=self.secure, httponly=True, samesite="lax")
        return response

    async def home(self, request: Request) -> Response:
        me = self.session_of(request)
        return self.to_signin(request) if me is None else RedirectResponse(_home(me), status_code=303)

    # -- my queue ---------------------------------------------------------------------------------
    async def queue(self, request: Request) -> Response:
        me = self.session_of(request)
        if me is None:
            return self.to_signin(request)
        q = request.query_params
        filters = QueueFilters(line_of_business=_int(q.get("lob")), urgency=_int(q.get("urgency")),
                               category=q.get("category", ""), show=q.get("show", "all") if q.get("show") in (
                                   "all", "held", "available") else "all",
                               limit=QUEUE_LIMIT if q.get("more") == "1" else QUEUE_PAGE)
        try:
            page = await self.pages.queue(me, filters)
        except ServiceError as exc:
            return self.error_page(request, me, exc)
        partial = request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "queue-lists"
        return self.render(request, "queue_lists.html" if partial else "queue.html", {"page": page}, me=me)

    async def claim_next(self, request: Request) -> Response:
        me, _, refused = await self.guarded(request)
        if refused is not None or me is None:
            return refused or self.to_signin(request)
        try:
            view = await self.platform.claim_next(me.token)
        except NotFound:
            me.flashes.append(("info", "There is no open task you can take right now."))
            return RedirectResponse("/queue", status_code=303)
        except ServiceError as exc:
            if isinstance(exc, Unauthenticated):
                return self.error_page(request, me, exc)
            me.flashes.append(("error", str(exc)))
            return RedirectResponse("/queue", status_code=303)
        me.flashes.append(("success", f"You now hold this task until {presentation.when(view.task.lease_expires_at)}."))
        return RedirectResponse(f"/tasks/{view.task.task_id}", status_code=303)

    # -- a task -----------------------------------------------------------------------------------
    async def task(self, request: Request, *, me: Session | None = None, error: ServiceError | None = None) -> Response:
        me = me or self.session_of(request)
        if me is None:
            return self.to_signin(request)
        task_id = request.path_params["task_id"]
        try:
            page = await self.pages.task(me, task_id)
        except ServiceError as exc:
            return self.error_page(request, me, exc)
        status = status_of(error) if error is not None else 200
        return self.render(request, "task.html", {"page": page, "error": str(error) if error else ""}, me=me,
                           status=status)

    async def act(self, request: Request, action: Callable[[Session, FormData, str], Awaitable[str]]) -> Response:
        """Run a task action from a form; success: back to the task with a message; a refusal: the
        task page again with the server's reason and its status."""
        me, form, refused = await self.guarded(request)
        if refused is not None or me is None or form is None:
            return refused or self.to_signin(request)
        task_id = request.path_params["task_id"]
        try:
            done = await action(me, form, task_id)
        except Unauthenticated as exc:
            return self.error_page(request, me, exc)
        except ServiceError as exc:
            return await self.task(request, me=me, error=exc)
        me.flashes.append(("success", done))
        return RedirectResponse(f"/tasks/{task_id}", status_code=303)

    async def decide(self, request: Request) -> Response:
        async def decide(me: Session, form: FormData, task_id: str) -> str:
            decision = decision_from_form(task_id, form)
            await self.platform.decide(me.token, decision)
            return DONE[decision.WhichOneof("decision") or ""]
        return await self.act(request, decide)

    async def release(self, request: Request) -> Response:
        async def release(me: Session, form: FormData, task_id: str) -> str:
            await self.platform.release(me.token, task_id, _text(form, "note"))
            return "The task is back in the queue."
        return await self.act(request, release)

    async def peer_to_peer(self, request: Request) -> Response:
        async def record(me: Session, form: FormData, task_id: str) -> str:
            kind = P2P_KINDS.get(_text(form, "kind"), 0)
            await self.platform.peer_to_peer(me.token, review_pb2.RecordPeerToPeerRequest(
                task_id=task_id, kind=kind,  # type: ignore[arg-type]
                provider_contact=_text(form, "provider_contact"), note=_text(form, "note")))
            return "Peer-to-peer recorded."
        return await self.act(request, record)

    async def extend(self, request: Request) -> Response:
        async def extend(me: Session, form: FormData, task_id: str) -> str:
            view = await self.platform.extend_deadline(me.token, review_pb2.ExtendDeadlineRequest(
                task_id=task_id, ground=_text(form, "ground"), notice_sent=_text(form, "notice_sent") == "yes"))
            return f"Deadline extended to {presentation.when(view.task.due_at)}."
        return await self.act(request, extend)

    # -- supervisor -------------------------------------------------------------------------------
    async def supervisor(self, request: Request, *, me: Session | None = None,
                         error: ServiceError | None = None) -> Response:
        me = me or self.session_of(request)
        if me is None:
            return self.to_signin(request)
        try:
            page = await self.pages.supervisor(me)
        except ServiceError as exc:
            return self.error_page(request, me, exc)
        return self.render(request, "supervisor.html", {"page": page, "error": str(error) if error else ""}, me=me,
                           status=status_of(error) if error else 200)

    async def supervise(self, request: Request) -> Response:
        me, form, refused = await self.guarded(request)
        if refused is not None or me is None or form is None:
            return refused or self.to_signin(request)
        task_id, action = _text(form, "task_id"), request.path_params["action"]
        try:
            if action == "reassign":
                view = await self.platform.reassign(me.token, task_id, _text(form, "reviewer_id"), _text(form, "note"))
                done = f"Task for {view.task.procedure_code} reassigned to {view.task.assigned_to}."
            else:
                view = await self.platform.release(me.token, task_id, _text(form, "note"))
                done = f"Task for {view.task.procedure_code} released to the queue."
        except Unauthenticated as exc:
            return self.error_page(request, me, exc)
        except ServiceError as exc:
            return await self.supervisor(request, me=me, error=exc)
        me.flashes.append(("success", done))
        return RedirectResponse("/supervisor", status_code=303)

    # -- members ----------------------------------------------------------------------------------
    async def members(self, request: Request) -> Response:
        me = self.session_of(request)
        if me is None:
            return self.to_signin(request)
        member_id = request.query_params.get("member_id", "").strip()
        if member_id:
            return RedirectResponse(f"/members/{member_id}", status_code=303)
        return self.render(request, "members.html", {}, me=me)

    async def member(self, request: Request, *, me: Session | None = None,
                     error: ServiceError | None = None) -> Response:
        me = me or self.session_of(request)
        if me is None:
            return self.to_signin(request)
        try:
            page = await self.pages.member(me, request.path_params["member_id"])
        except ServiceError as exc:
            return self.error_page(request, me, exc)
        partial = request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "notes"
        return self.render(request, "member_notes.html" if partial else "member.html",
                           {"page": page, "error": str(error) if error else ""}, me=me,
                           status=status_of(error) if error else 200)

    async def add_note(self, request: Request) -> Response:
        me, form, refused = await self.guarded(request)
        if refused is not None or me is None or form is None:
            return refused or self.to_signin(request)
        member_id = request.path_params["member_id"]
        try:
            await self.platform.add_case_note(me.token, member_id, _text(form, "text"), _text(form, "amends"))
        except Unauthenticated as exc:
            return self.error_page(request, me, exc)
        except ServiceError as exc:
            return await self.member(request, me=me, error=exc)
        if request.headers.get("hx-request") == "true":
            return await self.member(request, me=me)
        me.flashes.append(("success", "Note added."))
        return RedirectResponse(f"/members/{member_id}#notes", status_code=303)

    # -- workers' comp claims ----------------------------------------------------------------------
    async def claims(self, request: Request) -> Response:
        me = self.session_of(request)
        if me is None:
            return self.to_signin(request)
        claim_number = request.query_params.get("claim_number", "").strip()
        if claim_number:
            return RedirectResponse(f"/claims/{quote(claim_number, safe='')}", status_code=303)
        return self.render(request, "claims.html", {}, me=me)

    async def claim(self, request: Request) -> Response:
        me = self.session_of(request)
        if me is None:
            return self.to_signin(request)
        try:
            page = await self.pages.claim(me, request.path_params["claim_number"])
        except ServiceError as exc:
            return self.error_page(request, me, exc)
        return self.render(request, "claim.html", {"page": page}, me=me)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")


DONE = {"approve": "Approved.", "request_information": "Information requested from the provider.",
        "refer_to_physician": "Referred to a physician.", "approve_partial": "Approved in part.",
        "modify": "Modified.", "deny": "Denied.", "": "Done."}
P2P_KINDS = {"offered": review_pb2.RecordPeerToPeerRequest.KIND_OFFERED,
             "held": review_pb2.RecordPeerToPeerRequest.KIND_HELD,
             "declined": review_pb2.RecordPeerToPeerRequest.KIND_DECLINED}


def decision_from_form(task_id: str, form: FormData) -> review_pb2.DecideTaskRequest:
    """The DecideTaskRequest a decision form describes. Only shapes it: whether the decision is
    allowed, complete and consistent is review's to say (an unknown decision is sent empty and
    refused there)."""
    kind, note = _text(form, "decision"), _text(form, "note")
    out = review_pb2.DecideTaskRequest(task_id=task_id)
    if kind == "approve":
        out.approve.note = note
    elif kind == "request_information":
        facts = [f for f in form.getlist("fact") if isinstance(f, str) and f.strip()]
        facts += [f.strip() for f in _text(form, "other_facts").replace("\n", ",").split(",") if f.strip()]
        out.request_information.facts.extend(dict.fromkeys(facts))
        out.request_information.note = note
        needed_by = _date(_text(form, "needed_by"))
        if needed_by is not None:
            out.request_information.needed_by.CopyFrom(needed_by)
    elif kind == "refer_to_physician":
        out.refer_to_physician.note = note
    elif kind == "deny":
        out.deny.reason, out.deny.criterion = _text(form, "reason"), _text(form, "criterion")
    elif kind in ("approve_partial", "modify"):
        part = out.approve_partial if kind == "approve_partial" else out.modify
        part.approved_units = _int(_text(form, "approved_units"))
        part.reason, part.criterion = _text(form, "reason"), _text(form, "criterion")
        for name in ("approved_start", "approved_end"):
            value = _date(_text(form, name))
            if value is not None:
                getattr(part, name).CopyFrom(value)
    return out


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _date(value: str) -> types_pb2.Date | None:
    try:
        d = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


def _safe_next(target: str) -> str:
    """A local path only: never another site (an open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _home(me: Session) -> str:
    if me.role == SUPERVISOR:
        return "/supervisor"
    if me.role == CASE_MANAGER:
        return "/members"
    return "/queue"


def create_app(workbench: Workbench, *, lifespan: Lifespan | None = None,
               metrics: HttpMetrics | None = None) -> ASGIApp:
    """The ASGI application; ``lifespan`` opens and closes what the workbench holds (its channels);
    ``metrics``: where requests are counted (entrypoints/telemetry.py)."""
    w = workbench
    routes = [
        Route("/", w.home),
        Route("/healthz", w.healthz),
        Route("/signin", w.signin_form, methods=["GET"]),
        Route("/signin", w.signin, methods=["POST"]),
        Route("/signout", w.signout, methods=["POST"]),
        Route("/queue", w.queue),
        Route("/queue/claim", w.claim_next, methods=["POST"]),
        Route("/tasks/{task_id}", w.task),
        Route("/tasks/{task_id}/decide", w.decide, methods=["POST"]),
        Route("/tasks/{task_id}/release", w.release, methods=["POST"]),
        Route("/tasks/{task_id}/peer-to-peer", w.peer_to_peer, methods=["POST"]),
        Route("/tasks/{task_id}/extend", w.extend, methods=["POST"]),
        Route("/supervisor", w.supervisor),
        Route("/supervisor/{action:str}", w.supervise, methods=["POST"]),
        Route("/members", w.members),
        Route("/members/{member_id}", w.member),
        Route("/members/{member_id}/notes", w.add_note, methods=["POST"]),
        Route("/claims", w.claims),
        # A claim number may hold a "/" (printable ASCII): the rest of the path is the claim number.
        Route("/claims/{claim_number:path}", w.claim),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    secured = SecurityHeaders(app)
    return HttpTelemetry(secured, metrics) if metrics is not None else secured
