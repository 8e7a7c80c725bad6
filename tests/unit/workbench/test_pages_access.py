"""What a reviewer may see of intake and authorization through the workbench: only what review has
just shown them with their own token (services/workbench/service_layer/pages.py). The workbench's
own identity reads intake and authorization; it never asks them before review has answered."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from services.common.errors import NotFound, Unauthenticated
from services.workbench.service_layer.pages import Pages
from services.workbench.service_layer.ports import Session
from tests.fakes.workbench import NURSE, TASK_ID, WORKBENCH, FakeAccessLog, FakePlatform

NOW = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)


def session(token: str) -> Session:
    return Session(session_id="s", reviewer_id=NURSE.reviewer_id, name=NURSE.name, role=NURSE.role,
                   credential=NURSE.credential, token=token, csrf="c", created_at=NOW, last_seen=NOW)


def intake_or_authorization(platform: FakePlatform) -> list[str]:
    return [method for method, who in platform.calls if who == WORKBENCH]


def test_a_token_review_refuses_reads_nothing_from_intake_or_authorization() -> None:
    platform = FakePlatform()
    pages = Pages(platform, FakeAccessLog(), clock=lambda: NOW)
    for page in (pages.member(session("a-revoked-token-0001"), "M-1"), pages.task(session("a-revoked-token-0001"),
                                                                                      TASK_ID)):
        with pytest.raises(Unauthenticated):
            asyncio.run(page)
    assert intake_or_authorization(platform) == []


def test_a_task_review_does_not_show_reads_nothing_from_intake() -> None:
    platform = FakePlatform()
    pages = Pages(platform, FakeAccessLog(), clock=lambda: NOW)
    with pytest.raises(NotFound):
        asyncio.run(pages.task(session("token-nurse-0000001"), "no-such-task"))
    assert intake_or_authorization(platform) == []


def test_review_answers_first_then_the_workbench_reads_for_the_reviewer() -> None:
    platform = FakePlatform()
    pages = Pages(platform, FakeAccessLog(), clock=lambda: NOW)
    asyncio.run(pages.member(session("token-nurse-0000001"), "M-1"))
    methods = [method for method, _ in platform.calls]
    first_read = min(methods.index(m) for m in ("member_requests", "member_authorizations"))
    assert {"member_tasks", "case_notes"} <= set(methods[:first_read])
    platform.calls.clear()
    asyncio.run(pages.task(session("token-nurse-0000001"), TASK_ID))
    assert [method for method, _ in platform.calls] == ["get_task", "request", "member_authorizations"]
