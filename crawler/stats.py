"""Counters for one run, and the lines that report them."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from crawler.models import Outcome


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
        if page.notes:
            self.notes.update(page.notes.split(","))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def pages_per_second(self) -> float:
        elapsed = self.elapsed
        return self.pages / elapsed if elapsed > 0 else 0.0

    def progress_line(self, frontier: object) -> str:
        return (
            f"pages={self.pages} ({self.pages_per_second:.1f}/s) failed={self.failed} "
            f"retries={self.retries} bytes={self.bytes} elapsed={self.elapsed:.1f}s {frontier!r}"
        )
