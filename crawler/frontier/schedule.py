"""The frontier's clockwork: which host is due first, and one timer to wake at that time.

:class:`ReadyHeap` orders hosts by the time they may next start a request. A host re-queued
under a new time is not searched for: its old entry stays and is dropped when it surfaces
(the host's ``due`` says which entry is current), so every change costs O(log hosts).
:class:`Alarm` is the one timer the frontier arms for the earliest time anything it waits for
becomes due; asking for a later time while an earlier one is armed changes nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Queued(Protocol):
    due: float | None
    """The time this is queued under in the heap (None: not queued)."""


Q = TypeVar("Q", bound=Queued)


class ReadyHeap(Generic[Q]):
    """Items (hosts) by due time; see the module docstring."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Q]] = []
        self._tiebreak = itertools.count()

    def push(self, item: Q, due: float) -> None:
        """Queue ``item`` under ``due`` (its earlier entry, if any, becomes stale)."""
        if due != item.due:
            item.due = due
            heapq.heappush(self._heap, (due, next(self._tiebreak), item))

    def earliest(self) -> float | None:
        """The earliest due time queued, or None if nothing is."""
        heap = self._heap
        while heap and heap[0][2].due != heap[0][0]:
            heapq.heappop(heap)  # stale: the item was queued again under another time
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> Q | None:
        """Take the earliest item if it is due at ``now`` (its ``due`` becomes None)."""
        due = self.earliest()
        if due is None or due > now:
            return None
        item = heapq.heappop(self._heap)[2]
        item.due = None
        return item


class Alarm:
    """Calls ``wake`` at the earliest time asked for with :meth:`ring_at`, once."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._handle: asyncio.TimerHandle | None = None
        self._at = float("inf")

    def ring_at(self, at: float, now: float) -> None:
        """Ring at ``at`` (on the caller's clock, which reads ``now``), unless armed earlier."""
        if self._handle is not None:
            if self._at <= at:
                return
            self._handle.cancel()
        self._at = at
        self._handle = asyncio.get_running_loop().call_later(at - now, self._ring)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._at = float("inf")

    def _ring(self) -> None:
        self.cancel()
        self._wake()

    def __repr__(self) -> str:
        return f"<Alarm at={self._at}>" if self._handle is not None else "<Alarm off>"
