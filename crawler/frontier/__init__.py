"""Which URL is fetched next, when, and whether it may be: the crawl's schedule and its politeness.

- :mod:`~crawler.frontier.frontier`: the :class:`Frontier` (per-host windows of URLs claimed
  from the database, leases handed to workers, the end of the crawl);
- :mod:`~crawler.frontier.hosts`: its host table (the hosts held in memory, the idle ones
  forgotten past ``crawl.max_hosts_in_memory``), and :mod:`~crawler.frontier.paging`: the
  hosts left in the database paged back in;
- :mod:`~crawler.frontier.budget` and :mod:`~crawler.frontier.host_budget`: the page budgets
  (the crawl's; per host and per registrable domain);
- :mod:`~crawler.frontier.claims`, :mod:`~crawler.frontier.schedule`,
  :mod:`~crawler.frontier.turns`: its claim service, its ready heap and timer, and turns for
  requests that are not a URL's lease (sitemaps);
- :mod:`~crawler.frontier.politeness` (one slot per host), :mod:`~crawler.frontier.host_feedback`
  (what a host's answers do to its slot), :mod:`~crawler.frontier.adaptive` (its delay following
  its response time), :mod:`~crawler.frontier.retries` (the retry and cooldown policy);
- :mod:`~crawler.frontier.robots` (robots.txt per origin) and :mod:`~crawler.frontier.robots_gate`
  (the question a worker asks it);
- :mod:`~crawler.frontier.traps` (URL spaces without end), :mod:`~crawler.frontier.seeds` (the
  seeds file), :mod:`~crawler.frontier.sitemaps` (sitemaps as seeds);
- :mod:`~crawler.frontier.forgetting`: forgetting idle hosts' entries past
  ``crawl.max_hosts_in_memory``, the one mechanism of the frontier, robots.txt cache and traps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.lazy import lazy_exports

if TYPE_CHECKING:
    from crawler.frontier.adaptive import AdaptiveDelay
    from crawler.frontier.frontier import Clock, Frontier, FrontierState
    from crawler.frontier.host_budget import HostBudgets
    from crawler.frontier.hosts import HostTable
    from crawler.frontier.paging import HostPager
    from crawler.frontier.retries import RETRY_STATUSES, THROTTLE_STATUSES, RetryPolicy
    from crawler.frontier.robots import (
        RobotsCache,
        RobotsPolicy,
        fetch_robots,
        origin_of,
        robots_token,
    )
    from crawler.frontier.robots_gate import RobotsGate, Verdict
    from crawler.frontier.seeds import Seeds, parse_seeds, read_seeds
    from crawler.frontier.sitemaps import SitemapSeeder
    from crawler.frontier.traps import SessionStripper, TrapGuard, repeated_segments

__all__ = [
    "RETRY_STATUSES",
    "THROTTLE_STATUSES",
    "AdaptiveDelay",
    "Clock",
    "Frontier",
    "FrontierState",
    "HostBudgets",
    "HostPager",
    "HostTable",
    "RetryPolicy",
    "RobotsCache",
    "RobotsGate",
    "RobotsPolicy",
    "Seeds",
    "SessionStripper",
    "SitemapSeeder",
    "TrapGuard",
    "Verdict",
    "fetch_robots",
    "origin_of",
    "parse_seeds",
    "read_seeds",
    "repeated_segments",
    "robots_token",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AdaptiveDelay": "crawler.frontier.adaptive",
        "Clock": "crawler.frontier.frontier",
        "Frontier": "crawler.frontier.frontier",
        "FrontierState": "crawler.frontier.frontier",
        "HostBudgets": "crawler.frontier.host_budget",
        "HostTable": "crawler.frontier.hosts",
        "HostPager": "crawler.frontier.paging",
        "RETRY_STATUSES": "crawler.frontier.retries",
        "RetryPolicy": "crawler.frontier.retries",
        "THROTTLE_STATUSES": "crawler.frontier.retries",
        "RobotsCache": "crawler.frontier.robots",
        "RobotsPolicy": "crawler.frontier.robots",
        "fetch_robots": "crawler.frontier.robots",
        "origin_of": "crawler.frontier.robots",
        "robots_token": "crawler.frontier.robots",
        "RobotsGate": "crawler.frontier.robots_gate",
        "Verdict": "crawler.frontier.robots_gate",
        "Seeds": "crawler.frontier.seeds",
        "parse_seeds": "crawler.frontier.seeds",
        "read_seeds": "crawler.frontier.seeds",
        "SitemapSeeder": "crawler.frontier.sitemaps",
        "SessionStripper": "crawler.frontier.traps",
        "TrapGuard": "crawler.frontier.traps",
        "repeated_segments": "crawler.frontier.traps",
    },
)
