"""Crawl databases for the stats and export tests: a real crawl of the demo site through the
CLI, and synthetic databases inserted directly (for sizes and values a test crawl cannot reach).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from crawler.cli.app import app
from crawler.demo import SiteServer, SiteSpec
from crawler.store.database import Store
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
    )


PAGE_COLUMNS = (
    "url, final_url, status, content_type, title, description, canonical, depth, fetched_at, "
    "error, size, elapsed_ms, truncated"
)


def make_synthetic_db(path: Path, pages: int, pending: int = 0) -> None:
    """A crawl database with ``pages`` pages (see :func:`synthetic_page`) over 7 hosts, each
    with its done/failed frontier row, and ``pending`` more URLs still to fetch."""
    asyncio.run(_create_schema(path))  # the crawler's own schema, whatever its version
    with database(path) as conn:
        conn.executemany(
            f"INSERT INTO pages ({PAGE_COLUMNS}) VALUES ({', '.join('?' * 13)})",
            map(synthetic_page, range(pages)),
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


async def _create_schema(path: Path) -> None:
    async with Store(path):
        pass
