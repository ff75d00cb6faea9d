"""Sitemaps: the parser and its limits (pure), the seeder's bookkeeping, and real crawls of the
demo site and of a site whose sitemaps break every rule (``tests/sitemap_site.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crawler.abort import AbortController
from crawler.config import Config, SitemapsSection
from crawler.demo import SiteServer, SiteSpec
from crawler.engine import Crawl, CrawlReport
from crawler.errors import ConnectFailed
from crawler.frontier.sitemaps import SitemapSeeder, decompress, parse_sitemap
from crawler.models import Response
from crawler.scope import Scope
from tests.helpers import crawl_config, database, min_gap, wait_until
from tests.servers import Gate
from tests.sitemap_site import DISALLOWED, EXPECTED, NEVER, NS, SitemapSite, _bomb


def config(**overrides: object) -> Config:
    return crawl_config(**{"crawl.max_depth": 0, "sitemaps.enabled": True, **overrides})


async def crawl(seed: str, db: Path, cfg: Config) -> CrawlReport:
    return await Crawl(cfg, [seed], db, AbortController().signal).run()


def any_turn(url: str) -> contextlib.nullcontext[None]:
    """A turn given at once: the seeder's own bookkeeping, without a frontier."""
    return contextlib.nullcontext()


def frontier_rows(db: Path) -> dict[str, tuple[str, int]]:
    """Path -> (state, depth) of every URL in the frontier."""
    with database(db) as conn:
        rows = conn.execute("SELECT url, state, depth FROM frontier").fetchall()
    conn.close()
    return {urlsplit(url).path: (state, depth) for url, state, depth in rows}


def seed_done(db: Path) -> bool:
    """The crawl in ``db`` has finished its seed ``/`` (False while the file or its schema is
    still being created, or a write holds the lock)."""
    if not db.exists():
        return False
    try:
        return frontier_rows(db).get("/", ("", 0))[0] == "done"
    except sqlite3.OperationalError:
        return False


# -- parsing (pure) --------------------------------------------------------------------------------


def test_urlset_with_namespace() -> None:
    body = f"<?xml version='1.0'?><urlset {NS}><url><loc> http://a.test/1 </loc></url>"
    body += "<url><loc>http://a.test/2</loc><lastmod>2026-01-01</lastmod></url></urlset>"
    doc = parse_sitemap(body.encode(), limit=10)
    assert (doc.kind, doc.locs, doc.error) == (
        "urlset",
        ["http://a.test/1", "http://a.test/2"],
        None,
    )


def test_index_without_namespace() -> None:
    body = b"<sitemapindex><sitemap><loc>http://a.test/s.xml</loc></sitemap></sitemapindex>"
    doc = parse_sitemap(body, limit=10)
    assert (doc.kind, doc.locs) == ("index", ["http://a.test/s.xml"])


def test_text_sitemap_takes_url_lines_only() -> None:
    doc = parse_sitemap(b"\xef\xbb\xbfhttp://a.test/1\n  https://a.test/2  \nnot a url\n", 10)
    assert (doc.kind, doc.locs) == ("text", ["http://a.test/1", "https://a.test/2"])


def test_limit_stops_reading() -> None:
    locs = "".join(f"<url><loc>http://a.test/{i}</loc></url>" for i in range(100))
    doc = parse_sitemap(f"<urlset {NS}>{locs}</urlset>".encode(), limit=7)
    assert doc.locs == [f"http://a.test/{i}" for i in range(7)]


def test_cut_or_malformed_xml_keeps_what_came_before() -> None:
    body = f"<urlset {NS}><url><loc>http://a.test/1</loc></url><url><loc>http://a.te".encode()
    doc = parse_sitemap(body, limit=10)
    assert doc.locs == ["http://a.test/1"]
    assert doc.error is not None
    assert doc.error.startswith("malformed XML")


