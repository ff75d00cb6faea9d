"""Per-host politeness: one small slot per host (``host[:port]``), pure, with no clock of its own.

Every method takes the current time as a number, so the rules are tested with plain numbers:
no event loop, no sleeping. The frontier owns the slots and the clock; how long a cooldown or a
circuit-breaker pause lasts is the :class:`~crawler.frontier.retries.RetryPolicy`'s to say.

Rules (the defaults are in ``configs/default.toml``, section ``[politeness]``):

- at most ``concurrency`` requests to one host are in flight at once;
- two requests to one host start at least ``delay`` seconds apart (the configured delay, or the
  host's robots.txt Crawl-delay if larger, capped; optionally jittered), counted from when each
  request was really sent; with a delay, nothing more starts on a host while the URL handed
  out last has not been sent yet (a slow connect must not let the next one overtake it);
- a host in cooldown (a 429/503 with or without Retry-After, robots.txt unavailable, or a
  tripped circuit breaker) starts nothing until the cooldown ends;
- a retry waits in its host's slot until its not-before time, and still obeys all of the above;
- after ``circuit_breaker`` consecutive failures the host is paused; while it is "tripped", one
  more failure pauses it again at once, and one success closes the breaker. The caller counts
  a URL once (its retries are its own budget: a broken corner of a site is not the host
  failing), except failures that speak for the host (no connection, 429), counted each time;
- a 429 speaks for the host (a cooldown for all its URLs); a 503 does only once
  :data:`HOST_WIDE_503_PATHS` distinct URLs in a row have failed, else it delays that URL alone.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from dataclasses import dataclass, field

from crawler.config import PolitenessSection
from crawler.frontier.retries import RetryPolicy
from crawler.models import Lease

_tiebreak = itertools.count()

HOST_WIDE_503_PATHS = 3
"""Distinct URLs failing in a row (this 503 included, no success between) from which a 503 is
the host's answer rather than one path's: enough that a few broken pages among good ones never
cool the whole host, few enough that a host down for maintenance gets only a few requests."""


def configured_delay(politeness: PolitenessSection, host: str) -> float:
    """``host``'s delay as configured: its ``[politeness.hosts]`` override, else the default."""
    override = politeness.hosts.get(host)
    if override is not None and override.delay is not None:
        return override.delay
    return politeness.per_host_delay


class DelayJitter:
    """A host's delay as each request sees it: spread evenly over ``delay * (1 ± jitter)``
    (``politeness.delay_jitter``), so that many hosts with one delay do not move in step.
    ``rng`` is for tests that want a known sequence."""

    __slots__ = ("_jitter", "_random")

    def __init__(self, jitter: float, rng: random.Random | None = None) -> None:
        self._jitter = jitter
        self._random = rng or random.Random()

    def __call__(self, delay: float) -> float:
        if not self._jitter or not delay:
            return delay
        return delay * self._random.uniform(1 - self._jitter, 1 + self._jitter)


