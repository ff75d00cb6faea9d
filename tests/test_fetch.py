"""Unit tests of the fetch layer through pytest-httpx's mock transport."""

from __future__ import annotations

import asyncio
import zlib

import httpx
import pytest
from pytest_httpx import HTTPXMock

from crawler.config import FetchSection
from crawler.errors import (
    ConnectFailed,
    ConnectionDropped,
    InvalidResponse,
    PageError,
    TimedOut,
    UnsupportedURL,
)
from crawler.fetch.body import UnsupportedEncoding
from crawler.fetch.client import Fetcher

pytestmark = pytest.mark.anyio

URL = "http://site.test/page"
HTML = {"content-type": "text/html; charset=utf-8"}


def fetcher(**config: float) -> Fetcher:
    # pytest-httpx mocks httpx's own transport, so these unit tests run over it.
    section = FetchSection(transport="httpcore", **config)  # type: ignore[arg-type]
    return Fetcher(section, user_agent="test-agent/1", concurrency=4)


async def test_html_page_is_read_with_our_user_agent(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, headers=HTML, content=b"<title>x</title>")
    async with fetcher() as f:
        response = await f.fetch(URL)
    assert (response.status, response.body, response.truncated) == (200, b"<title>x</title>", False)
    assert response.content_type == HTML["content-type"]
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["user-agent"] == "test-agent/1"


async def test_the_fetcher_opens_once_and_closes_once(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, headers=HTML, content=b"<title>x</title>")
    f = fetcher()
    assert repr(f) == "<Fetcher state=new>"
    async with f:
        assert (await f.fetch(URL)).status == 200
        assert repr(f) == "<Fetcher state=open>"
    await f.aclose()  # closed already: nothing to do, nothing raised
    assert repr(f) == "<Fetcher state=closed>"
    with pytest.raises(RuntimeError, match="Fetcher is closed: it opens once"):
        async with f:
            pytest.fail("a closed fetcher must not reopen")


async def test_non_html_body_is_not_read(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=URL, headers={"content-type": "image/png"}, content=b"\x89PNG" * 100
    )
    async with fetcher() as f:
        response = await f.fetch(URL)
    assert (response.status, response.body, response.is_html) == (200, b"", False)


async def test_redirects_are_reported_not_followed(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, status_code=301, headers={"location": "/elsewhere"})
    async with fetcher() as f:
        response = await f.fetch(URL)
    assert (response.status, response.location) == (301, "/elsewhere")
    assert len(httpx_mock.get_requests()) == 1


async def test_body_stops_at_the_size_cap(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, headers=HTML, content=b"a" * 5000)
    async with fetcher(max_body_bytes=1000) as f:
        response = await f.fetch(URL)
    assert (len(response.body), response.truncated) == (1000, True)


async def test_body_exactly_at_the_cap_is_not_truncated(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, headers=HTML, content=b"a" * 1000)
    async with fetcher(max_body_bytes=1000) as f:
        response = await f.fetch(URL)
    assert (len(response.body), response.truncated) == (1000, False)


@pytest.mark.parametrize(
    ("exception", "expected", "retryable"),
    [
        (httpx.ConnectError("refused"), ConnectFailed, True),
        (httpx.ConnectTimeout("slow"), TimedOut, True),
        (httpx.ReadTimeout("slow"), TimedOut, True),
        (httpx.RemoteProtocolError("peer closed"), ConnectionDropped, True),
        (httpx.ReadError("reset"), ConnectionDropped, True),
        (httpx.UnsupportedProtocol("ftp"), UnsupportedURL, False),
        (httpx.DecodingError("bad gzip"), InvalidResponse, False),
    ],
)
async def test_transport_errors_become_typed_page_errors(
    httpx_mock: HTTPXMock, exception: Exception, expected: type[PageError], retryable: bool
) -> None:
    httpx_mock.add_exception(exception, url=URL)
    async with fetcher() as f:
        with pytest.raises(expected) as info:
            await f.fetch(URL)
    assert info.value.retryable is retryable
    assert info.value.describe().startswith(expected.reason)


async def test_total_deadline_cuts_a_response_that_never_ends(httpx_mock: HTTPXMock) -> None:
    never = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("unreachable")

    httpx_mock.add_callback(hang, url=URL)
    async with fetcher(total_timeout=0.2) as f:
        with pytest.raises(TimedOut, match=r"no complete response within 0\.2s"):
            await f.fetch(URL)


async def test_the_client_is_closed_on_exit(httpx_mock: HTTPXMock) -> None:
    async with fetcher() as f:
        assert not f._client.is_closed
    assert f._client.is_closed  # and with it, its transport


def _deflate(data: bytes, wbits: int) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "wbits"),
    [("gzip", 31), ("deflate", 15), ("deflate", -15)],  # -15: raw deflate, as some servers send
)
async def test_compressed_bodies_are_decoded(
    httpx_mock: HTTPXMock, encoding: str, wbits: int
) -> None:
    page = b"<title>t</title>" + b"x" * 5000
    headers = {**HTML, "content-encoding": encoding}
    httpx_mock.add_response(url=URL, headers=headers, content=_deflate(page, wbits))
    async with fetcher() as f:
        response = await f.fetch(URL)
    assert (response.body, response.truncated, response.notes) == (page, False, ())


