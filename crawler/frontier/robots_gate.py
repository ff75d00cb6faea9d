"""The robots.txt gate: the one question a worker asks robots.txt about a lease, and the one
place a robots.txt answer goes from once it is learned.

:meth:`RobotsGate.check` gets the origin's policy from the
:class:`~crawler.frontier.robots.RobotsCache` (fetching it once per origin and expiry) and says
whether the lease may be fetched. The first time a policy (or a refetched one) is seen, it is
applied where it matters, each once: the host's Crawl-delay to the frontier's host feedback, the
record of it to the sink (written in the sink's next batch), the count to the stats, and the
sitemaps it names to the sitemap seeder.
"""

from __future__ import annotations

import enum
import logging

from crawler.frontier.host_feedback import HostFeedback
from crawler.frontier.robots import RobotsCache, RobotsPolicy, origin_of
from crawler.frontier.sitemaps import SitemapSeeder
from crawler.models import Lease, RobotsRecord
from crawler.observe.stats import Stats
from crawler.store.sink import Sink

log = logging.getLogger("crawler")


class Verdict(enum.Enum):
    """What robots.txt says about one lease."""

    FETCH = "fetch"
    DISALLOWED = "disallowed"
    """Its rules disallow the URL: record it skipped."""
    UNREACHABLE = "unreachable"
    """robots.txt could not be read (RFC 9309: disallow all for now): the host waits."""
    WAIT_TURN = "wait_turn"
    """Allowed, but this host's turn went to fetching robots.txt: the lease goes back."""


class RobotsGate:
    """See the module docstring. One per crawl, shared by all the workers."""

    def __init__(
        self,
        cache: RobotsCache,
        *,
        hosts: HostFeedback,
        sink: Sink,
        stats: Stats,
        sitemaps: SitemapSeeder | None,
    ) -> None:
        self._cache = cache
        self._hosts = hosts
        self._sink = sink
        self._stats = stats
        self._sitemaps = sitemaps
        self._seen: dict[str, float] = {}
        """origin -> fetched_at of the policy last applied and recorded."""

    async def check(self, lease: Lease) -> tuple[Verdict, RobotsPolicy]:
        """What robots.txt says about ``lease``, and the policy that says it."""
        cache = self._cache
        origin = origin_of(lease.url)
        policy = cache.cached(origin)
        fresh = policy is None
        if policy is None:
            policy = await cache.policy(origin)
        if self._seen.get(origin) != policy.fetched_at:
            self._seen[origin] = policy.fetched_at
            await self._learn(lease.host, policy)
        if policy.disallow_all and not policy.allow_all:
            return Verdict.UNREACHABLE, policy
        if not policy.allows(lease.url):
            return Verdict.DISALLOWED, policy
        if fresh and self._hosts.delay(lease.host) > 0:
            # This slot's request went to robots.txt: the page waits its turn like any other.
            return Verdict.WAIT_TURN, policy
        return Verdict.FETCH, policy

    async def _learn(self, host: str, policy: RobotsPolicy) -> None:
        self._stats.robots_fetched += 1
        self._hosts.set_crawl_delay(host, policy.crawl_delay)
        # Through the sink, in its next batch: waiting here for a transaction of its own
        # held this worker (and a host's first page) back at the start of a crawl.
        await self._sink.put(
            RobotsRecord(policy.origin, policy.status, policy.crawl_delay, policy.sitemaps)
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
        if self._sitemaps is not None:
            self._sitemaps.learned(policy)

    def __repr__(self) -> str:
        return f"<RobotsGate origins={len(self._seen)} {self._cache!r}>"
