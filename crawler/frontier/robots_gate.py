"""The robots.txt gate: the one question a worker asks robots.txt about a lease, and the one
place a robots.txt answer goes from once it is learned.

:meth:`RobotsGate.check` gets the origin's policy from the
:class:`~crawler.frontier.robots.RobotsCache` (fetching it once per origin and expiry) and says
whether the lease may be fetched. The first time a policy (or a refetched one) is seen, it is
applied where it matters, each once: the host's Crawl-delay to the frontier's host feedback, the
record of it to the sink (written in the sink's next batch), the count to the stats, and the
sitemaps it names to the sitemap seeder.

What has been learnt is remembered with the policy, not with the origin: a weak set of the
policies applied, so it is as bounded as the cache that holds them, and a refetched (or
forgotten and fetched again) policy is new. The Crawl-delay is also remembered by the host's
slot (:meth:`HostFeedback.knows_crawl_delay`): a slot the frontier forgot and made again
(``crawl.max_hosts_in_memory``) gets it again from the cached policy, before its first request.
"""

from __future__ import annotations

import enum
import logging
import weakref

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
        self._learnt: weakref.WeakSet[RobotsPolicy] = weakref.WeakSet()
        """The policies applied and recorded, for as long as they live."""

    async def check(self, lease: Lease) -> tuple[Verdict, RobotsPolicy]:
        """What robots.txt says about ``lease``, and the policy that says it."""
        cache = self._cache
        origin = origin_of(lease.url)
        policy = cache.cached(origin)
        fresh = policy is None
        if policy is None:
            policy = await cache.policy(origin)
        if policy not in self._learnt:
            self._learnt.add(policy)
            await self._learn(lease.host, policy)
        elif policy.crawl_delay is not None and not self._hosts.knows_crawl_delay(lease.host):
            # A new slot for a host forgotten since: it takes its turn as after a fetch.
            self._hosts.set_crawl_delay(lease.host, policy.crawl_delay)
            fresh = True
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
        return f"<RobotsGate learnt={len(self._learnt)} {self._cache!r}>"

    def __len__(self) -> int:
        """Policies remembered as applied (no more than are alive)."""
        return len(self._learnt)