async def test_decoding_stops_at_the_cap(httpx_mock: HTTPXMock) -> None:
    bomb = _deflate(b" " * 50_000_000, 31)
    httpx_mock.add_response(url=URL, headers={**HTML, "content-encoding": "gzip"}, content=bomb)
    async with fetcher(max_body_bytes=10_000) as f:
        response = await f.fetch(URL)
    assert (len(response.body), response.truncated) == (10_000, True)


async def test_a_cut_compressed_stream_is_noted(httpx_mock: HTTPXMock) -> None:
    whole = _deflate(bytes(range(256)) * 400, 31)
    httpx_mock.add_response(
        url=URL, headers={**HTML, "content-encoding": "gzip"}, content=whole[: len(whole) // 2]
    )
    async with fetcher() as f:
        response = await f.fetch(URL)
    assert response.notes == ("truncated_encoding",)
    assert 0 < len(response.body) < 256 * 400


# br and zstd are refused too, proved against a real server in test_defences: a mocked
# response is decoded by httpx itself as it is built, before our code sees it.
@pytest.mark.parametrize("encoding", ["compress", "x-unheard-of"])
async def test_encodings_we_did_not_ask_for_are_refused(
    httpx_mock: HTTPXMock, encoding: str
) -> None:
    httpx_mock.add_response(url=URL, headers={**HTML, "content-encoding": encoding}, content=b"??")
    async with fetcher() as f:
        with pytest.raises(UnsupportedEncoding):
            await f.fetch(URL)


async def test_we_ask_only_for_encodings_we_can_bound(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, headers=HTML, content=b"x")
    async with fetcher() as f:
        await f.fetch(URL)
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["accept-encoding"] == "gzip, deflate"


async def test_headers_the_politeness_needs(httpx_mock: HTTPXMock) -> None:
    headers = [("retry-after", "7"), ("x-robots-tag", "noindex"), ("x-robots-tag", "nofollow")]
    httpx_mock.add_response(url=URL, status_code=429, headers=headers)
    async with fetcher() as f:
        response = await f.fetch(URL)
    assert (response.retry_after, response.robots_tag) == ("7", "noindex, nofollow")


async def test_any_type_reads_non_html_bodies(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, headers={"content-type": "text/plain"}, content=b"a" * 100)
    async with fetcher() as f:
        response = await f.fetch(URL, any_type=True, max_bytes=10)
    assert (response.body, response.truncated) == (b"a" * 10, True)


def test_error_details_are_capped() -> None:
    error = InvalidResponse("x" * 10_000)
    assert len(error.describe()) < 400
    assert error.describe().endswith("...")


async def test_with_an_injected_transport_the_hook_comes_before_httpx_has_the_request() -> None:
    sent: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        assert sent == [URL]  # announced already, once
        return httpx.Response(200, headers=HTML, stream=httpx.ByteStream(b"x"))

    transport = httpx.MockTransport(respond)
    # The default transport setting (aiohttp) does not matter once a transport is injected.
    async with Fetcher(
        FetchSection(),
        user_agent="t",
        concurrency=1,
        transport=transport,
        on_request_sent=sent.append,
    ) as f:
        response = await f.fetch(URL)
    assert (response.status, sent) == (200, [URL])


async def test_a_domain_cookie_goes_back_only_to_the_host_that_set_it(
    httpx_mock: HTTPXMock,
) -> None:
    # Domain=site.test would have a browser send it to every *.site.test; per host, a cookie
    # from one host is never sent to another, however they are related.
    login = "http://a.site.test/login"
    httpx_mock.add_response(url=login, headers={"set-cookie": "sid=1; Domain=site.test; Path=/"})
    httpx_mock.add_response(is_reusable=True)
    async with fetcher() as f:
        for url in (login, "http://b.site.test/", "http://site.test/", "http://a.site.test/"):
            await f.fetch(url)
    sent = [(r.url.host, r.headers.get("cookie")) for r in httpx_mock.get_requests()]
    assert sent == [
        ("a.site.test", None),
        ("b.site.test", None),
        ("site.test", None),
        ("a.site.test", "sid=1"),
    ]


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "http://site.test:8080/a?b=c&d",
        "https://user:pw@site.test/%C3%A9?x=%20",
        "http://[::1]/",
    ],
)
async def test_requests_are_built_as_httpx_builds_them(url: str) -> None:
    # Fetcher._request skips build_request's general merging: what reaches the transport
    # must be the same, the Host header httpx adds included, and the Cookie header where
    # httpx's jar would put it (last).
    async with fetcher() as f:
        f._cookies.store(URL, "site.test", [b"session=abc; Path=/"])  # type: ignore[union-attr]
        # Any port of the host that set it, as in a browser.
        cookie = {"Cookie": "session=abc"} if httpx.URL(url).host == "site.test" else None
        ours = f._request(url)
        httpx_own = f._client.build_request("GET", url, headers=cookie)
    assert (ours.method, ours.url, ours.content) == (httpx_own.method, httpx_own.url, b"")
    assert ours.headers.raw == httpx_own.headers.raw
    assert ours.extensions == httpx_own.extensions