@dataclass(slots=True, eq=False)
class HostSlot:
    """One host's politeness state and its window of claimed URLs."""

    host: str
    concurrency: int
    delay: float
    own_delay: float = 0.0
    """The delay without adapting (configured, or robots.txt's Crawl-delay): with
    ``politeness.adaptive`` :attr:`delay` follows the host's response time, never below this."""
    window: deque[Lease] = field(default_factory=deque)
    """Claimed (``leased`` in the database) URLs waiting for a worker, in discovery order."""
    retries: list[tuple[float, int, Lease]] = field(default_factory=list)
    """Heap of (not-before time, tiebreak, lease) for URLs handed out before that go again:
    after a transient failure, or handed back unfetched (deferred)."""
    active: int = 0
    """Requests to this host in flight now."""
    next_start: float = float("-inf")
    """Earliest time the next request may start: ``delay`` after the last request sent, or
    after the last URL handed out whose request has not gone yet (its turn is reserved)."""
    sent_next: float = float("-inf")
    """Earliest time the next request may start counting only requests really sent."""
    last_sent: float = float("-inf")
    """When the last request to this host went out."""
    unsent: Lease | None = None
    """The URL handed out last, while its request has not gone out. With a delay the host
    starts nothing else until it has: the next request is spaced from that send, which a slow
    connect or a busy loop can put well after the turn it was given (with two allowed at once,
    the next URL would otherwise go first, or right after it)."""
    cooldown_until: float = float("-inf")
    """Nothing starts before this (rate limited, robots.txt unavailable, circuit breaker)."""
    failures: int = 0
    """Consecutive failures counted against the host (see :meth:`failed`); a success resets it."""
    throttles: int = 0
    """Consecutive 429/503 answers without Retry-After (the cooldown doubles with each)."""
    tripped: bool = False
    """The circuit breaker is open: the host was paused and has not succeeded since."""
    knows_crawl_delay: bool = False
    """robots.txt's Crawl-delay was applied to :attr:`own_delay` (the robots gate applies it
    again to a new slot, so a slot that learnt one may be forgotten)."""

    @classmethod
    def configured(cls, politeness: PolitenessSection, host: str) -> HostSlot:
        """A new slot for ``host`` with its configured concurrency and delay."""
        override = politeness.hosts.get(host)
        concurrency = override and override.concurrency
        delay = configured_delay(politeness, host)
        return cls(host, concurrency or politeness.per_host_concurrency, delay, delay)

    def has_work(self) -> bool:
        return bool(self.window) or bool(self.retries)

    def idle(self, now: float) -> bool:
        """Whether forgetting this slot at ``now`` loses nothing a rule still needs, so a new
        :meth:`configured` slot may take its place: nothing in flight or waiting, no delay,
        cooldown or breaker pause still to wait out, no failure or throttle counted, and no
        adapted delay (:attr:`own_delay` is the configured delay or robots.txt's Crawl-delay,
        which the robots gate gives a new slot again before its first request)."""
        return (
            not self.active
            and not self.window
            and not self.retries
            and self.unsent is None
            and self.next_start <= now
            and self.cooldown_until <= now
            and not self.tripped
            and not self.failures
            and not self.throttles
            and self.delay == self.own_delay
        )

    def ready_at(self, new_urls: bool = True) -> float | None:
        """Earliest time a request to this host may start, or None if none can be started
        (no work, or at the concurrency cap: a release will ask again). With ``new_urls``
        False only :attr:`retries` count (the window's URLs were never handed out)."""
        turn = self.turn_at()
        if turn is None:
            return None
        if self.window and new_urls:
            return turn
        if self.retries:
            return max(turn, self.retries[0][0])
        return None

    def turn_at(self) -> float | None:
        """Earliest time the host's next request may start, whatever it is for; None while
        the rules let none start (at the concurrency cap, or the last one not sent yet)."""
        if self.active >= self.concurrency or (self.delay and self.unsent is not None):
            return None
        return max(self.next_start, self.cooldown_until)

    def begin(self, now: float, spacing: float | None = None) -> Lease:
        """Take the next URL (a due retry first): its request begins at ``now``.

        Callers only begin a URL of a slot whose :meth:`ready_at` is at or before ``now``.
        """
        lease = heapq.heappop(self.retries)[2] if self.retry_due(now) else self.window.popleft()
        self.reserve(lease, now, spacing)
        return lease

    def reserve(self, request: Lease, now: float, spacing: float | None = None) -> None:
        """Count ``request`` (a URL handed out, or a turn for a request that is not a URL's,
        see :meth:`crawler.frontier.frontier.Frontier.turn`) as begun at ``now``: it holds a place
        under the concurrency cap until :meth:`finish`, and the next starts ``spacing`` (the
        delay) later. Callers only reserve when :meth:`turn_at` is at or before ``now``."""
        self.active += 1
        self.unsent = request
        self.next_start = now + (self.delay if spacing is None else spacing)

    def retry_due(self, now: float) -> bool:
        """Whether :meth:`begin` at ``now`` takes a retry rather than a URL of the window."""
        return bool(self.retries) and self.retries[0][0] <= now

    def sent(self, now: float, spacing: float, url: str) -> None:
        """A request for ``url`` went out to this host at ``now``: the next starts ``spacing``
        later. (A request not for a URL handed out, such as robots.txt, counts as well.)"""
        if self.unsent is not None and self.unsent.url == url:
            self.unsent = None
        self.last_sent = now
        self.sent_next = max(self.sent_next, now + spacing)
        self.next_start = max(self.next_start, self.sent_next)

    def set_delay(self, delay: float) -> None:
        """Change the delay (robots.txt's Crawl-delay, or the adapted delay); a longer one also
        spaces the next request from the last one already sent (the robots.txt request
        itself)."""
        self.delay = delay
        self.sent_next = max(self.sent_next, self.last_sent + delay)
        self.next_start = max(self.next_start, self.sent_next)

    def finish(self, lease: Lease, fetched: bool = True) -> None:
        """``lease``, handed out, is done with (recorded, or handed back for a retry).
        ``fetched`` False: no request went out for it (robots.txt forbids it, a trap budget,
        the address guard), so the turn :meth:`reserve` took for it is given back, unless
        another URL of this host is still out: its reservation may be the one that counts."""
        if self.unsent is not None and self.unsent.id == lease.id:
            self.unsent = None  # it never went out (or did and failed): nothing to wait for
        self.active -= 1
        if not fetched and not self.active:
            self.next_start = self.sent_next

    def schedule_retry(self, lease: Lease, not_before: float) -> None:
        heapq.heappush(self.retries, (not_before, next(_tiebreak), lease))

    def cool_down(self, until: float) -> None:
        """Start nothing before ``until`` (an earlier cooldown never shortens a later one)."""
        self.cooldown_until = max(self.cooldown_until, until)

    def succeeded(self) -> None:
        self.failures = 0
        self.throttles = 0
        self.tripped = False

    def failed(self, now: float, policy: RetryPolicy) -> bool:
        """Count a failure against the host; True when this one trips (or re-trips) the circuit
        breaker. Callers count a URL's first failure, and every failure that speaks for the
        host; not a retry's 5xx or dropped connection."""
        self.failures += 1
        threshold = policy.circuit_breaker
        if threshold and (self.tripped or self.failures >= threshold):
            self.tripped = True
            self.cool_down(now + policy.circuit_breaker_pause)
            return True
        return False

    def speaks_for_host(self, status: int) -> bool:
        """Whether a 429/503 (already counted by :meth:`failed`) is the host's answer, so the
        whole host cools down, rather than one URL's."""
        return status == 429 or self.failures >= HOST_WIDE_503_PATHS

    def throttled(self, now: float, retry_after: float | None, policy: RetryPolicy) -> float:
        """A 429/503: cool down as long as ``policy`` says for Retry-After, or for its
        cooldown doubling while it lasts. Returns the cooldown in seconds."""
        if retry_after is None:
            self.throttles += 1
        seconds = policy.throttle_cooldown(retry_after, self.throttles)
        self.cool_down(now + seconds)
        return seconds

    def __repr__(self) -> str:
        return (
            f"<HostSlot {self.host} active={self.active}/{self.concurrency} "
            f"window={len(self.window)} retries={len(self.retries)}>"
        )
