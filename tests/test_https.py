"""https on real local servers (the certificates of tests/tls.py, a CA of the tests' own):
``fetch.ca_file`` on both transports, the reason a page whose certificate does not verify is
recorded with, basic auth sent over https and not over http, and https targets through a
proxy's CONNECT tunnel (tests/proxy_server.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from crawler.abort import AbortController
from crawler.cli.app import app
from crawler.config_load import load_config
from crawler.engine import Crawl
from crawler.errors import ProxyFailed, TlsFailed
from crawler.fetch.client import Fetcher
from tests.helpers import database, write_config, write_seeds
from tests.proxy_server import TestProxy
from tests.servers import Request, Response, TestServer, two_pages
from tests.tls import Certificates

pytestmark = pytest.mark.anyio

USER_AGENT = "https-test-crawler/1.0"
OVERRIDES = {
    "crawl.user_agent": USER_AGENT,
    "politeness.per_host_delay": 0.0,
    "fetch.retry_backoff": 0.0,
    "runtime.stats_interval": 0.0,
}
UNKNOWN_CA = "tls_error: certificate verify failed: unable to get local issuer certificate"
CREDENTIALS = "alice:s3cret"
AUTHORIZATION = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()


@pytest.fixture
def site(certificates: Certificates) -> Iterator[TestServer]:
    with TestServer(two_pages, host="127.0.0.14", tls=certificates.server_context()) as server:
        yield server


async def crawl(db: Path, seeds: list[str], **overrides: Any) -> dict[str, tuple[Any, ...]]:
    """Crawl ``seeds``; path of each stored page -> (status, error)."""
    config = load_config(overrides={**OVERRIDES, **overrides}, environ={})
    await Crawl(config, seeds, db, AbortController().signal).run()
    with database(db) as conn:
        rows = conn.execute("SELECT url, status, error FROM pages").fetchall()
    return {urlsplit(url).path: (status, error) for url, status, error in rows}


def fetcher(**keys: Any) -> Fetcher:
    config = load_config(overrides={f"fetch.{k}": v for k, v in keys.items()}, environ={})
    return Fetcher(config.fetch, user_agent=USER_AGENT, concurrency=2)


# -- fetch.ca_file ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
async def test_an_https_site_signed_by_the_ca_file_is_crawled_and_without_it_fails_with_tls_error(
    site: TestServer, certificates: Certificates, tmp_path: Path, transport: str
) -> None:
    trusted = await crawl(
        tmp_path / "a.db",
        [site.url("/")],
        **{"fetch.transport": transport, "fetch.ca_file": str(certificates.ca_file)},
    )
    assert trusted == {"/": (200, None), "/next": (200, None)}
    assert site.request_counts() == {"/robots.txt": 1, "/": 1, "/next": 1}
    # Negative control: the same site, its CA not trusted. The page fails with the reason
    # itself, once (not retried: the next attempt meets the same certificate); no request
    # reached the server, whose handshake the crawler broke off.
    site.reset()
    # (A short robots_unreachable_retry: a failure taken for an outage would be retried soon,
    # ending as robots_unavailable rather than the reason.)
    untrusted = await crawl(
        tmp_path / "b.db",
        [site.url("/")],
        **{"fetch.transport": transport, "politeness.robots_unreachable_retry": 0.05},
    )
    assert untrusted == {"/": (None, UNKNOWN_CA)}
    assert site.requests() == []


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
async def test_a_certificate_for_another_address_fails_with_the_same_words_on_both_transports(
    certificates: Certificates, transport: str
) -> None:
    # The leaf names 127.0.0.1 to 127.0.0.20 (tests/tls.py): 127.0.0.21 is another host.
    tls = certificates.server_context()
    with TestServer(two_pages, host="127.0.0.21", tls=tls) as other:
        async with fetcher(transport=transport, ca_file=str(certificates.ca_file)) as client:
            with pytest.raises(TlsFailed) as caught:
                await client.fetch(other.url("/"))
    assert caught.value.describe() == (
        "tls_error: certificate verify failed: "
        "IP address mismatch, certificate is not valid for '127.0.0.21'."
    )


async def test_a_robots_txt_redirected_to_a_host_whose_certificate_fails_does_not_fail_the_pages(
    certificates: Certificates, tmp_path: Path
) -> None:
    # The site's own certificate verifies; its robots.txt redirects to another origin whose
    # certificate does not (127.0.0.21 is not in the leaf). robots.txt is then unreachable
    # (RFC 9309: disallow, for now), which is not a reason to call the site's TLS broken.
    tls = certificates.server_context()
    with TestServer(two_pages, host="127.0.0.21", tls=tls) as other:

        def redirecting(request: Request) -> Response:
            if request.path == "/robots.txt":
                return 301, {"Location": other.url("/robots.txt")}, b""
            return two_pages(request)

        with TestServer(redirecting, host="127.0.0.15", tls=tls) as site:
            found = await crawl(
                tmp_path / "c.db",
                [site.url("/")],
                **{
                    "fetch.ca_file": str(certificates.ca_file),
                    "fetch.max_retries": 0,
                    "politeness.robots_unreachable_retry": 0.05,
                    "security.allow_addresses": [other.host],  # not a seed's: else refused
                },
            )
        assert other.requests() == []  # its handshake failed
    assert found == {"/": (None, "robots_unavailable: robots.txt unreachable")}


def test_without_the_ca_file_the_run_ends_0_with_the_failed_pages_recorded(
    site: TestServer, tmp_path: Path
) -> None:
    seeds = write_seeds(tmp_path, site.url("/"), site.url("/next"))
    db = tmp_path / "c.db"
    result = CliRunner().invoke(
        app, ["run", str(seeds), "--db", str(db), "--config", str(write_config(tmp_path))]
    )
    assert result.exit_code == 0, result.output
    with database(db) as conn:
        errors = dict(conn.execute("SELECT url, error FROM pages").fetchall())
    assert errors == {site.url("/"): UNKNOWN_CA, site.url("/next"): UNKNOWN_CA}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read: {path}: No such file or directory"),
        ("not a certificate\n", "is not a PEM file of certificates: {path}"),
        (
            "-----BEGIN CERTIFICATE-----\nbm90IGRlcg==\n-----END CERTIFICATE-----\n",
            "is not a PEM file of certificates: {path}",
        ),
    ],
    ids=["missing", "text", "bad-pem"],
)
def test_a_ca_file_that_cannot_be_loaded_stops_the_run_at_load_with_one_line(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("[fetch]\n", f'[fetch]\nca_file = "{path}"\n'))
    seeds = write_seeds(tmp_path, "https://127.0.0.14/")
    result = CliRunner().invoke(
        app, ["run", str(seeds), "--db", str(tmp_path / "c.db"), "--config", str(config)]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "`fetch.ca_file`" in lines[0]
    assert problem.format(path=path) in lines[0]
    assert not (tmp_path / "c.db").exists()  # stopped before the database


# -- basic auth over https only ---------------------------------------------------------------


@pytest.fixture
def one_host_both_schemes(certificates: Certificates) -> Iterator[tuple[TestServer, TestServer]]:
    """127.0.0.18 on the schemes' default ports, https and http: the same host[:port] in URLs
    (``127.0.0.18``), so one ``[fetch.hosts]`` table is both's. https ``/`` links to http
    ``/linked``, and https ``/moved`` redirects to http ``/redirected``."""

    def secure(request: Request) -> Response:
        if request.path == "/":
            links = '<a href="/moved">m</a> <a href="http://127.0.0.18/linked">l</a>'
            return 200, {"Content-Type": "text/html"}, links.encode()
        if request.path == "/moved":
            return 301, {"Location": "http://127.0.0.18/redirected"}, b""
        return 404, {}, b""

    def plain(request: Request) -> Response:
        if request.path in ("/linked", "/redirected"):
            return 200, {"Content-Type": "text/html"}, b"<title>plain</title>"
        return 404, {}, b""

    tls = certificates.server_context()
    try:
        with (
            TestServer(secure, host="127.0.0.18", port=443, tls=tls) as https,
            TestServer(plain, host="127.0.0.18", port=80) as http,
        ):
            yield https, http
    except PermissionError:
        pytest.skip("binding ports 80 and 443 needs root (or net.ipv4.ip_unprivileged_port_start)")


@pytest.mark.parametrize("over_http", [False, True], ids=["https-only", "auth_over_http"])
async def test_basic_auth_goes_over_https_and_not_over_http_to_the_same_host(
    one_host_both_schemes: tuple[TestServer, TestServer],
    certificates: Certificates,
    tmp_path: Path,
    over_http: bool,
) -> None:
    https, http = one_host_both_schemes
    found = await crawl(
        tmp_path / "c.db",
        ["https://127.0.0.18/"],
        **{
            "fetch.ca_file": str(certificates.ca_file),
            "fetch.hosts": {"127.0.0.18": {"auth": CREDENTIALS, "auth_over_http": over_http}},
        },
    )
    assert {path: status for path, (status, _) in found.items()} == {
        "/": 200,
        "/moved": 301,
        "/linked": 200,
        "/redirected": 200,
    }
    sent = {r.target: r.headers.get("authorization") for r in https.requests()}
    assert sent == dict.fromkeys(["/robots.txt", "/", "/moved"], AUTHORIZATION)
    # Plain http gets them only when the host's table says so: a link, or a redirect from
    # https, to the same host over http carries none.
    sent = {r.target: r.headers.get("authorization") for r in http.requests()}
    expected = AUTHORIZATION if over_http else None
    assert sent == dict.fromkeys(["/robots.txt", "/linked", "/redirected"], expected)


# -- through a proxy: CONNECT -----------------------------------------------------------------


async def test_an_https_crawl_through_the_proxy_tunnels_with_its_credentials_on_the_connect_only(
    site: TestServer, certificates: Certificates, tmp_path: Path
) -> None:
    with TestProxy(credentials=CREDENTIALS) as proxy:
        proxy_url = f"http://{CREDENTIALS}@{proxy.host}:{proxy.port}"
        ca_file = str(certificates.ca_file)
        found = await crawl(
            tmp_path / "a.db",
            [site.url("/")],
            **{"fetch.proxy": proxy_url, "fetch.ca_file": ca_file},
        )
        assert found == {"/": (200, None), "/next": (200, None)}
        connects = proxy.requests()
        assert connects, "nothing went through the proxy"
        for connect in connects:
            assert (connect.method, connect.target) == ("CONNECT", f"{site.host}:{site.port}")
            assert connect.headers.get("proxy-authorization") == AUTHORIZATION
            # The proxy sees who is crawling, as it does on an http page's request.
            assert connect.headers.get("user-agent") == USER_AGENT
        # Inside the tunnel, end to end: the target saw the crawler's requests, without the
        # proxy's credentials, and no proxy's Via (the proxy saw only TLS records).
        assert site.request_counts() == {"/robots.txt": 1, "/": 1, "/next": 1}
        for request in site.requests():
            assert "proxy-authorization" not in request.headers
            assert "via" not in request.headers
            assert request.headers["user-agent"] == USER_AGENT
        # Without the CA the tunnel is made and the target's certificate still refused: the
        # page's reason is the target's (not proxy_failed: the proxy did its part).
        found = await crawl(tmp_path / "b.db", [site.url("/")], **{"fetch.proxy": proxy_url})
        assert found == {"/": (None, UNKNOWN_CA)}
        # Other credentials: the proxy refuses the CONNECT (407), which is the proxy's failure.
        wrong = f"http://alice:wrong@{proxy.host}:{proxy.port}"
        async with fetcher(proxy=wrong, ca_file=ca_file) as f:
            with pytest.raises(ProxyFailed, match="407"):
                await f.fetch(site.url("/next"))


async def test_a_proxy_refusing_connect_leaves_the_rotation_and_the_next_one_carries_on(
    site: TestServer, certificates: Certificates
) -> None:
    ca_file = str(certificates.ca_file)
    with (
        TestProxy(host="127.0.0.10", refuse_connect=True) as refusing,
        TestProxy(host="127.0.0.11") as working,
    ):
        urls = [site.url(f"/next?{n}") for n in range(4)]
        async with fetcher(proxies=[refusing.base_url, working.base_url], ca_file=ca_file) as f:
            assert [(await f.fetch(url)).status for url in urls] == [200] * 4
        assert [r.method for r in refusing.requests()] == ["CONNECT"]  # its 502, then out
        assert {r.target for r in working.requests()} == {f"{site.host}:{site.port}"}
        assert [r.target for r in site.requests()] == [f"/next?{n}" for n in range(4)]
        # Negative control: alone (fetch.proxy), the refusing proxy fails the page with why.
        async with fetcher(proxy=refusing.base_url, ca_file=ca_file) as f:
            with pytest.raises(ProxyFailed, match="502"):
                await f.fetch(urls[0])
