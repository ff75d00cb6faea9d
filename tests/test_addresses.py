"""The address guard (SSRF): non-public addresses are refused before any connection."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crawler.abort import AbortController
from crawler.engine import Crawl
from crawler.fetch.addresses import AddressBlocked, AddressGuard
from crawler.urls import canonicalize
from tests.helpers import NO_SERVER, crawl_config, database, rebinding_dns
from tests.servers import Request, Response, TestServer, html

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
        dns = rebinding_dns(first=NO_SERVER, then="127.0.0.1")
        guard = AddressGuard(seed_hosts=["example.test"], allow=[NO_SERVER], dns=dns)
        config = FetchSection(transport=transport)  # type: ignore[arg-type]
        async with Fetcher(config, user_agent="t", concurrency=2, guard=guard) as fetcher:
            url = f"http://localhost:{site.port}/"
            if reaches_server:
                assert (await fetcher.fetch(url)).status == 200
            else:
                with pytest.raises(AddressBlocked, match="localhost resolves to non-public"):
                    await fetcher.fetch(url)
        assert site.total_requests == (1 if reaches_server else 0)


# --- a real crawl with scope = "any" -----------------------------------------------------------


async def test_a_crawl_of_any_host_refuses_every_private_target_and_only_the_seed_is_exempt(
    tmp_path: Path,
) -> None:
    """The seed (seed.test, on 127.0.0.2) links to many hosts in private ranges, by name
    (fetch.resolve) and by IP literal, two of them real servers on other loopback addresses.
    Every one is refused with its reason and none is connected to; the seed's exemption is its
    host name only: its own address under another name, or as a literal, is refused too, and
    it does not grow as the crawl goes on (the seed's second page links on)."""
    home_links: list[str] = []  # known once the servers have their ports
    more_links: list[str] = []

    def seed_page(request: Request) -> Response:
        links = more_links if request.path == "/more" else home_links
        return html(request.path, "".join(f'<a href="{u}">l</a>' for u in links))

    seed = TestServer(seed_page, host="127.0.0.2")
    neighbours = [TestServer(lambda r: html(r.path), host=f"127.0.0.{n}") for n in (3, 4)]
    with seed, neighbours[0], neighbours[1]:
        port, p3, p4 = seed.port, neighbours[0].port, neighbours[1].port
        resolve = {
            "seed.test": "127.0.0.2",
            "alias.test": "127.0.0.2",  # the seed's address, not the seed's name
            "neighbour.test": "127.0.0.3",
            "intranet.test": "10.0.0.5",
            "router.test": "192.168.1.1",
            "metadata.test": "169.254.169.254",
            "six.test": "::1",
            "later.test": "10.9.9.9",
        }
        refused = {  # URL -> the address its refusal names
            f"http://alias.test:{port}/": "127.0.0.2",
            f"http://127.0.0.2:{port}/": "127.0.0.2",
            f"http://neighbour.test:{p3}/": "127.0.0.3",
            f"http://127.0.0.3:{p3}/": "127.0.0.3",
            f"http://127.0.0.4:{p4}/secret": "127.0.0.4",
            "http://intranet.test/": "10.0.0.5",
            "http://10.1.2.3/": "10.1.2.3",
            "http://192.168.0.1/": "192.168.0.1",
            "http://router.test/": "192.168.1.1",
            "http://169.254.169.254/latest/meta-data/": "169.254.169.254",
            "http://metadata.test/latest/meta-data/": "169.254.169.254",
            f"http://[::1]:{p3}/": "::1",
            f"http://six.test:{p3}/": "::1",
        }
        refused_later = {
            f"http://127.0.0.3:{p3}/later": "127.0.0.3",
            f"http://later.test:{p4}/": "10.9.9.9",
        }
        home_links += [*refused, f"http://seed.test:{port}/more"]
        more_links += list(refused_later)
        cfg = crawl_config(
            4,
            **{
                "crawl.scope": "any",
                "politeness.robots": False,
                "fetch.resolve": resolve,
                "fetch.connect_timeout": 2.0,
            },
        )
        db = tmp_path / "c.db"
        await Crawl(cfg, [f"http://seed.test:{port}/"], db, AbortController().signal).run()
        with database(db) as conn:
            errors = dict(conn.execute("SELECT url, error FROM pages").fetchall())
        for url, address in {**refused, **refused_later}.items():
            assert errors[canonicalize(url)] == (
                f"address_blocked: {urlsplit(url).hostname} resolves to non-public address "
                f"{address}"
            )
        assert [n.requests() for n in neighbours] == [[], []]
        # The seed's server saw its two pages, asked for by the seed's name only.
        assert sorted((r.path, r.headers["host"]) for r in seed.requests()) == [
            ("/", f"seed.test:{port}"),
            ("/more", f"seed.test:{port}"),
        ]


@pytest.mark.parametrize("guard_on", [True, False])
async def test_the_guard_and_the_connector_share_one_lookup_per_name(guard_on: bool) -> None:
    """app.test exists only in the cache's lookup: the connection can reach it only through
    the cache (guard on or off), and two fetches make one lookup, not one per asker."""
    from crawler.config import FetchSection
    from crawler.fetch.client import Fetcher
    from crawler.fetch.dns import Address, DnsCache

    asked: list[str] = []

    async def lookup(host: str, port: int) -> list[Address]:
        asked.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    async with TestServer(lambda r: html(r.path)) as server:
        dns = DnsCache(lookup=lookup)
        guard = AddressGuard(seed_hosts=[], allow=["127.0.0.0/8"], enabled=guard_on, dns=dns)
        async with Fetcher(FetchSection(), user_agent="t", concurrency=2, guard=guard) as fetcher:
            for path in ("/a", "/b"):
                assert (await fetcher.fetch(server.url(path, host="app.test"))).status == 200
    assert asked == ["app.test"]
    assert [r.headers["host"] for r in server.requests()] == [f"app.test:{server.port}"] * 2