def test_entity_bomb_and_dtds_are_refused() -> None:
    doc = parse_sitemap(_bomb("http://a.test"), limit=10)
    assert doc.locs == []
    assert doc.error == "refused: DTDForbidden"
    external = b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><urlset/>'
    assert parse_sitemap(external, limit=10).error == "refused: DTDForbidden"


def test_not_a_sitemap() -> None:
    doc = parse_sitemap(b"<html><body>hello</body></html>", limit=10)
    assert doc.error == "not a sitemap: <html>"


def test_gzip_is_inflated_within_the_cap() -> None:
    plain = f"<urlset {NS}></urlset>".encode()
    assert decompress(gzip.compress(plain), 1000) == (plain, False)
    assert decompress(plain, 1000) == (plain, False)
    bomb = gzip.compress(b"\0" * 50_000_000)  # 50 MB from ~50 KB
    data, cut = decompress(bomb, 1_000_000)
    assert (len(data), cut) == (1_000_000, True)
    assert decompress(b"\x1f\x8b not gzip at all", 1000) == (b"", True)


# -- the seeder's bookkeeping ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_stop_cancels_reading_and_releases_every_hold() -> None:
    started = asyncio.Event()
    holds: list[int] = []

    async def fetch_forever(url: str) -> Response:
        started.set()
        await asyncio.Event().wait()  # a server that never answers
        raise AssertionError("not reached")

    async def add(urls: Sequence[str]) -> None:
        raise AssertionError("nothing to add")

    seeder = SitemapSeeder(
        SitemapsSection(enabled=True, concurrency=1),
        fetch_forever,
        add,
        scope=Scope(["a.test", "b.test"]),
        hold=lambda: holds.append(1),
        release=lambda: holds.append(-1),
        turn=any_turn,
    )
    seeder.discover("http://a.test", ())
    seeder.discover("http://b.test", ())  # queued behind a.test (concurrency 1)
    seeder.discover("http://a.test", ())  # once per origin
    assert sum(holds) == 2
    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        group.create_task(seeder.run())
        await started.wait()
        seeder.stop()
    assert sum(holds) == 0
    assert len(holds) == 4


@pytest.mark.anyio
async def test_failures_are_logged_and_reading_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    added: list[str] = []
    holds: list[int] = []
    done = asyncio.Event()

    def release() -> None:
        holds.append(-1)
        if not sum(holds):
            done.set()

    async def fetch(url: str) -> Response:
        if url.endswith("/down.xml"):
            raise ConnectFailed("refused")
        if url.endswith("/404.xml"):
            return Response(url, 404, "text/html", b"")
        return Response(
            url,
            200,
            "application/xml",
            f"<urlset {NS}><url><loc>{url}/p</loc></url></urlset>".encode(),
        )

    async def add(urls: Sequence[str]) -> None:
        added.extend(urls)

    seeder = SitemapSeeder(
        SitemapsSection(enabled=True),
        fetch,
        add,
        scope=Scope(["a.test"]),
        hold=lambda: holds.append(1),
        release=release,
        turn=any_turn,
    )
    seeder.discover(
        "http://a.test",
        ["http://a.test/down.xml", "http://a.test/404.xml", "http://a.test/ok.xml"],
    )
    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        task = group.create_task(seeder.run())
        await done.wait()  # the job releases its hold when it is over
        seeder.stop()
    assert task.done()
    assert added == ["http://a.test/ok.xml/p"]
    assert seeder.failures == 2
    reasons = {
        getattr(r, "reason", None)
        for r in caplog.records
        if getattr(r, "event", "") == "sitemap_failed"
    }
    assert reasons == {"connect_failed", "http_status"}


# -- real crawls -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_demo_site_sitemap_seeds_every_page(tmp_path: Path) -> None:
    spec = SiteSpec(pages=40)
    with SiteServer(spec) as site:
        await crawl(f"{site.base_url}/", tmp_path / "on.db", config())
        with_sitemaps = site.request_counts()
        site.reset_counts()
        await crawl(f"{site.base_url}/", tmp_path / "off.db", config(**{"sitemaps.enabled": False}))
        without = site.request_counts()
    pages = {f"/page/{i}" for i in range(spec.pages)}
    # max_depth 0: only the seed is crawled, unless the sitemap offers the rest (depth 0).
    assert pages <= set(with_sitemaps)
    assert with_sitemaps["/sitemap.xml"] == 1
    assert all(with_sitemaps[p] == 1 for p in pages)
    assert not pages & set(without)  # the negative control
    assert "/sitemap.xml" not in without
    assert {depth for state, depth in frontier_rows(tmp_path / "on.db").values()} == {0}


