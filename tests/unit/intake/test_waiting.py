"""Waiting submissions on an event loop (IntakeHandlers.submit_async, as the gRPC server runs them):
the wait holds no thread, a consumer thread wakes it, and the cap holds from receipt."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any, TypeVar

import pytest
from ur.intake.v1 import intake_pb2

from services.common.topics import Topics
from services.intake.domain.model import Coverage, Member, RequestStatus
from services.intake.entrypoints.mapping import to_domain
from services.intake.service_layer.handlers import READ_GRACE_S, IntakeHandlers, SubmitResult, Waiters
from tests.factories import lumbar_mri
from tests.fakes.intake import IntakeStore
from tests.unit.intake.test_handlers import PENDED, determination, incoming

NOW = dt.datetime(2027, 3, 1, 15, 0, tzinfo=dt.UTC)
T = TypeVar("T")


def handlers(store: IntakeStore, max_wait_ms: int = 15000) -> IntakeHandlers:
    member = Member("T-MA-0001", dt.date(1950, 2, 1),
                    (Coverage("T-MA-0001", "medicare_advantage", "H0001-001", "CA", dt.date(2026, 1, 1), None),))
    store.members[member.member_id] = member
    return IntakeHandlers(store.unit_of_work, Topics("t"), Waiters(), clock=lambda: NOW, max_wait_ms=max_wait_ms,
                          poll_s=0.05)


def offload_to(pool: futures.Executor) -> Callable[..., Any]:
    async def offload(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(*args))

    return offload


def submit(intake: IntakeHandlers, message: intake_pb2.SubmitRequestRequest, wait_ms: int,
           offload: Callable[..., Any]) -> Any:
    return intake.submit_async(to_domain(message), message, wait_ms, offload, submitter="acme-clinic")


def test_a_consumer_thread_wakes_a_waiter_on_the_loop() -> None:
    store = IntakeStore()
    intake = handlers(store)

    def consumer() -> None:  # the determination arrives on the consumer's thread
        while not store.requests:
            time.sleep(0.005)
        [request_id] = store.requests
        events = [incoming(determination(request_id, PENDED))]
        intake.handle_batch(events)
        intake.notify(events)

    async def main() -> SubmitResult:
        with futures.ThreadPoolExecutor(max_workers=2) as pool:
            thread = threading.Thread(target=consumer, daemon=True)
            thread.start()
            result: SubmitResult = await submit(intake, lumbar_mri(), 20_000, offload_to(pool))
            thread.join(timeout=5)
            return result

    started = time.monotonic()
    result = asyncio.run(main())
    assert result.record.status is RequestStatus.PENDED
    assert not result.replayed
    assert time.monotonic() - started < 10  # woken, not timed out (the cap is 15 s)
    assert len(intake._waiters) == 0


def test_waiters_hold_no_thread_and_the_cap_holds_from_receipt() -> None:
    """Twenty callers wait (nothing settles) with ONE thread for the database work; a caller that
    does not wait gets its answer meanwhile, and every waiter answers by its cap (0.3 s) plus the
    last read's grace."""
    store = IntakeStore()
    intake = handlers(store, max_wait_ms=300)

    async def main() -> tuple[list[float], float, float]:
        with futures.ThreadPoolExecutor(max_workers=1) as pool:
            offload = offload_to(pool)

            async def timed(n: int, wait_ms: int) -> tuple[float, SubmitResult]:
                started = time.monotonic()
                result = await submit(intake, lumbar_mri(key=f"key-{n}"), wait_ms, offload)
                return time.monotonic() - started, result

            waiting = [asyncio.create_task(timed(n, 60_000)) for n in range(20)]
            await asyncio.sleep(0.05)
            quick_took, quick = await timed(99, 0)
            waited = await asyncio.gather(*waiting)
            assert quick.record.status is RequestStatus.IN_REVIEW
            assert all(r.record.status is RequestStatus.IN_REVIEW for _, r in waited)
            return [took for took, _ in waited], quick_took, max(took for took, _ in waited)

    took, quick_took, longest = asyncio.run(main())
    assert quick_took < 0.3  # answered while the twenty were still waiting
    assert min(took) >= 0.3 - 0.01
    assert longest <= 0.3 + READ_GRACE_S + 0.5  # + the event loop's own scheduling
    assert len(intake._waiters) == 0


@pytest.mark.parametrize("wait_ms", [0, 5])
def test_a_replay_or_a_settled_request_does_not_wait(wait_ms: int) -> None:
    store = IntakeStore()
    intake = handlers(store)
    message = lumbar_mri(member_id="T-NOBODY-9")  # ineligible: settled at once

    async def main() -> tuple[SubmitResult, SubmitResult]:
        with futures.ThreadPoolExecutor(max_workers=1) as pool:
            first = await submit(intake, message, 60_000, offload_to(pool))
            again = await submit(intake, message, wait_ms, offload_to(pool))
            return first, again

    first, again = asyncio.run(main())
    assert first.record.status is RequestStatus.INELIGIBLE
    assert again.replayed
