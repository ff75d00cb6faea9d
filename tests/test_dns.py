"""The resolver cache: TTLs, the negative cache, LRU bound, coalescing, bounded lookups and
``fetch.resolve`` answers; with an injected clock and a fake lookup (no DNS)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from crawler.fetch.dns import Address, DnsCache
from tests.helpers import FakeClock

pytestmark = pytest.mark.anyio


class FakeLookup:
    """Answers ``10.0.0.N`` for ``hN.test`` (nothing for other names), counting the asks.
    ``gate``, when set, holds every lookup until the test opens it."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, host: str, port: int) -> list[Address]:
        self.asked.append(host)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.in_flight -= 1
        if host.startswith("h") and host.endswith(".test"):
            return [ipaddress.ip_address(f"10.0.0.{host[1:-5]}")]
        return []


async def test_an_answer_is_kept_for_its_ttl_then_asked_again() -> None:
    clock, lookup = FakeClock(), FakeLookup()
    dns = DnsCache(ttl=300.0, lookup=lookup, clock=clock)
    assert await dns.resolve("h1.test", 80) == [ipaddress.ip_address("10.0.0.1")]
    clock.now += 299.0
    await dns.resolve("H1.test", 443)  # any case, any port: the same name
    assert lookup.asked == ["h1.test"]
    clock.now += 1.0
    await dns.resolve("h1.test", 80)
    assert lookup.asked == ["h1.test", "h1.test"]


async def test_a_name_that_does_not_resolve_is_kept_for_the_shorter_negative_ttl() -> None:
    clock, lookup = FakeClock(), FakeLookup()
    dns = DnsCache(ttl=300.0, negative_ttl=30.0, lookup=lookup, clock=clock)
    assert await dns.resolve("nowhere.test", 80) == []
    clock.now += 29.0
    assert await dns.resolve("nowhere.test", 80) == []
    assert lookup.asked == ["nowhere.test"]
    clock.now += 1.0
    await dns.resolve("nowhere.test", 80)
    assert lookup.asked == ["nowhere.test", "nowhere.test"]


async def test_the_least_recently_used_name_is_dropped_at_the_bound() -> None:
    lookup = FakeLookup()
    dns = DnsCache(lookup=lookup, max_names=2, clock=FakeClock())
    await dns.resolve("h1.test", 80)
    await dns.resolve("h2.test", 80)
    await dns.resolve("h1.test", 80)  # h1 used last: h2 goes first
    await dns.resolve("h3.test", 80)
    assert len(dns) == 2
    await dns.resolve("h1.test", 80)
    await dns.resolve("h2.test", 80)
    assert lookup.asked == ["h1.test", "h2.test", "h3.test", "h2.test"]


async def test_concurrent_asks_for_one_name_share_one_lookup() -> None:
    lookup = FakeLookup()
    lookup.gate = asyncio.Event()
    dns = DnsCache(lookup=lookup, clock=FakeClock())
    asks = [asyncio.ensure_future(dns.resolve("h7.test", 80)) for _ in range(50)]
    await asyncio.sleep(0)  # let every ask start (a yield, not a wait for time)
    lookup.gate.set()
    answers = await asyncio.gather(*asks)
    assert answers == [[ipaddress.ip_address("10.0.0.7")]] * 50
    assert lookup.asked == ["h7.test"]


async def test_one_asker_giving_up_does_not_fail_the_others() -> None:
    lookup = FakeLookup()
    lookup.gate = asyncio.Event()
    dns = DnsCache(lookup=lookup, clock=FakeClock())
    quitter = asyncio.ensure_future(dns.resolve("h8.test", 80))
    stayer = asyncio.ensure_future(dns.resolve("h8.test", 80))
    await asyncio.sleep(0)
    quitter.cancel()
    lookup.gate.set()
    assert await stayer == [ipaddress.ip_address("10.0.0.8")]
    assert quitter.cancelled()


async def test_lookups_in_flight_are_bounded() -> None:
    lookup = FakeLookup()
    lookup.gate = asyncio.Event()
    dns = DnsCache(lookup=lookup, max_lookups=3, clock=FakeClock())
    asks = [asyncio.ensure_future(dns.resolve(f"h{n}.test", 80)) for n in range(1, 21)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert lookup.in_flight == 3
    lookup.gate.set()
    await asyncio.gather(*asks)
    assert (lookup.most_in_flight, len(lookup.asked)) == (3, 20)


async def test_configured_names_are_answered_without_a_lookup() -> None:
    lookup = FakeLookup()
    dns = DnsCache(
        static={"www.a-site.test": "127.0.0.2", "www.a-site.test:8443": "[::1]"},
        lookup=lookup,
        clock=FakeClock(),
    )
    assert await dns.resolve("WWW.a-site.test", 80) == [ipaddress.ip_address("127.0.0.2")]
    assert await dns.resolve("www.a-site.test", 8443) == [ipaddress.ip_address("::1")]
    assert await dns.resolve("h1.test", 80) == [ipaddress.ip_address("10.0.0.1")]
    assert lookup.asked == ["h1.test"]


async def test_a_configured_name_in_unicode_answers_its_punycode_form() -> None:
    # Requests carry the name as URLs write it (IDNA, lower-case); the config may not.
    lookup = FakeLookup()
    dns = DnsCache(
        static={"Bücher.test": "127.0.0.3", "BÜCHER.test.:8080": "127.0.0.4"},
        lookup=lookup,
        clock=FakeClock(),
    )
    assert await dns.resolve("xn--bcher-kva.test", 80) == [ipaddress.ip_address("127.0.0.3")]
    assert await dns.resolve("xn--bcher-kva.test", 8080) == [ipaddress.ip_address("127.0.0.4")]
    assert lookup.asked == []
