"""Page bodies, compressed, when asked for (``crawl run --store-bodies``).

Bodies go into a SQLite file of their own beside the crawl database (``crawl.db`` ->
``crawl-bodies.db``), not into it: the crawl database has one writer connection (the
store's), whose transactions record pages and frontier together; a second writer would contend
with it for the write lock, and bodies would make every page transaction as large as its page.
Join them with ``ATTACH``::

    sqlite3 crawl.db "ATTACH 'crawl-bodies.db' AS b;
                      SELECT p.title, length(b.body) FROM pages p JOIN b.bodies b USING (url)"

Table ``bodies`` (:data:`SCHEMA`): one row per URL with a body, the last response's (a retried
URL keeps its final answer): ``url``, ``fetched_at``, ``status``, ``content_type``, ``encoding``
(always ``zlib``: ``zlib.decompress(body)`` gives the bytes), ``size`` (bytes before
compression), ``truncated`` (1 if cut at ``fetch.max_body_bytes``), ``body``. Only what the
fetch layer reads is there: HTML bodies and those of ``fetch.download_types`` (PDFs, images),
decoded from their Content-Encoding; not redirects, not other types.

Writing: :meth:`BodyStore.add` runs in the engine's ``on_response`` and only queues (a bounded
:class:`~crawler.store.spool.Spool`); :meth:`BodyStore.run` compresses and writes each batch in one
transaction in a thread. Consistency with the crawl database is best effort: bodies still
queued at a ``kill -9`` are missing, and their pages are not fetched again on resume.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from crawler.errors import StorageError
from crawler.models import Lease, Response
from crawler.resource import AsyncResource
from crawler.store.spool import DEFAULT_SPOOL_BYTES, Spool

SCHEMA = """
CREATE TABLE IF NOT EXISTS bodies (
    url          TEXT PRIMARY KEY,
    fetched_at   TEXT NOT NULL,
    status       INTEGER NOT NULL,
    content_type TEXT,
    encoding     TEXT NOT NULL DEFAULT 'zlib',
    size         INTEGER NOT NULL,
    truncated    INTEGER NOT NULL DEFAULT 0,
    body         BLOB NOT NULL
);
"""
_INSERT = """
INSERT OR REPLACE INTO bodies (url, fetched_at, status, content_type, encoding, size, truncated,
                               body)
VALUES (?, ?, ?, ?, 'zlib', ?, ?, ?)
"""
COMPRESSION_LEVEL = 6
"""zlib's default: most of level 9's ratio at a fraction of its time."""
_BUSY_TIMEOUT = 5.0


def bodies_path(db_path: Path) -> Path:
    """Where the bodies of the crawl database ``db_path`` go: ``crawl.db`` ->
    ``crawl-bodies.db``."""
    return db_path.with_name(f"{db_path.stem}-bodies{db_path.suffix or '.db'}")


@dataclass(frozen=True, slots=True)
class _Body:
    url: str
    fetched_at: str
    status: int
    content_type: str | None
    body: bytes
    truncated: bool


class BodyStore(AsyncResource):
    """Owner of the bodies database. ``async with BodyStore(path) as bodies``; run :meth:`run`
    as a service task; :meth:`finish` after the last response."""

    def __init__(self, path: Path, *, spool_bytes: int = DEFAULT_SPOOL_BYTES) -> None:
        self.path = path
        self.written = 0
        self._spool: Spool[_Body] = Spool(spool_bytes)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def _aopen(self) -> None:
        await asyncio.to_thread(self._open)

    async def _aclose(self) -> None:
        self.finish()
        # Shielded: a batch still being written in its thread finishes first (the lock).
        await asyncio.shield(asyncio.to_thread(self._close_connection))

    def add(self, lease: Lease, response: Response) -> None:
        """Queue the body of one response, if it has one (synchronous, no I/O)."""
        if response.body and not self._spool.finished:
            fetched_at = datetime.now(UTC).isoformat(timespec="milliseconds")
            item = _Body(
                lease.url,
                fetched_at,
                response.status,
                response.content_type,
                response.body,
                response.truncated,
            )
            self._spool.put(item, len(response.body))

    async def room(self) -> None:
        """Wait while too much is queued (the workers' backpressure)."""
        await self._spool.room()

    async def run(self) -> None:
        """Write batches until finished and drained (a service task)."""
        while batch := await self._spool.take():
            await asyncio.to_thread(self._write, batch)

    def finish(self) -> None:
        """No more bodies: :meth:`run` writes what is queued and returns. Idempotent."""
        self._spool.finish()

    def _open(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open bodies database {self.path}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot open bodies database {self.path}: {exc}") from None
        self._conn = conn

    def _write(self, batch: list[_Body]) -> None:
        # Compressing here, in the writer's thread, keeps it off the event loop.
        rows = [
            (
                b.url,
                b.fetched_at,
                b.status,
                b.content_type,
                len(b.body),
                int(b.truncated),
                zlib.compress(b.body, COMPRESSION_LEVEL),
            )
            for b in batch
        ]
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError(f"the bodies database {self.path} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"cannot write bodies to {self.path}: {exc}") from None
            self.written += len(rows)

    def _close_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __repr__(self) -> str:
        return f"<BodyStore {self.path} written={self.written} {self._spool!r}>"
