"""The crawl schema on a real PostgreSQL server (tests/postgres.py): created once even when
several processes start at once, the same pages columns as SQLite's, and a database that is not
ours, or of another version, refused without a change."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import asyncpg
import pytest

from crawler.errors import StorageError
from crawler.store.pg_schema import prepare
from crawler.store.schema import SCHEMA_VERSION
from crawler.store.schema import prepare as prepare_sqlite

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row[0] for row in rows}


async def test_the_schema_is_created_once_with_its_version(postgres_url: str) -> None:
    async with connected(postgres_url) as conn:
        await prepare(conn, "db")
        await prepare(conn, "db")  # a second process joining: checked, unchanged
        assert await conn.fetch("SELECT key, value FROM meta") == [
            ("schema_version", str(SCHEMA_VERSION))
        ]
        assert await tables(conn) == {
            "meta", "hosts", "frontier", "pages", "links", "host_deferrals", "robots", "cookies",
        }  # fmt: skip


async def test_processes_starting_together_create_it_once(postgres_url: str) -> None:
    # Without the advisory lock, the losers fail on tables the winner is creating.
    async def one() -> None:
        async with connected(postgres_url) as conn:
            await prepare(conn, "db")

    await asyncio.gather(*(one() for _ in range(6)))
    async with connected(postgres_url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM meta") == 1


async def test_the_shared_tables_have_sqlites_columns_in_order(
    postgres_url: str, tmp_path: Path
) -> None:
    # stats and export read pages alike on both: the same names, in the same order.
    prepare_sqlite(tmp_path / "crawl.db")
    with closing(sqlite3.connect(tmp_path / "crawl.db")) as lite:
        expected = {
            table: [row[1] for row in lite.execute(f"PRAGMA table_info({table})")]
            for table in ("pages", "links", "robots", "cookies", "host_deferrals", "meta")
        }
    async with connected(postgres_url) as conn:
        await prepare(conn, "db")
        for table, columns in expected.items():
            rows = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1"
                " ORDER BY ordinal_position",
                table,
            )
            assert [row[0] for row in rows] == columns, table


async def test_a_database_of_another_program_is_refused_and_left_alone(postgres_url: str) -> None:
    async with connected(postgres_url) as conn:
        await conn.execute("CREATE TABLE invoices (id int); CREATE TABLE pages (url text)")
        with pytest.raises(StorageError) as error:
            await prepare(conn, "postgresql://u@h/db")
        assert str(error.value) == (
            "postgresql://u@h/db is not a crawl database (no frontier, meta table)"
        )
        assert await tables(conn) == {"invoices", "pages"}


async def test_a_crawl_database_of_another_version_is_refused(postgres_url: str) -> None:
    async with connected(postgres_url) as conn:
        await prepare(conn, "db")
        await conn.execute("UPDATE meta SET value = '99'")
        with pytest.raises(StorageError) as error:
            await prepare(conn, "db")
        assert str(error.value) == (
            f"database db has schema version '99', this crawler knows {SCHEMA_VERSION}"
        )
        await conn.execute("DELETE FROM meta")
        with pytest.raises(StorageError, match="no schema_version in its meta table"):
            await prepare(conn, "db")
