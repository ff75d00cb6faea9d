"""``crawl stats``: its numbers against the database (direct SQL) and against the demo site's
model, on finished, unfinished, live and large databases."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crawler.abort import AbortController
from crawler.cli.app import app
from crawler.config_load import load_config
from crawler.demo import SiteServer, SiteSpec, expected_statuses
from crawler.engine import Crawl
from crawler.errors import StorageError
from crawler.models import PageRecord
from crawler.store.database import Store
from crawler.store.schema import SCHEMA_VERSION
from crawler.store.snapshot import read_snapshot
from crawler.store.summary import CrawlSummary, format_text, read_summary
from tests.crawl_dbs import crawl_demo_site, make_synthetic_db, synthetic_data, write_pages
from tests.helpers import database

runner = CliRunner()
SPEC = SiteSpec(pages=60)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A complete crawl of the demo site: (database, base URL)."""
    return crawl_demo_site(tmp_path_factory.mktemp("finished"), SPEC)


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A crawl stopped by its page budget, URLs still pending."""
    return crawl_demo_site(tmp_path_factory.mktemp("unfinished"), SPEC, "--max-pages", "10")


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200,000 synthetic pages, one every 50 ms from 01:00 UTC, and 1,000 URLs pending."""
    db = tmp_path_factory.mktemp("large") / "large.db"
    make_synthetic_db(db, pages=200_000, pending=1_000)
    return db


def stats_json(db: Path, *flags: str) -> dict[str, Any]:
    result = runner.invoke(app, ["stats", str(db), "--json", *flags])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1  # one object on one line: appendable as JSON Lines
    stats: dict[str, Any] = json.loads(lines[0])
    return stats


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with database(db) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


def test_json_of_a_finished_crawl_matches_the_site_and_the_database(
    finished: tuple[Path, str],
) -> None:
    db, base_url = finished
    expected = Counter(expected_statuses(SPEC).values())  # 200: 61, 301: 6, 404: 6
    stats = stats_json(db)

    assert stats["finished"] is True
    assert stats["pages"] == sum(expected.values()) == 73
    assert {s["status"]: s["pages"] for s in stats["statuses"]} == expected
    assert [s["status"] for s in stats["statuses"]] == [200, 301, 404]
    assert stats["frontier"] == {"done": 73, "failed": 0, "skipped": 0, "pending": 0, "leased": 0}
    assert stats["errors"] == []
    assert stats["hosts"] == 1
    host = base_url.removeprefix("http://")
    assert stats["top_hosts"] == [{"host": host, "pages": 73, "failed": 0, "queued": 0}]
    # The rest against SQL over the whole table.
    [(size, first, last)] = query(
        db, "SELECT sum(size), min(fetched_at), max(fetched_at) FROM pages"
    )
    assert (stats["bytes"], stats["first_fetch"], stats["last_fetch"]) == (size, first, last)
    assert size > 73 * 300  # every HTML page of the demo site is a few hundred bytes at least
    depths = query(db, "SELECT depth, count(*) FROM pages GROUP BY depth ORDER BY depth")
    assert [(d["depth"], d["pages"]) for d in stats["depths"]] == depths
    assert stats["depths"][0] == {"depth": 0, "pages": 1}  # the one seed
    minutes = query(db, "SELECT fetched_at FROM pages")
    assert {t["minute"]: t["pages"] for t in stats["throughput"]} == Counter(
        f"{at[:16]}:00+00:00" for (at,) in minutes
    )
    assert stats["database"] == str(db)
    assert stats["fields"] == []  # no extraction rules, no hook: no page has data


