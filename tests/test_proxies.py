"""Proxies (``fetch.proxy``, ``fetch.no_proxy``, ``[fetch.hosts."host:port"] proxy``), crawled
through a real forward proxy on 127.0.0.x (tests/proxy_server.py) to real servers: what the
proxy saw, what the targets saw (the proxy's ``Via``), where the credentials went."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.pretty import pretty_repr

from crawler.abort import AbortController
from crawler.config import FetchSection
from crawler.config_load import load_config
from crawler.engine import Crawl
from crawler.errors import ConfigError, ProxyFailed
from crawler.fetch.addresses import AddressBlocked, AddressGuard
from crawler.fetch.client import Fetcher
from crawler.fetch.proxies import (
    MAX_OUT_OF_ROTATION_SECONDS,
    OUT_OF_ROTATION_SECONDS,
    Proxy,
    ProxyPool,
    ProxyRoutes,
)
from tests.helpers import FakeClock, database, pages
from tests.proxy_server import TestProxy
from tests.servers import TestServer, two_pages

pytestmark = pytest.mark.anyio

PASSWORD = "pr0xy-s3cret"
CREDENTIALS = f"alice:{PASSWORD}"
PROXY_AUTH = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()


@pytest.fixture
def two_hosts() -> Iterator[tuple[TestServer, TestServer]]:
    with TestServer(two_pages, host="127.0.0.2") as a, TestServer(two_pages, host="127.0.0.3") as b:
        yield a, b


@pytest.fixture
def proxy() -> Iterator[TestProxy]:
    with TestProxy() as server:
        yield server


def fetch_config(**keys: Any) -> FetchSection:
    return load_config(overrides={f"fetch.{k}": v for k, v in keys.items()}, environ={}).fetch


async def fetch_all(
    config: FetchSection, *urls: str, guard: AddressGuard | None = None
) -> list[int]:
    async with Fetcher(config, user_agent="t", concurrency=2, guard=guard) as fetcher:
        return [(await fetcher.fetch(url)).status for url in urls]


def via(server: TestServer) -> dict[str, str | None]:
    """Request target -> its ``Via`` header: the proxy's name when it came through it."""
    return {request.target: request.headers.get("via") for request in server.requests()}


def proxied(proxy: TestProxy) -> list[str]:
    return [request.target for request in proxy.requests()]


# -- routing ----------------------------------------------------------------------------------


async def test_a_crawl_fetches_every_page_through_the_proxy(
    two_hosts: tuple[TestServer, TestServer], proxy: TestProxy, tmp_path: Path
) -> None:
    a, _ = two_hosts
    overrides = {"politeness.per_host_delay": 0.0, "runtime.stats_interval": 0.0}
    config = load_config(overrides={**overrides, "fetch.proxy": proxy.base_url}, environ={})
    await Crawl(config, [a.url("/")], tmp_path / "c.db", AbortController().signal).run()
    assert pages(tmp_path / "c.db").keys() == {"/", "/next"}
    assert sorted(proxied(proxy)) == sorted(a.url(t) for t in ("/", "/next", "/robots.txt"))
    assert set(via(a).values()) == {"1.1 test-proxy"}
    # Negative control: without the proxy the target sees the crawler itself.
    a.reset()
    config = load_config(overrides=overrides, environ={})
    await Crawl(config, [a.url("/")], tmp_path / "d.db", AbortController().signal).run()
    assert set(via(a).values()) == {None}


async def test_no_proxy_hosts_go_direct(
    two_hosts: tuple[TestServer, TestServer], proxy: TestProxy
) -> None:
    a, b = two_hosts
    config = fetch_config(proxy=proxy.base_url, no_proxy=[a.host])
    assert await fetch_all(config, a.url("/next"), b.url("/next")) == [200, 200]
    assert via(a) == {"/next": None}
    assert via(b) == {"/next": "1.1 test-proxy"}
    assert proxied(proxy) == [b.url("/next")]


async def test_a_host_table_routes_its_host_direct_or_through_its_own_proxy(
    two_hosts: tuple[TestServer, TestServer], proxy: TestProxy
) -> None:
    a, b = two_hosts
    with TestProxy(host="127.0.0.10") as other:
        config = fetch_config(
            proxy=proxy.base_url,
            hosts={
                f"{a.host}:{a.port}": {"proxy": ""},
                f"{b.host}:{b.port}": {"proxy": other.base_url},
            },
        )
        await fetch_all(config, a.url("/next"), b.url("/next"))
        assert proxied(other) == [b.url("/next")]
    assert via(a) == {"/next": None}
    assert proxied(proxy) == []


