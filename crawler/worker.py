"""A worker: what happens to one lease, from the trap budgets to the sink.

Workers are generic; every decision is asked of the part that owns it: the trap guard
(budgets), the address guard (via the fetcher), the robots gate
(:mod:`crawler.frontier.robots_gate`), the frontier (scheduling retries, deferral) and its host
feedback (:mod:`crawler.frontier.host_feedback`: cooldowns, the circuit breaker, and the retry
policy that says which answers go again and when, :mod:`crawler.frontier.retries`), the parse pool
(the page rules, off the loop for HTML). A worker never sleeps: whatever must wait goes back to the
frontier with a not-before time.

A lease has two phases. Until its response is received in full (robots.txt, the fetch) it is
*on the wire*, in a scope that :meth:`Worker.cut_off` cancels when the grace period of a stop
runs out: the lease goes back to the frontier, and the next run fetches it. Once received, the
page is parsed and handed to the sink whatever the grace period says (a parse has its own
deadline, ``runtime.parse_timeout``); only a second signal, which cancels the whole crawl,
stops that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from crawler.errors import FatalError, InternalError, PageError, TlsFailed
from crawler.fetch.addresses import AddressBlocked
from crawler.fetch.client import Fetcher
from crawler.frontier.frontier import Frontier
from crawler.frontier.retries import RETRY_STATUSES, THROTTLE_STATUSES
from crawler.frontier.robots import RobotsPolicy
from crawler.frontier.robots_gate import RobotsGate, Verdict
from crawler.frontier.traps import TrapGuard
from crawler.models import Lease, OnResponse, Outcome, Response
from crawler.observe.stats import Stats
from crawler.parse.outcome import failed_outcome, skipped_outcome
from crawler.parse.pool import ParsePool
from crawler.store.rows import rows_of
from crawler.store.sink import Sink

log = logging.getLogger("crawler")


class Listeners(Protocol):
    """What a worker tells the crawl's optional services besides the sink (the engine passes
    :class:`crawler.services.CrawlServices`)."""

    on_response: OnResponse | None
    """Called with every response as received (archives, the caller's hook); None: nobody."""

    async def room(self) -> None:
        """Wait while the archives have too much queued (called between pages)."""


class Worker:
    """The per-lease pipeline every worker task runs (:meth:`run`); one instance is shared by
    all the worker tasks of a crawl (its state is the parts', not its own)."""

    def __init__(
        self,
        frontier: Frontier,
        stats: Stats,
        traps: TrapGuard,
        *,
        fetcher: Fetcher,
        parse_pool: ParsePool,
        sink: Sink,
        robots: RobotsGate | None,
        extras: Listeners,
    ) -> None:
        """``frontier`` hands out the leases and, as ``frontier.hosts``, hears what is learnt
        about their hosts and gives the retry policy. ``robots`` None: robots.txt is not asked
        (``politeness.robots`` off)."""
        self.hosts = frontier.hosts
        self.retries = frontier.hosts.policy
        self.stats = stats
        self.traps = traps
        self.extras = extras
        self.on_response = extras.on_response  # the user's on_response and the archives
        self.frontier = frontier
        self.fetcher = fetcher
        self.parse_pool = parse_pool
        self.sink = sink
        self.robots = robots
        self._on_the_wire: set[asyncio.Timeout] = set()
        """The scopes of the leases not received yet, for :meth:`cut_off`."""
        self._cut_at: float | None = None
        """When :meth:`cut_off` was called (loop time): a scope entered later expires at once."""

    async def run(self) -> None:
        frontier = self.frontier
        while (lease := await frontier.lease()) is not None:
            outcome = await self._outcome(lease)
            if outcome is None:
                continue  # handed back to the frontier
            frontier.release(lease, fetched=not outcome.page.skipped)
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
            await self.extras.room()  # the archives' backpressure

    async def _outcome(self, lease: Lease) -> Outcome | None:
        """What to record for ``lease``, its rows encoded for the sink; None if it was handed
        back to the frontier.

        The one place where an exception raised while handling one URL becomes that URL's
        failure (:class:`InternalError`, see :mod:`crawler.errors`) instead of the crawl's end:
        out of the trap guard, the address guard, robots.txt, the fetch, the parse worker or
        the encoding of the page's rows. A :class:`FatalError` is the crawl's own machinery
        failing and ends the run; cancellation is not an ``Exception`` and passes."""
        try:
            received = await self._receive(lease)
            if received is None:
                return None
            outcome = (
                await self.parse_pool.outcome(lease, received, _now())
                if isinstance(received, Response)
                else received
            )
            follow = self.traps.worth_following(outcome.follow)
            if follow is not outcome.follow:
                outcome = replace(outcome, follow=follow, rows=None)  # rows: encoded anew
            if outcome.rows is None:
                # Here rather than in the sink's batch, where one page's bad row would fail
                # every page of the batch.
                outcome = replace(outcome, rows=rows_of(outcome))
        except FatalError:
            raise
        except Exception as exc:
            return self._internal_error(lease, exc)
        return outcome

    def _internal_error(self, lease: Lease, exc: Exception) -> Outcome:
        error = exc if isinstance(exc, PageError) else InternalError.of(exc)
        log.warning(
            "%s: %s; recorded as its failure, the crawl goes on",
            lease.url,
            error.describe(),
            # The traceback is for whoever debugs it; the line alone says what happened.
            exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
            extra={
                "event": "internal_error",
                "url": lease.url,
                "host": lease.host,
                "reason": error.reason,
            },
        )
        outcome = failed_outcome(lease, error, _now())
        return replace(outcome, rows=rows_of(outcome))

    def cut_off(self) -> int:
        """Cancel every lease still on the wire (the grace period is over), now and from now
        on; pages already received are parsed and stored as usual. Returns how many were
        cancelled. Synchronous: the engine's grace timer calls it."""
        now = asyncio.get_running_loop().time()
        self._cut_at = now
        cut = [scope for scope in self._on_the_wire if not scope.expired()]
        for scope in cut:
            scope.reschedule(now)
        return len(cut)

    async def _receive(self, lease: Lease) -> Outcome | Response | None:
        """:meth:`_handle` in a scope :meth:`cut_off` cancels. A lease cut off goes back to
        the frontier unfetched (in the database it stays leased, and the next run's start
        makes it pending): None, as for any lease handed back."""
        scope = asyncio.timeout(self._cut_at)
        try:
            async with scope:
                self._on_the_wire.add(scope)
                try:
                    return await self._handle(lease)
                finally:
                    self._on_the_wire.discard(scope)
        except TimeoutError:
            if not scope.expired():
                raise
            # Nothing in _handle awaits after handing a lease back, so it is still ours.
            self.frontier.defer(lease)
            return None

    async def _handle(self, lease: Lease) -> Outcome | Response | None:
        """The lease's outcome without a response to parse, the response, or None if the
        lease was handed back to the frontier (retry or deferral)."""
        if (reason := await self.traps.admit(lease)) is not None:
            return skipped_outcome(lease, reason, _now())
        try:
            # Before robots.txt too: asking a blocked host for it would be a connection.
            await self.fetcher.check_address(lease.url)
        except AddressBlocked as blocked:
            return skipped_outcome(lease, blocked.describe(), _now())
        if self.robots is not None:
            verdict, policy = await self.robots.check(lease)
            if verdict is Verdict.DISALLOWED:
                return skipped_outcome(lease, "robots_disallowed", _now())
            if verdict is Verdict.UNREACHABLE:
                return self._robots_unavailable(lease, policy)
            if verdict is Verdict.WAIT_TURN:
                self.frontier.defer(lease)
                return None
        return await self._fetch(lease)

    def _robots_unavailable(self, lease: Lease, policy: RobotsPolicy) -> Outcome | None:
        # RFC 9309: an unreachable robots.txt means "disallow all" for now; the URL stays
        # pending and the host waits until robots.txt is asked again; unless its certificate
        # did not verify, which every request to the origin meets: waiting would end, after
        # max_retries cool-downs, in "robots.txt unreachable", which hides why. The page
        # fails as its own request would, with that reason, now. (Only TLS: robots.txt's own
        # bad answer, say an encoding not asked for, says nothing of the page's.)
        if isinstance(policy.failure, TlsFailed):
            return failed_outcome(lease, policy.failure, _now())
        wait = self.retries.robots_unreachable_retry
        self.hosts.cool_down(lease.host, wait)
        if self._retry(lease, wait):
            return None
        detail = f"HTTP {policy.status}" if policy.status else "unreachable"
        return skipped_outcome(lease, f"robots_unavailable: robots.txt {detail}", _now())

    async def _fetch(self, lease: Lease) -> Outcome | Response | None:
        """Fetch one lease: its response, its outcome if it failed, None if it was handed back
        for a retry."""
        try:
            # Checked in _handle; a changed DNS answer is caught again at connect time.
            response = await self.fetcher.fetch(lease.url, checked=True)
        except AddressBlocked as blocked:  # refused by the connect-time check
            return skipped_outcome(lease, blocked.describe(), _now())
        except PageError as error:
            if error.retryable:
                if error.blames_host:
                    self._host_failed(lease, for_host=error.speaks_for_host)
                if self._retry(lease):
                    return None
            return failed_outcome(lease, error, _now())
        if self.on_response is not None:
            self.on_response(lease, response)
        status = response.status
        self.hosts.responded(lease.host, response.elapsed, status)
        if status in RETRY_STATUSES:
            retry_after = None
            if status in THROTTLE_STATUSES:
                retry_after = self.retries.retry_after(response.retry_after)
                if retry_after is not None and retry_after > self.retries.max_retry_after:
                    self._defer_host(lease, retry_after)
                    return None
            counted = self._host_failed(lease, for_host=status == 429)
            delay = retry_after  # one path's answer: only this URL waits (None: backoff)
            if status in THROTTLE_STATUSES and counted:
                cooldown = self.hosts.throttled(lease.host, status, retry_after)
                if cooldown is not None:  # the host's answer: all its URLs wait
                    delay = cooldown
                    self.stats.throttled += 1
            if self._retry(lease, delay):
                return None
        else:
            self.hosts.succeeded(lease.host)
        return response

    def _host_failed(self, lease: Lease, *, for_host: bool) -> bool:
        """Count the failure against the host's circuit breaker, if it counts (returned)."""
        # A URL's retries are its own budget: only its first failure counts against its host,
        # unless the failure speaks for the whole host (no connection at all, a 429). Counting
        # every retry let twenty broken pages among hundreds of good ones trip the breaker
        # (and cool the host) again and again once their retries were all that was left.
        if lease.attempt and not for_host:
            return False
        host = lease.host
        if self.hosts.failed(host):
            self.stats.hosts_paused += 1
            log.warning(
                "%s keeps failing: paused for %gs (circuit breaker)",
                host,
                self.retries.circuit_breaker_pause,
                extra={
                    "event": "host_paused",
                    "host": host,
                    "reason": "circuit_breaker",
                    "seconds": self.retries.circuit_breaker_pause,
                },
            )
        return True

    def _defer_host(self, lease: Lease, seconds: float) -> None:
        # Waiting it out in this run would hold the run open (and show 0 pages/s) for as long
        # as the cap allows and then ask again too early: leave the host to a later run.
        self.frontier.defer_host(lease, seconds)
        self.stats.hosts_deferred += 1
        log.warning(
            "%s asks to wait %gs, more than politeness.max_retry_after: its URLs are left for "
            "a later run",
            lease.host,
            seconds,
            extra={
                "event": "host_deferred",
                "host": lease.host,
                "url": lease.url,
                "seconds": seconds,
            },
        )

    def _retry(self, lease: Lease, delay: float | None = None) -> bool:
        """Hand ``lease`` back for another attempt after ``delay`` (None: the policy's
        backoff); False when its retries are spent."""
        delay = self.retries.retry_delay(lease.attempt, delay)
        if delay is None:
            return False
        self.frontier.retry(lease, delay)
        self.stats.retries += 1
        return True


class _UtcStamps:
    """``pages.fetched_at`` for now: ISO 8601 UTC with milliseconds, as ``datetime``'s
    ``isoformat(timespec="milliseconds")`` writes it. Every page asks, on the event loop, so
    the part down to the second is formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        return self.at(time.time_ns())

    def at(self, ns: int) -> str:
        """The stamp of ``ns`` nanoseconds since the epoch."""
        second, ms = divmod(ns // 1_000_000, 1000)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{ms:03d}+00:00"


_now = _UtcStamps()
