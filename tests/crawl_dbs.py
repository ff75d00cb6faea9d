"""Crawl databases for the stats and export tests: a real crawl of the demo site through the
CLI, and synthetic databases inserted directly (for sizes and values a test crawl cannot reach).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from typer.testing import CliRunner

from crawler.cli.app import app
from crawler.demo import SiteServer, SiteSpec
from crawler.models import PageRecord
from crawler.store.database import Store
from crawler.store.rows import page_rows
from crawler.store.schema import COOKIES_TABLE, SCHEMA
from crawler.urls import host_key
from tests.helpers import database, write_config, write_seeds

SYNTHETIC_START = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
SYNTHETIC_HOSTS = 7
SYNTHETIC_STEP = timedelta(milliseconds=50)
# Values a CSV or JSON writer must get right: quotes, commas, newlines, non-ASCII, a formula.
TRICKY_TITLES = ('Quote "x", comma\nnewline, =SUM(A1)', "Ünïcødé ✓ 页面", None, "")
ERRORS = ("timeout: read timed out", "connect_failed", "invalid_response: bad header: X-Y")


def crawl_demo_site(directory: Path, spec: SiteSpec, *flags: str) -> tuple[Path, str]:
    """Crawl the demo site with ``crawl run`` (in process); return the database and base URL."""
    db = directory / "crawl.db"
    with SiteServer(spec) as site:
        result = CliRunner().invoke(
            app,
            [
                "run",
                str(write_seeds(directory, f"{site.base_url}/")),
                "--db",
                str(db),
                "--config",
                str(write_config(directory)),
                *flags,
            ],
        )
        assert result.exit_code == 0, result.output
        return db, site.base_url


def synthetic_page(i: int) -> tuple[object, ...]:
    """Row ``i`` of a synthetic ``pages`` table, in the column order of :data:`PAGE_COLUMNS`."""
    host = f"h{i % SYNTHETIC_HOSTS}.test"
    url = f"http://{host}/p/{i}"
    status = (200, 200, 200, 301, 404, None)[i % 6]
    data = synthetic_data(i)
    return (
        url,
        None if status is None else f"http://{host}/final/{i}" if status == 301 else url,
        status,
        None if status is None else "text/html; charset=utf-8",
        TRICKY_TITLES[i % len(TRICKY_TITLES)] if i % 5 == 0 else f"Page {i}",
        f"Description {i}" if i % 3 else None,
        f"http://{host}/c/{i}" if i % 11 == 0 else None,
        i % 4,
        (SYNTHETIC_START + i * SYNTHETIC_STEP).isoformat(timespec="milliseconds"),
        ERRORS[(i // 6) % len(ERRORS)] if status is None else None,
        0 if status is None else i % 5000,
        (i % 1000) / 8,
        int(i % 97 == 0),
        None if data is None else msgspec.json.encode(data).decode(),
        hashlib.sha256(url.encode()).hexdigest() if status == 200 else None,
    )


def synthetic_data(i: int) -> dict[str, object] | None:
    """The user's fields of synthetic page ``i`` (None on a quarter of the pages): a string on
    each, sometimes with CSV's tricky characters; a list; an integer; a real on half; a boolean
    on a third; and one field that is a string on some pages and a number on others."""
    if i % 4 == 3:
        return None
    data: dict[str, object] = {
        "headline": TRICKY_TITLES[0] if i % 7 == 0 else f"Headline {i}",
        "tags": [f"t{i % 3}", "all"],
        "rank": i,
    }
    if i % 2 == 0:
        data["price"] = i / 8
    if i % 3 == 0:
        data["in_stock"] = i % 2 == 0
    if i % 5 == 0:
        data["mixed"] = i if i % 10 else "n/a"
    return data


SYNTHETIC_FIELDS = ("headline", "in_stock", "mixed", "price", "rank", "tags")
"""The names of :func:`synthetic_data`, in code point order."""
PAGE_COLUMNS = (
    "url, final_url, status, content_type, title, description, canonical, depth, fetched_at, "
    "error, size, elapsed_ms, truncated, data, sha256"
)


def old_schema(version: str) -> str:
    """The tables as schema version 1 (no ``frontier.offsite``, no ``cookies``), 2 (no
    ``cookies``) or 3 (no ``pages.data``, ``pages.sha256``, no index ``frontier_pending_host``)
    made them."""
    schema = SCHEMA if version == "3" else SCHEMA.replace(COOKIES_TABLE, "")
    schema = schema.replace("notes        TEXT,", "notes        TEXT")
    schema = "\n".join(
        line
        for line in schema.splitlines()
        if not line.lstrip().startswith(("data ", "sha256 "))
        and "frontier_pending_host" not in line  # version 4's index
    )
    if version == "1":
        schema = "\n".join(line for line in schema.splitlines() if "offsite" not in line)
    return schema


def make_synthetic_db(path: Path, pages: int, pending: int = 0, version: str | None = None) -> None:
    """A crawl database with ``pages`` pages (see :func:`synthetic_page`) over 7 hosts, each
    with its done/failed frontier row, and ``pending`` more URLs still to fetch. ``version``
    (1, 2, 3): the database as that older schema version holds it, without data and sha256."""
    columns = PAGE_COLUMNS
    if version is None:
        asyncio.run(_create_schema(path))  # the crawler's own schema, whatever its version
    else:
        with database(path) as conn:
            conn.executescript(old_schema(version))
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (version,))
        conn.close()
        columns = PAGE_COLUMNS.removesuffix(", data, sha256")
    width = columns.count(",") + 1
    with database(path) as conn:
        conn.executemany(
            f"INSERT INTO pages ({columns}) VALUES ({', '.join('?' * width)})",
            (synthetic_page(i)[:width] for i in range(pages)),
        )
        # Each page's frontier row; the host is the URL's authority ('http://' is 7 characters).
        conn.execute(
            "INSERT INTO frontier (url, host, depth, state) "
            "SELECT url, substr(url, 8, instr(substr(url, 8), '/') - 1), depth, "
            "CASE WHEN status IS NULL THEN 'failed' ELSE 'done' END FROM pages ORDER BY rowid"
        )
        conn.executemany(
            "INSERT INTO frontier (url, host, depth, state) VALUES (?, ?, 4, 'pending')",
            (
                (f"http://h{j % SYNTHETIC_HOSTS}.test/q/{j}", f"h{j % SYNTHETIC_HOSTS}.test")
                for j in range(pending)
            ),
        )
    conn.close()


def write_pages(path: Path, pages: list[PageRecord]) -> None:
    """A crawl database holding ``pages``, written as a crawl writes them: each URL added to the
    frontier, leased, and its row written by the store's batch write (the sink's)."""
    asyncio.run(_write_pages(path, pages))


async def _write_pages(path: Path, pages: list[PageRecord]) -> None:
    async with Store(path) as store:
        await store.add_urls([(page.url, host_key(page.url), page.depth, 0) for page in pages])
        hosts = dict.fromkeys(host_key(page.url) for page in pages)
        leases = await store.claim([(host, len(pages)) for host in hosts])
        ids = {lease.url: lease.id for claimed in leases.values() for lease in claimed}
        await store.write_batch(
            [(ids[page.url], page.state, page_rows(page, [], [], 1, 0)) for page in pages]
        )


async def _create_schema(path: Path) -> None:
    async with Store(path):
        pass
