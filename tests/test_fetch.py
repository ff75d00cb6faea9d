"""Unit tests of the fetch layer through pytest-httpx's mock transport."""

from __future__ import annotations

import asyncio

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
from crawler.fetch import Fetcher

pytestmark = pytest.mark.anyio

URL = "http://site.test/page"
HTML = {"content-type": "text/html; charset=utf-8"}


def fetcher(**config: float) -> Fetcher:
    return Fetcher(FetchSection(**config), user_agent="test-agent/1", concurrency=4)  # type: ignore[arg-type]


async def test_html_page_is_read_with_our_user_agent(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, headers=HTML, content=b"<title>x</title>")
    async with fetcher() as f:
        response = await f.fetch(URL)
    assert (response.status, response.body, response.truncated) == (200, b"<title>x</title>", False)
    assert response.content_type == HTML["content-type"]
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["user-agent"] == "test-agent/1"


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
        assert "closed=False" in repr(f)
    assert "closed=True" in repr(f)
