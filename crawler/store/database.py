"""The crawl database behind one connection: every SQL statement a crawl runs.

The tables and their version are :mod:`crawler.store.schema`'s; this module opens the database
(creating or checking the schema first) and writes and reads it.

One aiosqlite connection (one thread) is the only writer; an ``asyncio.Lock`` makes each
write a whole transaction, so a page row and the frontier state change that records it commit
together (the sink's batches) and a claim never lands inside someone else's batch. WAL with
``synchronous=NORMAL``: a commit survives a crash of the process (``kill -9``); only a power
loss can take back the last transactions, never corrupt the file. One process at a time: the
store holds the database's :class:`~crawler.store.writer_lock.WriterLock` from before its first
write (the schema) until it is closed, so a second writer is refused before it can touch the
first one's leases.

Frontier states: ``pending`` (waiting), ``leased`` (claimed into memory by this run; reset to
pending when a run starts, which is how a killed run resumes), ``done`` (a response was
recorded), ``failed`` (no response after the retries; the reason is in ``pages.error``),
``skipped`` (deliberately not fetched: robots.txt, a trap budget, the address guard; the reason
is in ``pages.error``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import aiosqlite
import msgspec

from crawler.errors import StorageError
from crawler.models import Deferred, Lease, PageRows, RobotsRecord, SavedCookie
from crawler.resource import AsyncResource
from crawler.store.rows import json_array
from crawler.store.schema import prepare
from crawler.store.writer_lock import WriterLock

# A batch's rows go in as one JSON array parameter per statement, expanded by SQLite
# (json_each): one statement step per batch instead of one per row. Each step releases and
# retakes the GIL, and retaking it can wait for the event loop's turn (up to 5 ms, the
# interpreter's switch interval): with ~70 rows per page, per-row steps made a 1,024-page
# batch take seconds on a busy loop (docs/performance.md and git history).
_ADD_PAGES = """
INSERT INTO pages (url, final_url, status, content_type, title, description, canonical, depth,
                   fetched_at, error, size, elapsed_ms, truncated, notes, data, sha256)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
       value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11,
       value ->> 12, value ->> 13, nullif(value -> 14, 'null'), value ->> 15
FROM json_each(?)
"""
_SET_STATES = """
UPDATE frontier SET state = batch.value ->> 1
FROM json_each(?) AS batch WHERE frontier.id = batch.value ->> 0
"""
_ADD_URLS = """
INSERT OR IGNORE INTO frontier (url, host, depth, hops, offsite)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, coalesce(value ->> 4, 0)
FROM json_each(?)
"""
_SET_ROBOTS = """
INSERT OR REPLACE INTO robots (origin, status, fetched_at, crawl_delay, sitemaps)
VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ'), ?, ?)
"""
_ADD_LINKS = """
INSERT INTO links (src_url, dst_url) SELECT value ->> 0, value ->> 1 FROM json_each(?)
"""
# A claim takes several hosts' oldest pending URLs in one transaction: their ids are picked
# into a per-connection temporary table (one indexed LIMIT query per host, all in one
# executemany), then leased and returned by one statement. One claim per host instead made
# the frontier's refills queue behind the sink's batches, one host at a time: with 1,000
# hosts starting at once most of them sat idle for seconds (docs/performance.md and git history).
_CLAIMED_TABLE = "CREATE TEMP TABLE IF NOT EXISTS claimed (id INTEGER PRIMARY KEY)"
_CLAIM_PICK = """
INSERT INTO temp.claimed (id)
SELECT id FROM frontier WHERE host = ? AND state = 'pending' ORDER BY id LIMIT ?
"""
_CLAIM_LEASE = """
UPDATE frontier SET state = 'leased' WHERE id IN (SELECT id FROM temp.claimed)
RETURNING id, url, host, depth, hops, offsite
"""

# One index seek per host (the partial index frontier_pending_host): DISTINCT read every
# pending row of a host, so a host with a million pending URLs made one page slow.
_PENDING_HOSTS_AFTER = """
WITH RECURSIVE after (host) AS (
    SELECT (SELECT min(host) FROM frontier WHERE state = 'pending' AND host > ?)
    UNION ALL
    SELECT (SELECT min(host) FROM frontier WHERE state = 'pending' AND host > after.host)
    FROM after WHERE after.host IS NOT NULL
    LIMIT ?
)
SELECT host FROM after WHERE host IS NOT NULL
"""

# What TrapGuard.admit charged in earlier runs: each URL at its first attempt, unless its
# budget was already spent (then it was recorded as skipped with that reason).
_CHARGED = """
FROM frontier JOIN pages ON pages.url = frontier.url
WHERE frontier.state IN ('done', 'failed', 'skipped')
  AND (pages.error IS NULL
       OR (pages.error NOT GLOB 'host_budget:*' AND pages.error NOT GLOB 'pattern_budget:*'))
