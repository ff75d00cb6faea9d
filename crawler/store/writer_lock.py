"""One writer per crawl database: an advisory lock that the writer holds for its lifetime.

Two ``crawl run``s on one database (a second terminal, an overlapping cron job) would each put
the other's leased URLs back to pending, fetch them too, and collide writing the same pages.
So the writer (:class:`crawler.store.database.Store`, also ``--fresh`` before it deletes the files)
first takes an exclusive :func:`fcntl.flock` on ``<db>.lock`` beside the database, without
waiting: a second writer is refused at once, told the holder's PID (written into the file).
Readers (``crawl stats``, ``crawl export``) take no lock: SQLite's WAL lets them read beside
the writer.

Why ``flock`` on a file of its own:

- the kernel drops a ``flock`` when the last descriptor of its open file goes, so when its
  process dies, however it dies (``kill -9`` included): a lock is never stale;
- POSIX record locks (``fcntl.lockf``), the kind SQLite itself takes on the database file, are
  the process's, and all of them are dropped when the process closes *any* descriptor of that
  file: each sqlite3 connection that the crawl opens to the database and closes (the schema
  check, the progress display's counts) would silently release a lock taken on it;
- the descriptor is not inherited (Python's default): the parse worker processes, started
  with ``exec``, never hold the lock, so it goes with the crawl's own process.

The lock file is never deleted (by ``--fresh`` neither): a process that opened it before the
deletion would go on locking a file that the next process no longer finds.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from crawler.errors import StorageError


def lock_path(db: Path) -> Path:
    """``crawl.db`` -> ``crawl.db.lock``."""
    return Path(f"{db}.lock")


class WriterLock:
    """The exclusive right to write database ``db``: :meth:`acquire`, then :meth:`release`
    (idempotent), or ``with WriterLock(db):``."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.path = lock_path(db)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`StorageError` at once (naming the holder's PID)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(
                f"cannot open database {self.db}: cannot create {self.path}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StorageError(
                f"database {self.db} is in use by another crawl{holder}; "
                "one crawl at a time writes a database (crawl stats and export can read it)"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock database {self.db}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Closing the descriptor drops the lock (the file stays, see the module docstring)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<WriterLock {self.path} held={self._fd is not None}>"


def _holder(fd: int) -> str:
    """`` (PID n)`` as the holder wrote it, or nothing if it has not yet."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f" (PID {text})" if text.isdigit() else ""