@pytest.mark.parametrize(
    ("entry", "netloc", "direct"),
    [
        ("*", "anything.test:8080", True),
        ("example.com", "example.com", True),
        ("example.com", "www.example.com:8080", True),  # a name: any port, its subdomains
        ("example.com", "badexample.com", False),  # at a label boundary only
        (".example.com", "example.com", True),  # a leading dot is ignored
        ("Example.COM", "shop.example.com", True),  # case-insensitive
        ("example.com:8080", "example.com:8080", True),  # host:port: that port only
        ("example.com:8080", "example.com", False),
        ("example.com:8080", "www.example.com:8080", False),
        ("10.1.2.3", "10.1.2.3:81", True),  # an address: itself, on any port
        ("10.1.2.3", "10.1.2.30", False),
        ("[::1]", "[::1]:8080", True),
    ],
)
def test_each_form_of_no_proxy_entry(entry: str, netloc: str, direct: bool) -> None:
    routes = ProxyRoutes(fetch_config(proxy="http://proxy.test:3128", no_proxy=[entry]))
    route = routes.for_netloc(netloc)
    assert (route is None) == direct
    assert route is None or route.url == "http://proxy.test:3128"


# -- credentials ------------------------------------------------------------------------------


async def test_credentials_go_to_the_proxy_only_and_a_wrong_one_gets_407(
    two_hosts: tuple[TestServer, TestServer],
) -> None:
    a, _ = two_hosts
    with TestProxy(credentials=CREDENTIALS) as proxy:
        url = f"http://alice:{PASSWORD}@{proxy.host}:{proxy.port}"
        assert await fetch_all(fetch_config(proxy=url), a.url("/next")) == [200]
        [request] = proxy.requests()
        assert request.headers["proxy-authorization"] == PROXY_AUTH
        [arrived] = a.requests()
        assert arrived.headers["via"] == "1.1 test-proxy"
        assert "proxy-authorization" not in arrived.headers
        assert "authorization" not in arrived.headers
        # The proxy refuses other credentials, and none, with 407 (the page's status).
        wrong = f"http://alice:wrong@{proxy.host}:{proxy.port}"
        assert await fetch_all(fetch_config(proxy=wrong), a.url("/next")) == [407]
        assert await fetch_all(fetch_config(proxy=proxy.base_url), a.url("/next")) == [407]
    assert len(a.requests()) == 1


def test_reprs_and_errors_hide_proxy_credentials() -> None:
    url = f"http://alice:{PASSWORD}@proxy.test:3128"
    config = load_config(
        overrides={"fetch.proxy": url, "fetch.hosts": {"site.test": {"proxy": url}}}, environ={}
    )
    pool = load_config(overrides={"fetch.proxies": [url]}, environ={})
    shown = repr(config) + pretty_repr(config) + repr(ProxyRoutes(config.fetch))
    shown += repr(ProxyRoutes(config.fetch).for_netloc("other.test"))
    shown += repr(pool) + pretty_repr(pool) + repr(ProxyRoutes(pool.fetch).pool)
    assert PASSWORD not in shown
    assert "alice" not in shown
    with pytest.raises(ConfigError) as caught:
        load_config(overrides={"fetch.proxy": f"socks5://alice:{PASSWORD}@p.test:1080"}, environ={})
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"fetch.proxy": "socks5://p.test:1080"}, "supported are http://"),
        ({"fetch.proxy": "https://p.test:3128"}, "supported are http://"),
        ({"fetch.proxy": "p.test:3128"}, "supported are http://"),
        ({"fetch.proxy": "http://p.test:3128/path"}, "nothing after the port"),
        ({"fetch.proxy": "http://p.test:99999"}, "is not a URL"),
        ({"fetch.proxy": "http://p.test:3128", "fetch.transport": "httpcore"}, "aiohttp"),
        ({"fetch.hosts": {"a.test": {"proxy": "ftp://p.test"}}}, 'fetch.hosts."a.test".proxy'),
        ({"fetch.no_proxy": ["http://a.test/"]}, "fetch.no_proxy"),
        ({"fetch.proxy": "http://p.test:1", "fetch.proxies": ["http://q.test:1"]}, "exclusive"),
        ({"fetch.proxies": ["http://p.test:1", ""]}, "empty proxy URL"),
        ({"fetch.proxies": ["socks5://p.test:1"]}, "fetch.proxies"),
    ],
)
def test_proxy_settings_that_cannot_work_are_refused(
    overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match="prox") as caught:
        load_config(overrides=overrides, environ={})
    assert problem in str(caught.value)


# -- rotation ---------------------------------------------------------------------------------


def stopped_proxy(host: str) -> str:
    """The URL of a proxy that ran and stopped: its port refuses connections."""
    with TestProxy(host=host) as proxy:
        return proxy.base_url


