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

A database on read-only storage (a copy on read-only media, a read-only mount) without its
``-shm`` cannot be read that way: SQLite can't create the ``-shm``. Nothing can be writing it
there, so it is opened ``immutable`` instead, provided no ``-wal`` holds commits (immutable
ignores them; such a copy is refused with a message).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from crawler.errors import StorageError
from crawler.store.schema import READABLE_VERSIONS, SCHEMA_VERSION, crawl_schema_version

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
    with _read_transaction(path) as (conn, version):
        if version is None:
            raise StorageError(f"{path} is not a crawl database (it is empty)")
        if version not in READABLE_VERSIONS:
            raise StorageError(
                f"database {path} has schema version {version}, this crawler knows {SCHEMA_VERSION}"
            )
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read database {path}: {exc}") from None


def crawl_database_version(path: Path) -> str | None:
    """The schema version of the crawl database at ``path``, whichever it is; None for an empty
    SQLite file. Raises :class:`StorageError` like :func:`read_snapshot` for anything else (what
    ``crawl run --fresh`` asks before it deletes a file)."""
    with _read_transaction(path) as (_, version):
        return version


@contextlib.contextmanager
def _read_transaction(path: Path) -> Iterator[tuple[sqlite3.Connection, str | None]]:
    """A read-only connection to ``path`` in a read transaction, and the schema version."""
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
            version = crawl_schema_version(conn, path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {path} as a crawl database: {exc}") from None
        yield conn, version


def _readonly_uri(path: Path) -> str:
    # as_uri() percent-encodes the path: a plain f"file:{path}" would read a '?', '#' or '%' in
    # a file name as URI syntax and open some other file.
    uri = f"{path.absolute().as_uri()}?mode=ro"
    shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
    if shm.exists() or os.access(path.absolute().parent, os.W_OK):
        return uri
    # Read-only media (a copy without its -shm, a read-only mount): a WAL reader needs a -shm
    # and SQLite cannot create one here ("unable to open database file"). Nothing can be
    # writing to this copy either, so it can be read as immutable, which needs no -shm, but
    # which also ignores a -wal: commits still in one would silently be missing.
    if wal.exists() and wal.stat().st_size > 0:
        raise StorageError(
            f"cannot read {path}: it is on read-only storage with a {wal.name} but no "
            f"{shm.name}; copy both files to a writable directory"
        )
    return f"{uri}&immutable=1"
