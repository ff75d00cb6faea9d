"""The page budget (``crawl.max_pages``): how many URLs may start, counted across runs.

A URL is charged when it is handed out for the first time. Once the budget is spent no new URL
starts, but URLs already charged still do: retries and deferred leases wait in their host's
``retries`` heap, and only those keep a host due. A spent budget stays spent (``started`` only
grows).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PageBudget"]


@dataclass(slots=True)
class PageBudget:
    max_pages: int = 0
    """``crawl.max_pages``; 0: no budget."""
    recorded_before: int = 0
    """Pages the database held when this run started (the budget counts them)."""
    started: int = 0
    """URLs handed out for the first time in this run: what the budget charges (retries and
    deferred leases handed out again are not counted again)."""

    @property
    def spent(self) -> bool:
        return 0 < self.max_pages <= self.recorded_before + self.started
