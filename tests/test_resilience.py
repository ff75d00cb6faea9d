"""No exception raised while handling one URL ends the crawl: whatever breaks for one page
(the transport, the parser, robots.txt, the encoding of its rows) becomes that page's
``internal_error``, and every other page is stored. Each test injects the failure for ONE URL
through a part's own seam, in a real crawl of the hostile site; without the catch-all each of
them ends the crawl with an ExceptionGroup."""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.frontier.robots import RobotsPolicy
from crawler.models import ParsedPage
from crawler.parse import outcome
from crawler.parse.html import HtmlDocument
from crawler.urls import has_userinfo
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
    real = outcome.read_html

    def read_html(body: bytes, url: str, content_type: str | None) -> HtmlDocument:
        if url.endswith(VICTIM):
            raise RecursionError("injected: maximum recursion depth exceeded")
        return real(body, url, content_type)

    monkeypatch.setattr(outcome, "read_html", read_html)
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
    real = outcome.read_html

    def read_html(body: bytes, url: str, content_type: str | None) -> HtmlDocument:
        document = real(body, url, content_type)
        if url.endswith(VICTIM):
            page = ParsedPage(title="bad \udcff title", links=document.page.links)
            return replace(document, page=page)
        return document

    monkeypatch.setattr(outcome, "read_html", read_html)
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
    # step (here the frontier's host feedback) ends the run; the CLI prints it as one line,
    # exit 1.
    from crawler.errors import StorageError
    from crawler.frontier.host_feedback import HostFeedback

    def succeeded(self: HostFeedback, host: str) -> None:
        raise StorageError("cannot write to database: disk I/O error")

    monkeypatch.setattr(HostFeedback, "succeeded", succeeded)
    with pytest.raises(ExceptionGroup) as info:
        await crawl(site, tmp_path, *PLAIN_PAGES)
    assert info.group_contains(StorageError, match="disk I/O error")


# -- arbitrary hrefs, as an attacker would write them -----------------------------------------

SERVER = "\ue000server\ue000"
"""Stands for the hostile site's ``127.0.0.1:PORT`` in a generated href (the port is known
only once it runs): links into scope point back at it, never at a port nobody serves."""

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # no UTF-8 form
_junk = st.text(
    st.sampled_from(list("%0aFzZ/.?#&=@:;[]\\ \t\n\r\x00\x01\x7f\x85\u200f\u202e\u2066é€")),
    max_size=16,
)
_schemes = st.sampled_from(
    ["http", "https", "HTTP", "hTTpS", "ftp", "javascript", "mailto", "data", "file", "ws",
     "tel", "x-custom+1.0", "h\u0442tp", ""]
)  # fmt: skip
_userinfo = st.one_of(
    st.just(""),
    st.just("@"),
    st.just("a@b@"),
    st.builds(lambda user, password: f"{user}:{password}@", _text, _text),
)
_other_hosts = st.one_of(
    st.sampled_from(
        [
            "[fe80::1%25eth0]",
            "[fe80::1%eth0]",
            "[::1]",
            "[2001:DB8::1]",
            "[::1",
            "[v1.x]",
            "a" * 10_000,
            "ex\u202eample.com",
            "exa\u0000mple.com",
            "bücher.example",
            "",
            "localhost",
            "0x7f.1",
            "%31%32%37.0.0.1",
        ]
    ),
    st.integers(1, 5000).map(lambda n: "x." * n + "example"),
    _text,
)
_odd_ports = st.sampled_from(
    ["", ":", ":0", ":65536", ":-1", ":\uff18\uff10", ":99999999999999999999", ":80", ":443",
     ":8080", ":http", ":1:2"]
)  # fmt: skip
_in_scope = st.builds(
    lambda scheme, userinfo, path: f"{scheme}://{userinfo}{SERVER}/{path}",
    st.sampled_from(["http", "HTTP", "https"]),
    _userinfo,
    _junk,
)
_off_scope = st.builds(
    lambda scheme, userinfo, host, port, path: f"{scheme}://{userinfo}{host}{port}/{path}",
    _schemes,
    _userinfo,
    _other_hosts,
    _odd_ports,
    _junk,
)
_relative = st.one_of(_junk, _text, st.builds(lambda path: f"//{SERVER}/{path}", _junk))
HREFS = st.lists(st.one_of(_in_scope, _off_scope, _relative), max_size=8)


QUICK = {
    "crawl.max_depth": 1,
    # Threads: a parse worker process per example would cost more than the crawl.
    "runtime.parse_processes": 0,
    # An https link to the (plain HTTP) site waits for a TLS answer that never comes.
    "fetch.connect_timeout": 0.3,
    "fetch.read_timeout": 0.3,
    "fetch.total_timeout": 0.3,
}


@pytest.fixture(scope="module")
def shared_site() -> Iterator[HostileSite]:
    with HostileSite() as s:
        yield s


@settings(
    max_examples=25,
    deadline=None,
    database=None,  # nothing left in the worktree
    # One server for every example: it keeps no state between crawls that matters here.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(hrefs=HREFS)
async def test_arbitrary_hrefs_never_end_the_crawl(
    shared_site: HostileSite, hrefs: list[str]
) -> None:
    site = shared_site
    site.arbitrary_hrefs = tuple(h.replace(SERVER, f"127.0.0.1:{site.port}") for h in hrefs)
    with tempfile.TemporaryDirectory() as directory:
        # Depth 1: the generated links are fetched, not what the site's 404 page links to.
        result = await crawl(site, Path(directory), "/links/arbitrary", **QUICK)
        assert result.report.complete
        with closing(sqlite3.connect(result.db)) as conn:
            urls = conn.execute(
                "SELECT url, state, status, error FROM frontier LEFT JOIN pages USING (url)"
            ).fetchall()
    for url, state, status, error in urls:
        # Finished, and stored with a status (done) or a reason (failed, skipped).
        assert (state, status is not None) in {("done", True), ("failed", False),
                                               ("skipped", False)}, url  # fmt: skip
        assert status is not None or error, url
        assert not has_userinfo(url)  # credentials are never sent
