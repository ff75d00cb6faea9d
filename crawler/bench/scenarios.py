"""The four scenarios of issue 4, and the targets each one is judged by.

==============  =========================================================================
single-host     one host, no delay: raw speed; the one to compare peers on
fan-out         1,000 hosts, per-host delay 1 s: scheduling against the politeness bound
latency         100 ms per response, 500 requests in flight: overlap, against the same
                crawl of the same web answering at once (its CPU-bound rate)
big-frontier    a tree site whose pages each link 100 new URLs: 1,000,000 discovered URLs
                from 10,000 pages, then 10,000 more pages that add none (the drain): memory
broad           ``crawl.scope = "any"`` over 2,000 small hosts linking across: memory per
                host (``rss_per_host``), with ``crawl.max_hosts_in_memory`` as configured
discovery       ``crawl.scope = "any"`` from one seed over 10,000 hosts met through links as
                the crawl goes: the hosts met outrun those fetched (memory per host, pages/s)
==============  =========================================================================

``scale`` shrinks budgets and sites together (``crawl bench --scale 0.1`` for a quick look);
the targets are only meaningful at scale 1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from crawler.bench.web import WebSpec

SPACING_TOLERANCE = 0.005
"""Seconds a request may arrive earlier than the delay says and still count as compliant.
The server's arrival stamps are the kernel's (crawler.bench.server), so this only covers the
time between a crawler's clock and its packet reaching the TCP stack."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    web: WebSpec
    budget: int
    """Pages each crawler may fetch."""
    concurrency: int
    """Requests in flight at once (every crawler gets the same)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Our config on top of ``configs/bench.toml`` (dotted keys)."""
    time_limit: float = 300.0
    """Seconds each crawler gets; it stops itself then (and is killed a minute later)."""
    track_frontier: bool = False
    """Sample the frontier's size while crawling (big-frontier)."""
    compare_peers: bool = False
    """Run the peers (``--vs``) here too. Only single-host compares like with like: the peers
    key politeness by host name (all ports of 127.0.0.1 are one host to them) and keep their
    frontier in memory."""
    latency_reference: bool = False
    """Before each of our runs, run it once more on the same web with the latency turned off
    (:func:`reference_name`): the CPU-bound rate the latency target is judged by, measured
    side by side with the run it judges."""
    repeat: int = 1
    """Runs of each crawler when ``crawl bench --repeat`` does not say."""

    @property
    def per_host_delay(self) -> float:
        return float(self.overrides.get("politeness.per_host_delay", 0.0))

    @property
    def per_host_concurrency(self) -> int:
        return int(self.overrides.get("politeness.per_host_concurrency", self.concurrency))

    def scaled(self, scale: float) -> Scenario:
        if scale == 1:
            return self
        web = self.web
        if web.links == "tree":
            # Keep the shape (10,000 parents of 100 new URLs each, then a drain), smaller.
            pages = max(200, int(web.pages * scale))
            web = dataclasses.replace(web, pages=pages)
            budget = max(50, int(self.budget * scale))
        elif web.hosts > 1:
            hosts = max(2, int(web.hosts * scale))
            web = dataclasses.replace(web, hosts=hosts)
            budget = max(20, int(self.budget * scale))
        else:
            web = dataclasses.replace(web, pages=max(50, int(web.pages * scale)))
            budget = max(20, int(self.budget * scale))
        # The description gives the full-size figures ("1,000 hosts"); the run's own are printed
        # beside it, so say that these are not them.
        description = f"{self.description} [scaled x{scale:g}]"
        return dataclasses.replace(self, description=description, web=web, budget=budget)


def reference_name(contender: str) -> str:
    """What the no-latency run of ``contender`` is called (:attr:`Scenario.latency_reference`)."""
    return f"{contender}, no latency"


def _single_host() -> Scenario:
    return Scenario(
        name="single-host",
        description="one host, no delay: raw speed (20 KB pages, 35 links each)",
        web=WebSpec(hosts=1, pages=20_000, page_bytes=20_000, links_per_page=35),
        budget=10_000,
        concurrency=100,
        overrides={"politeness.per_host_concurrency": 100, "politeness.per_host_delay": 0.0},
        compare_peers=True,
    )


