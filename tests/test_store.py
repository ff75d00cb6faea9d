"""The crawl database's batch write, read back with plain sqlite3: every value as given."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from crawler.config import StorageSection
from crawler.models import Outcome, PageRecord, RobotsRecord
from crawler.store.database import Store
from crawler.store.rows import page_rows
from crawler.store.sink import Sink

pytestmark = pytest.mark.anyio

PAGES = [
    PageRecord(
        url="http://a.test/1",
        depth=0,
        fetched_at="2026-11-25T00:00:00.000+00:00",
        final_url="http://a.test/1",
        status=200,
        content_type="text/html; charset=utf-8",
        title='Ünïcödé "quoted" \\ back\\slash, 🕷 and a\nnewline',
        description="",
        canonical="http://a.test/c",
        size=20_480,
        elapsed_ms=12.345678901234567,
        truncated=True,
        notes="noindex,truncated_encoding",
        data={"price": "9.50", "tags": ["a", "b"], "n": 3, "nested": {"x": None}, "none": None},
        sha256="ab" * 32,
    ),
    PageRecord(
        url="http://a.test/2",
        depth=1,
        fetched_at="t",
        error="connect_failed: refused",
        elapsed_ms=0.1,
    ),
    PageRecord(
        url="http://a.test/3", depth=2, fetched_at="t", error="robots_disallowed", skipped=True
    ),
]


async def test_a_batch_is_written_as_given(tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    async with Store(db) as store:
        await store.add_urls([(page.url, "a.test", page.depth, 0) for page in PAGES])
        claimed = (await store.claim([("a.test", 10)]))["a.test"]
        ids = {lease.url: lease.id for lease in claimed}
        links = ["http://a.test/2", "http://b.test/"]
        offered = {PAGES[0].url: (links, ["http://b.test/", "http://a.test/2"])}
        await store.write_batch(
            [
                (ids[page.url], page.state, page_rows(page, *offered.get(page.url, ([], [])), 1, 0))
                for page in PAGES  # the others have no links
            ]
        )
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT url, final_url, status, content_type, title, description, canonical, depth,"
            " fetched_at, error, size, elapsed_ms, truncated, notes, sha256 FROM pages ORDER BY url"
        ).fetchall()
        data = conn.execute("SELECT data FROM pages ORDER BY url").fetchall()
        states = conn.execute("SELECT url, state, depth FROM frontier ORDER BY url").fetchall()
        links = conn.execute("SELECT src_url, dst_url FROM links ORDER BY dst_url").fetchall()
    assert rows == [
        (
            p.url, p.final_url, p.status, p.content_type, p.title, p.description, p.canonical,
            p.depth, p.fetched_at, p.error, p.size, p.elapsed_ms, int(p.truncated), p.notes,
            p.sha256,
        )
        for p in PAGES
    ]  # fmt: skip
    assert [type(value) for value in rows[0]] == [
        str, str, int, str, str, str, str, int, str, type(None), int, float, int, str, str
    ]  # fmt: skip
    # One JSON object per page, as given; SQL NULL (not the text "null") for a page without.
    assert [None if text is None else json.loads(text) for (text,) in data] == [
        PAGES[0].data,
        None,
        None,
    ]
    assert data[1] == (None,)
    assert states == [
        ("http://a.test/1", "done", 0),
        ("http://a.test/2", "failed", 1),  # already known: not offered again
        ("http://a.test/3", "skipped", 2),
        ("http://b.test/", "pending", 1),
    ]
    assert links == [("http://a.test/1", "http://a.test/2"), ("http://a.test/1", "http://b.test/")]


async def test_the_sink_writes_robots_records_with_its_batches(tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    commits: list[int] = []
    async with Store(db) as store:
        await store.add_urls([(PAGES[0].url, "a.test", 0, 0)])
        (lease,) = (await store.claim([("a.test", 1)]))["a.test"]
        sink = Sink(store, StorageSection(), lambda count, hosts: commits.append(count))
        # Queued before the writer runs: one batch, the page and the robots.txt outcome.
        await sink.put(RobotsRecord("http://a.test", 200, 2.5, ("http://a.test/s.xml",)))
        await sink.put(Outcome(lease, PAGES[0]))
        await sink.put(RobotsRecord("http://b.test", None, None))
        await sink.finish()
        await sink.run()
        assert (sink.committed, sink.batches, commits) == (1, 1, [1])
        # A robots.txt outcome with no page to go with it is written too.
        alone = Sink(store, StorageSection(), lambda count, hosts: commits.append(count))
        await alone.put(RobotsRecord("http://a.test", 404, None))
        await alone.finish()
        await alone.run()
        assert (alone.committed, alone.batches, commits) == (0, 1, [1, 0])
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT origin, status, crawl_delay, sitemaps FROM robots ORDER BY origin"
        ).fetchall()
        states = conn.execute("SELECT state FROM frontier").fetchall()
    assert rows == [("http://a.test", 404, None, ""), ("http://b.test", None, None, "")]
    assert states == [("done",)]


async def test_closing_mid_transaction_releases_the_database_for_the_next_writer(
    tmp_path: Path,
) -> None:
    # A crawl cancelled between BEGIN and COMMIT: the transaction is open, and a statement of
    # it is still referenced mid-way (here a claim's RETURNING rows, half read).
    db = tmp_path / "c.db"
    store = Store(db)
    await store.__aenter__()
    await store.add_urls([(f"http://a.test/{i}", "a.test", 0, 0) for i in range(3)])
    await store.conn.execute("BEGIN IMMEDIATE")
    held = await store.conn.execute("UPDATE frontier SET state = 'leased' RETURNING id")
    await held.fetchone()
    await store.aclose()
    with closing(sqlite3.connect(db, timeout=0)) as other:
        other.execute("BEGIN IMMEDIATE")  # 'database is locked' while the transaction lived on
        other.execute("ROLLBACK")
    del held


async def test_urls_offered_through_the_sink_commit_with_its_batch_before_the_offer_returns(
    tmp_path: Path,
) -> None:
    db = tmp_path / "crawl.db"
    commits: list[tuple[int, set[str]]] = []
    async with Store(db) as store:
        await store.add_urls([(PAGES[0].url, "a.test", 0, 0)])
        (lease,) = (await store.claim([("a.test", 1)]))["a.test"]
        sink = Sink(store, StorageSection(), lambda n, hosts: commits.append((n, set(hosts))))
        await sink.put(Outcome(lease, PAGES[0]))
        offer = asyncio.create_task(sink.offer([("http://c.test/s", "c.test", 0, 0)]))
        writer = asyncio.create_task(sink.run())
        await offer
        # Returned after the commit, one transaction with the page; the frontier hears of the
        # sitemap URL's host.
        assert (sink.committed, sink.batches, commits) == (1, 1, [(1, {"c.test"})])
        await sink.finish()
        await writer
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT url, host, depth, state FROM frontier ORDER BY id").fetchall()
    assert rows == [
        (PAGES[0].url, "a.test", 0, "done"),
        ("http://c.test/s", "c.test", 0, "pending"),
    ]