"""
_BUDGET_CHARGES = (
    f"SELECT frontier.host, trap_pattern(frontier.url), count(*) {_CHARGED} GROUP BY 1, 2"
)
_HOST_BUDGET_CHARGES = f"SELECT frontier.url {_CHARGED} AND frontier.host = ?"
_SAVE_COOKIE = """
INSERT INTO cookies (host, domain, path, name, value, secure, expires, http_only)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_DEFER_HOST = """
INSERT INTO host_deferrals (host, not_before) VALUES (?, ?)
ON CONFLICT (host) DO UPDATE SET not_before = max(not_before, excluded.not_before)
"""
# The host's claimed URLs go back to pending at once (not only when the next run starts), so
# the database says what is left: `crawl stats` and the run's summary count them as deferred.
_UNLEASE_HOST = "UPDATE frontier SET state = 'pending' WHERE host = ? AND state = 'leased'"
DEFERRED_SUMMARY = """
SELECT count(*), count(DISTINCT frontier.host), max(host_deferrals.not_before)
FROM frontier JOIN host_deferrals USING (host)
WHERE frontier.state IN ('pending', 'leased') AND host_deferrals.not_before > ?
"""
"""(URLs, hosts, latest not-before) still deferred at the Unix time given."""

Statement = tuple[str, Sequence[Sequence[object]]]
"""One SQL statement and the parameter rows ``executemany`` runs it with."""
NewURL = tuple[str, str, int, int]
"""(canonical url, host key, depth, redirect hops) offered to the frontier table, in scope (the
parse step's discovered rows add their offsite distance, :mod:`crawler.store.rows`)."""


