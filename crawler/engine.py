"""The engine: wires the parts together and supervises them with two nested task groups.

::

    Store, Fetcher                      (async with: closed last, also on cancellation)
    outer TaskGroup (services): sink writer · frontier claims · progress line
        inner TaskGroup: N workers      lease → fetch → build outcome → release → sink

Nesting encodes the shutdown order: workers end first (the frontier ran out of work, or the
abort signal closed it and in-flight fetches finished within the grace period, or were
cancelled when it ran out), then the sink writes what is queued, then the services stop, then
the client and the database close. A second signal cancels the whole run: every transaction
already committed stays, the one in progress is rolled back, and leased URLs go back to pending
when the next run starts.

Policy does not live here: scheduling and politeness are the frontier's, recording is the sink's,
HTTP is the fetcher's, extraction is a pure function.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from crawler.abort import AbortReason, AbortSignal
from crawler.config import Config
from crawler.errors import PageError
from crawler.extract import LinkRules, build_outcome, failed_outcome, needs_parsing
from crawler.fetch import Fetcher
from crawler.frontier import Clock, Frontier
from crawler.models import Lease, Outcome
from crawler.sink import Sink
from crawler.stats import Stats
from crawler.store import Store
from crawler.urls import Scope

log = logging.getLogger("crawler")

RETRY_STATUSES = frozenset({500, 502, 503, 504})
"""Answers worth another try later; the last attempt's answer is recorded as it is."""


@dataclass(frozen=True, slots=True)
class CrawlReport:
    """The outcome of one ``crawl run``."""

    stats: Stats
    database: dict[str, int]
    """Frontier state counts in the database after the run (all runs together)."""
    aborted: AbortReason | None

    @property
    def complete(self) -> bool:
        return self.aborted is None


class Crawl:
    """One run of the crawler over one database. ``await Crawl(...).run()``."""

    def __init__(
        self,
        config: Config,
        seeds: Sequence[str],
        db_path: Path,
        signal: AbortSignal,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.seeds = list(seeds)
        self.db_path = db_path
        self.signal = signal
        self.stats = Stats()
        self._transport = transport
        self._clock = clock
        self._rules = LinkRules(
            scope=Scope.from_seeds(self.seeds, config.crawl.allow_domains),
            max_depth=config.crawl.max_depth,
            max_url_length=config.crawl.max_url_length,
        )
        self._parse_slots = asyncio.Semaphore(config.runtime.parse_threads)

    async def run(self) -> CrawlReport:
        config = self.config
        fetcher = Fetcher(
            config.fetch,
            user_agent=config.crawl.user_agent,
            concurrency=config.crawl.concurrency,
            transport=self._transport,
        )
        async with Store(self.db_path) as store, fetcher:
            frontier = Frontier(store, config, self.signal, clock=self._clock)
            sink = Sink(store, config.storage, frontier.on_committed)
            await frontier.open(self.seeds)
            async with asyncio.TaskGroup() as services:
                services.create_task(sink.run(), name="sink")
                services.create_task(frontier.run(), name="frontier-claims")
                progress = services.create_task(self._report_progress(frontier), name="progress")
                try:
                    await self._run_workers(frontier, fetcher, sink)
                finally:
                    # Sync steps first: they must happen even when we are being cancelled.
                    frontier.close()
                    progress.cancel()
                await sink.close()  # not on cancellation: the writer may be gone by then
            database = await store.state_counts()
        return CrawlReport(self.stats, database, self.signal.reason)

    async def _run_workers(self, frontier: Frontier, fetcher: Fetcher, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        grace_timer: asyncio.TimerHandle | None = None
        workers: list[asyncio.Task[None]] = []

        def cancel_stragglers() -> None:
            stragglers = [task for task in workers if not task.done()]
            if stragglers:
                log.warning("grace period over: cancelling %d in-flight fetches", len(stragglers))
            for task in stragglers:
                task.cancel()

        def on_abort(reason: AbortReason) -> None:
            nonlocal grace_timer
            log.warning(
                "%s: finishing in-flight fetches (at most %gs)",
                reason.message,
                self.config.runtime.grace_period,
            )
            grace_timer = loop.call_later(self.config.runtime.grace_period, cancel_stragglers)

        self.signal.add_callback(on_abort)
        try:
            async with asyncio.TaskGroup() as group:
                workers.extend(
                    group.create_task(self._work(frontier, fetcher, sink), name=f"worker-{i}")
                    for i in range(self.config.crawl.concurrency)
                )
        finally:
            self.signal.remove_callback(on_abort)
            if grace_timer is not None:
                grace_timer.cancel()

    async def _work(self, frontier: Frontier, fetcher: Fetcher, sink: Sink) -> None:
        while (lease := await frontier.lease()) is not None:
            outcome = await self._fetch(lease, frontier, fetcher)
            if outcome is None:
                continue  # handed back to the frontier for a retry
            frontier.release(lease)
            await sink.put(outcome)
            self.stats.record(outcome)
            log.debug(
                "%s %s %s",
                outcome.page.status or outcome.page.error,
                lease.url,
                outcome.page.title or "",
            )

    async def _fetch(self, lease: Lease, frontier: Frontier, fetcher: Fetcher) -> Outcome | None:
        """Fetch and extract one lease; None if it was scheduled for a retry instead."""
        try:
            response = await fetcher.fetch(lease.url)
        except PageError as error:
            if error.retryable and self._retry(lease, frontier):
                return None
            return failed_outcome(lease, error, _now())
        if response.status in RETRY_STATUSES and self._retry(lease, frontier):
            return None
        if not needs_parsing(response):
            return build_outcome(lease, response, self._rules, _now())
        async with self._parse_slots:
            return await asyncio.to_thread(build_outcome, lease, response, self._rules, _now())

    def _retry(self, lease: Lease, frontier: Frontier) -> bool:
        fetch = self.config.fetch
        if lease.attempt >= fetch.max_retries:
            return False
        # Exponential backoff with jitter, so retries of many URLs do not arrive together.
        delay = fetch.retry_backoff * 2**lease.attempt * random.uniform(0.5, 1.5)
        frontier.retry(lease, delay)
        self.stats.retries += 1
        return True

    async def _report_progress(self, frontier: Frontier) -> None:
        interval = self.config.runtime.stats_interval
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)  # a periodic report, cancelled when the crawl ends
            log.info("%s", self.stats.progress_line(frontier))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
