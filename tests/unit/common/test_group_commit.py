"""GroupCommit: concurrent callers share a batch, each gets its own outcome, and a lone caller writes
at once. The writer is held on an event, so that who is queued behind whom is decided by the test, not
by timing."""

from __future__ import annotations

import asyncio
import threading
from concurrent import futures
from typing import Any

import pytest

from services.common.group_commit import AsyncGroupCommit, GroupCommit
from tests.polling import wait_until


class HeldWriter:
    """A batch function that records each batch and holds the first until released."""

    def __init__(self, answer: Any = None) -> None:
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        self._answer = answer or (lambda items: [item * 10 for item in items])

    def __call__(self, items: list[int]) -> Any:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release.wait(10), "the test never released the first batch"
        return self._answer(items)


def _behind_a_held_leader(writer: HeldWriter, commit: GroupCommit[int, int], followers: list[int],
                          pool: futures.ThreadPoolExecutor) -> tuple[futures.Future[int], list[futures.Future[int]]]:
    leader = pool.submit(commit, 0)
    assert writer.first_started.wait(10)
    queued = []
    for n, item in enumerate(followers, start=1):
        queued.append(pool.submit(commit, item))
        wait_until(lambda: commit.queued, 10, what=f"{n} callers queued", until=lambda q, n=n: q == n,  # type: ignore[misc]
                   interval_s=0.005)
    writer.release.set()
    return leader, queued


def test_a_lone_caller_writes_at_once_in_a_batch_of_its_own() -> None:
    commit: GroupCommit[int, int] = GroupCommit(lambda items: [i + 1 for i in items])
    assert commit(41) == 42
    assert (commit.batches, commit.items) == (1, 1)


def test_callers_arriving_during_a_write_share_the_next_batch_and_each_gets_its_own_result() -> None:
    writer = HeldWriter()
    commit: GroupCommit[int, int] = GroupCommit(writer)
    with futures.ThreadPoolExecutor(8) as pool:
        leader, queued = _behind_a_held_leader(writer, commit, [1, 2, 3, 4, 5], pool)
        assert leader.result(10) == 0
        assert [f.result(10) for f in queued] == [10, 20, 30, 40, 50]
    assert writer.batches == [[0], [1, 2, 3, 4, 5]]
    assert (commit.batches, commit.items, commit.queued) == (2, 6, 0)


def test_a_batch_holds_at_most_max_batch_items_and_the_rest_follow_in_order() -> None:
    writer = HeldWriter()
    commit: GroupCommit[int, int] = GroupCommit(writer, max_batch=2)
    with futures.ThreadPoolExecutor(8) as pool:
        leader, queued = _behind_a_held_leader(writer, commit, [1, 2, 3, 4, 5], pool)
        assert [leader.result(10)] + [f.result(10) for f in queued] == [0, 10, 20, 30, 40, 50]
    assert writer.batches == [[0], [1, 2], [3, 4], [5]]


def test_an_item_answered_with_an_exception_raises_it_in_its_own_caller_only() -> None:
    def answer(items: list[int]) -> list[int | BaseException]:
        return [ValueError(f"item {i} is odd") if i % 2 else i for i in items]

    writer = HeldWriter(answer)
    commit: GroupCommit[int, int] = GroupCommit(writer)
    with futures.ThreadPoolExecutor(8) as pool:
        leader, queued = _behind_a_held_leader(writer, commit, [1, 2, 3], pool)
        assert leader.result(10) == 0
        with pytest.raises(ValueError, match="item 1 is odd"):
            queued[0].result(10)
        assert queued[1].result(10) == 2
        with pytest.raises(ValueError, match="item 3 is odd"):
            queued[2].result(10)


def test_a_failing_batch_is_every_callers_failure_and_the_next_batch_still_runs() -> None:
    calls = []

    def answer(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 2:
            raise ConnectionError("database gone")
        return items

    writer = HeldWriter(answer)
    commit: GroupCommit[int, int] = GroupCommit(writer, max_batch=2)
    with futures.ThreadPoolExecutor(8) as pool:
        leader, queued = _behind_a_held_leader(writer, commit, [1, 2, 3], pool)
        assert leader.result(10) == 0
        for failed in queued[:2]:
            with pytest.raises(ConnectionError, match="database gone"):
                failed.result(10)
        assert queued[2].result(10) == 3
    assert commit(7) == 7, "a failure leaves no leader behind: the next caller writes"


def test_a_batch_function_answering_the_wrong_number_of_outcomes_fails_every_caller() -> None:
    commit: GroupCommit[int, int] = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        commit(1)


def test_many_callers_all_get_their_own_results() -> None:
    commit: GroupCommit[int, int] = GroupCommit(lambda items: [i * 2 for i in items], max_batch=8)
    with futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(commit, range(2000)))
    assert results == [i * 2 for i in range(2000)]
    assert (commit.items, commit.queued) == (2000, 0)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(lambda items: items, max_batch=0)


