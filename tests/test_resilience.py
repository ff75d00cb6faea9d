"""No exception raised while handling one URL ends the crawl: whatever breaks for one page
(the transport, the parser, robots.txt, the encoding of its rows) becomes that page's
``internal_error``, and every other page is stored. Each test injects the failure for ONE URL
through a part's own seam, in a real crawl of the hostile site; without the catch-all each of
them ends the crawl with an ExceptionGroup."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crawler import extract
from crawler.models import ParsedPage
from crawler.robots import RobotsPolicy
from tests.hostile_site import HostileSite
from tests.test_defences import Result, crawl

pytestmark = pytest.mark.anyio

VICTIM = "/links/sub/rel"
"""The one page each test breaks."""
OTHERS = ("/links/target", "/links/from-userinfo", "/meta/rel-target")
PLAIN_PAGES = (VICTIM, *OTHERS)
"""Plain pages without links: the crawl of these seeds is exactly these pages."""
IN_THREADS = {"runtime.parse_processes": 0}
"""A monkeypatched parser reaches threads only, not the parse worker processes."""


@pytest.fixture
def site() -> Iterator[HostileSite]:
    with HostileSite() as s:
        yield s


def assert_only_the_victim_failed(result: Result, error: str) -> None:
    assert result.report.complete
    assert result.rows[VICTIM]["status"] is None
    assert result.rows[VICTIM]["error"] == error
    assert {path: result.rows[path]["status"] for path in OTHERS} == dict.fromkeys(OTHERS, 200)
    assert result.report.stats.errors == {"internal_error": 1}
    assert result.report.database["failed"] == 1  # finished: not leased, not fetched again
    assert result.report.database["done"] == len(OTHERS)


class FailingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, raising for the victim: what aiohttp did for a URL with
    credentials."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == VICTIM:
            raise ValueError("injected: the transport refused the URL")
        return await super().handle_async_request(request)


async def test_an_exception_out_of_the_transport_is_that_pages_failure(
    site: HostileSite, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = await crawl(site, tmp_path, *PLAIN_PAGES, transport=FailingTransport())
    assert_only_the_victim_failed(
        result, "internal_error: ValueError: injected: the transport refused the URL"
    )
    assert VICTIM not in result.requested


async def test_an_exception_out_of_the_parser_is_that_pages_failure(
    site: HostileSite, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = extract.parse_html

    def parse_html(body: bytes, url: str, content_type: str | None) -> ParsedPage:
        if url.endswith(VICTIM):
            raise RecursionError("injected: maximum recursion depth exceeded")
        return real(body, url, content_type)

    monkeypatch.setattr(extract, "parse_html", parse_html)
    result = await crawl(site, tmp_path, *PLAIN_PAGES, **IN_THREADS)
    assert_only_the_victim_failed(
        result, "internal_error: RecursionError: injected: maximum recursion depth exceeded"
    )


async def test_an_exception_out_of_the_robots_cache_is_that_pages_failure(
    site: HostileSite, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = RobotsPolicy.allows

    def allows(self: RobotsPolicy, url: str) -> bool:
        if url.endswith(VICTIM):
            raise TypeError("injected: the rules could not be matched")
        return real(self, url)

    monkeypatch.setattr(RobotsPolicy, "allows", allows)
    result = await crawl(site, tmp_path, *PLAIN_PAGES)
    assert_only_the_victim_failed(
        result, "internal_error: TypeError: injected: the rules could not be matched"
    )
    assert VICTIM not in result.requested


async def test_a_page_whose_row_cannot_be_encoded_fails_alone(
    site: HostileSite, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lone surrogate has no UTF-8 form: encoding the page's row fails. Encoded in the sink's
    # batch, it failed the batch, and the crawl with it.
    real = extract.parse_html

    def parse_html(body: bytes, url: str, content_type: str | None) -> ParsedPage:
        parsed = real(body, url, content_type)
        if url.endswith(VICTIM):
            return ParsedPage(title="bad \udcff title", links=parsed.links)
        return parsed

    monkeypatch.setattr(extract, "parse_html", parse_html)
    result = await crawl(site, tmp_path, *PLAIN_PAGES, **IN_THREADS)
    error = result.rows[VICTIM]["error"]
    assert error.startswith("internal_error: UnicodeEncodeError: 'utf-8' codec can't encode")
    assert_only_the_victim_failed(result, error)


async def test_an_internal_error_is_one_warning_line_and_a_traceback_under_debug(
    site: HostileSite,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(RobotsPolicy, "allows", _raise_for_victim)
    with caplog.at_level(logging.INFO, logger="crawler"):
        await crawl(site, tmp_path, *PLAIN_PAGES)
    (warning,) = [r for r in caplog.records if getattr(r, "event", None) == "internal_error"]
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        f"{site.base_url}{VICTIM}: internal_error: KeyError: 'injected'; recorded as its "
        "failure, the crawl goes on"
    )
    assert warning.exc_info is None
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="crawler"):
        await crawl(site, tmp_path, *PLAIN_PAGES)
    (warning,) = [r for r in caplog.records if getattr(r, "event", None) == "internal_error"]
    assert warning.exc_info is not None
    assert warning.exc_info[0] is KeyError


def _raise_for_victim(self: RobotsPolicy, url: str) -> bool:
    if url.endswith(VICTIM):
        raise KeyError("injected")
    return True


async def test_the_database_failing_still_ends_the_crawl(
    site: HostileSite, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The crawl's own machinery is not one URL's failure: a StorageError out of a worker's
    # step (here the frontier's) ends the run; the CLI prints it as one line, exit 1.
    from crawler.errors import StorageError
    from crawler.frontier import Frontier

    def host_succeeded(self: Frontier, host: str) -> None:
        raise StorageError("cannot write to database: disk I/O error")

    monkeypatch.setattr(Frontier, "host_succeeded", host_succeeded)
    with pytest.raises(ExceptionGroup) as info:
        await crawl(site, tmp_path, *PLAIN_PAGES)
    assert info.group_contains(StorageError, match="disk I/O error")
