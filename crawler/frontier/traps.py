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

Memory: the counts are kept per host, for at most ``crawl.max_hosts_in_memory`` hosts, least
recently admitted forgotten first, but never those of a host the frontier still holds (as the
robots.txt cache keeps its policy: :mod:`crawler.frontier.forgetting`). A forgotten host's
counts are derived again from the database when it is next admitted (the URLs it recorded, as
:meth:`TrapGuard.resume` counts them), so its budgets hold across forgetting as across resumes;
only its URLs admitted but not yet committed when it was forgotten are missed, and a host is
forgotten only after that many other hosts were admitted since its last URL. Spent budgets are
kept whatever the cap (one entry per trap found, not per host met).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crawler.config import TrapsSection
from crawler.frontier.forgetting import forget_least_recent
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


@dataclass(slots=True)
class _Charges:
    """What one host's URLs charged to the budgets not spent yet."""

    pages: int = 0
    patterns: Counter[str] = field(default_factory=Counter)


class TrapGuard:
    """The budgets: pages fetched per host and per path pattern, counted for at most
    ``max_hosts`` hosts at once (0: no bound; see the module docstring)."""

    def __init__(self, config: TrapsSection, max_hosts: int = 0) -> None:
        self._max_host = config.max_pages_per_host
        self._max_pattern = config.max_urls_per_pattern
        self._max_hosts = max_hosts
        self._in_use: Callable[[str], bool] = lambda host: False
        """Whether the frontier still holds a host (given to :meth:`resume`): its counts are
        kept past the bound, as its slot is."""
        self._charges: dict[str, _Charges] = {}
        """Host -> its charges, least recently admitted first."""
        self._store: Store | None = None
        self._recall = False
        """Whether a host without charges here may have some in the database (forgotten, or
        charged by an earlier run and not loaded)."""
        self._spent_hosts: set[str] = set()
        self._spent_patterns: set[str] = set()

    def __len__(self) -> int:
        """Hosts whose charges are kept."""
        return len(self._charges)

    @property
    def _enabled(self) -> bool:
        return bool(self._max_host or self._max_pattern)

    def _pattern_of(self) -> Callable[[str], str]:
        return path_pattern if self._max_pattern else _no_pattern

    async def resume(
        self, store: Store, in_use: Callable[[str], bool] = lambda host: False
    ) -> None:
        """Charge the budgets with what earlier runs on ``store`` fetched: like
        ``crawl.max_pages``, a budget counts across resumes (a crawl restarted N times would
        otherwise walk into a trap N times). Call once, before the first :meth:`admit`.
        ``in_use`` says whether the frontier still holds a host (its counts are kept)."""
        self._store = store
        self._in_use = in_use
        if not self._enabled:
            return
        for host, pattern, count in await store.budget_charges(self._pattern_of()):
            self._charge(self._charges_of(host), host, pattern, count)

    async def admit(self, lease: Lease) -> str | None:
        """Count ``lease`` against its budgets; the reason to skip it if one is spent."""
        if lease.attempt or not self._enabled:
            return None  # a retry was counted at its first attempt
        host = lease.host
        if host in self._spent_hosts:
            return f"host_budget: {self._max_host} pages per host"
        if self._recall and host not in self._charges and self._store is not None:
            recorded = await self._store.budget_charges_of(host, self._pattern_of())
            if host not in self._charges:  # else another worker recalled it meanwhile
                charges = self._charges_of(host)
                for pattern, count in recorded:
                    self._charge(charges, host, pattern, count)
            if host in self._spent_hosts:
                return f"host_budget: {self._max_host} pages per host"
        pattern = path_pattern(lease.url) if self._max_pattern else ""
        if pattern in self._spent_patterns:
            return f"pattern_budget: {self._max_pattern} pages for {pattern}"
        self._charge(self._charges_of(host), host, pattern, 1)
        return None

    def _charges_of(self, host: str) -> _Charges:
        """``host``'s charges, now the most recently admitted. A new entry may forget old ones
        (a page of a host already counted adds none, so it costs no forgetting)."""
        charges = self._charges.pop(host, None)
        if charges is not None:
            self._charges[host] = charges
            return charges
        self._charges[host] = charges = _Charges()
        if len(self._charges) > self._max_hosts > 0:
            self._forget_past_cap()
        return charges

    def _charge(self, charges: _Charges, host: str, pattern: str, count: int) -> None:
        if self._max_pattern and pattern not in self._spent_patterns:
            charges.patterns[pattern] += count
            if charges.patterns[pattern] >= self._max_pattern:
                self._spent_patterns.add(pattern)
                del charges.patterns[pattern]  # the set remembers it; keep the counter small
        if self._max_host:
            charges.pages += count
            if charges.pages >= self._max_host:
                self._spent_hosts.add(host)

    def _forget_past_cap(self) -> None:
        """Past the bound, forget the counts of hosts the frontier no longer holds, least
        recently admitted first: those of a host still being crawled would be read back from
        the database at its next URL, and again at the one after (one query a page)."""
        needed = self._in_use
        excess = len(self._charges) - self._max_hosts
        if forget_least_recent(self._charges, excess, lambda host, _: needed(host)):
            self._recall = True

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
