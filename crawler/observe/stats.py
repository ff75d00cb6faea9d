"""This run's counters: what :class:`~crawler.engine.CrawlReport` returns and what the progress
display and the metrics read (through :mod:`crawler.observe.gauges`)."""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import dataclass, field

from crawler.models import Outcome

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the fetch-latency histogram, as Prometheus histograms use."""


@dataclass(slots=True)
class Stats:
    """What this run did (not the database's totals, which include earlier runs)."""

    started: float = field(default_factory=time.monotonic)
    pages: int = 0
    """Outcomes recorded: responses and failures."""
    failed: int = 0
    retries: int = 0
    bytes: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    """Failures by reason (no response after the retries)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Deliberately not fetched, by reason (robots.txt, trap budgets, the address guard)."""
    notes: Counter[str] = field(default_factory=Counter)
    """Observations on recorded pages (noindex, redirect_off_scope, truncated_encoding, ...)."""
    robots_fetched: int = 0
    throttled: int = 0
    """429/503 answers that put a host in cooldown."""
    hosts_paused: int = 0
    """Circuit breaker trips."""
    hosts_deferred: int = 0
    """Hosts given up on for this run: their Retry-After was above the cap."""
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    """Responses per fetch-latency bucket (``LATENCY_BUCKETS`` upper bounds, then +Inf)."""
    latency_sum: float = 0.0
    """Seconds, over all responses."""

    def record(self, outcome: Outcome) -> None:
        page = outcome.page
        self.pages += 1
        self.bytes += page.size
        reason = (page.error or "unknown").split(":", 1)[0]
        if page.skipped:
            self.skipped[reason] += 1
        elif page.status is None:
            self.failed += 1
            self.errors[reason] += 1
        else:
            self.statuses[page.status] += 1
            seconds = page.elapsed_ms / 1000
            self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum += seconds
        if page.notes:
            self.notes.update(page.notes.split(","))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def pages_per_second(self) -> float:
        elapsed = self.elapsed
        return self.pages / elapsed if elapsed > 0 else 0.0
