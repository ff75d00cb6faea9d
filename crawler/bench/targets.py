"""Issue 4's targets, checked against one run's figures. A check whose inputs are missing (a
peer not run, a scenario not in this run) says so instead of passing or failing.

- single-host: ours >= 8x Scrapy's pages/s, >= 4x crawlee's, >= 0.6x the bare aiohttp loop
  (stretch 0.8x);
- fan-out: >= 95% of the politeness bound (hosts / delay); per-host concurrency and spacing as
  seen by the server never broken; no request robots.txt disallows. The bound is a rate, so
  on a slow machine it is CPU that runs out: how busy the machine's cores were is shown beside
  it, and a share missed on a saturated machine (:data:`SATURATED`) says so;
- latency: >= 90% of min(CPU-bound rate, concurrency / latency); the CPU-bound rate is our
  same crawl of the same web with the latency turned off, run just before
  (:attr:`~crawler.bench.scenarios.Scenario.latency_reference`); without it, ours on
  single-host in the same run, else estimated from our CPU time per page. Single-host's rate
  is shown beside it for comparison;
- big-frontier: RSS growth <= 40 bytes per discovered URL; RSS flat while the frontier drains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from crawler.bench.scenarios import SPACING_TOLERANCE, Scenario, reference_name

Summary = Mapping[str, Any]
"""A contender's figures in one scenario (medians over repeats), as :mod:`report` makes."""

BOUND_SHARE = 0.95
"""The share of the politeness bound (hosts / delay) a politeness-bound crawl must reach."""

DRAIN_FLAT = 0.05
"""RSS counts as flat while draining if it grows by at most this share."""

SATURATED = 0.9
"""A machine whose cores were busy at least this share of a crawl had no CPU to spare: a
politeness-bound scenario that falls short there measured the machine, not the scheduling."""


def _check(target: str, value: float | None, goal: str | None, met: bool | None) -> dict[str, Any]:
    """One target; ``goal`` None makes it a figure shown for comparison, not judged."""
    return {"target": target, "value": value, "goal": goal, "met": met}


def _ok(summary: Summary | None) -> TypeGuard[Summary]:
    return summary is not None and summary.get("status") == "ok"


def _ratio(ours: Summary | None, peer: Summary | None) -> float | None:
    if not ours or not peer or not peer.get("pages_per_second"):
        return None
    return round(float(ours["pages_per_second"]) / float(peer["pages_per_second"]), 2)


def check_scenario(
    scenario: Scenario,
    summaries: Mapping[str, Summary],
    single_host: Mapping[str, Summary] | None = None,
) -> list[dict[str, Any]]:
    """The targets for ``scenario`` given each contender's summary (``ours`` is the one
    judged; its variants are compared in the table, not here)."""
    ours = summaries.get("ours")
    if ours is None or ours.get("status") != "ok":
        return [_check("our crawler ran", None, "ok", False)]
    checks: list[dict[str, Any]] = []
    if scenario.name == "single-host":
        for peer, goal in (("scrapy", 8.0), ("crawlee", 4.0), ("aiohttp", 0.6)):
            ratio = _ratio(ours, summaries.get(peer))
            met = None if ratio is None else ratio >= goal
            checks.append(_check(f"pages/s vs {peer}", ratio, f">= {goal:g}x", met))
        ratio = _ratio(ours, summaries.get("aiohttp"))
        stretch = None if ratio is None else ratio >= 0.8
        checks.append(_check("pages/s vs aiohttp (stretch)", ratio, ">= 0.8x", stretch))
    if scenario.per_host_delay > 0:
        bound = scenario.web.hosts / scenario.per_host_delay
        share = round(ours["pages_per_second"] / bound, 3)
        checks.append(
            _check(
                f"share of the politeness bound ({bound:,.0f}/s)",
                share,
                f">= {BOUND_SHARE:g}",
                share >= BOUND_SHARE,
            )
        )
        busy = ours.get("machine_busy")
        if busy is not None:
            why = ""
            if share < BOUND_SHARE and busy >= SATURATED:
                why = " (CPU-bound: the machine, not the scheduling, held the share back)"
            checks.append(_check(f"machine's cores busy during the crawl{why}", busy, None, None))
    politeness = ours["politeness"]
    most = politeness["max_concurrent_per_host"]
    limit = scenario.per_host_concurrency
    checks.append(_check("max in flight per host (server)", most, f"<= {limit}", most <= limit))
    if scenario.per_host_delay > 0:
        gap = politeness["min_spacing_per_host_ms"]
        floor = (scenario.per_host_delay - SPACING_TOLERANCE) * 1000
        checks.append(
            _check(
                "min spacing per host, ms (server)",
                gap,
                f">= {scenario.per_host_delay * 1000:g} (-{SPACING_TOLERANCE * 1000:g} jitter)",
                None if gap is None else gap >= floor,
            )
        )
        short = politeness["short_gaps"]
        checks.append(_check("requests closer than the delay (server)", short, "0", short == 0))
    disallowed = politeness["disallowed_requests"]
    checks.append(_check("requests robots.txt disallows", disallowed, "0", disallowed == 0))
    if scenario.web.latency_ms > 0 and scenario.per_host_delay == 0:
        latency = scenario.web.latency_ms / 1000
        overlap = scenario.concurrency / latency
        cpu_bound = None
        source = ""
        reference = summaries.get(reference_name("ours"))
        single = single_host.get("ours") if single_host else None
        if _ok(reference):
            cpu_bound, source = reference["pages_per_second"], "this crawl without latency"
        elif _ok(single):
            cpu_bound, source = single["pages_per_second"], "single-host"
        elif ours.get("cpu_per_1000_pages"):
            cpu_bound, source = 1000 / ours["cpu_per_1000_pages"], "CPU time per page"
        bound = min(overlap, cpu_bound) if cpu_bound else overlap
        share = round(ours["pages_per_second"] / bound, 3)
        what = f"min({overlap:,.0f}/s overlap, {cpu_bound or 0:,.0f}/s CPU-bound from {source})"
        checks.append(_check(f"share of {what}", share, ">= 0.9", share >= 0.9))
        if _ok(reference) and _ok(single):
            rate = single["pages_per_second"]
            checks.append(
                _check(
                    f"share of min({overlap:,.0f}/s, {rate:,.0f}/s single-host, run earlier)",
                    round(ours["pages_per_second"] / min(overlap, rate), 3),
                    None,
                    None,
                )
            )
    memory = ours.get("memory")
    if scenario.track_frontier and memory:
        per_url = memory.get("bytes_per_discovered_url")
        checks.append(
            _check(
                "RSS growth per discovered URL, bytes",
                per_url,
                "<= 40",
                None if per_url is None else per_url <= 40,
            )
        )
        drain = memory.get("drain_growth_share")
        checks.append(
            _check(
                "RSS growth while draining (share)",
                drain,
                f"<= {DRAIN_FLAT:g}",
                None if drain is None else drain <= DRAIN_FLAT,
            )
        )
    return checks
