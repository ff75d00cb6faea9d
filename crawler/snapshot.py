"""Read-only, consistent snapshots of a crawl database, for the tools that run beside a crawl.

``crawl stats`` and ``crawl export`` may read a database while ``crawl run`` is writing it.
Three things make that safe:

- the connection is opened read-only (``mode=ro``): a reader can never change a crawl;
- the database is in WAL mode: readers never wait for the writer, the writer never waits for
  readers;
- all the queries of one command run in one read transaction, so they all see the same commit:
  page counts, frontier counts and histograms agree with each other even mid-crawl.

The price of the snapshot: while it is open the crawl's WAL cannot be checkpointed past it, so
the ``-wal`` file grows for as long as a long export runs; it shrinks again afterwards.
A read-only connection also cannot delete the ``-wal`` and ``-shm`` files SQLite keeps beside
the database; the next ``crawl run`` removes them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from crawler.errors import StorageError
from crawler.store import SCHEMA_VERSION

_REQUIRED_TABLES = frozenset({"meta", "frontier", "pages"})
# Readers only wait in rare cases (WAL recovery after a crash, a checkpoint restart); bounded.
_BUSY_TIMEOUT = 5.0


@contextlib.contextmanager
def read_snapshot(path: Path) -> Iterator[sqlite3.Connection]:
    """Open the crawl database at ``path`` read-only, inside one read transaction.

    Every query on the yielded connection sees the same committed state. Raises
    :class:`StorageError` (exit code 1, one line) when the file is missing, is not SQLite, is not
    a crawl database or has another schema version, and for any SQLite error in the body (an I/O
    error while reading). The connection is closed on exit, also when the body raises.
    """
    if not path.exists():
        raise StorageError(f"no crawl database at {path}")
    if path.is_dir():
        raise StorageError(f"{path} is a directory, not a crawl database")
    try:
        conn = sqlite3.connect(
            _readonly_uri(path), uri=True, timeout=_BUSY_TIMEOUT, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    with contextlib.closing(conn):
        try:
            # A deferred BEGIN takes its snapshot at the first read: the schema check below.
            conn.execute("BEGIN")
            _check_schema(conn, path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {path} as a crawl database: {exc}") from None
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read database {path}: {exc}") from None


def _readonly_uri(path: Path) -> str:
    # as_uri() percent-encodes the path: a plain f"file:{path}" would read a '?', '#' or '%' in
    # a file name as URI syntax and open some other file.
    return f"{path.absolute().as_uri()}?mode=ro"


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if missing := _REQUIRED_TABLES - tables:
        raise StorageError(
            f"{path} is not a crawl database (no {', '.join(sorted(missing))} table)"
        )
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = None if row is None else str(row[0])
    if version != str(SCHEMA_VERSION):
        raise StorageError(
            f"database {path} has schema version {version}, this crawler knows {SCHEMA_VERSION}"
        )
