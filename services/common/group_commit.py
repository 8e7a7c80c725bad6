"""Group commit: concurrent callers' items written by one transaction instead of one each.

A caller hands its item to :class:`GroupCommit` and blocks until the item's result is known. The first
caller to find nobody writing becomes the *leader*: it takes every item queued so far (its own first,
at most ``max_batch``), runs the batch function once for all of them, hands each caller its own result
(or exception) and, if more items queued meanwhile, makes the oldest of their callers the next leader.
So there is no thread of its own and no timer: a lone caller writes at once, exactly as without
batching, and callers that arrive while a transaction is in flight share the next one. Each caller
runs in its own thread (the gRPC server's pool), which is what it blocks.

The batch function answers one result per item, in order: a value, or the exception that item's
caller should raise. An exception the batch function itself raises is every item's answer.

:class:`AsyncGroupCommit` is the same for callers on an asyncio event loop (the gRPC servicers'
``async`` methods): they await, and each batch is one call of the blocking batch function in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Runs a blocking call off the event loop and awaits its result (services.common.grpc_server.offload).
Offload = Callable[..., Awaitable[Any]]


def _one_each(outcomes: Sequence[R | BaseException], items: int) -> Sequence[R | BaseException]:
    """The batch function's outcomes, or, when it answered another number than one per item, the same
    error for every item (no caller gets another's outcome)."""
    if len(outcomes) != items:
        return [RuntimeError(f"group commit: {len(outcomes)} outcomes for {items} items")] * items
    return outcomes


class _Slot(Generic[T, R]):
    __slots__ = ("item", "outcome", "settled", "woken")

    def __init__(self, item: T) -> None:
        self.item = item
        self.outcome: R | BaseException | None = None
        self.settled = False
        self.woken = threading.Event()


class GroupCommit(Generic[T, R]):
    """Calls ``write(items)`` for batches of concurrent callers' items; see the module's text."""

    def __init__(self, write: Callable[[list[T]], Sequence[R | BaseException]], *, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queued: list[_Slot[T, R]] = []
        self._writing = False
        #: Batches written and items in them (for tests and metrics).
        self.batches = 0
        self.items = 0

    @property
    def queued(self) -> int:
        """Items waiting for the next batch (not those being written)."""
        with self._lock:
            return len(self._queued)

    def __call__(self, item: T) -> R:
        """``item``'s result, written in a batch with whatever other callers queued meanwhile."""
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queued.append(slot)
            lead = not self._writing
            self._writing = True
        if not lead:
            slot.woken.wait()
        if not slot.settled:  # made the leader (at once, or handed the lead by the previous one)
            self._lead()
        outcome = slot.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]  # settled: a result

    def _lead(self) -> None:
        with self._lock:
            batch = self._queued[:self._max_batch]
            del self._queued[:self._max_batch]
        outcomes: Sequence[R | BaseException]
        try:
            outcomes = _one_each(self._write([slot.item for slot in batch]), len(batch))
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch learns why it failed
            outcomes = [exc] * len(batch)
        finally:
            with self._lock:
                self.batches += 1
                self.items += len(batch)
                successor = self._queued[0] if self._queued else None
                self._writing = successor is not None
        for slot, outcome in zip(batch, outcomes, strict=True):
            slot.outcome = outcome
            slot.settled = True
            slot.woken.set()
        if successor is not None:  # woken unsettled: it leads the next batch
            successor.woken.set()


class AsyncGroupCommit(Generic[T, R]):
    """:class:`GroupCommit` for callers on an asyncio event loop: a caller awaits its item's outcome;
    one task writes the queued items in batches, each batch one blocking ``write`` run through
    ``offload`` (the gRPC server's thread pool), so that a batch costs one thread hop, not one per
    caller. A lone caller's item is written at once; items queued while a batch is written make the
    next batch. A caller that stops waiting (a cancelled call) leaves its item to be written all the
    same, as a caller of :class:`GroupCommit` whose thread is gone would."""

    def __init__(self, write: Callable[[list[T]], Sequence[R | BaseException]], *, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max_batch = max_batch
        self._queued: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: Batches written and items in them (for tests and metrics).
        self.batches = 0
        self.items = 0

    @property
    def queued(self) -> int:
        """Items waiting for the next batch (not those being written)."""
        return len(self._queued)

    async def __call__(self, item: T, offload: Offload) -> R:
        """``item``'s result, written in a batch with whatever other callers queued meanwhile."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        if self._writer is None:
            # Made in this caller's context, so the writes run with its context variables (the pool).
            self._writer = asyncio.create_task(self._write_queued(offload))
        return await future

    async def _write_queued(self, offload: Offload) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._queued:
                batch = self._queued[:self._max_batch]
                del self._queued[:self._max_batch]
                outcomes: Sequence[R | BaseException]
                try:
                    outcomes = _one_each(await offload(self._write, [item for item, _ in batch]), len(batch))
                except Exception as exc:  # noqa: BLE001 - every caller of the batch learns why it failed
                    outcomes = [exc] * len(batch)
                self.batches += 1
                self.items += len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller stopped waiting
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                batch = []
        finally:
            self._writer = None
            # Cancelled (the loop is stopping): nobody is left waiting for ever.
            for _, future in [*batch, *self._queued]:
                if not future.done():
                    future.set_exception(RuntimeError("group commit stopped before this item was written"))
            self._queued.clear()
