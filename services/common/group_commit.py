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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
            outcomes = self._write([slot.item for slot in batch])
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch learns why it failed
            outcomes = [exc] * len(batch)
        else:
            if len(outcomes) != len(batch):
                outcomes = [RuntimeError(f"group commit: {len(outcomes)} outcomes for {len(batch)} items")] * len(batch)
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
