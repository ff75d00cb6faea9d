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

    def record(self, outcome: Outcome) -> None:
        page = outcome.page
        self.pages += 1
        self.bytes += page.size
        if page.status is None:
            self.failed += 1
            self.errors[(page.error or "unknown").split(":", 1)[0]] += 1
        else:
            self.statuses[page.status] += 1

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
