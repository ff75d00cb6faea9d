"""The address guard (SSRF defence): never connect to a non-public address by accident.

A page can link or redirect anywhere, including ``http://169.254.169.254/`` (cloud metadata),
``http://localhost:6379/`` or a router on ``192.168.0.1``. Before every request the fetch layer
asks :meth:`AddressGuard.check`; it resolves the host (through the crawl's
:class:`~crawler.fetch.dns.DnsCache`, so ``fetch.resolve``'s answers are checked too) and
refuses when any of its addresses is not globally routable: loopback, private (RFC 1918,
ULA), link-local (which includes the metadata address), shared (CGNAT), multicast, reserved or
unspecified.
Every redirect hop is its own request, so it is checked again.

Exceptions, in this order:

- the hosts of the seeds are allowed whatever they resolve to: crawling ``http://127.0.0.1:8080/``
  on purpose must work; only those exact host names, not their neighbours;
- ``security.allow_addresses`` lists networks (``10.1.0.0/16``) or host names to let through.

With the default (aiohttp) transport the check is also made where the connection is made:
:class:`GuardedResolver` is the connector's resolver, answering from the same cache and
filtering the addresses the connector is about to use, so an answer that changes between our
check and the connection (DNS rebinding, or the cached answer expiring) is caught too. With httpx's
own transport only the check before the request is made.

Through a proxy (:mod:`crawler.fetch.proxies`) the crawler connects to the proxy, and the proxy
to the target, resolving its name itself. What the guard still checks is the target before the
request: an IP-literal target in a refused range never reaches the proxy, and a name is
resolved here first and refused if any of its addresses is. What it cannot check: the address
the proxy gets for that name (its resolver may answer otherwise, by DNS rebinding or a split
horizon: the connect-time check sees only the proxy's own address), nor what the proxy can
reach that we cannot. The proxy's own address is the user's choice: allowed, even if private.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult

from crawler.errors import PermanentError
from crawler.fetch.dns import Address, DnsCache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressBlocked(PermanentError):
    reason = "address_blocked"


class AddressGuard:
    def __init__(
        self,
        seed_hosts: Iterable[str],
        allow: Iterable[str] = (),
        *,
        enabled: bool = True,
        dns: DnsCache | None = None,
    ) -> None:
        self.enabled = enabled
        self.dns = dns if dns is not None else DnsCache()
        """The resolver of the guard's checks, and of the connector's (:class:`GuardedResolver`)."""
        self._trusted_hosts = {_bare(h) for h in seed_hosts}
        self._allowed_networks: list[Network] = []
        for item in allow:
            try:
                self._allowed_networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self._trusted_hosts.add(_bare(item))

    async def check(self, host: str, port: int) -> None:
        """Raise :class:`AddressBlocked` unless ``host`` may be connected to."""
        if not self.enabled:
            return
        host = _bare(host)
        if host in self._trusted_hosts:
            return
        reason = await self._verdict(host, port)
        if reason is not None:
            raise AddressBlocked(reason)

    async def _verdict(self, host: str, port: int) -> str | None:
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await self.dns.resolve(host, port)
            if not addresses:
                return None  # unresolvable: the connect fails on its own, with its own reason
        for address in addresses:
            if not self._permitted(address):
                return f"{host} resolves to non-public address {address}"
        return None

    def permits(self, host: str, address: str) -> bool:
        """Whether connecting to ``address`` (an IP, as resolved for ``host``) is allowed."""
        if not self.enabled or _bare(host) in self._trusted_hosts:
            return True
        return self._permitted(ipaddress.ip_address(address.split("%", 1)[0]))

    def _permitted(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if address.is_global and not address.is_multicast:
            return True
        return any(address in network for network in self._allowed_networks)

    def __repr__(self) -> str:
        return (
            f"<AddressGuard enabled={self.enabled} trusted={sorted(self._trusted_hosts)} "
            f"names={len(self.dns)}>"
        )


def _bare(host: str) -> str:
    """A host name without IPv6 brackets, lower-cased, as the guard compares them."""
    return host.strip("[]").lower()


class AddressRefused(OSError):
    """Raised inside the transport's connect step for a refused address."""


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that drops the addresses the guard refuses, at connect time, but
    for ``proxy_hosts``: a proxy's address is the user's choice, allowed even if private."""

    def __init__(self, guard: AddressGuard, proxy_hosts: frozenset[str] = frozenset()) -> None:
        self._guard = guard
        self._proxy_hosts = proxy_hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        found = await self._guard.dns.resolve(_bare(host), port)
        if family == socket.AF_INET:
            found = [a for a in found if a.version == 4]
        elif family == socket.AF_INET6:
            found = [a for a in found if a.version == 6]
        if not found:
            raise OSError(f"cannot resolve {host}")
        results = [_result(host, address, port) for address in found]
        if _bare(host) in self._proxy_hosts:
            return results
        allowed = [r for r in results if self._guard.permits(host, r["host"])]
        if not allowed:
            addresses = ", ".join(r["host"] for r in results)
            raise AddressRefused(f"{host} resolves to non-public address {addresses}")
        return allowed

    async def close(self) -> None:
        # aiohttp's AbstractResolver.close, kept under the library's name. A connector closes
        # only a resolver it made itself, so this one is not called by ours; the cache holds
        # nothing to release.
        return


def _result(host: str, address: Address, port: int) -> ResolveResult:
    """One answer in aiohttp's form (what its ThreadedResolver gives, without scope ids)."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    return ResolveResult(
        hostname=host,
        host=str(address),
        port=port,
        family=family,
        proto=0,
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )
