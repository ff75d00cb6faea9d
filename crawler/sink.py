"""The sink: the one task that writes crawl results, in batches, each batch one transaction.

Workers ``await sink.put(outcome)``; the queue is bounded, so a slow disk slows the workers
instead of growing memory. The writer commits whatever has arrived while the previous write was
running (group commit): batches are large under load and a lone page is written at once, so
there is no flush timer to tune and no latency added at the end of a crawl.

A batch records, atomically: the page rows, their frontier state (done / failed), their links,
and the URLs they offered to the frontier. After the commit the frontier hears which hosts may
have new pending URLs.

Closing: :meth:`close` lets :meth:`run` drain the queue, write the last batch and return.
A storage failure (disk full, read-only file) raises :class:`StorageError` out of :meth:`run`:
the crawl ends, and every batch committed before it stays in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from crawler.config import StorageSection
from crawler.models import Outcome
from crawler.rows import rows_of
from crawler.store import Store

OnCommit = Callable[[int, Iterable[str]], None]
"""Called after each commit with the number of outcomes and the hosts that may have new URLs."""

_CLOSE = None


class Sink:
    def __init__(self, store: Store, config: StorageSection, on_commit: OnCommit) -> None:
        self._store = store
        self._batch_size = config.batch_size
        self._on_commit = on_commit
        self._queue: asyncio.Queue[Outcome | None] = asyncio.Queue(maxsize=4 * config.batch_size)
        self._closed = False
        self.committed = 0
        """Outcomes written so far."""
        self.batches = 0

    async def put(self, outcome: Outcome) -> None:
        """Queue ``outcome`` for writing; waits while the queue is full."""
        if self._closed:
            raise RuntimeError("sink is closed")
        await self._queue.put(outcome)

    async def close(self) -> None:
        """No more outcomes; :meth:`run` writes what is queued and returns. Idempotent."""
        if not self._closed:
            self._closed = True
            await self._queue.put(_CLOSE)

    async def run(self) -> None:
        """Write batches until closed and drained."""
        while True:
            item = await self._queue.get()
            batch: list[Outcome] = []
            closing = False
            while True:
                if item is _CLOSE:
                    closing = True  # always the last item: put() refuses after close()
                else:
                    batch.append(item)
                if len(batch) >= self._batch_size or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if batch:
                await self._write(batch)
            if closing:
                return

    async def _write(self, batch: list[Outcome]) -> None:
        rows = [rows_of(outcome) for outcome in batch]  # mostly encoded by the parse worker
        await self._store.write_batch([(o.lease.id, o.page) for o in batch], rows)
        self.committed += len(batch)
        self.batches += 1
        self._on_commit(len(batch), {host for page in rows for host in page.hosts})

    def __repr__(self) -> str:
        return (
            f"<Sink queued={self._queue.qsize()} committed={self.committed} "
            f"batches={self.batches} closed={self._closed}>"
        )
