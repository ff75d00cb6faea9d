"""``crawl export``: every stored page as JSON Lines or CSV, in constant memory.

One cursor reads ``pages`` in rowid order (the order pages were stored, so two exports of the
same database are identical) in batches of :data:`BATCH_ROWS`; each batch is encoded and written
before the next is read, so memory holds one batch whatever the size of the database. The whole
export reads one snapshot (:mod:`crawler.store.snapshot`): safe, and consistent, while a crawl
writes.

A file is written whole or not at all: the records go to a temporary file beside the target,
which is fsynced and then renamed over it. An error or an interrupt removes the temporary file
and leaves an existing target as it was. Only regular files are replaced: a device or a FIFO is
written in place, and a symlink is followed (its target is written; the link stays).

Record fields are the columns of ``pages`` (:class:`PageRow`), in that order. JSON Lines: one
object per line, ``null`` for NULL, ``truncated`` a boolean. CSV (RFC 4180, CRLF line ends): a
header row, an empty field for NULL, ``truncated`` ``true``/``false``; values are written as
stored (a spreadsheet may read a title starting with ``=`` as a formula).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
import sqlite3
from collections.abc import Generator, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from crawler.errors import FatalError
from crawler.store.snapshot import read_snapshot

BATCH_ROWS = 1000


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


class PageRow(msgspec.Struct):
    """One exported page: the columns of ``pages``, in the order of the export."""

    url: str
    final_url: str | None
    status: int | None
    content_type: str | None
    title: str | None
    description: str | None
    canonical: str | None
    depth: int
    fetched_at: str
    error: str | None
    size: int
    elapsed_ms: float
    truncated: bool
    notes: str | None


FIELDS: tuple[str, ...] = PageRow.__struct_fields__
# Column names come from PageRow's fields, never from input: no SQL is built from user text.
_SELECT = f"SELECT {', '.join(FIELDS)} FROM pages ORDER BY rowid"
_TRUNCATED = FIELDS.index("truncated")


def export_to_stream(db: Path, fmt: ExportFormat, out: BinaryIO) -> int:
    """Write every page of the crawl database ``db`` to ``out``; return the number of records.

    ``out`` is flushed, not closed. Raises :class:`~crawler.errors.StorageError` for a missing
    or non-crawl database (before anything is written) and lets ``OSError`` from ``out``
    through (``BrokenPipeError`` when a pipe reader goes away).
    """
    with read_snapshot(db) as conn:
        count = _write(conn, fmt, out)
    out.flush()
    return count


def export_to_file(db: Path, fmt: ExportFormat, out: Path) -> int:
    """Write every page of ``db`` to the file ``out``; return the number of records.

    A regular file (or a new path) is replaced atomically, only once complete and on disk; on
    any error (also ``KeyboardInterrupt``) no temporary file is left and an existing ``out`` is
    unchanged. Anything else (a device such as ``/dev/null``, a FIFO) is written in place, as
    ``>`` would: replacing it would put a regular file where the device or pipe was. A symlink
    is followed: its target is written, and the link stays. Raises
    :class:`~crawler.errors.StorageError` for a bad database and
    :class:`~crawler.errors.FatalError` when ``out`` cannot be written.
    """
    target = Path(os.path.realpath(out))
    _refuse_to_overwrite_the_database(db, out, target)
    with read_snapshot(db) as conn:
        if target.exists() and not target.is_file() and not target.is_dir():
            return _write_in_place(conn, fmt, target, out)
        # Not tempfile: its files are private (0600); this one gets the usual umask, like `>`.
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "xb") as stream:
                count = _write(conn, fmt, stream)
                stream.flush()
                # Without it, a power cut soon after the rename can leave an empty file.
                os.fsync(stream.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            _remove(tmp)
            raise FatalError(f"cannot write {out}: {exc.strerror or exc}") from None
        except BaseException:
            _remove(tmp)
            raise
    return count


def _write_in_place(conn: sqlite3.Connection, fmt: ExportFormat, target: Path, out: Path) -> int:
    # Opening a FIFO waits for its reader, as `>` does. No fsync: devices and pipes refuse it.
    try:
        with open(target, "wb") as stream:
            return _write(conn, fmt, stream)
    except OSError as exc:
        raise FatalError(f"cannot write {out}: {exc.strerror or exc}") from None


def _write(conn: sqlite3.Connection, fmt: ExportFormat, out: BinaryIO) -> int:
    # Closed here, not whenever the garbage collector gets to it: after a failed write the
    # generator's cursor must close while its connection is still open.
    with contextlib.closing(_batches(conn)) as batches:
        if fmt is ExportFormat.JSONL:
            return _write_jsonl(batches, out)
        return _write_csv(batches, out)


def _batches(conn: sqlite3.Connection) -> Generator[list[tuple[Any, ...]]]:
    cursor = conn.execute(_SELECT)
    try:
        while batch := cursor.fetchmany(BATCH_ROWS):
            yield batch
    finally:
        cursor.close()


def _write_jsonl(batches: Iterator[list[tuple[Any, ...]]], out: BinaryIO) -> int:
    # Encoding Structs a batch at a time is msgspec's fastest path (measured when it was
    # written; see git history).
    encode_lines = msgspec.json.Encoder().encode_lines
    count = 0
    for batch in batches:
        out.write(encode_lines([_page_row(row) for row in batch]))
        count += len(batch)
    return count


def _write_csv(batches: Iterator[list[tuple[Any, ...]]], out: BinaryIO) -> int:
    # csv writes text: each batch goes through one reused buffer and out as UTF-8, so the
    # caller's binary stream is never wrapped (a wrapper would close it when collected).
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(FIELDS)
    _drain(buffer, out)
    count = 0
    for batch in batches:
        writer.writerows(map(_csv_row, batch))
        _drain(buffer, out)
        count += len(batch)
    return count


def _drain(buffer: io.StringIO, out: BinaryIO) -> None:
    out.write(buffer.getvalue().encode())
    buffer.seek(0)
    buffer.truncate()


def _page_row(row: tuple[Any, ...]) -> PageRow:
    # Struct() does not validate: the columns already have the fields' types, except that
    # SQLite stores truncated as 0/1.
    page = PageRow(*row)
    page.truncated = bool(page.truncated)
    return page


def _csv_row(row: tuple[Any, ...]) -> list[Any]:
    values = list(row)
    values[_TRUNCATED] = "true" if values[_TRUNCATED] else "false"
    return values


def _refuse_to_overwrite_the_database(db: Path, out: Path, target: Path) -> None:
    if target in {Path(f"{db.resolve()}{suffix}") for suffix in ("", "-wal", "-shm")}:
        raise FatalError(f"refusing to export {db} over itself ({out})")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
