"""A hand-off from the crawl's workers to one writer task, bounded in bytes.

The archive writers (WARC, bodies) receive responses in the engine's ``on_response`` callback,
which is synchronous and runs on the event loop: it must not wait and must not do I/O. So
:meth:`Spool.put` never waits; the bound is enforced one step later, where a worker can wait:
:meth:`Spool.room` (awaited by the workers between pages) returns only while the queued bytes
are under the limit. Memory therefore stays under the limit plus one response per worker, and a
slow disk slows the crawl instead of growing memory, as the sink does for the database.

The writer takes everything queued at once (:meth:`Spool.take`), so a busy crawl writes in
large batches and a quiet one writes each response at once (group commit, no timer).
:meth:`Spool.finish` ends it: ``take`` returns what is left, then an empty list.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


DEFAULT_SPOOL_BYTES = 32 * 1024 * 1024
"""Bytes waiting for an archive's writer task (WARC, bodies) before the workers wait."""


class Spool(Generic[T]):
    """See the module docstring. Single consumer; any number of producers on the loop."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        """Set while there is something to take (or the spool is finished)."""
        self._room = asyncio.Event()
        """Set while the queued bytes are under the limit (or the spool is finished)."""
        self._room.set()
        self.finished = False
        """No more items will come (:meth:`finish`)."""

    def put(self, item: T, size: int) -> None:
        """Queue ``item`` (``size`` bytes). Never waits; see :meth:`room`."""
        if self.finished:
            raise RuntimeError("spool is finished: no more items")
        self._items.append(item)
        self.queued_bytes += size
        self._ready.set()
        if self.queued_bytes >= self.max_bytes:
            self._room.clear()

    async def room(self) -> None:
        """Return once the queued bytes are under the limit (at once when they are)."""
        await self._room.wait()

    async def take(self) -> list[T]:
        """Everything queued, waiting until there is something; [] once finished and empty."""
        while not self._items:
            if self.finished:
                return []
            self._ready.clear()
            await self._ready.wait()
        items = list(self._items)
        self._items.clear()
        self.queued_bytes = 0
        self._room.set()
        return items

    def finish(self) -> None:
        """No more items: :meth:`take` drains what is queued, then returns []. Idempotent."""
        self.finished = True
        self._ready.set()
        self._room.set()

    def __repr__(self) -> str:
        return (
            f"<Spool items={len(self._items)} bytes={self.queued_bytes}/{self.max_bytes} "
            f"finished={self.finished}>"
        )
