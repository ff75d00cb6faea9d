"""The crawl's one resolver: host names to addresses, cached, shared by the address guard and
the aiohttp connector, so each name is looked up once, not once per asker.

A broad crawl resolves far more names than a site crawl, so:

- answers are kept ``fetch.dns_ttl`` seconds, a name that does not resolve
  ``fetch.dns_negative_ttl`` seconds (shorter: a name can come back). The system resolver
  (``getaddrinfo``, which honours /etc/hosts and nsswitch as every other program on the
  machine does) gives no TTL, so the TTL is configured rather than taken from DNS; c-ares
  (aiodns) would give real TTLs but not the system's name service, and one more native
  dependency;
- at most :data:`MAX_NAMES` names are kept, the least recently used dropped first;
- concurrent lookups of one name wait for one ``getaddrinfo``;
- at most :data:`MAX_LOOKUPS` run at once: each takes a thread of the loop's default executor,
  which the rest of the crawl shares, and a crawl of thousands of new hosts must not queue them
  all there;
- ``fetch.resolve`` (``{"name[:port]" = "address"}``, like curl's ``--resolve`` or a hosts file)
  answers from the config without any lookup. Its addresses are still checked by the guard
  like any other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

from crawler.urls import normalize_host

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Lookup = Callable[[str, int], Awaitable[list[Address]]]
"""``(host, port) -> addresses``; empty when the name does not resolve."""

MAX_NAMES = 100_000
"""Names kept at most (a few hundred bytes each: tens of MB at this bound)."""
MAX_LOOKUPS = 16
"""System lookups (threads) in flight at once."""
LOOKUP_TIMEOUT = 10.0
"""A lookup slower than this counts as a name that does not resolve."""


async def system_lookup(host: str, port: int) -> list[Address]:
    """The machine's own resolver (``getaddrinfo`` in a thread), empty on failure."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, TimeoutError):
        return []
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


class DnsCache:
    """Cached, coalesced, bounded name lookups; see the module's docstring."""

    def __init__(
        self,
        *,
        ttl: float = 300.0,
        negative_ttl: float = 30.0,
        static: Mapping[str, str] | None = None,
        lookup: Lookup = system_lookup,
        max_names: int = MAX_NAMES,
        max_lookups: int = MAX_LOOKUPS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._static = {
            _static_key(key): [ipaddress.ip_address(value.strip("[]"))]
            for key, value in (static or {}).items()
        }
        self._lookup = lookup
        self._max_names = max_names
        self._lookups = asyncio.Semaphore(max_lookups)
        self._clock = clock
        self._answers: OrderedDict[str, tuple[float, list[Address]]] = OrderedDict()
        """host -> (expiry, addresses), least recently used first."""
        self._pending: dict[str, asyncio.Task[list[Address]]] = {}
        self.lookups = 0
        """System lookups made (what the cache saves is asks minus this)."""

    async def resolve(self, host: str, port: int) -> list[Address]:
        """``host``'s addresses (no brackets, any case), empty if it does not resolve."""
        host = host.lower()
        if self._static:
            found = self._static.get(f"{host}:{port}") or self._static.get(host)
            if found is not None:
                return found
        answer = self._answers.get(host)
        if answer is not None and answer[0] > self._clock():
            self._answers.move_to_end(host)
            return answer[1]
        task = self._pending.get(host)
        if task is None:
            task = self._pending[host] = asyncio.ensure_future(self._look_up(host, port))
        # Shielded: one asker giving up (its fetch timed out) does not fail the others.
        return await asyncio.shield(task)

    async def _look_up(self, host: str, port: int) -> list[Address]:
        try:
            async with self._lookups:
                self.lookups += 1
                addresses = await self._lookup(host, port)
        finally:
            del self._pending[host]
        ttl = self._ttl if addresses else self._negative_ttl
        self._answers[host] = (self._clock() + ttl, addresses)
        self._answers.move_to_end(host)
        if len(self._answers) > self._max_names:
            self._answers.popitem(last=False)
        return addresses

    def __len__(self) -> int:
        return len(self._answers)


def _static_key(key: str) -> str:
    """A ``fetch.resolve`` key (``name[:port]``, any case, an IDN in either form) as lookups ask
    for it: the name as URLs write it (``Bücher.test:8080`` -> ``xn--bcher-kva.test:8080``)."""
    name, colon, port = key.rpartition(":")
    if not colon or "]" in port:  # no port (an IPv6 literal's colons are inside brackets)
        name, colon, port = key, "", ""
    return (normalize_host(name) or name.lower()) + colon + port
