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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx

from crawler.abort import AbortReason, AbortSignal
from crawler.addresses import AddressBlocked, AddressGuard
from crawler.config import Config
from crawler.errors import PageError
from crawler.extract import (
    LinkRules,
    build_outcome,
    failed_outcome,
    needs_parsing,
    skipped_outcome,
)
from crawler.fetch import Fetcher
from crawler.frontier import Clock, Frontier
from crawler.models import Lease, Outcome, Response
from crawler.politeness import retry_after_seconds
from crawler.robots import RobotsCache, RobotsFetch, RobotsPolicy, origin_of, product_token
from crawler.services import CrawlServices
from crawler.sink import Sink
from crawler.stats import Stats
from crawler.store import Store
from crawler.traps import SessionStripper, TrapGuard
from crawler.urls import Scope, hostname

log = logging.getLogger("crawler")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers worth another try later; the last attempt's answer is recorded as it is."""
THROTTLE_STATUSES = frozenset({429, 503})
"""Answers that also put the whole host in cooldown (Retry-After, or a doubling pause)."""
ROBOTS_MAX_BYTES = 512_000
"""RFC 9309: at least 500 KiB of a robots.txt must be parsed; more is ignored."""


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
        on_response: Callable[[Lease, Response], None] | None = None,
    ) -> None:
        """``on_response`` sees every response as received (for archiving); it runs on the
        event loop for every page, so it must only hand the data on (e.g. to a queue)."""
        self.config = config
        self.on_response = on_response
        self.frontier: Frontier | None = None
        """Set while running: for progress displays and metrics (``snapshot()``)."""
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
            max_redirects=config.fetch.max_redirects,
            respect_nofollow=config.politeness.respect_nofollow,
            product_token=product_token(config.crawl.user_agent),
            strip_sessions=SessionStripper(config.traps.session_params),
            max_repeated_segments=config.traps.max_repeated_segments,
        )
        self._traps = TrapGuard(config.traps)
        self._parse_slots = asyncio.Semaphore(config.runtime.parse_threads)
        self._robots_seen: dict[str, float] = {}
        """origin -> fetched_at of the policy last applied to the frontier and recorded."""

    async def run(self) -> CrawlReport:
        config = self.config
        guard = AddressGuard(
            {hostname(url) for url in self.seeds},
            config.security.allow_addresses,
            enabled=config.security.ssrf_guard,
        )
        fetcher = Fetcher(
            config.fetch,
            user_agent=config.crawl.user_agent,
            concurrency=config.crawl.concurrency,
            transport=self._transport,
            guard=guard,
        )
        robots = RobotsCache(
            partial(_fetch_robots, fetcher),
            config.crawl.user_agent,
            clock=self._clock,
            max_age=config.politeness.robots_max_age,
            unreachable_retry=config.politeness.robots_unreachable_retry,
            max_bytes=ROBOTS_MAX_BYTES,
        )
        store = Store(self.db_path)
        # Progress, metrics, WARC, bodies and sitemaps, as configured (crawler/services.py).
        extras = CrawlServices(self, store, fetcher)
        async with store, fetcher, robots, extras:
            frontier = self.frontier = Frontier(store, config, self.signal, clock=self._clock)
            sink = Sink(store, config.storage, frontier.on_committed)
            await frontier.open(self.seeds)
            worker = _Worker(self, frontier, fetcher, sink, store, robots, extras)
            async with asyncio.TaskGroup() as services:
                writer = services.create_task(sink.run(), name="sink")
                services.create_task(frontier.run(), name="frontier-claims")
                extras.start(services)
                try:
                    await self._run_workers(worker)
                finally:
                    # Sync steps first: they must happen even when we are being cancelled.
                    frontier.close()
                    extras.workers_done()
                await sink.close()  # not on cancellation: the writer may be gone by then
                await asyncio.wait([writer])  # so the final progress shows what was written
                extras.stop()
            database = await store.state_counts()
        return CrawlReport(self.stats, database, self.signal.reason)

    async def _run_workers(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        grace_timer: asyncio.TimerHandle | None = None
        workers: list[asyncio.Task[None]] = []

        def cancel_stragglers() -> None:
            stragglers = [task for task in workers if not task.done()]
            if stragglers:
                log.warning(
                    "grace period over: cancelling %d in-flight fetches",
                    len(stragglers),
                    extra={"event": "grace_period_over", "in_flight": len(stragglers)},
                )
            for task in stragglers:
                task.cancel()

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


_DEFER = object()
"""A worker step's answer meaning: the lease went back to the frontier (retry or deferral)."""


class _Worker:
    """What every worker task does with a lease. Generic: policy is asked of the frontier
    (scheduling, cooldowns), the robots cache, the trap guard and the page rules."""

    def __init__(
        self,
        crawl: Crawl,
        frontier: Frontier,
        fetcher: Fetcher,
        sink: Sink,
        store: Store,
        robots: RobotsCache,
        extras: CrawlServices,
    ) -> None:
        self.config = crawl.config
        self.stats = crawl.stats
        self.rules = crawl._rules
        self.traps = crawl._traps
        self.parse_slots = crawl._parse_slots
        self.robots_seen = crawl._robots_seen
        self.extras = extras
        self.on_response = extras.on_response  # crawl.on_response and the archives
        self.frontier = frontier
        self.fetcher = fetcher
        self.sink = sink
        self.store = store
        self.robots = robots if crawl.config.politeness.robots else None

    async def run(self) -> None:
        frontier = self.frontier
        while (lease := await frontier.lease()) is not None:
            outcome = await self._handle(lease)
            if outcome is None:
                continue  # handed back to the frontier
            follow = self.traps.worth_following(outcome.follow)
            if follow is not outcome.follow:
                outcome = replace(outcome, follow=follow)
            frontier.release(lease)
            await self.sink.put(outcome)
            self.stats.record(outcome)
            if log.isEnabledFor(logging.DEBUG):
                page = outcome.page
                log.debug(
                    "%s %s %s",
                    page.status or page.error,
                    lease.url,
                    page.title or "",
                    extra={
                        "event": "page",
                        "url": lease.url,
                        "host": lease.host,
                        "status": page.status,
                        "reason": page.error.split(":", 1)[0] if page.error else None,
                        "depth": lease.depth,
                    },
                )
            await self.extras.room()  # the archives' backpressure (services.CrawlServices)

    async def _handle(self, lease: Lease) -> Outcome | None:
        if (reason := self.traps.admit(lease)) is not None:
            return skipped_outcome(lease, reason, _now())
        try:
            # Before robots.txt too: asking a blocked host for it would be a connection.
            await self.fetcher.check_address(lease.url)
        except AddressBlocked as blocked:
            return skipped_outcome(lease, blocked.describe(), _now())
        if self.robots is not None:
            verdict = await self._robots_verdict(lease)
            if verdict is _DEFER:
                return None
            if isinstance(verdict, Outcome):
                return verdict
        return await self._fetch(lease)

    async def _robots_verdict(self, lease: Lease) -> object:
        """None to go ahead; an Outcome to record instead of fetching; or _DEFER."""
        assert self.robots is not None
        origin = origin_of(lease.url)
        policy = self.robots.cached(origin)
        fresh = policy is None
        if policy is None:
            policy = await self.robots.policy(origin)
        if self.robots_seen.get(origin) != policy.fetched_at:
            self.robots_seen[origin] = policy.fetched_at
            await self._learn(lease.host, policy)
        if policy.disallow_all and not policy.allow_all:
            return self._robots_unavailable(lease, policy)
        if not policy.allows(lease.url):
            return skipped_outcome(lease, "robots_disallowed", _now())
        if fresh and self.frontier.delay_of(lease.host) > 0:
            # This slot's request went to robots.txt: the page waits its turn like any other.
            self.frontier.defer(lease)
            return _DEFER
        return None

    async def _learn(self, host: str, policy: RobotsPolicy) -> None:
        self.stats.robots_fetched += 1
        self.frontier.set_crawl_delay(host, policy.crawl_delay)
        await self.store.record_robots(
            policy.origin, policy.status, policy.crawl_delay, policy.sitemaps
        )
        log.debug(
            "robots.txt of %s: %s",
            policy.origin,
            policy.status or "unreachable",
            extra={
                "event": "robots",
                "url": f"{policy.origin}/robots.txt",
                "host": host,
                "status": policy.status,
                "crawl_delay": policy.crawl_delay,
            },
        )
        self.extras.learned(policy)  # sitemaps (services.CrawlServices)

    def _robots_unavailable(self, lease: Lease, policy: RobotsPolicy) -> object:
        # RFC 9309: an unreachable robots.txt means "disallow all" for now; the URL stays
        # pending and the host waits until robots.txt is asked again.
        wait = self.config.politeness.robots_unreachable_retry
        self.frontier.cool_down(lease.host, wait)
        if self._retry(lease, wait):
            return _DEFER
        detail = f"HTTP {policy.status}" if policy.status else "unreachable"
        return skipped_outcome(lease, f"robots_unavailable: robots.txt {detail}", _now())

    async def _fetch(self, lease: Lease) -> Outcome | None:
        """Fetch and extract one lease; None if it was handed back for a retry."""
        frontier = self.frontier
        try:
            response = await self.fetcher.fetch(lease.url)
        except AddressBlocked as blocked:  # its address changed since the check above
            return skipped_outcome(lease, blocked.describe(), _now())
        except PageError as error:
            if error.retryable:
                self._host_failed(lease.host)
                if self._retry(lease):
                    return None
            return failed_outcome(lease, error, _now())
        if self.on_response is not None:
            self.on_response(lease, response)
        status = response.status
        if status in RETRY_STATUSES:
            self._host_failed(lease.host)
            delay = None
            if status in THROTTLE_STATUSES:
                retry_after = retry_after_seconds(response.retry_after, time.time())
                delay = frontier.throttled(lease.host, retry_after)
                self.stats.throttled += 1
            if self._retry(lease, delay):
                return None
        else:
            frontier.host_succeeded(lease.host)
        if not needs_parsing(response):
            return build_outcome(lease, response, self.rules, _now())
        async with self.parse_slots:
            return await asyncio.to_thread(build_outcome, lease, response, self.rules, _now())

    def _host_failed(self, host: str) -> None:
        if self.frontier.host_failed(host):
            self.stats.hosts_paused += 1
            log.warning(
                "%s keeps failing: paused for %gs (circuit breaker)",
                host,
                self.config.politeness.circuit_breaker_pause,
                extra={
                    "event": "host_paused",
                    "host": host,
                    "reason": "circuit_breaker",
                    "seconds": self.config.politeness.circuit_breaker_pause,
                },
            )

    def _retry(self, lease: Lease, delay: float | None = None) -> bool:
        fetch = self.config.fetch
        if lease.attempt >= fetch.max_retries:
            return False
        if delay is None:
            # Exponential backoff with jitter, so retries of many URLs do not arrive together.
            delay = fetch.retry_backoff * 2**lease.attempt * random.uniform(0.5, 1.5)
        self.frontier.retry(lease, delay)
        self.stats.retries += 1
        return True


async def _fetch_robots(fetcher: Fetcher, url: str) -> RobotsFetch:
    try:
        response = await fetcher.fetch(url, any_type=True, max_bytes=ROBOTS_MAX_BYTES)
    except PageError as error:
        return RobotsFetch(status=None, error=error.describe())
    return RobotsFetch(status=response.status, body=response.body, location=response.location)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
