"""The engine: wires the parts together and supervises them with two nested task groups.

::

    Store, Fetcher, RobotsCache, CrawlServices    (async with: closed last, also when cancelled)
    outer TaskGroup (services): sink writer · frontier claims · progress, metrics, archives
        inner TaskGroup: N workers      crawler.worker: lease → robots → fetch → parse → sink

Nesting encodes the shutdown order: workers end first (the frontier ran out of work, or the
abort signal stopped it and in-flight fetches finished within the grace period, or were
cancelled on the wire when it ran out: ``Worker.cut_off``; a page already received is parsed
and handed to the sink either way), then the sink writes what is queued, then the services
stop, then the client and the database close. A second signal cancels the whole run: every
transaction already committed stays, the one in progress is rolled back, and leased URLs go
back to pending when the next run starts (as the fetches cut off by the grace period do).

Policy does not live here: scheduling and politeness are the frontier's, recording is the sink's,
HTTP is the fetcher's, what happens to one lease is the worker's, a response's outcome is a pure
function of it (:mod:`crawler.parse.outcome`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from crawler.abort import AbortReason, AbortSignal
from crawler.config import Config
from crawler.fetch.addresses import AddressGuard
from crawler.fetch.client import Fetcher
from crawler.fetch.dns import DnsCache
from crawler.frontier.frontier import Clock, Frontier
from crawler.frontier.retries import RetryPolicy
from crawler.frontier.robots import RobotsCache, fetch_robots, robots_token
from crawler.frontier.robots_gate import RobotsGate
from crawler.frontier.traps import SessionStripper, TrapGuard
from crawler.models import Deferred, OnResponse
from crawler.observe.stats import Stats
from crawler.parse.extract import ExtractRules
from crawler.parse.outcome import LinkRules
from crawler.parse.pool import make_parse_pool
from crawler.scope import Scope
from crawler.services import CrawlServices
from crawler.store.database import Store
from crawler.store.sink import Sink
from crawler.urls import hostname
from crawler.worker import Worker

log = logging.getLogger("crawler")


@dataclass(frozen=True, slots=True)
class CrawlReport:
    """The outcome of one ``crawl run``."""

    stats: Stats
    database: dict[str, int]
    """Frontier state counts in the database after the run (all runs together)."""
    aborted: AbortReason | None
    deferred: Deferred
    """URLs left for a later run by their hosts' Retry-After (all runs together)."""
    hosts_over_budget: int = 0
    """Hosts this run found at ``crawl.max_pages_per_host`` (or their domain at
    ``max_pages_per_domain``), counting over resumes: their further URLs stay pending."""

    @property
    def complete(self) -> bool:
        """The run ended by itself (no work left, or ``crawl.max_pages`` reached), not by an
        abort; an interrupted run is resumed by running again on the same database."""
        return self.aborted is None

    @property
    def stored(self) -> int:
        """Pages this run stored with a response (any status)."""
        return self.stats.pages - self.failed - self.skipped

    @property
    def failed(self) -> int:
        """URLs this run recorded as failed: no response after the retries."""
        return self.stats.failed

    @property
    def skipped(self) -> int:
        """URLs this run recorded as deliberately not fetched (robots.txt, traps, the guard)."""
        return self.stats.skipped.total()

    @property
    def pending(self) -> int:
        """URLs in the database left for a later run (pending, or leased by an interrupted
        one)."""
        return self.database["pending"] + self.database["leased"]


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
        on_response: OnResponse | None = None,
    ) -> None:
        """``on_response`` sees every response as received (for archiving); it runs on the
        event loop for every page, so it must only hand the data on (e.g. to a queue)."""
        self.config = config
        self.on_response = on_response
        self.frontier: Frontier | None = None
        """Set while running: for progress displays and metrics (``counts()``)."""
        self.robots: RobotsCache | None = None
        """Set while running: the robots.txt policies kept (``len()``), for tests and metrics."""
        self.seeds = list(seeds)
        self.db_path = db_path
        self.signal = signal
        self.stats = Stats()
        self._transport = transport
        self._clock = clock
        # Once per run: it warns when the User-Agent names no clear token.
        self._robots_token = robots_token(config.crawl.user_agent, config.crawl.robots_token)
        self._rules = LinkRules(
            scope=Scope.from_seeds(
                self.seeds,
                config.crawl.allow_domains,
                mode=config.crawl.scope,
                include=config.crawl.include,
                exclude=config.crawl.exclude,
                max_offsite_hops=config.crawl.max_offsite_hops,
            ),
            max_depth=config.crawl.max_depth,
            max_url_length=config.crawl.max_url_length,
            max_redirects=config.fetch.max_redirects,
            respect_nofollow=config.politeness.respect_nofollow,
            product_token=self._robots_token,
            strip_sessions=SessionStripper(config.traps.session_params),
            max_repeated_segments=config.traps.max_repeated_segments,
            extract=ExtractRules.of(config.extract, tuple(sys.path)),
        )
        self._traps = TrapGuard(config.traps, config.crawl.max_hosts_in_memory)

    async def run(self) -> CrawlReport:
        config = self.config
        guard = AddressGuard(
            {hostname(url) for url in self.seeds},
            config.security.allow_addresses,
            enabled=config.security.ssrf_guard,
            dns=DnsCache(
                ttl=config.fetch.dns_ttl,
                negative_ttl=config.fetch.dns_negative_ttl,
                static=config.fetch.resolve,
                clock=self._clock,
            ),
        )
        retries = RetryPolicy.of(config.fetch, config.politeness)
        store = Store(self.db_path)
        frontier = Frontier(
            store,
            config.politeness,
            self.signal,
            retries=retries,
            max_pages=config.crawl.max_pages,
            max_pages_per_host=config.crawl.max_pages_per_host,
            max_pages_per_domain=config.crawl.max_pages_per_domain,
            max_hosts=config.crawl.max_hosts_in_memory,
            clock=self._clock,
        )
        fetcher = Fetcher(
            config.fetch,
            user_agent=config.crawl.user_agent,
            concurrency=config.crawl.concurrency,
            transport=self._transport,
            guard=guard,
            # The host's next request is spaced from when this one really went out.
            on_request_sent=frontier.request_sent,
        )
        robots = RobotsCache(
            partial(fetch_robots, fetcher),
            self._robots_token,
            clock=self._clock,
            max_age=config.politeness.robots_max_age,
            unreachable_retry=config.politeness.robots_unreachable_retry,
            # One policy per origin, about one origin per host: the hosts' own bound, and a
            # policy stays while the frontier holds its host.
            max_origins=config.crawl.max_hosts_in_memory,
            in_use=frontier.holds,
        )
        runtime = config.runtime
        parse_pool = make_parse_pool(
            self._rules, runtime.parse_processes, runtime.parse_threads, runtime.parse_timeout
        )
        # Progress, metrics, WARC, bodies and sitemaps, as configured (crawler/services.py).
        sink = Sink(store, config.storage, frontier.on_committed)
        extras = CrawlServices(
            config,
            self.stats,
            store=store,
            sink=sink,
            frontier=frontier,
            fetcher=fetcher,
            seeds=self.seeds,
            scope=self._rules.scope,
            on_response=self.on_response,
        )
        async with store, fetcher, robots, extras, parse_pool:
            self.frontier = frontier
            self.robots = robots
            await frontier.open(self.seeds)
            await self._traps.resume(store, in_use=frontier.holds)
            if fetcher.cookies is not None:  # the jars of the crawl's earlier runs
                fetcher.cookies.load(await store.saved_cookies())
            gate = RobotsGate(
                robots,
                hosts=frontier.hosts,
                sink=sink,
                stats=self.stats,
                sitemaps=extras.sitemaps,
            )
            worker = Worker(
                frontier,
                self.stats,
                self._traps,
                fetcher=fetcher,
                parse_pool=parse_pool,
                sink=sink,
                robots=gate if config.politeness.robots else None,
                extras=extras,
            )
            async with asyncio.TaskGroup() as services:
                writer = services.create_task(sink.run(), name="sink")
                services.create_task(frontier.run(), name="frontier-claims")
                extras.start(services)
                try:
                    await self._run_workers(worker)
                finally:
                    # Sync steps first: they must happen even when we are being cancelled.
                    frontier.stop()
                    extras.workers_done()
                await sink.finish()  # not on cancellation: the writer may be gone by then
                await asyncio.wait([writer])  # so the final progress shows what was written
                extras.stop()
            if fetcher.cookies is not None:  # for the next run (crawler.fetch.cookies: when)
                await store.save_cookies(fetcher.cookies.saved())
            database = await store.state_counts()
            deferred = await store.deferred(time.time())
        over_budget = frontier.counts().hosts_over_budget
        return CrawlReport(self.stats, database, self.signal.reason, deferred, over_budget)

    async def _run_workers(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        grace_timer: asyncio.TimerHandle | None = None
        workers: list[asyncio.Task[None]] = []

        def cancel_stragglers() -> None:
            # Only what is still on the wire: a page received is as good as stored, and
            # fetching it again on resume would cost the server (and an archive) a second copy.
            cut = worker.cut_off()
            received = sum(not task.done() for task in workers) - cut
            if cut or received:
                log.warning(
                    "grace period over: cancelling the fetches still on the wire (%d); "
                    "storing the pages already received (%d)",
                    cut,
                    received,
                    extra={"event": "grace_period_over", "in_flight": cut, "received": received},
                )

        def on_abort(reason: AbortReason) -> None:
            nonlocal grace_timer
            log.warning(
                "%s: finishing in-flight fetches (at most %gs)",
                reason.message,
                self.config.runtime.grace_period,
                extra={
                    "event": "grace_period",
                    "reason": reason.message,
                    "seconds": self.config.runtime.grace_period,
                },
            )
            grace_timer = loop.call_later(self.config.runtime.grace_period, cancel_stragglers)

        self.signal.add_callback(on_abort)
        try:
            async with asyncio.TaskGroup() as group:
                workers.extend(
                    group.create_task(worker.run(), name=f"worker-{i}")
                    for i in range(self.config.crawl.concurrency)
                )
        finally:
            self.signal.remove_callback(on_abort)
            if grace_timer is not None:
                grace_timer.cancel()