def _fan_out() -> Scenario:
    return Scenario(
        name="fan-out",
        description=(
            "1,000 hosts, per-host delay 1 s, 2 per host at once; 5-35 ms answers, 1% errors, "
            "2% redirects, 1% robots-disallowed links, 5% cross-host links"
        ),
        web=WebSpec(
            hosts=1_000,
            pages=100,
            page_bytes=20_000,
            links_per_page=35,
            cross_host=0.05,
            latency_ms=20.0,
            latency="uniform",
            error_rate=0.01,
            redirect_rate=0.02,
            disallowed_rate=0.01,
        ),
        # 90 pages a host (of 100, and ~48 more URLs: redirect targets, disallowed links).
        # Two seconds of any run are not scheduling: a host's first page must wait 1 s after
        # its robots.txt request, and a page that failed in the last second waits up to 1 s
        # for its host's next turn. They weighed 3.5% of the 60,000-page run (62 s, with the
        # server seeing 1,000 requests a second in between), and weigh 2.4% of this one.
        budget=90_000,
        concurrency=200,
        overrides={"politeness.per_host_concurrency": 2, "politeness.per_host_delay": 1.0},
        time_limit=240.0,
    )


def _latency() -> Scenario:
    return Scenario(
        name="latency",
        description="one host, 100 ms per answer, 500 in flight: overlap",
        # Twice single-host's budget: at 100 ms an answer, three round trips (robots.txt, the
        # seed, its links) pass before 500 requests can be in flight, and that start weighs
        # half as much in a run twice as long. The site is twice as large, so the budget ends
        # the run, not a frontier running dry.
        web=WebSpec(hosts=1, pages=40_000, page_bytes=20_000, links_per_page=35, latency_ms=100),
        budget=20_000,
        concurrency=500,
        overrides={"politeness.per_host_concurrency": 500, "politeness.per_host_delay": 0.0},
        # The CPU-bound rate is this crawl's own without latency, run just before it.
        # Single-host's rate differs in more than latency (100 in flight, not 500: 1,457
        # against 1,350-1,380 pages/s in one session) and is measured minutes earlier, on a
        # machine whose speed swings 15-40% from minute to minute.
        latency_reference=True,
        # Its target is a ratio of two rates on a machine whose speed swings from one run to
        # the next: single pairs of runs gave shares of 0.85-1.01 (ten pairs in two sessions,
        # three below 0.9), so the medians of three pairs judge it.
        repeat=3,
    )


def _big_frontier() -> Scenario:
    return Scenario(
        name="big-frontier",
        description=(
            "tree site, 100 new links per page: 1,000,000 URLs discovered by 10,000 pages, "
            "then 10,000 pages that add none (the drain)"
        ),
        web=WebSpec(hosts=1, pages=1_000_001, page_bytes=0, links_per_page=100, links="tree"),
        budget=20_000,
        concurrency=100,
        overrides={"politeness.per_host_concurrency": 100, "politeness.per_host_delay": 0.0},
        time_limit=600.0,
        track_frontier=True,
    )


def _broad() -> Scenario:
    return Scenario(
        name="broad",
        description=(
            'scope "any": 2,000 hosts x 10 pages, 30% cross-host links, 2 per host at once: '
            "memory per host"
        ),
        web=WebSpec(hosts=2_000, pages=10, page_bytes=2_000, links_per_page=10, cross_host=0.3),
        budget=20_000,
        concurrency=100,
        overrides={
            "crawl.scope": "any",
            "politeness.per_host_concurrency": 2,
            "politeness.per_host_delay": 0.0,
        },
        time_limit=300.0,
    )


def _discovery() -> Scenario:
    return Scenario(
        name="discovery",
        description=(
            'scope "any" from one seed: 10,000 hosts x 4 pages, half the links to other '
            "hosts, met as the crawl goes: memory per host"
        ),
        web=WebSpec(
            hosts=10_000,
            pages=4,
            page_bytes=2_000,
            links_per_page=10,
            cross_host=0.5,
            seed_hosts=1,
        ),
        budget=20_000,
        concurrency=100,
        overrides={
            "crawl.scope": "any",
            "politeness.per_host_concurrency": 2,
            "politeness.per_host_delay": 0.0,
        },
        time_limit=300.0,
    )


SCENARIOS = {
    s.name: s
    for s in (_single_host(), _fan_out(), _latency(), _big_frontier(), _broad(), _discovery())
}


def scenario(name: str, scale: float = 1.0) -> Scenario:
    try:
        return SCENARIOS[name].scaled(scale)
    except KeyError:
        raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})") from None
