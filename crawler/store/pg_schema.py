"""A crawl database on PostgreSQL: its tables, its version, and the check that a database is ours.

Issue 20 (one crawl shared by many crawler processes) builds on this; the statements a crawl
runs against these tables, and the crawl's use of them, are not written yet. Nothing imports this
module but its tests: asyncpg is a dev dependency until a crawl uses it.

The tables are SQLite's (:mod:`crawler.store.schema`), column for column where they mean the
same, so that stats and exports can read both alike; what many processes sharing one crawl need
comes in addition (docs: SCALEOUT.md, "host leases"):

- ``hosts``: one row per host. Its lease (``owner``, ``lease_until``) makes one process the only
  one fetching that host, so each process's politeness rules hold for the crawl as a whole;
  ``epoch`` grows with every lease, and each write a holder makes is fenced by it (a process
  that stalled past its lease changes nothing). ``next_at`` is when the host may next be asked,
  written by the holder that lets it go.
- ``frontier`` rows are keyed by a 64-bit fingerprint of the URL (``fp``) rather than a unique
  index on its text: the dedup index is the database's largest, and a text one outgrows memory
  first. ``seq`` keeps discovery order (claims are breadth first, as in SQLite).
- ``bucket`` (``hash(host) % 1024``) on every per-host row: the key a partitioned or sharded
  (Citus) schema would split on, so that the schema does not block it.

Creating the schema is safe when several processes start the same crawl at once: it runs under a
transaction-level advisory lock, the first creates the tables and the others find them and check
their version.
"""

from __future__ import annotations

import asyncpg

from crawler.errors import StorageError
from crawler.store.schema import CRAWL_TABLES, SCHEMA_VERSION

ADVISORY_LOCK = 0x6372_6177_6C00_0001
"""The advisory lock key held while the schema is created or checked ("crawl" in ASCII)."""

SCHEMA = """
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE hosts (
    host        text PRIMARY KEY,
    bucket      smallint NOT NULL,
    next_at     timestamptz NOT NULL DEFAULT '-infinity',
    owner       text,
    lease_until timestamptz NOT NULL DEFAULT '-infinity',
    epoch       bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);
CREATE INDEX hosts_due ON hosts (next_at);
CREATE TABLE frontier (
    fp      bigint PRIMARY KEY,
    seq     bigint GENERATED ALWAYS AS IDENTITY,
    url     text NOT NULL,
    host    text NOT NULL,
    bucket  smallint NOT NULL,
    depth   integer NOT NULL,
    hops    integer NOT NULL DEFAULT 0,
    offsite integer NOT NULL DEFAULT 0,
    state   text NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'leased', 'done', 'failed', 'skipped')),
    owner   text,
    epoch   bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 70);
CREATE INDEX frontier_pending ON frontier (host, seq) WHERE state = 'pending';
CREATE INDEX frontier_leased ON frontier (host) WHERE state = 'leased';
CREATE TABLE pages (
    url          text PRIMARY KEY,
    final_url    text,
    status       integer,
    content_type text,
    title        text,
    description  text,
    canonical    text,
    depth        integer NOT NULL,
    fetched_at   text NOT NULL,
    error        text,
    size         bigint NOT NULL DEFAULT 0,
    elapsed_ms   double precision NOT NULL DEFAULT 0,
    truncated    integer NOT NULL DEFAULT 0,
    notes        text,
    data         jsonb,
    sha256       text
);
CREATE TABLE links (
    src_url text NOT NULL,
    dst_url text NOT NULL
);
CREATE TABLE host_deferrals (
    host       text PRIMARY KEY,
    not_before double precision NOT NULL
);
CREATE TABLE robots (
    origin      text PRIMARY KEY,
    status      integer,
    fetched_at  text NOT NULL,
    crawl_delay double precision,
    sitemaps    text NOT NULL DEFAULT ''
);
CREATE TABLE cookies (
    host      text NOT NULL,
    domain    text NOT NULL,
    path      text NOT NULL,
    name      text NOT NULL,
    value     text,
    secure    integer NOT NULL,
    expires   bigint,
    http_only integer NOT NULL,
    PRIMARY KEY (host, domain, path, name)
);
-- The frontier and the host leases are updated all the time: vacuum them early, and do not
-- let the cost limit hold vacuum back (what queues on PostgreSQL recommend).
ALTER TABLE frontier SET (autovacuum_vacuum_scale_factor = 0.01,
                          autovacuum_vacuum_cost_limit = 10000);
ALTER TABLE hosts SET (autovacuum_vacuum_scale_factor = 0.01,
                       autovacuum_vacuum_cost_limit = 10000);
"""


async def prepare(conn: asyncpg.Connection, where: str) -> None:
    """Create the schema in ``conn``'s database (its current schema) if it has no tables, else
    check that it is a crawl database of this version. ``where`` names the database in
    errors (its URL without the password)."""
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK)
            tables = {
                row[0]
                for row in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            }
            if not tables:
                await conn.execute(SCHEMA)
                await conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', $1)",
                    str(SCHEMA_VERSION),
                )
                return
            if missing := CRAWL_TABLES - tables:
                raise StorageError(
                    f"{where} is not a crawl database (no {', '.join(sorted(missing))} table)"
                )
            version = await conn.fetchval("SELECT value FROM meta WHERE key = 'schema_version'")
    except asyncpg.PostgresError as exc:
        raise StorageError(f"cannot open database {where}: {exc}") from None
    if version is None:
        raise StorageError(f"{where} is not a crawl database (no schema_version in its meta table)")
    if version != str(SCHEMA_VERSION):
        raise StorageError(
            f"database {where} has schema version {version!r}, this crawler knows {SCHEMA_VERSION}"
        )