class Store(AsyncResource):
    """Owner of the database connection and of its writer lock. Use ``async with Store(path)
    as store``; raises :class:`StorageError` if another process writes the database."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._writer_lock = WriterLock(self.path)
        self._identity: tuple[int, int] | None = None
        """(device, inode) of the file opened: see :meth:`_check_in_place`."""

    async def _aopen(self) -> None:
        await asyncio.to_thread(self._writer_lock.acquire)
        # Schema and version checks run on a plain connection in a worker thread first: a file
        # that can't be opened fails there, before aiosqlite starts its own thread (whose
        # clean-up after a failed connect can outlive the event loop).
        await asyncio.to_thread(prepare, self.path)
        try:
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            await self._conn.execute("PRAGMA synchronous=NORMAL")
            await self._conn.execute("PRAGMA busy_timeout=5000")
            await self._conn.execute(_CLAIMED_TABLE)
            self._identity = _identity(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from None

    async def _aclose(self) -> None:
        """Close the connection (an open transaction is rolled back), then release the writer
        lock, also if closing failed: the next writer starts after our last commit."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                # A transaction cut short by a cancellation is still open. Closing alone need
                # not end it: while anything still references one of its statements (a
                # cancelled future's cursor), SQLite keeps the closed connection alive, and
                # the database's write lock with it (sqlite3_close_v2).
                if conn.in_transaction:
                    await _rollback(conn)
                await conn.close()
        finally:
            self._writer_lock.release()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StorageError("the database is closed")
        return self._conn

    async def _fetchone(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        async with self.conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _fetchall(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    def _check_in_place(self) -> None:
        """Raise :class:`StorageError` if the path no longer names the file we opened.

        A database deleted (or replaced) mid-crawl by a clean-up job or a stray ``rm`` stays
        open and writable through its unlinked inode: without this the crawl went on writing
        into it and exited 0, leaving no file. One ``stat`` per transaction, a microsecond."""
        try:
            current: tuple[int, int] | None = _identity(self.path)
        except OSError:
            current = None
        if current != self._identity:
            raise StorageError(
                f"database {self.path} was deleted or replaced during the crawl; stopping "
                "(what this run wrote since is lost)"
            )

    # -- writes: each one transaction, under the lock ------------------------------------------

    async def _transaction(
        self, statements: Iterable[tuple[str, Sequence[Sequence[object]]]]
    ) -> None:
        async with self._lock:
            conn = self.conn
            self._check_in_place()
            try:
                await conn.execute("BEGIN IMMEDIATE")
                for sql, rows in statements:
                    if rows:
                        await conn.executemany(sql, rows)
                await conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await _rollback(conn)
                raise StorageError(f"cannot write to database {self.path}: {exc}") from None

    async def add_urls(self, urls: Sequence[NewURL]) -> None:
        """Offer URLs to the frontier table; ones already known (in any state) are ignored."""
        await self._transaction([(_ADD_URLS, _json_rows(urls))])

    async def write_batch(
        self,
        pages: Sequence[tuple[int, str, PageRows]],
        robots: Sequence[RobotsRecord] = (),
        offered: Sequence[NewURL] = (),
    ) -> None:
        """Record pages, each as (frontier id, its new frontier state, its rows: the page, its
        links and the URLs it offers to the frontier, :mod:`crawler.store.rows`), origins'
        robots.txt outcomes, and URLs offered outside any page (a sitemap's), atomically."""
        added = json_array(rows.page for _, _, rows in pages)
        links = json_array(rows.links for _, _, rows in pages)
        discovered = json_array(rows.discovered for _, _, rows in pages)
        await self._transaction(
            [
                (_ADD_PAGES, [(added,)] if pages else []),
                (_SET_STATES, _json_rows([(id_, state) for id_, state, _ in pages])),
                (_ADD_LINKS, [(links,)] if links != "[]" else []),
                (_ADD_URLS, [(discovered,)] if discovered != "[]" else []),
                (_ADD_URLS, _json_rows(offered)),
                (
                    _SET_ROBOTS,
                    [(r.origin, r.status, r.crawl_delay, "\n".join(r.sitemaps)) for r in robots],
                ),
            ]
        )

    async def claim(self, wants: Sequence[tuple[str, int]]) -> dict[str, list[Lease]]:
        """For each (host, limit) in ``wants``, move up to ``limit`` of that host's pending URLs
        to leased, oldest first, all in one transaction. Hosts with none left are absent."""
        async with self._lock:
            conn = self.conn
            self._check_in_place()
            try:
                await conn.execute("BEGIN IMMEDIATE")
                await conn.executemany(_CLAIM_PICK, wants)
                rows = await self._fetchall(_CLAIM_LEASE)
                await conn.execute("DELETE FROM temp.claimed")
                await conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await _rollback(conn)
                raise StorageError(f"cannot write to database {self.path}: {exc}") from None
        rows.sort()  # RETURNING gives no order guarantee; discovery order is breadth-first
        claimed: dict[str, list[Lease]] = {}
        for id_, url, host, depth, hops, offsite in rows:
            lease = Lease(id_, url, host, depth, hops=hops, offsite=offsite)
            claimed.setdefault(host, []).append(lease)
        return claimed

    async def defer_hosts(self, until: Sequence[tuple[str, float]]) -> None:
        """Store each (host, Unix time) its URLs wait for, and hand its claimed URLs back."""
        await self._transaction(
            [(_DEFER_HOST, until), (_UNLEASE_HOST, [(host,) for host, _ in until])]
        )

    async def save_cookies(self, cookies: Sequence[SavedCookie]) -> None:
        """Replace the saved cookie jars with ``cookies``, atomically."""
        rows = [
            (c.host, c.domain, c.path, c.name, c.value, c.secure, c.expires, c.http_only)
            for c in cookies
        ]
        await self._transaction([("DELETE FROM cookies", [()]), (_SAVE_COOKIE, rows)])

    async def reset_leases(self) -> int:
        """Return every leased URL to pending: the first step of a run (resume after a stop)."""
        async with self._lock:
            try:
                cursor = await self.conn.execute(
                    "UPDATE frontier SET state = 'pending' WHERE state = 'leased'"
                )
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write to database {self.path}: {exc}") from None
            return cursor.rowcount

    # -- reads ---------------------------------------------------------------------------------

    async def pending_hosts_after(self, cursor: str, limit: int) -> list[str]:
        """Up to ``limit`` hosts with pending URLs, in name order, after ``cursor`` ("": from
        the first): a page of them (:mod:`crawler.frontier.paging`)."""
        return [row[0] for row in await self._fetchall(_PENDING_HOSTS_AFTER, (cursor, limit))]

    async def budget_charges(self, pattern: Callable[[str], str]) -> list[tuple[str, str, int]]:
        """(host, ``pattern(url)``, URLs) over the URLs earlier runs charged to the trap
        budgets: every URL recorded (done, failed or skipped) except those skipped because a
        budget was already spent. Leased URLs are not counted: a run resets them to pending,
        and they are charged again when they come up. SQLite aggregates, calling ``pattern``
        once per recorded URL, so memory holds one count per (host, pattern)."""
        await self.conn.create_function("trap_pattern", 1, pattern, deterministic=True)
        return [
            (host, url_pattern, count)
            for host, url_pattern, count in await self._fetchall(_BUDGET_CHARGES)
        ]

    async def budget_charges_of(
        self, host: str, pattern: Callable[[str], str]
    ) -> list[tuple[str, int]]:
        """(``pattern(url)``, URLs) of one host, counted as :meth:`budget_charges` counts them:
        what a host the trap guard forgot had charged (from the ``(host, state)`` index).
        Counted here, not by an SQL function: SQLite refuses to (re)define one while other
        statements are running, as they are during a crawl."""
        rows = await self._fetchall(_HOST_BUDGET_CHARGES, (host,))
        return list(Counter(pattern(row[0]) for row in rows).items())

    async def recorded_per_host(self) -> list[tuple[str, int]]:
        """(host, URLs recorded: done, failed or skipped) over every host with any: what the
        per-host and per-domain budgets charge earlier runs with. One row per host, from the
        ``(host, state)`` index alone."""
        sql = (
            "SELECT host, count(*) FROM frontier "
            "WHERE state IN ('done', 'failed', 'skipped') GROUP BY host"
        )
        return [(row[0], row[1]) for row in await self._fetchall(sql)]

    async def host_deferrals(self, now: float) -> dict[str, float]:
        """Host -> the Unix time before which none of its URLs is fetched, where still ahead."""
        sql = "SELECT host, not_before FROM host_deferrals WHERE not_before > ?"
        return {row[0]: row[1] for row in await self._fetchall(sql, (now,))}

    async def deferred(self, now: float) -> Deferred:
        row = await self._fetchone(DEFERRED_SUMMARY, (now,))
        assert row is not None  # an aggregate always has a row
        return Deferred(*row)

    async def saved_cookies(self) -> list[SavedCookie]:
        """The cookie jars the last run saved."""
        rows = await self._fetchall(
            "SELECT host, domain, path, name, value, secure, expires, http_only FROM cookies"
        )
        return [
            SavedCookie(host, domain, path, name, value, bool(secure), expires, bool(http_only))
            for host, domain, path, name, value, secure, expires, http_only in rows
        ]

    async def state_counts(self) -> dict[str, int]:
        self._check_in_place()  # also the end of a run: its summary must not count a lost file
        rows = await self._fetchall("SELECT state, count(*) FROM frontier GROUP BY state")
        counts = {"pending": 0, "leased": 0, "done": 0, "failed": 0, "skipped": 0}
        counts.update({row[0]: row[1] for row in rows})
        return counts


def _identity(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


async def _rollback(conn: aiosqlite.Connection) -> None:
    # BEGIN itself may have failed, leaving no transaction to roll back.
    with contextlib.suppress(sqlite3.Error):
        await conn.execute("ROLLBACK")


def _json_rows(rows: Sequence[Sequence[object]]) -> list[tuple[str]]:
    """``rows`` as the one parameter of a ``json_each`` statement (none if there are none);
    text, since SQLite reads a blob as its binary JSONB format, or refuses it."""
    return [(msgspec.json.encode(rows).decode(),)] if rows else []
