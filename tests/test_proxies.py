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
from crawler.errors import ConfigError
from crawler.fetch.addresses import AddressBlocked, AddressGuard
from crawler.fetch.client import Fetcher
from crawler.fetch.proxies import ProxyRoutes
from tests.helpers import pages
from tests.proxy_server import TestProxy
from tests.servers import Request, Response, TestServer

pytestmark = pytest.mark.anyio

PASSWORD = "pr0xy-s3cret"
CREDENTIALS = f"alice:{PASSWORD}"
PROXY_AUTH = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()


def answer(request: Request) -> Response:
    """``/`` links to ``/next``; no robots.txt or sitemap."""
    if request.path == "/":
        return 200, {"Content-Type": "text/html"}, b'<a href="/next">next</a>'
    if request.path == "/next":
        return 200, {"Content-Type": "text/html"}, b"<title>next</title>"
    return 404, {}, b""


@pytest.fixture
def two_hosts() -> Iterator[tuple[TestServer, TestServer]]:
    with TestServer(answer, host="127.0.0.2") as a, TestServer(answer, host="127.0.0.3") as b:
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
    shown = repr(config) + pretty_repr(config) + repr(ProxyRoutes(config.fetch))
    shown += repr(ProxyRoutes(config.fetch).for_netloc("other.test"))
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
    ],
)
def test_proxy_settings_that_cannot_work_are_refused(
    overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match="proxy") as caught:
        load_config(overrides=overrides, environ={})
    assert problem in str(caught.value)


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
