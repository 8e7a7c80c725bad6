"""Peer-to-peer conversations: a physician offers, holds or records the requesting provider's
refusal of a conversation about a case, on the task's audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from services.common.clock import Clock
from services.review.domain import workflow as wf
from services.review.domain.task import check_peer_to_peer_kind
from services.review.service_layer.auditing import save_task
from services.review.service_layer.ports import UnitOfWork
from services.review.service_layer.preamble import identify, load_task, use_case
from services.review.service_layer.views import TaskView, task_view


class PeerToPeer:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], *, clock: Clock) -> None:
        self._uow = uow_factory
        self._now = clock

    @use_case
    def record(self, principal: str, task_id: str, kind: str, at: dt.datetime | None, contact: str,
               note: str) -> TaskView:
        """``kind``: offered, held or declined; ``at``: when (default now)."""
        check_peer_to_peer_kind(kind)
        now = self._now()
        with self._uow() as uow:
            me = identify(uow, principal, may=wf.Action.PEER_TO_PEER)
            task = load_task(uow, task_id)
            task.record_peer_to_peer(me, kind, at or now, contact, note, now)
            save_task(uow, task)
            view = task_view(uow, task, me)
            uow.commit()  # the view is read in the same transaction: no second one
            return view
