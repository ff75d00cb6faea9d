"""The address guard (SSRF): non-public addresses are refused before any connection."""

from __future__ import annotations

import pytest

from crawler.fetch.addresses import AddressBlocked, AddressGuard
from tests.helpers import rebinding_dns

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",  # loopback
        "127.8.9.10",
        "[::1]",
        "10.1.2.3",  # private
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # link-local: the cloud metadata address
        "[fe80::1]",
        "[fd00:ec2::254]",  # unique-local (AWS's IPv6 metadata)
        "100.64.0.1",  # shared (CGNAT)
        "0.0.0.0",
        "224.0.0.1",  # multicast
        "[::ffff:127.0.0.1]",  # IPv4-mapped loopback
        "localhost",  # a name that resolves to loopback
    ],
)
async def test_non_public_addresses_are_blocked(host: str) -> None:
    guard = AddressGuard(seed_hosts=["example.test"])
    with pytest.raises(AddressBlocked, match="non-public address"):
        await guard.check(host, 80)


async def test_public_addresses_pass_without_any_connection() -> None:
    guard = AddressGuard(seed_hosts=[])
    await guard.check("93.184.216.34", 80)
    await guard.check("[2606:2800:220:1::1]", 443)


async def test_a_seed_host_is_allowed_but_not_its_neighbours() -> None:
    guard = AddressGuard(seed_hosts=["127.0.0.1"])
    await guard.check("127.0.0.1", 8080)
    with pytest.raises(AddressBlocked):
        await guard.check("127.0.0.2", 8080)
    with pytest.raises(AddressBlocked):
        await guard.check("localhost", 8080)


async def test_allow_list_networks_and_names() -> None:
    guard = AddressGuard(seed_hosts=[], allow=["10.1.0.0/16", "intranet.test", "localhost"])
    await guard.check("10.1.200.3", 80)
    await guard.check("intranet.test", 80)
    await guard.check("localhost", 80)
    with pytest.raises(AddressBlocked):
        await guard.check("10.2.0.1", 80)


async def test_disabled_guard_checks_nothing() -> None:
    await AddressGuard(seed_hosts=[], enabled=False).check("127.0.0.1", 80)


async def test_unresolvable_names_are_left_to_the_connection() -> None:
    await AddressGuard(seed_hosts=[]).check("no-such-host.invalid", 80)


@pytest.mark.parametrize(("transport", "reaches_server"), [("aiohttp", False), ("httpcore", True)])
async def test_dns_rebinding_is_caught_at_connect_time(
    transport: str, reaches_server: bool
) -> None:
    """The first lookup (our check) says public; the cached answer is stale by the time the
    connector asks the same cache, whose second lookup gives loopback. aiohttp's connector
    asks the guard again and refuses; httpx's own pool resolves by itself and cannot (the
    documented gap, shown here as the negative control)."""
    from crawler.config import FetchSection
    from crawler.demo import SiteServer, SiteSpec
    from crawler.fetch.client import Fetcher

    with SiteServer(SiteSpec(pages=2)) as site:
        dns = rebinding_dns(first="93.184.216.34", then="127.0.0.1")
        guard = AddressGuard(seed_hosts=["example.test"], dns=dns)
        config = FetchSection(transport=transport)  # type: ignore[arg-type]
        async with Fetcher(config, user_agent="t", concurrency=2, guard=guard) as fetcher:
            url = f"http://localhost:{site.port}/"
            if reaches_server:
                assert (await fetcher.fetch(url)).status == 200
            else:
                with pytest.raises(AddressBlocked, match="localhost resolves to non-public"):
                    await fetcher.fetch(url)
        assert site.total_requests == (1 if reaches_server else 0)
