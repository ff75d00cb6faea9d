"""Request headers and basic auth (``fetch.headers``, ``[fetch.hosts."host:port"]``), seen by
real servers on 127.0.0.x that record every request's headers; the https-only rule through
pytest-httpx's mock (the test servers speak plain http only)."""

from __future__ import annotations

import base64
import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock
from rich.pretty import pretty_repr

from crawler.abort import AbortController
from crawler.config import FetchSection
from crawler.config_load import load_config
from crawler.engine import Crawl
from crawler.errors import ConfigError
from crawler.fetch.client import Fetcher
from tests.helpers import crawl_process, write_seeds
from tests.servers import Request, Response, TestServer

pytestmark = pytest.mark.anyio

TRANSPORTS = ["aiohttp", "httpcore"]
PASSWORD = "s3cr3t-pässword"
CREDENTIALS = f"alice:{PASSWORD}"
BASIC = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()
PAGE = b"<title>page</title>"


def answer(request: Request) -> Response:
    """A page for every path, no robots.txt or sitemap; ``/moved`` redirects to the URL in
    its query (another host's page)."""
    if request.path == "/moved":
        return 301, {"Location": request.query}, b""
    if request.path in ("/robots.txt", "/sitemap.xml"):
        return 404, {}, b""
    return 200, {"Content-Type": "text/html"}, PAGE


@pytest.fixture
def two_hosts() -> Iterator[tuple[TestServer, TestServer]]:
    """Two servers on two loopback addresses: two hosts for the crawler."""
    with TestServer(answer, host="127.0.0.2") as a, TestServer(answer, host="127.0.0.3") as b:
        yield a, b


def host_key(server: TestServer) -> str:
    return f"{server.host}:{server.port}"


def sent(server: TestServer, header: str) -> dict[str, str | None]:
    """Request target -> the value of ``header`` it carried (the last request's, if several)."""
    return {request.target: request.headers.get(header) for request in server.requests()}


def fetch_config(transport: str = "aiohttp", **keys: Any) -> FetchSection:
    raw = {f"fetch.{key}": value for key, value in keys.items()}
    return load_config(overrides={**raw, "fetch.transport": transport}, environ={}).fetch


async def fetch_all(config: FetchSection, *urls: str) -> None:
    async with Fetcher(config, user_agent="t", concurrency=2) as fetcher:
        for url in urls:
            await fetcher.fetch(url)


# -- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_extra_headers_go_to_every_host_and_a_host_table_replaces_one(
    two_hosts: tuple[TestServer, TestServer], transport: str
) -> None:
    a, b = two_hosts
    config = fetch_config(
        transport,
        headers={"Accept-Language": "en", "X-Team": "everyone"},
        hosts={host_key(a): {"headers": {"x-team": "a-only", "X-Extra": "1"}}},
    )
    await fetch_all(config, a.url("/p"), b.url("/p"))
    assert sent(a, "accept-language") == sent(b, "accept-language") == {"/p": "en"}
    assert sent(a, "x-team") == {"/p": "a-only"}
    assert sent(b, "x-team") == {"/p": "everyone"}
    assert sent(a, "x-extra") == {"/p": "1"}
    assert sent(b, "x-extra") == {"/p": None}
    # Negative control: without the config, no such header goes.
    a.reset()
    await fetch_all(fetch_config(transport), a.url("/p"))
    assert sent(a, "x-team") == sent(a, "accept-language") == {"/p": None}


