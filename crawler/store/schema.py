"""The crawl database's schema: its tables, its version, and the check that a file is ours.

The schema is created (or checked) once, before the crawl's connection opens: by
:func:`prepare`, on a plain connection in a worker thread. ``meta.schema_version`` is what a
later release reads to migrate a database; this one knows version :data:`SCHEMA_VERSION` and
refuses any other, as it refuses a SQLite file with tables that are not ours. The readers beside
a crawl (:mod:`crawler.store.snapshot`) ask :func:`crawl_schema_version` the same question.

The statements a crawl runs against these tables are the store's (:mod:`crawler.store.database`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from crawler.errors import StorageError

SCHEMA_VERSION = 4
"""2 added ``frontier.offsite`` (``crawl.max_offsite_hops``); a version-1 database gets the
column (0: every URL it holds was in scope) when a crawl opens it. 3 added the ``cookies``
table (:data:`COOKIES_TABLE`); a version-1 or -2 database gets it, empty, the same way. 4 added
``pages.data`` and ``pages.sha256`` (:data:`PAGES_COLUMNS_4`); an older database gets them, NULL
for the pages it holds, the same way, and the index ``frontier_pending_host`` (made by
:data:`SCHEMA` whenever a database of this version is opened)."""
READABLE_VERSIONS = frozenset({"1", "2", "3", str(SCHEMA_VERSION)})
"""Versions the read-only commands (stats, export) read as they are: they never read
``frontier.offsite`` or ``cookies``, and read ``pages.data`` and ``pages.sha256`` only where the
table has them."""
CRAWL_TABLES = frozenset({"meta", "frontier", "pages"})
"""The tables that make a SQLite file a crawl database (with ``meta.schema_version``)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS frontier (
    id    INTEGER PRIMARY KEY,
    url   TEXT NOT NULL UNIQUE,
    host  TEXT NOT NULL,
    depth INTEGER NOT NULL,
    hops  INTEGER NOT NULL DEFAULT 0,
    -- Links away from the scope (crawl.max_offsite_hops); 0: in scope.
    offsite INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending'
          CHECK (state IN ('pending', 'leased', 'done', 'failed', 'skipped'))
);
-- Claims read one host's pending rows in id (discovery) order: this index serves them.
CREATE INDEX IF NOT EXISTS frontier_host_state ON frontier (host, state);
-- The hosts with pending URLs, in name order: the frontier pages back in those it does not
-- hold (crawl.max_hosts_in_memory) from a cursor. Only pending rows are in it: without it a
-- page scanned every done row between two pending hosts (~0.1 s a page on 4 million rows).
CREATE INDEX IF NOT EXISTS frontier_pending_host ON frontier (host) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS pages (
    url          TEXT PRIMARY KEY,
    final_url    TEXT,
    status       INTEGER,
    content_type TEXT,
    title        TEXT,
    description  TEXT,
    canonical    TEXT,
    depth        INTEGER NOT NULL,
    fetched_at   TEXT NOT NULL,
    error        TEXT,
    size         INTEGER NOT NULL DEFAULT 0,
    elapsed_ms   REAL NOT NULL DEFAULT 0,
    truncated    INTEGER NOT NULL DEFAULT 0,
    notes        TEXT,
    -- The user's fields (extraction rules, a hook) as one JSON object; NULL: none.
    data         TEXT,
    -- The SHA-256 (hex) of the body as read, after decompression; NULL: not computed.
    sha256       TEXT
);
CREATE TABLE IF NOT EXISTS links (
    src_url TEXT NOT NULL,
    dst_url TEXT NOT NULL
);
-- Hosts that asked (Retry-After) to wait longer than politeness.max_retry_after: none of their
-- URLs is fetched before not_before (Unix seconds), in this run or a later one.
CREATE TABLE IF NOT EXISTS host_deferrals (
    host       TEXT PRIMARY KEY,
    not_before REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS robots (
    origin      TEXT PRIMARY KEY,
    status      INTEGER,
    fetched_at  TEXT NOT NULL,
    crawl_delay REAL,
    sitemaps    TEXT NOT NULL DEFAULT ''
);
"""
COOKIES_TABLE = """
-- The per-host cookie jars (crawler.fetch.cookies), saved at the end of a run and loaded when
-- the crawl resumes. host is the jar's (a cookie is only ever sent to it); domain is the
-- cookie's own (a leading dot: its Domain attribute). expires: Unix seconds; NULL: a session
-- cookie, kept for the whole crawl.
CREATE TABLE IF NOT EXISTS cookies (
    host      TEXT NOT NULL,
    domain    TEXT NOT NULL,
    path      TEXT NOT NULL,
    name      TEXT NOT NULL,
    value     TEXT,
    secure    INTEGER NOT NULL,
    expires   INTEGER,
    http_only INTEGER NOT NULL,
    PRIMARY KEY (host, domain, path, name)
);
"""
SCHEMA += COOKIES_TABLE
PAGES_COLUMNS_4 = ("data TEXT", "sha256 TEXT")
"""The ``pages`` columns version 4 added, as ``ALTER TABLE pages ADD COLUMN`` takes them."""


def prepare(path: Path) -> None:
    """Create or check the schema; WAL mode is a property of the file, set once here.

    A database with tables that are not ours is refused before anything is written to it:
    another program's file must not get our tables and WAL mode (nor fail only later, at the
    first write into a ``pages`` table of another shape)."""
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            version = crawl_schema_version(conn, path)
            if version == "1":
                _upgrade_from_1(conn)
                version = "2"
            if version == "2":
                _upgrade_from_2(conn)
                version = "3"
            if version == "3":
                _upgrade_from_3(conn)
                version = str(SCHEMA_VERSION)
            if version is None or version == str(SCHEMA_VERSION):
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
            if version is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    if version is not None and version != str(SCHEMA_VERSION):
        raise StorageError(
            f"database {path} has schema version {version!r}, this crawler knows "
            f"{SCHEMA_VERSION}; use another --db or --fresh"
        )


def _upgrade_from_1(conn: sqlite3.Connection) -> None:
    # One transaction: a crash leaves version 1 with its old columns, upgraded again next time.
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("ALTER TABLE frontier ADD COLUMN offsite INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.execute("COMMIT")


def _upgrade_from_2(conn: sqlite3.Connection) -> None:
    # One transaction, as from 1: a crash leaves version 2 without the table.
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(COOKIES_TABLE)
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.execute("COMMIT")


def _upgrade_from_3(conn: sqlite3.Connection) -> None:
    # One transaction, as from 1: a crash leaves version 3 without the columns.
    conn.execute("BEGIN IMMEDIATE")
    for column in PAGES_COLUMNS_4:
        conn.execute(f"ALTER TABLE pages ADD COLUMN {column}")
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.execute("COMMIT")


def page_columns(conn: sqlite3.Connection) -> frozenset[str]:
    """The columns of ``pages`` in the database on ``conn``. A database older than version 4
    lacks :data:`PAGES_COLUMNS_4`: the read-only commands, which never upgrade, read NULL for
    them."""
    return frozenset(row[1] for row in conn.execute("PRAGMA table_info(pages)"))


def crawl_schema_version(conn: sqlite3.Connection, path: Path) -> str | None:
    """The ``meta.schema_version`` of the database on ``conn``, as stored (text); None for a
    database with nothing in it yet (a new or empty file). Raises :class:`StorageError` for a
    database that is not a crawl database: it has other tables, or ours without a version."""
    objects = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
    if not objects:
        return None
    if missing := CRAWL_TABLES - {name for type_, name in objects if type_ == "table"}:
        raise StorageError(
            f"{path} is not a crawl database (no {', '.join(sorted(missing))} table)"
        )
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise StorageError(f"{path} is not a crawl database (no schema_version in its meta table)")
    return str(row[0])