# -- on an event loop --------------------------------------------------------------------------------

class Offloaded:
    """An offload that runs the blocking call in a thread and records each batch; the first batch is
    held until released, so that the test decides who queues behind it."""

    def __init__(self, pool: futures.ThreadPoolExecutor) -> None:
        self.pool = pool
        self.batches: list[list[int]] = []
        self.release = threading.Event()

    async def __call__(self, fn: Any, items: list[int]) -> Any:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            await asyncio.get_running_loop().run_in_executor(self.pool, self.release.wait, 10)
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, items)


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_async_callers_during_a_write_share_the_next_batch_and_each_gets_its_own_outcome() -> None:
    def write(items: list[int]) -> list[int | BaseException]:
        return [ValueError(f"item {i} is odd") if i % 2 else i * 10 for i in items]

    commit: AsyncGroupCommit[int, int] = AsyncGroupCommit(write)

    async def scenario(offload: Offloaded) -> list[Any]:
        calls = [asyncio.create_task(commit(0, offload))]
        await asyncio.sleep(0)  # the first batch is being written
        calls += [asyncio.create_task(commit(i, offload)) for i in (1, 2, 3, 4)]
        await asyncio.sleep(0)
        assert commit.queued == 4
        offload.release.set()
        return await asyncio.gather(*calls, return_exceptions=True)

    with futures.ThreadPoolExecutor(4) as pool:
        offload = Offloaded(pool)
        outcomes = _run(scenario(offload))
    assert offload.batches == [[0], [1, 2, 3, 4]]
    assert outcomes[0] == 0
    assert outcomes[2] == 20
    assert outcomes[4] == 40
    assert [str(o) for o in (outcomes[1], outcomes[3])] == ["item 1 is odd", "item 3 is odd"]
    assert (commit.batches, commit.items, commit.queued) == (2, 5, 0)


def test_async_batches_hold_at_most_max_batch_and_a_failed_write_fails_only_its_batch() -> None:
    written: list[list[int]] = []

    def write(items: list[int]) -> list[int]:
        written.append(items)
        if len(written) == 2:
            raise ConnectionError("database gone")
        return items

    commit: AsyncGroupCommit[int, int] = AsyncGroupCommit(write, max_batch=2)

    async def scenario(offload: Offloaded) -> list[Any]:
        calls = [asyncio.create_task(commit(0, offload))]
        await asyncio.sleep(0)
        calls += [asyncio.create_task(commit(i, offload)) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        offload.release.set()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        outcomes.append(await commit(9, offload))  # the writer is gone and comes back for a new caller
        return outcomes

    with futures.ThreadPoolExecutor(4) as pool:
        outcomes = _run(scenario(Offloaded(pool)))
    assert written == [[0], [1, 2], [3], [9]]
    assert outcomes[0] == 0
    assert [type(o) for o in outcomes[1:3]] == [ConnectionError, ConnectionError]
    assert outcomes[3:] == [3, 9]


def test_an_async_caller_that_stops_waiting_leaves_its_item_written_and_the_others_answered() -> None:
    commit: AsyncGroupCommit[int, int] = AsyncGroupCommit(lambda items: [i + 1 for i in items])

    async def scenario(offload: Offloaded) -> list[Any]:
        first = asyncio.create_task(commit(0, offload))
        await asyncio.sleep(0)
        gone = asyncio.create_task(commit(1, offload))
        kept = asyncio.create_task(commit(2, offload))
        await asyncio.sleep(0)
        gone.cancel()
        offload.release.set()
        return list(await asyncio.gather(first, gone, kept, return_exceptions=True))

    with futures.ThreadPoolExecutor(4) as pool:
        offload = Offloaded(pool)
        outcomes = _run(scenario(offload))
    assert offload.batches == [[0], [1, 2]]
    assert outcomes[0] == 1
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert outcomes[2] == 3