async def test_accept_may_be_replaced_the_crawlers_own_headers_not(
    two_hosts: tuple[TestServer, TestServer],
) -> None:
    a, _ = two_hosts
    await fetch_all(fetch_config(headers={"Accept": "text/html"}), a.url("/p"))
    [request] = a.requests()
    assert request.headers["accept"] == "text/html"
    assert (request.headers["user-agent"], request.headers["accept-encoding"]) == (
        "t",
        "gzip, deflate",
    )
    for name in ("User-Agent", "host", "Accept-Encoding", "Cookie", "Connection"):
        with pytest.raises(ConfigError, match=f"`fetch.headers` cannot set {name}: "):
            fetch_config(headers={name: "x"})


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Bad Name": "x"}, "has a header name that is not an HTTP token: 'Bad Name'"),
        ({"X-A": "1", "x-a": "2"}, "names the header x-a twice"),
        ({"X-A": f"{PASSWORD}\r\nX-Injected: 1"}, "has a value for X-A that is not printable"),
        ({"X-A": ""}, "has a value for X-A that is not printable"),
        ({"Authorization": BASIC}, "cannot set Authorization: it would go to every host"),
    ],
)
def test_headers_no_request_could_send_are_refused_without_quoting_them(
    headers: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        fetch_config(headers=headers)
    assert problem in str(caught.value)
    assert PASSWORD not in str(caught.value)


# -- basic auth -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_credentials_go_to_their_host_only(
    two_hosts: tuple[TestServer, TestServer], transport: str
) -> None:
    a, b = two_hosts
    host = {"auth": CREDENTIALS, "auth_over_http": True}
    await fetch_all(fetch_config(transport, hosts={host_key(a): host}), a.url("/p"), b.url("/p"))
    assert sent(a, "authorization") == {"/p": BASIC}
    assert sent(b, "authorization") == {"/p": None}


async def test_credentials_go_over_plain_http_only_when_the_host_says_so(
    two_hosts: tuple[TestServer, TestServer],
) -> None:
    a, _ = two_hosts
    await fetch_all(fetch_config(hosts={host_key(a): {"auth": CREDENTIALS}}), a.url("/p"))
    assert sent(a, "authorization") == {"/p": None}
    # Negative control: the same host with auth_over_http gets them.
    a.reset()
    host = {"auth": CREDENTIALS, "auth_over_http": True}
    await fetch_all(fetch_config(hosts={host_key(a): host}), a.url("/p"))
    assert sent(a, "authorization") == {"/p": BASIC}


async def test_a_redirect_from_https_to_http_carries_no_credentials(
    httpx_mock: HTTPXMock,
) -> None:
    # Every hop is a request of its own (the frontier follows redirects), so the downgraded
    # hop is a plain-http request to the same host.
    httpx_mock.add_response(
        url="https://site.test/login", status_code=301, headers={"Location": "http://site.test/"}
    )
    httpx_mock.add_response(url="http://site.test/", headers={"Content-Type": "text/html"})
    config = fetch_config("httpcore", hosts={"site.test": {"auth": CREDENTIALS}})
    await fetch_all(config, "https://site.test/login", "http://site.test/")
    secure, plain = httpx_mock.get_requests()
    assert secure.headers.get("authorization") == BASIC
    assert plain.headers.get("authorization") is None


def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITE_AUTH", CREDENTIALS)
    config = fetch_config(hosts={"site.test": {"auth_env": "SITE_AUTH"}})
    assert config.hosts["site.test"].credentials() == CREDENTIALS
    monkeypatch.delenv("SITE_AUTH")
    with pytest.raises(ConfigError, match=r"auth_env` names SITE_AUTH, which is not set"):
        fetch_config(hosts={"site.test": {"auth_env": "SITE_AUTH"}})


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ({"auth": "alice-without-colon"}, "auth` must hold user:password (it has no colon)"),
        ({"auth": CREDENTIALS, "auth_env": "X"}, "sets both auth and auth_env"),
        (
            {"auth": CREDENTIALS, "headers": {"authorization": "Bearer x"}},
            "cannot set authorization: auth sets it",
        ),
    ],
)
def test_unusable_credentials_are_refused_without_quoting_them(
    host: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        fetch_config(hosts={"site.test": host})
    assert problem in str(caught.value)
    assert "alice" not in str(caught.value)


@pytest.mark.parametrize("key", ["https://site.test/", "site.test:99999", "a%zz", "x" * 64])
def test_a_host_table_keyed_by_no_host_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=f'`fetch.hosts."{re.escape(key)}"` must be keyed'):
        fetch_config(hosts={key: {"auth": CREDENTIALS}})


def test_two_host_tables_for_one_host_are_refused() -> None:
    same = r'"Site.test:80"` is the host of fetch.hosts."site.test" too'
    with pytest.raises(ConfigError, match=same):
        fetch_config(hosts={"site.test": {}, "Site.test:80": {}})


async def test_a_host_table_matches_its_host_as_urls_write_it() -> None:
    async with TestServer(answer) as server:  # on 127.0.0.1, which localhost names
        config = fetch_config(hosts={f"LocalHost:{server.port}": {"headers": {"X-Site": "l"}}})
        await fetch_all(config, server.url("/by-name", host="localhost"), server.url("/by-ip"))
    assert sent(server, "x-site") == {"/by-name": "l", "/by-ip": None}


