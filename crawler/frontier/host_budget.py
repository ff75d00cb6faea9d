"""Per-host and per-domain page budgets (``crawl.max_pages_per_host``,
``crawl.max_pages_per_domain``): how many URLs of one host, or of one registrable domain, may
start, counted across runs.

They count what the page budget counts (:mod:`crawler.frontier.budget`): a URL is charged when
it is handed out for the first time, and a resumed run starts from the URLs the database has
recorded (done, failed or skipped) per host. Once a host's budget (or its domain's) is spent it
behaves as the whole crawl does once ``crawl.max_pages`` is: URLs already charged (retries,
deferred leases) still run, no new one starts, its other URLs stay pending in the database and
the crawl ends without them. A later run with a larger budget fetches them.

A host's domain is its registrable domain as :func:`crawler.scope.registrable_domain` says
(the Public Suffix List); an IP address, or a name that is itself a public suffix, is a domain
of its own (without the port: two ports of one address share a budget).

Memory: one count per host and one per domain, kept here rather than in the frontier's host
state, so a host whose state is dropped from memory and made again keeps its count.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable

from crawler.scope import registrable_domain
from crawler.urls import hostname

__all__ = ["HostBudgets", "domain_of"]


@functools.lru_cache(maxsize=1 << 16)  # asked at every scheduling of a host: bounded, not per host
def domain_of(host: str) -> str:
    """The domain whose budget ``host`` (a host key, ``name[:port]``) is charged to."""
    name = hostname(f"http://{host}/")
    return registrable_domain(name) or name


class HostBudgets:
    """The two budgets' counts; 0 turns a budget off."""

    __slots__ = ("_domains", "_hosts", "_max_domain", "_max_host", "_spent")

    def __init__(self, max_per_host: int = 0, max_per_domain: int = 0) -> None:
        self._max_host = max_per_host
        self._max_domain = max_per_domain
        self._hosts: Counter[str] = Counter()
        self._domains: Counter[str] = Counter()
        self._spent: set[str] = set()
        """Hosts found spent so far (for the report; a spent budget stays spent)."""

    @property
    def enabled(self) -> bool:
        return bool(self._max_host or self._max_domain)

    def resume(self, recorded: Iterable[tuple[str, int]]) -> None:
        """Charge (host, URLs) that earlier runs recorded. Call once, before the first charge."""
        for host, count in recorded:
            self._charge(host, count)

    def charge(self, host: str) -> None:
        """One URL of ``host`` is handed out for the first time."""
        self._charge(host, 1)

    def _charge(self, host: str, count: int) -> None:
        if self._max_host:
            self._hosts[host] += count
        if self._max_domain:
            self._domains[domain_of(host)] += count

    def spent(self, host: str) -> bool:
        """Whether no new URL of ``host`` may start."""
        if not self.enabled:
            return False
        if host in self._spent:
            return True
        if (0 < self._max_host <= self._hosts[host]) or (
            self._max_domain and self._max_domain <= self._domains[domain_of(host)]
        ):
            self._spent.add(host)
            return True
        return False

    @property
    def hosts_spent(self) -> int:
        """Hosts whose budget (or their domain's) was found spent."""
        return len(self._spent)

    def __repr__(self) -> str:
        return (
            f"<HostBudgets per_host={self._max_host} per_domain={self._max_domain} "
            f"spent={len(self._spent)}>"
        )
