"""Whole crawls, in process, of the demo site served on 127.0.0.1 (on both event loops)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from crawler import engine
from crawler.abort import AbortController
from crawler.config import Config
from crawler.demo import SiteServer, SiteSpec, expected_pages, expected_statuses
from crawler.engine import Crawl
from crawler.parse import pool as parse_pool
from tests.helpers import assert_consistent, crawl_config, database, pages, wait_until
from tests.servers import Request, Response, TestServer, html

pytestmark = pytest.mark.anyio


def config(**overrides: object) -> Config:
    return crawl_config(8, **{"fetch.retry_backoff": 0.01, **overrides})


async def crawl(site: SiteServer, db: Path, cfg: Config | None = None) -> engine.CrawlReport:
    seeds = [f"{site.base_url}/"]
    return await Crawl(cfg or config(), seeds, db, AbortController().signal).run()


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
async def test_every_in_scope_page_is_fetched_exactly_once_with_its_title(
    tmp_path: Path, transport: str
) -> None:
    spec = SiteSpec(pages=120)
    with SiteServer(spec) as site:
        report = await crawl(site, tmp_path / "crawl.db", config(**{"fetch.transport": transport}))
        requested = site.request_counts()
    statuses = expected_statuses(spec)
    assert requested == Counter(dict.fromkeys([*statuses, "/robots.txt"], 1))
    stored = pages(tmp_path / "crawl.db")
    assert {path: status for path, (status, _) in stored.items()} == statuses
    assert {path: stored[path][1] for path in expected_pages(spec)} == expected_pages(spec)
    assert report.complete
    assert report.database["done"] == len(statuses)
    assert report.database["pending"] == report.database["leased"] == 0
    assert_consistent(tmp_path / "crawl.db")


async def test_links_and_redirect_targets_are_recorded(tmp_path: Path) -> None:

    spec = SiteSpec(pages=30)
    with SiteServer(spec) as site:
        await crawl(site, tmp_path / "crawl.db")
        base = site.base_url
    with database(tmp_path / "crawl.db") as conn:
        redirect = conn.execute(
            "SELECT status, final_url FROM pages WHERE url = ?", (f"{base}/redirect/0",)
        ).fetchone()
        links = conn.execute(
            "SELECT dst_url FROM links WHERE src_url = ?", (f"{base}/page/0",)
        ).fetchall()
    assert redirect[0] == 301
    assert redirect[1].startswith(f"{base}/page/")
    assert (f"{base}/page/1",) in links  # every page links to the next one
    assert not any(dst.startswith(("mailto:", "javascript:")) for (dst,) in links)


async def test_depth_limit(tmp_path: Path) -> None:
    with SiteServer(SiteSpec(pages=50)) as site:
        await crawl(site, tmp_path / "crawl.db", config(**{"crawl.max_depth": 1}))
        requested = site.request_counts()
    home_links = {"/page/0", "/page/1", "/page/2"} & set(requested)
    assert home_links  # depth 1 reached
    stored = pages(tmp_path / "crawl.db")

    with database(tmp_path / "crawl.db") as conn:
        depths = {d for (d,) in conn.execute("SELECT depth FROM pages")}
    assert depths == {0, 1}
    assert len(stored) < 50


async def test_page_budget(tmp_path: Path) -> None:
    with SiteServer(SiteSpec(pages=100)) as site:
        report = await crawl(site, tmp_path / "crawl.db", config(**{"crawl.max_pages": 10}))
        assert site.total_requests == 10 + 1  # and robots.txt
    assert report.stats.pages == 10
    assert len(pages(tmp_path / "crawl.db")) == 10


def flaky_site() -> TestServer:
    """``/`` links to ``/flaky`` then ``/other``; ``/flaky`` answers 503 once, then 200."""
    flaky_answers = 0

    def answer(request: Request) -> Response:
        nonlocal flaky_answers
        if request.path == "/flaky":
            flaky_answers += 1
            if flaky_answers == 1:
                return 503, {"Retry-After": "0"}, b""
        links = '<a href="/flaky">f</a><a href="/other">o</a>' if request.path == "/" else ""
        return html(request.path, links)

    return TestServer(answer)


async def test_a_retry_pending_when_the_budget_runs_out_is_still_fetched(tmp_path: Path) -> None:
    # /flaky is the budget's last page; its 503 comes after the budget is spent. The retry was
    # charged at the first attempt, so it runs in this run; /other is never started.
    cfg = config(**{"crawl.max_pages": 2, "politeness.robots": False})
    with flaky_site() as site:
        seeds = [f"{site.base_url}/"]
        report = await Crawl(cfg, seeds, tmp_path / "crawl.db", AbortController().signal).run()
    assert site.request_counts() == Counter({"/": 1, "/flaky": 2})
    assert report.complete
    assert report.stats.retries == 1
    assert {path: status for path, (status, _) in pages(tmp_path / "crawl.db").items()} == {
        "/": 200,
        "/flaky": 200,
    }


def members_site() -> TestServer:
    """``/`` sets a session cookie and links to ``/members``, which answers 403 without it."""

    def answer(request: Request) -> Response:
        refused = request.path == "/members" and request.headers.get("cookie") != "session=1"
        _, headers, body = html(request.path, '<a href="/members">m</a>')
        if request.path == "/":
            headers = {**headers, "Set-Cookie": "session=1; Path=/"}
        return 403 if refused else 200, headers, body

    return TestServer(answer)


@pytest.mark.parametrize(("cookies", "members"), [("per-host", 200), ("off", 403)])
async def test_fetch_cookies_setting_decides_whether_a_session_cookie_goes_back(
    tmp_path: Path, cookies: str, members: int
) -> None:
    cfg = config(**{"fetch.cookies": cookies, "politeness.robots": False})
    db = tmp_path / "crawl.db"
    with members_site() as site:
        await Crawl(cfg, [f"{site.base_url}/"], db, AbortController().signal).run()
    assert {path: status for path, (status, _) in pages(db).items()} == {
        "/": 200,
        "/members": members,
    }


async def test_a_second_run_on_a_finished_database_fetches_nothing(tmp_path: Path) -> None:
    with SiteServer(SiteSpec(pages=40)) as site:
        await crawl(site, tmp_path / "crawl.db")
        site.reset_counts()
        report = await crawl(site, tmp_path / "crawl.db")
        assert site.total_requests == 0
    assert report.stats.pages == 0


async def test_failures_are_retried_then_recorded_with_a_reason(tmp_path: Path) -> None:
    # Nothing listens on this port (we bound it and closed it), so every connect is refused.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    seeds = [f"http://127.0.0.1:{port}/"]
    # robots.txt would be unreachable too and hold the URL back (tested with the politeness).
    cfg = config(**{"fetch.max_retries": 2, "politeness.robots": False})
    report = await Crawl(cfg, seeds, tmp_path / "crawl.db", AbortController().signal).run()
    assert report.stats.retries == 2
    assert report.stats.failed == 1
    assert report.stats.errors == Counter({"connect_failed": 1})
    stored = pages(tmp_path / "crawl.db")
    assert stored == {"/": (None, None)}
    assert report.database["failed"] == 1


IN_THREADS = config(**{"runtime.parse_processes": 0})
"""The held page below waits inside build_outcome in this process: only threads can hold it.
Worker processes are tested in test_parse_pool.py and by the deep-nesting page of
test_defences.py."""


async def test_a_slow_to_parse_page_does_not_stall_other_fetches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = SiteSpec(pages=300, big_page_bytes=4_000_000)
    others = len(expected_statuses(spec)) - 1
    with SiteServer(spec) as site:
        # Hold the big page's parse until every other page was requested. If parsing
        # ran on the event loop, no other request could be sent meanwhile: the wait would time
        # out (see the negative control below).
        monkeypatch.setattr(parse_pool, "build_outcome", hold_big_page(site, others, timeout=20))
        await crawl(site, tmp_path / "crawl.db", IN_THREADS)
    stored = pages(tmp_path / "crawl.db")
    assert stored["/big"][0] == 200
    assert len(stored) == others + 1


async def test_negative_control_parsing_on_the_loop_stalls_other_fetches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = SiteSpec(pages=300, big_page_bytes=4_000_000)
    others = len(expected_statuses(spec)) - 1
    with SiteServer(spec) as site:
        monkeypatch.setattr(parse_pool, "build_outcome", hold_big_page(site, others, timeout=1))

        async def inline(func: Any, /, *args: Any) -> Any:
            return func(*args)

        monkeypatch.setattr(asyncio, "to_thread", inline)
        await crawl(site, tmp_path / "crawl.db", IN_THREADS)
    # The wait for the other fetches timed out inside the big page's parse, which
    # records it as that page's failure (an exception while handling one URL).
    with closing(sqlite3.connect(tmp_path / "crawl.db")) as conn:
        (error,) = conn.execute("SELECT error FROM pages WHERE url LIKE '%/big'").fetchone()
    assert error == "internal_error: AssertionError: condition not met within 1s"


def hold_big_page(site: SiteServer, others: int, timeout: float) -> Any:
    real = parse_pool.build_outcome

    def build(lease: Any, response: Any, rules: Any, fetched_at: str) -> Any:
        if lease.url.endswith("/big"):
            wait_until(lambda: site.total_requests >= others + 1, timeout=timeout)
        return real(lease, response, rules, fetched_at)

    return build


async def test_a_storage_failure_ends_the_crawl_and_keeps_what_was_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crawler.errors import StorageError
    from crawler.store.database import Store

    real_write = Store.write_batch
    batches = 0

    async def write_then_fill_up(self: Store, *args: Any, **kwargs: Any) -> None:
        nonlocal batches
        batches += 1
        if batches > 3:
            raise StorageError("cannot write to database: database or disk is full")
        await real_write(self, *args, **kwargs)

    spec = SiteSpec(pages=120)
    db = tmp_path / "crawl.db"
    with SiteServer(spec) as site:
        monkeypatch.setattr(Store, "write_batch", write_then_fill_up)
        with pytest.raises(ExceptionGroup) as info:
            await crawl(site, db)
        assert info.group_contains(StorageError, match="disk is full")
        assert_consistent(db)
        saved = pages(db)
        assert saved  # the first batches stay
        monkeypatch.setattr(Store, "write_batch", real_write)
        site.reset_counts()
        await crawl(site, db)  # space again: the crawl resumes
        refetched = set(site.request_counts())
    assert not refetched & set(saved)
    assert {p: s for p, (s, _) in pages(db).items()} == expected_statuses(spec)


async def test_sqlite_full_database_is_a_storage_error(tmp_path: Path) -> None:
    from crawler.errors import StorageError
    from crawler.models import PageRecord
    from crawler.store.database import Store
    from crawler.store.rows import page_rows

    async with Store(tmp_path / "full.db") as store:
        await store.add_urls([("http://a.test/", "a.test", 0, 0)])
        (page_count,) = await (await store.conn.execute("PRAGMA page_count")).fetchone()  # type: ignore[misc]
        await store.conn.execute(f"PRAGMA max_page_count = {page_count}")
        big = PageRecord(
            url="http://a.test/", depth=0, fetched_at="t", status=200, title="x" * 100_000
        )
        with pytest.raises(StorageError, match="full"):
            await store.write_batch([(1, big.state, page_rows(big, [], [], 1, 0))])
        assert (await store.state_counts())["pending"] == 1  # the failed batch left no trace


def test_fetched_at_stamps_are_what_datetime_writes() -> None:
    from datetime import UTC, datetime

    from crawler.worker import _UtcStamps

    stamps = _UtcStamps()
    for ns in (
        0,
        999_999,
        1_700_000_000_999_999_999,
        1_700_000_001_000_000_000,
        1_764_720_000_123_456_789,
    ):
        expected = datetime.fromtimestamp(ns // 1000 / 1e6, UTC).isoformat(timespec="milliseconds")
        assert stamps.at(ns) == expected
    assert abs(datetime.fromisoformat(stamps()) - datetime.now(UTC)).total_seconds() < 60