def test_reprs_hide_credentials_and_header_values() -> None:
    config = load_config(
        overrides={
            "fetch.headers": {"X-Api-Key": "key-for-all"},
            "fetch.hosts": {
                "site.test": {"auth": CREDENTIALS, "headers": {"X-Token": "token-of-site"}}
            },
        },
        environ={},
    )
    # rich's rendering too: what a traceback with its locals shows.
    shown = repr(config) + pretty_repr(config)
    for secret in (PASSWORD, "key-for-all", "token-of-site"):
        assert secret not in shown
    assert "X-Api-Key" in shown
    assert "X-Token" in shown  # names are no secret: the repr still tells what is set


# -- a crawl ----------------------------------------------------------------------------------


def crawl_config(a: TestServer, b_host: Mapping[str, Any] | None = None) -> Any:
    hosts: dict[str, Any] = {
        host_key(a): {"auth": CREDENTIALS, "auth_over_http": True, "headers": {"X-Site": "a"}}
    }
    if b_host is not None:
        hosts[f"127.0.0.3:{b_host['port']}"] = {"auth": b_host["auth"], "auth_over_http": True}
    return load_config(
        overrides={
            "crawl.concurrency": 2,
            "politeness.per_host_delay": 0.0,
            "runtime.stats_interval": 0.0,
            "sitemaps.enabled": True,
            "fetch.headers": {"X-Crawl": "1"},
            "fetch.hosts": hosts,
        },
        environ={},
    )


async def test_a_crawl_sends_its_headers_with_robots_and_sitemaps_and_no_credentials_after_a_redirect_to_another_host(  # noqa: E501
    two_hosts: tuple[TestServer, TestServer], tmp_path: Path
) -> None:
    a, b = two_hosts
    # A's page redirects to B's: B is a seed's host too, so in scope and allowed by the guard.
    seeds = [a.url(f"/moved?{b.url('/landing')}"), b.url("/")]
    config = crawl_config(a)
    await Crawl(config, seeds, tmp_path / "c.db", AbortController().signal).run()
    assert set(sent(a, "x-crawl")) == {"/robots.txt", "/sitemap.xml", seeds[0][len(a.url("")) :]}
    assert set(sent(a, "authorization").values()) == {BASIC}
    assert set(sent(a, "x-site").values()) == {"a"}
    assert set(sent(b, "x-crawl").values()) == {"1"}
    assert "/landing" in sent(b, "authorization")
    assert set(sent(b, "authorization").values()) == {None}
    assert set(sent(b, "x-site").values()) == {None}
    with closing(sqlite3.connect(tmp_path / "c.db")) as db:
        assert db.execute("SELECT status FROM pages WHERE url = ?", (b.url("/landing"),)).fetchone()
    # Negative control: B's own credentials reach B, so the check above could see them.
    a.reset()
    b.reset()
    other = "bob:" + PASSWORD
    config = crawl_config(a, {"port": b.port, "auth": other})
    await Crawl(config, seeds, tmp_path / "d.db", AbortController().signal).run()
    expected = "Basic " + base64.b64encode(other.encode()).decode()
    assert sent(b, "authorization")["/landing"] == expected


def test_credentials_are_not_in_the_output_of_a_debug_run(
    two_hosts: tuple[TestServer, TestServer], tmp_path: Path
) -> None:
    a, _ = two_hosts
    config = tmp_path / "auth.toml"
    config.write_text(
        "[politeness]\nper_host_delay = 0.0\n[runtime]\nstats_interval = 0.0\n"
        f'[output]\nprogress = "plain"\n[fetch.hosts."{host_key(a)}"]\n'
        f'auth = "{CREDENTIALS}"\nauth_over_http = true\n'
    )
    seeds = write_seeds(tmp_path, a.url("/p"), a.url("/missing-link"))
    process = crawl_process(
        "run", seeds, "--db", tmp_path / "c.db", "--config", config, "--debug", "--log-format",
        "json",
    )  # fmt: skip
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert sent(a, "authorization")["/p"] == BASIC
    assert a.url("/p") in out + err  # the run did report on the host
    for secret in (PASSWORD, BASIC.split()[1], "alice"):
        assert secret not in out + err