@pytest.mark.anyio
async def test_every_sitemap_rule_on_a_real_site(tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    sitemaps_held = Gate()
    with SitemapSite(hold=sitemaps_held) as site:
        crawling = asyncio.ensure_future(crawl(f"{site.base_url}/", db, config()))
        # No sitemap is answered before the seed is done: reading them is all that is left.
        await asyncio.to_thread(wait_until, lambda: crawling.done() or seed_done(db))
        sitemaps_held.open()
        report = await crawling
        requested = site.request_counts()
    rows = frontier_rows(db)
    fetched = {path for path, (state, _) in rows.items() if state == "done"} - {"/"}
    # The seed was done before any sitemap arrived: the crawl waited for them.
    assert fetched == EXPECTED
    assert rows[DISALLOWED] == ("skipped", 0)
    assert DISALLOWED not in requested
    assert not NEVER & set(rows)
    assert not NEVER & set(requested)
    assert "/sitemap.xml" not in requested  # robots.txt names its sitemaps
    sitemap_files = {p: n for p, n in requested.items() if p.startswith(("/sitemap", "/moved"))}
    assert all(n == 1 for n in sitemap_files.values()), sitemap_files
    assert "/sitemaps/n.xml" not in requested  # under three levels of indexes
    assert report.complete


@pytest.mark.anyio
async def test_limits_per_origin(tmp_path: Path) -> None:
    with SitemapSite() as site:
        await crawl(f"{site.base_url}/", tmp_path / "urls.db", config(**{"sitemaps.max_urls": 3}))
        await crawl(f"{site.base_url}/", tmp_path / "files.db", config(**{"sitemaps.max_files": 2}))
    assert len(frontier_rows(tmp_path / "urls.db")) == 1 + 3
    # Two files: the index (its children are not read) and moved.xml (-> e.xml).
    assert set(frontier_rows(tmp_path / "files.db")) == {"/", "/p/e1"}


@pytest.mark.anyio
async def test_sitemap_files_and_pages_of_a_host_keep_its_delay(tmp_path: Path) -> None:
    # robots.txt, the seed, the sitemap files (a redirect's target too) and the pages they
    # offer: every request to the host takes its turn in the frontier's slot for it.
    limits = {"sitemaps.max_files": 2, "politeness.per_host_concurrency": 4}
    with SitemapSite() as site:
        delayed = config(**limits, **{"politeness.per_host_delay": 0.4})
        await crawl(f"{site.base_url}/", tmp_path / "delay.db", delayed)
        requested = site.request_counts()
        spaced = min_gap(site.request_times("/"))
        site.reset()
        # Negative control: without a delay the same requests come close together.
        await crawl(f"{site.base_url}/", tmp_path / "none.db", config(**limits))
        unspaced = min_gap(site.request_times("/"))
    assert {"/robots.txt", "/", "/sitemap_index.xml", "/moved.xml", "/p/e1"} <= set(requested)
    assert spaced >= 0.3  # starts are 0.4 s apart; arrivals may bunch up a little
    assert unspaced < 0.2


@pytest.mark.anyio
async def test_without_robots_the_seed_origins_sitemap_xml_is_read(tmp_path: Path) -> None:
    with SitemapSite(robots=False) as site:
        await crawl(f"{site.base_url}/", tmp_path / "c.db", config(**{"politeness.robots": False}))
        requested = site.request_counts()
    assert set(frontier_rows(tmp_path / "c.db")) == {"/", "/p/s1"}
    assert "/robots.txt" not in requested