def test_the_pool_takes_proxies_in_turn_and_a_failed_one_out_for_a_doubling_while() -> None:
    clock = FakeClock()
    a, b = Proxy("http://a.test:1"), Proxy("http://b.test:1")
    pool = ProxyPool([a, b], clock=clock)
    assert [pool.take() for _ in range(4)] == [a, b, a, b]
    pool.failed(a)
    assert [pool.take() for _ in range(2)] == [b, b]
    clock.now += OUT_OF_ROTATION_SECONDS - 0.1
    assert pool.in_rotation() == [b]
    clock.now += 0.1
    assert pool.in_rotation() == [a, b]
    pool.failed(a)  # a second failure in a row: twice as long
    clock.now += OUT_OF_ROTATION_SECONDS
    assert pool.in_rotation() == [b]
    clock.now += OUT_OF_ROTATION_SECONDS
    assert pool.in_rotation() == [a, b]
    for _ in range(20):  # bounded, however often it fails
        pool.failed(a)
    clock.now += MAX_OUT_OF_ROTATION_SECONDS
    assert pool.in_rotation() == [a, b]
    pool.succeeded(a)  # forgets the failures: the next one is the first again
    pool.failed(a)
    clock.now += OUT_OF_ROTATION_SECONDS
    assert pool.in_rotation() == [a, b]
    # All out: the request fails with its reason, retried later by the frontier.
    pool.failed(a)
    pool.failed(b)
    with pytest.raises(ProxyFailed, match="all 2 proxies are out of rotation") as caught:
        pool.take()
    assert caught.value.retryable
    assert not caught.value.blames_host


async def test_a_dead_proxy_and_one_answering_407_leave_the_rotation_and_requests_go_on(
    two_hosts: tuple[TestServer, TestServer], proxy: TestProxy
) -> None:
    a, _ = two_hosts
    dead = stopped_proxy("127.0.0.11")
    with TestProxy(host="127.0.0.12", credentials=CREDENTIALS) as refusing:
        config = fetch_config(proxies=[dead, refusing.base_url, proxy.base_url])
        urls = [a.url(f"/next?{n}") for n in range(6)]
        assert await fetch_all(config, *urls) == [200] * 6
        assert len(refusing.requests()) == 1  # its 407, then out of rotation
    assert proxied(proxy) == urls
    assert set(via(a).values()) == {"1.1 test-proxy"}


async def test_when_every_proxy_fails_the_page_records_why_and_the_host_is_not_blamed(
    two_hosts: tuple[TestServer, TestServer], tmp_path: Path
) -> None:
    a, _ = two_hosts
    overrides = {
        "politeness.per_host_delay": 0.0,
        "politeness.robots": False,
        "politeness.circuit_breaker": 1,
        "politeness.circuit_breaker_pause": 0.05,
        "fetch.max_retries": 1,
        "fetch.retry_backoff": 0.0,
        "runtime.stats_interval": 0.0,
    }
    seeds = [a.url("/"), a.url("/next")]
    for key in ("proxy", "proxies"):
        value: Any = stopped_proxy("127.0.0.11")
        config = load_config(
            overrides={**overrides, f"fetch.{key}": value if key == "proxy" else [value]},
            environ={},
        )
        report = await Crawl(config, seeds, tmp_path / f"{key}.db", AbortController().signal).run()
        assert report.stats.hosts_paused == 0
        with database(tmp_path / f"{key}.db") as db:
            errors = dict(db.execute("SELECT url, error FROM pages").fetchall())
        assert {url: error.partition(":")[0] for url, error in errors.items()} == dict.fromkeys(
            seeds, "proxy_failed"
        )
    assert a.requests() == []
    # Negative control: a target that refuses connections is blamed, and its breaker trips.
    dead_target = stopped_proxy("127.0.0.13")
    config = load_config(overrides=overrides, environ={})
    report = await Crawl(
        config, [dead_target + "/"], tmp_path / "d.db", AbortController().signal
    ).run()
    assert report.stats.hosts_paused >= 1


# -- the address guard ------------------------------------------------------------------------


async def test_the_guard_checks_the_target_and_lets_the_proxys_own_address_through(
    two_hosts: tuple[TestServer, TestServer],
) -> None:
    a, b = two_hosts
    # The proxy by a name that resolves to loopback: the guard would refuse it as a target.
    with TestProxy(host="127.0.0.1") as proxy:
        config = fetch_config(proxy=f"http://localhost:{proxy.port}")
        guard = AddressGuard([a.host])
        assert await fetch_all(config, a.url("/next"), guard=guard) == [200]
        assert proxied(proxy) == [a.url("/next")]
        # A target in a private range (not a seed's host) never reaches the proxy.
        with pytest.raises(AddressBlocked, match=b.host):
            await fetch_all(config, b.url("/next"), guard=guard)
        assert proxied(proxy) == [a.url("/next")]
        assert b.requests() == []
