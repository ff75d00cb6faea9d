"""The sink: the one task that writes crawl results, in batches, each batch one transaction.

Workers ``await sink.put(outcome)``, the robots gate ``put(robots_record)`` for an origin's
robots.txt outcome, and the sitemap seeder ``await sink.offer(urls)`` for the URLs a sitemap
lists (it returns once they are committed, so the seeder's hold on the frontier lasts until
they can be claimed). The queue is bounded, so a slow disk slows the workers
instead of growing memory. The writer commits whatever has arrived while the previous write was
running (group commit): batches are large under load and a lone page is written at once, so
there is no flush timer to tune and no latency added at the end of a crawl.

A batch records, atomically: the page rows, their frontier state (done / failed), their links,
the URLs they and the sitemaps offered to the frontier, and the robots.txt outcomes learnt
meanwhile. (Each of those was once its own transaction, awaited by the worker that fetched the
robots.txt: at the start of a 1,000-host crawl the workers queued behind 1,000 commits, and the
hosts' robots.txt requests took 1.6 s to go out instead of a fraction of one.) After the
commit the frontier hears which hosts may have new pending URLs.

Besides the sink, only the frontier writes, its own state: the seeds as it opens (before the
sink runs), its claims (which must answer with the leases claimed) and its deferred hosts. All
writes go through the store's one connection, one transaction at a time.

Finishing: :meth:`finish` lets :meth:`run` drain the queue, write the last batch and return.
A storage failure (disk full, read-only file) raises :class:`StorageError` out of :meth:`run`:
the crawl ends, and every batch committed before it stays in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from crawler.config import StorageSection
from crawler.models import Outcome, RobotsRecord
from crawler.store.database import NewURL, Store
from crawler.store.rows import rows_of

OnCommit = Callable[[int, Iterable[str]], None]
"""Called after each commit with the number of outcomes and the hosts that may have new URLs."""

_FINISH = None


@dataclass(frozen=True, slots=True)
class _Offer:
    """URLs offered to the frontier outside any page (a sitemap's), and who waits for them."""

    urls: Sequence[NewURL]
    committed: asyncio.Future[None]


class Sink:
    def __init__(self, store: Store, config: StorageSection, on_commit: OnCommit) -> None:
        self._store = store
        self._batch_size = config.batch_size
        self._on_commit = on_commit
        self._queue: asyncio.Queue[Outcome | RobotsRecord | _Offer | None] = asyncio.Queue(
            maxsize=4 * config.batch_size
        )
        self._finished = False
        self.committed = 0
        """Outcomes written so far."""
        self.batches = 0

    async def put(self, item: Outcome | RobotsRecord) -> None:
        """Queue ``item`` for writing; waits while the queue is full."""
        if self._finished:
            raise RuntimeError("sink is finished: no more input")
        await self._queue.put(item)

    async def offer(self, urls: Sequence[NewURL]) -> None:
        """Offer ``urls`` to the frontier table in the next batch and return once committed
        (known URLs are ignored). Cancelling the caller does not take them back."""
        if self._finished:
            raise RuntimeError("sink is finished: no more input")
        committed = asyncio.get_running_loop().create_future()
        await self._queue.put(_Offer(urls, committed))
        await committed

    async def finish(self) -> None:
        """No more outcomes; :meth:`run` writes what is queued and returns. Idempotent."""
        if not self._finished:
            self._finished = True
            await self._queue.put(_FINISH)

    async def run(self) -> None:
        """Write batches until finished and drained."""
        while True:
            item = await self._queue.get()
            batch: list[Outcome] = []
            robots: list[RobotsRecord] = []
            offers: list[_Offer] = []
            finishing = False
            while True:
                if item is _FINISH:
                    finishing = True  # always the last item: put() refuses after finish()
                elif isinstance(item, Outcome):
                    batch.append(item)
                elif isinstance(item, RobotsRecord):
                    robots.append(item)
                else:
                    offers.append(item)
                if (
                    len(batch) + len(robots) + len(offers) >= self._batch_size
                    or self._queue.empty()
                ):
                    break
                item = self._queue.get_nowait()
            if batch or robots or offers:
                await self._write(batch, robots, offers)
            if finishing:
                return

    async def _write(
        self, batch: list[Outcome], robots: list[RobotsRecord], offers: list[_Offer]
    ) -> None:
        rows = [rows_of(outcome) for outcome in batch]  # encoded by the worker already
        pages = [(o.lease.id, o.page.state, r) for o, r in zip(batch, rows, strict=True)]
        offered = [url for offer in offers for url in offer.urls]
        await self._store.write_batch(pages, robots, offered)
        self.committed += len(batch)
        self.batches += 1
        hosts = {host for page in rows for host in page.hosts}
        hosts.update(host for _, host, _, _ in offered)
        self._on_commit(len(batch), hosts)
        for offer in offers:
            if not offer.committed.done():  # its caller may have been cancelled meanwhile
                offer.committed.set_result(None)

    def __repr__(self) -> str:
        return (
            f"<Sink queued={self._queue.qsize()} committed={self.committed} "
            f"batches={self.batches} finished={self._finished}>"
        )
