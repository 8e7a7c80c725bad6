"""Review's use cases for people, one object per responsibility: the reviewer directory, the queue
(claims under a lease), decisions, peer-to-peer, deadline extensions, a task's urgency, additional
information, the deadline monitor, the supervisor's overview and case notes. The task's rules are
the Task aggregate's (domain/task.py); these load it, call it and save it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ur.events.v1 import events_pb2

from services.common.clock import Clock
from services.common.events import EventHandler, IncomingEvent
from services.common.topics import Topics
from services.review.domain.appeals import AppealRights
from services.review.domain.deadlines import ClockEngine
from services.review.service_layer.appeals import Appeals
from services.review.service_layer.case_notes import CaseNotes
from services.review.service_layer.clocks import DeadlineExtensions
from services.review.service_layer.decisions import Decisions
from services.review.service_layer.directory import Directory
from services.review.service_layer.information import Information
from services.review.service_layer.monitor import Monitor
from services.review.service_layer.notices import NoticeQueries, NoticeWriter
from services.review.service_layer.oversight import Oversight
from services.review.service_layer.peer_to_peer import PeerToPeer
from services.review.service_layer.ports import DecisionMetrics, Evaluator, UnitOfWork
from services.review.service_layer.queue import Queue
from services.review.service_layer.updates import Updates
from services.review.service_layer.urgency import TaskUrgency


class ReviewWorkflow:
    """The people's side of review, built from one set of dependencies. ``lease_s``: how long a
    claim holds a task; ``at_risk_fraction``: a task is at risk once less than this share of its
    regulatory clock is left; ``evaluator`` is asked for the current criteria evaluator."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork], topics: Topics, evaluator: Callable[[], Evaluator],
                 clocks: ClockEngine, *, lease_s: float = 900.0, clock: Clock, at_risk_fraction: float = 0.2,
                 notices: NoticeWriter | None = None, rights: AppealRights | None = None,
                 metrics: DecisionMetrics | None = None) -> None:
        """``notices`` writes the notices of decisions (None: none, as some unit tests want); ``rights``
        is the appeal rights table (default: the notice writer's)."""
        rights = rights if rights is not None else (notices.rights if notices is not None else None)
        self.directory = Directory(uow_factory, clock=clock)
        self.queue = Queue(uow_factory, clock=clock, lease_s=lease_s)
        self.decisions = Decisions(uow_factory, topics, clocks, clock=clock, at_risk_fraction=at_risk_fraction,
                                   notices=notices, metrics=metrics)
        self.peer_to_peer = PeerToPeer(uow_factory, clock=clock)
        self.deadlines = DeadlineExtensions(uow_factory, clocks, clock=clock, at_risk_fraction=at_risk_fraction,
                                            notices=notices)
        self.information = Information(uow_factory, topics, evaluator, clocks, clock=clock,
                                       at_risk_fraction=at_risk_fraction, notices=notices,
                                       metrics=metrics)
        self.updates = Updates(uow_factory, topics, evaluator, clocks, clock=clock, at_risk_fraction=at_risk_fraction,
                               notices=notices)
        self.appeals = Appeals(uow_factory, clocks, rights, clock=clock, at_risk_fraction=at_risk_fraction) \
            if rights is not None else None
        self.monitor = Monitor(uow_factory, topics, clock=clock, notices=notices)
        self.urgency = TaskUrgency(uow_factory, clocks, clock=clock, at_risk_fraction=at_risk_fraction)
        self.oversight = Oversight(uow_factory, clock=clock)
        self.case_notes = CaseNotes(uow_factory, clock=clock)
        self.notices = NoticeQueries(uow_factory)


class ReviewEvents:
    """The review consumer's handler: new requests to the criteria; additional information, updates
    (cancellations, revisions) and appeals to the workflow. Each kind is applied in its own
    idempotent transaction, requests first (what follows may refer to them)."""

    def __init__(self, handlers: EventHandler, workflow: ReviewWorkflow) -> None:
        self._handlers = handlers
        self._kinds: list[tuple[tuple[type, ...], EventHandler]] = [
            ((events_pb2.AdditionalInformationReceived,), workflow.information),
            ((events_pb2.RequestCancelled, events_pb2.RequestRevised), workflow.updates)]
        if workflow.appeals is not None:
            self._kinds.append(((events_pb2.AppealFiled,), workflow.appeals))

    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        claimed = tuple(t for types, _ in self._kinds for t in types)
        requests = [e for e in events if not isinstance(e.message, claimed)]
        if requests:
            self._handlers.handle_batch(requests)
        for types, handler in self._kinds:
            mine = [e for e in events if isinstance(e.message, types)]
            if mine:
                handler.handle_batch(mine)