def test_text_of_a_finished_crawl(finished: tuple[Path, str]) -> None:
    db, base_url = finished
    result = runner.invoke(app, ["stats", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"crawl database {db}: finished"
    assert lines[1] == "  frontier  73 URLs: 73 done, 0 failed, 0 skipped, 0 pending, 0 leased"
    assert lines[2].startswith("  pages     73 stored, ")
    statuses = lines[lines.index("statuses") + 1 : lines.index("errors by reason") - 1]
    # 61/73 = 83.6%, 6/73 = 8.2%
    assert statuses == ["  200  61   83.6%", "  301   6    8.2%", "  404   6    8.2%"]
    assert lines[lines.index("errors by reason") + 1] == "  (none)"
    hosts = lines.index("top hosts by pages (1 of 1)")
    host = base_url.removeprefix("http://")
    assert lines[hosts + 1] == f"  {host}  73 pages  0 failed  0 queued"
    assert any(line.startswith("throughput (pages per minute, UTC") for line in lines)
    assert not any(line.startswith("fields") for line in lines)  # no page has data


def test_an_unfinished_crawl_shows_what_is_left(unfinished: tuple[Path, str]) -> None:
    db, _ = unfinished
    stats = stats_json(db)
    states = dict(query(db, "SELECT state, count(*) FROM frontier GROUP BY state"))
    to_go = states.get("pending", 0) + states.get("leased", 0)

    assert stats["finished"] is False
    assert stats["pages"] == 10
    assert to_go > 0
    assert stats["frontier"] == {
        "done": 10,
        "failed": 0,
        "skipped": 0,
        "pending": states.get("pending", 0),
        "leased": states.get("leased", 0),
    }
    assert sum(s["pages"] for s in stats["statuses"]) == 10
    assert stats["top_hosts"][0]["queued"] == to_go
    text = runner.invoke(app, ["stats", str(db)]).stdout
    assert text.splitlines()[0] == (
        f"crawl database {db}: not finished: {to_go} URLs to go "
        "(still running, or stopped: `crawl run` resumes)"
    )


def test_the_database_is_opened_read_only(finished: tuple[Path, str]) -> None:
    db, _ = finished
    with (
        pytest.raises(StorageError, match="readonly"),
        read_snapshot(db) as conn,
    ):
        conn.execute("DELETE FROM pages")
    assert query(db, "SELECT count(*) FROM pages") == [(73,)]


def test_a_file_name_with_uri_characters(finished: tuple[Path, str], tmp_path: Path) -> None:
    # In a `file:` URI, '?' starts the query and '#' the fragment: "a b#1?.db" would open "a b".
    db = tmp_path / "a b#1?%.db"
    shutil.copy(finished[0], db)
    assert stats_json(db)["pages"] == 73


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "error: no crawl database at {db}"),
        (lambda p: p.mkdir(), "error: {db} is a directory, not a crawl database"),
        (
            lambda p: p.write_text("hello, world\n" * 100),
            "error: cannot read {db} as a crawl database: file is not a database",
        ),
        (
            lambda p: sqlite3.connect(p).execute("CREATE TABLE pages (x)").connection.close(),
            "error: {db} is not a crawl database (no frontier, meta table)",
        ),
        (
            lambda p: _with_version(p, "7"),
            f"error: database {{db}} has schema version 7, this crawler knows {SCHEMA_VERSION}",
        ),
    ],
    ids=["missing", "directory", "not-sqlite", "other-sqlite", "other-version"],
)
@pytest.mark.parametrize("command", ["stats", "export"])
def test_a_bad_database_exits_1_with_one_line(
    tmp_path: Path, make: Any, message: str, command: str
) -> None:
    db = tmp_path / "x.db"
    make(db)
    result = runner.invoke(app, [command, str(db)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == message.format(db=db) + "\n"


def _with_version(path: Path, version: str) -> None:
    make_synthetic_db(path, pages=1)
    with database(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    conn.close()


def test_a_large_database_is_summarized_in_sql_in_small_memory(large: Path) -> None:
    db = large
    tracemalloc.start()
    try:
        summary = read_summary(db, top=3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 200,000 rows loaded into Python would take tens of MB; aggregates take a few KB.
    assert peak < 1_000_000

    # Synthetic page i has status (200, 200, 200, 301, 404, None)[i % 6]: residues 0 and 1
    # occur once more in 200,000 rows. Failures cycle through three errors: 11,111 each.
    assert summary.statuses == [(200, 100_001), (301, 33_333), (404, 33_333), (None, 33_333)]
    assert summary.errors == [
        ("connect_failed", 11_111),
        ("invalid_response", 11_111),
        ("timeout", 11_111),
    ]
    assert summary.depths == [(0, 50_000), (1, 50_000), (2, 50_000), (3, 50_000)]
    assert summary.frontier == {
        "done": 166_667,
        "failed": 33_333,
        "skipped": 0,
        "pending": 1_000,
        "leased": 0,
    }
    assert summary.hosts == 7
    assert [(h.host, h.pages, h.queued) for h in summary.top_hosts] == [
        ("h0.test", 28_572, 143),
        ("h1.test", 28_572, 143),
        ("h2.test", 28_572, 143),
    ]
    # Pages on which each user field has a value, counted here from the data the pages got.
    matched = Counter(
        name
        for i in range(200_000)
        for name, value in (synthetic_data(i) or {}).items()
        if value is not None
    )
    assert summary.fields == sorted(matched.items(), key=lambda item: (-item[1], item[0]))
    assert [name for name, _ in summary.fields] == [
        "headline",
        "rank",
        "tags",
        "price",
        "in_stock",
        "mixed",
    ]
    failed_by_join = query(
        db,
        "SELECT host, count(*) FROM pages JOIN frontier USING (url) WHERE status IS NULL "
        "AND host IN ('h0.test', 'h1.test', 'h2.test') GROUP BY host ORDER BY host",
    )
    assert [(h.host, h.failed) for h in summary.top_hosts] == failed_by_join
    assert summary.pages == 200_000
    assert summary.bytes == query(db, "SELECT sum(size) FROM pages")[0][0]
    assert summary.first_fetch == "2026-11-25T01:00:00.000+00:00"
    assert summary.last_fetch == "2026-11-25T03:46:39.950+00:00"
    # One page every 50 ms: 1,200 per minute, for 166 minutes and 40 seconds.
    assert len(summary.throughput) == 167
    assert summary.throughput[0] == ("2026-11-25T01:00:00+00:00", 1_200)
    assert summary.throughput[-1] == ("2026-11-25T03:46:00+00:00", 800)


def test_text_of_a_long_crawl_merges_minutes_into_buckets(large: Path) -> None:
    lines = format_text(read_summary(large)).splitlines()
    start = lines.index("throughput (pages per minute, UTC; average over 10-minute buckets)")
    rows = lines[start + 1 :]
    # 167 minutes in 10-minute buckets: 17 rows, the last one 6 minutes and 40 seconds long.
    assert len(rows) == 17
    assert rows[0] == "  2026-11-25 01:00  1,200  " + "#" * 40
    assert rows[-1] == "  2026-11-25 03:40    800  " + "#" * 27
    assert lines[3] == (
        "  fetched   2026-11-25T01:00:00.000+00:00 to 2026-11-25T03:46:39.950+00:00 "
        "(2h 46m 40s, 20.0 pages/s)"
    )
    errors = lines[lines.index("errors by reason") + 1 : lines.index("depths") - 1]
    assert errors == [
        "  connect_failed    11,111    5.6%",
        "  invalid_response  11,111    5.6%",
        "  timeout           11,111    5.6%",
    ]
    assert "  none   33,333   16.7%" in lines


# Three pages with data as a crawl writes them, one without; a null is no value.
AT = "2026-11-25T01:00:00.000+00:00"
WITH_DATA = [
    PageRecord(
        url="http://a.test/1",
        depth=0,
        fetched_at=AT,
        status=200,
        data={"price": "1", "tags": ["x"]},
    ),
    PageRecord(
        url="http://a.test/2", depth=1, fetched_at=AT, status=200, data={"price": "2", "sku": None}
    ),
    PageRecord(url="http://a.test/3", depth=1, fetched_at=AT, status=200, data={"price": "3"}),
    PageRecord(url="http://a.test/4", depth=1, fetched_at=AT, status=404),
]


def test_pages_per_field_in_text_and_json(tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    write_pages(db, WITH_DATA)
    stats = stats_json(db)
    assert stats["fields"] == [
        {"field": "price", "pages": 3},
        {"field": "tags", "pages": 1},
        {"field": "sku", "pages": 0},
    ]
    lines = runner.invoke(app, ["stats", str(db)]).stdout.splitlines()
    start = lines.index("fields (pages with a value)")
    assert lines[start + 1 : start + 4] == [
        "  price  3   75.0%",
        "  tags   1   25.0%",
        "  sku    0    0.0%",
    ]
    assert lines[start + 4] == ""  # the section ends there


@pytest.mark.parametrize("version", ["1", "2", "3"])
def test_an_older_database_has_no_fields_and_is_not_upgraded(tmp_path: Path, version: str) -> None:
    db = tmp_path / "old.db"
    make_synthetic_db(db, pages=20, version=version)
    stats = stats_json(db)
    assert (stats["pages"], stats["fields"]) == (20, [])
    assert query(db, "SELECT value FROM meta") == [(version,)]
    assert "data" not in {row[1] for row in query(db, "PRAGMA table_info(pages)")}


def test_an_empty_database(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    make_synthetic_db(db, pages=0)
    stats = stats_json(db)
    assert (stats["pages"], stats["bytes"], stats["first_fetch"], stats["span_seconds"]) == (
        0,
        0,
        None,
        0,
    )
    assert stats["statuses"] == stats["throughput"] == stats["top_hosts"] == []
    assert stats["finished"] is True
    text = runner.invoke(app, ["stats", str(db)]).stdout
    assert "statuses\n  (none)\n" in text
    assert "throughput\n  (none)" in text


def test_top_limits_the_host_list(tmp_path: Path) -> None:
    db = tmp_path / "hosts.db"
    make_synthetic_db(db, pages=70)
    stats = stats_json(db, "--top", "2")
    assert stats["hosts"] == 7
    assert [h["host"] for h in stats["top_hosts"]] == ["h0.test", "h1.test"]
    assert runner.invoke(app, ["stats", str(db), "--top", "0"]).exit_code == 2


@pytest.mark.anyio
async def test_stats_taken_during_a_crawl_agree_with_themselves(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    async with Store(db):  # the schema exists before the first summary
        pass
    config = load_config(
        overrides={
            "crawl.concurrency": 4,
            "politeness.per_host_concurrency": 4,
            "politeness.per_host_delay": 0.0,
            "runtime.stats_interval": 0.0,
        },
        environ={},
    )
    with SiteServer(SiteSpec(pages=150, latency=0.01)) as site:
        crawl = asyncio.create_task(
            Crawl(config, [f"{site.base_url}/"], db, AbortController().signal).run()
        )
        summaries: list[CrawlSummary] = []
        while not crawl.done():
            summaries.append(await asyncio.to_thread(read_summary, db))
        await crawl
    final = read_summary(db)
    mid_crawl = [r for r in summaries if 0 < r.pages < final.pages]
    assert mid_crawl, "no summary was read while the crawl ran"
    for summary in summaries:
        recorded = sum(summary.frontier.values()) - summary.frontier["pending"]
        recorded -= summary.frontier["leased"]
        assert sum(n for _, n in summary.statuses) == summary.pages == recorded
        assert sum(n for _, n in summary.depths) == summary.pages
        assert sum(n for _, n in summary.throughput) == summary.pages
        assert sum(h.pages for h in summary.top_hosts) == summary.pages
    assert final.finished
    assert not mid_crawl[0].finished
