"""Defences against crawler traps: URL spaces without end that a site generates by accident
(calendars, session IDs in links, ever-deeper relative links) or on purpose.

Each defence, with its setting (``[traps]`` unless said otherwise):

==========================  ===================================================================
depth limit                 ``crawl.max_depth``: links further from a seed are not followed.
URL length cap              ``crawl.max_url_length``: longer URLs are dropped when canonicalized.
session IDs                 ``session_params``: removed from every link (query parameters, and
                            ``;jsessionid=`` path parameters), so one page is one URL.
repeated path segments      ``max_repeated_segments``: ``/a/b/a/b/a/b/a/b`` is not followed.
per-host page budget        ``max_pages_per_host``: a host's further URLs are skipped.
per-path-pattern budget     ``max_urls_per_pattern``: pages per host and path with digits folded
                            (``/cal/2024/1/2`` and ``/cal/2031/12/30`` are one pattern; the
                            query is ignored), which stops calendars and exploding queries.
==========================  ===================================================================

The first three are pure functions of a URL and run with the parse of links, off the event loop.
The budgets count fetches, so they live in :class:`TrapGuard` on the loop: a URL over budget is
recorded as skipped with its reason when it comes up, and once a budget is spent, links into it
are no longer offered to the frontier. The budgets count across runs: a resumed crawl starts
with what the database's earlier runs charged to them (:meth:`TrapGuard.resume`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from crawler.config import TrapsSection
from crawler.models import Lease
from crawler.urls import host_key

if TYPE_CHECKING:
    # For a type only: the parse worker process, which uses this module's URL rules, does not
    # load the database driver.
    from crawler.store.database import Store

_DIGITS = re.compile(r"\d+")


class SessionStripper:
    """Removes session-ID parameters from canonical URLs."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = frozenset(name.lower() for name in names)
        alternatives = "|".join(re.escape(n) for n in sorted(self._names))
        self._path_param = re.compile(rf";(?:{alternatives})=[^/?;]*", re.IGNORECASE)
        # Every default name contains "sid" or "session": a cheap test skips most URLs.
        self._always_check = any("sid" not in n and "session" not in n for n in self._names)

    def __call__(self, url: str) -> str:
        if not self._names:
            return url
        lowered = url.lower()
        if not self._always_check and "sid" not in lowered and "session" not in lowered:
            return url
        base, question, query = url.partition("?")
        if ";" in base:
            base = self._path_param.sub("", base)
        if question:
            kept = [p for p in query.split("&") if p.partition("=")[0].lower() not in self._names]
            query = "&".join(kept)
        return f"{base}?{query}" if query else base


def repeated_segments(url: str) -> int:
    """How often the most frequent path segment occurs (``/a/b/a/b`` -> 2)."""
    path = url.partition("://")[2].partition("/")[2].partition("?")[0]
    segments = [s for s in path.split("/") if s]
    return max(Counter(segments).values()) if segments else 0


def path_pattern(url: str) -> str:
    """Host and path with every run of digits folded to ``#``; no query, no fragment."""
    return _DIGITS.sub("#", url.partition("?")[0])


def _no_pattern(url: str) -> str:
    return ""


class TrapGuard:
    """The budgets: pages fetched per host and per path pattern."""

    def __init__(self, config: TrapsSection) -> None:
        self._max_host = config.max_pages_per_host
        self._max_pattern = config.max_urls_per_pattern
        self._per_host: Counter[str] = Counter()
        self._per_pattern: Counter[str] = Counter()
        self._spent_hosts: set[str] = set()
        self._spent_patterns: set[str] = set()

    async def resume(self, store: Store) -> None:
        """Charge the budgets with what earlier runs on ``store`` fetched: like
        ``crawl.max_pages``, a budget counts across resumes (a crawl restarted N times would
        otherwise walk into a trap N times). Call once, before the first :meth:`admit`."""
        if not self._max_host and not self._max_pattern:
            return
        pattern_of = path_pattern if self._max_pattern else _no_pattern
        for host, pattern, count in await store.budget_charges(pattern_of):
            if self._max_host:
                self._per_host[host] += count
            if self._max_pattern:
                self._per_pattern[pattern] += count
        self._spent_hosts = {h for h, n in self._per_host.items() if n >= self._max_host}
        self._spent_patterns = {p for p, n in self._per_pattern.items() if n >= self._max_pattern}
        for pattern in self._spent_patterns:
            del self._per_pattern[pattern]  # as in admit(): the set remembers it

    def admit(self, lease: Lease) -> str | None:
        """Count ``lease`` against its budgets; the reason to skip it if one is spent."""
        if lease.attempt:
            return None  # counted at its first attempt
        if lease.host in self._spent_hosts:
            return f"host_budget: {self._max_host} pages per host"
        if self._max_pattern:
            pattern = path_pattern(lease.url)
            if pattern in self._spent_patterns:
                return f"pattern_budget: {self._max_pattern} pages for {pattern}"
            self._per_pattern[pattern] += 1
            if self._per_pattern[pattern] >= self._max_pattern:
                self._spent_patterns.add(pattern)
                del self._per_pattern[pattern]  # the set remembers it; keep the counter small
        if self._max_host:
            self._per_host[lease.host] += 1
            if self._per_host[lease.host] >= self._max_host:
                self._spent_hosts.add(lease.host)
        return None

    def worth_following(self, urls: list[str]) -> list[str]:
        """``urls`` without those whose budget is spent (a no-op until one is)."""
        if not self._spent_hosts and not self._spent_patterns:
            return urls
        return [
            url
            for url in urls
            if host_key(url) not in self._spent_hosts
            and path_pattern(url) not in self._spent_patterns
        ]

    def __repr__(self) -> str:
        return (
            f"<TrapGuard spent_hosts={len(self._spent_hosts)} "
            f"spent_patterns={len(self._spent_patterns)}>"
        )
