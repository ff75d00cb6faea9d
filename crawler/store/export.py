"""``crawl export``: every stored page as JSON Lines, CSV or Parquet, in constant memory.

One cursor reads ``pages`` in rowid order (the order pages were stored, so two exports of the
same database are identical) in batches of :data:`BATCH_ROWS`; each batch is encoded and written
before the next is read (Parquet: gathered into a row group of a few batches), so memory holds
one batch whatever the size of the database. The whole
export reads one snapshot (:mod:`crawler.store.snapshot`): safe, and consistent, while a crawl
writes.

A file is written whole or not at all: the records go to a temporary file beside the target,
which is fsynced and then renamed over it. An error or an interrupt removes the temporary file
and leaves an existing target as it was. Only regular files are replaced: a device or a FIFO is
written in place, and a symlink is followed (its target is written; the link stays).

The columns are :mod:`crawler.store.columns`' (the columns of ``pages``, the user's fields,
``--fields``). JSON Lines: one object per line, ``null`` for NULL, ``truncated`` a boolean,
``data`` the page's object of user fields (``null`` when it has none). CSV (RFC 4180, CRLF line
ends): a header row, an empty field for NULL, ``truncated`` ``true``/``false``, a user field's
list or object as JSON; values are written as stored (a spreadsheet may read a title starting
with ``=`` as a formula). Parquet: :mod:`crawler.store.parquet`. A database older than schema
version 4 (no ``data``, ``sha256``; read as it is, never upgraded) exports NULL for them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
import sqlite3
from collections.abc import Generator, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from crawler.errors import FatalError
from crawler.store.columns import DATA, FIELDS, PageRow, Selection, select_columns
from crawler.store.fields import read_data_fields
from crawler.store.parquet import require_pyarrow, write_parquet
from crawler.store.schema import page_columns
from crawler.store.snapshot import read_snapshot

BATCH_ROWS = 1000
# The CSV text of a batch is held three times as it goes out (the buffer, its value, UTF-8),
# four bytes a character once a title is not Latin-1: written out every few rows, not a batch.
_CSV_DRAIN_ROWS = 100


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


def export_to_stream(
    db: Path, fmt: ExportFormat, out: BinaryIO, fields: Sequence[str] | None = None
) -> int:
    """Write every page of the crawl database ``db`` to ``out``; return the number of records.

    ``fields`` chooses the columns and their order (``--fields``; None: every column). ``out``
    is flushed, not closed. Raises :class:`~crawler.errors.StorageError` for a missing or
    non-crawl database and :class:`~crawler.errors.FatalError` for an unknown field or a
    missing pyarrow (before anything is written), and lets ``OSError`` from ``out`` through
    (``BrokenPipeError`` when a pipe reader goes away).
    """
    if fmt is ExportFormat.PARQUET:
        require_pyarrow()
    with read_snapshot(db) as conn:
        count = _write(conn, fmt, _selection(conn, fmt, fields), out)
    out.flush()
    return count


def export_to_file(
    db: Path, fmt: ExportFormat, out: Path, fields: Sequence[str] | None = None
) -> int:
    """Write every page of ``db`` (the columns ``fields``, as :func:`export_to_stream`) to the
    file ``out``; return the number of records.

    A regular file (or a new path) is replaced atomically, only once complete and on disk; on
    any error (also ``KeyboardInterrupt``) no temporary file is left and an existing ``out`` is
    unchanged. Anything else (a device such as ``/dev/null``, a FIFO) is written in place, as
    ``>`` would: replacing it would put a regular file where the device or pipe was. A symlink
    is followed: its target is written, and the link stays. Raises
    :class:`~crawler.errors.StorageError` for a bad database and
    :class:`~crawler.errors.FatalError` when ``out`` cannot be written, for an unknown field
    and without pyarrow (these two before ``out`` is touched).
    """
    target = Path(os.path.realpath(out))
    _refuse_to_overwrite_the_database(db, out, target)
    if fmt is ExportFormat.PARQUET:
        require_pyarrow()
    with read_snapshot(db) as conn:
        selection = _selection(conn, fmt, fields)
        if target.exists() and not target.is_file() and not target.is_dir():
            return _write_in_place(conn, fmt, selection, target, out)
        # Not tempfile: its files are private (0600); this one gets the usual umask, like `>`.
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "xb") as stream:
                count = _write(conn, fmt, selection, stream)
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


def _write_in_place(
    conn: sqlite3.Connection, fmt: ExportFormat, selection: Selection, target: Path, out: Path
) -> int:
    # Opening a FIFO waits for its reader, as `>` does. No fsync: devices and pipes refuse it.
    try:
        with open(target, "wb") as stream:
            return _write(conn, fmt, selection, stream)
    except OSError as exc:
        raise FatalError(f"cannot write {out}: {exc.strerror or exc}") from None


def _selection(
    conn: sqlite3.Connection, fmt: ExportFormat, fields: Sequence[str] | None
) -> Selection:
    flat = fmt is not ExportFormat.JSONL
    # JSON Lines' default columns need no pass over pages.data: it is written as stored.
    found = read_data_fields(conn) if flat or fields is not None else []
    return select_columns(found, flat, fields)


def _write(conn: sqlite3.Connection, fmt: ExportFormat, selection: Selection, out: BinaryIO) -> int:
    # Closed here, not whenever the garbage collector gets to it: after a failed write the
    # generator's cursor must close while its connection is still open.
    with contextlib.closing(_batches(conn)) as batches:
        if fmt is ExportFormat.JSONL:
            return _write_jsonl(batches, selection, out)
        if fmt is ExportFormat.CSV:
            return _write_csv(batches, selection, out)
        return write_parquet(batches, selection, out)


def _batches(conn: sqlite3.Connection) -> Generator[list[tuple[Any, ...]]]:
    stored = page_columns(conn)
    # Column names come from PageRow's fields, never from input: no SQL is built from user text.
    # An older database lacks some: NULL for them.
    columns = ", ".join(name if name in stored else f"NULL AS {name}" for name in FIELDS)
    cursor = conn.execute(f"SELECT {columns} FROM pages ORDER BY rowid")
    try:
        while batch := cursor.fetchmany(BATCH_ROWS):
            yield batch
    finally:
        cursor.close()


def _write_jsonl(
    batches: Iterator[list[tuple[Any, ...]]], selection: Selection, out: BinaryIO
) -> int:
    # Encoding Structs a batch at a time is msgspec's fastest path (measured when it was
    # written; see git history): the default columns are written that way, a choice of them
    # (--fields) as one dict per page.
    encode_lines = msgspec.json.Encoder().encode_lines
    names = selection.names
    data_at = names.index("data") if "data" in names else None
    count = 0
    for batch in batches:
        if selection.is_every_page_column:
            records: list[Any] = [_page_row(row) for row in batch]
        else:
            records = [
                dict(zip(names, _raw(selection.values(row), data_at), strict=True)) for row in batch
            ]
        out.write(encode_lines(records))
        count += len(batch)
    return count


def _write_csv(
    batches: Iterator[list[tuple[Any, ...]]], selection: Selection, out: BinaryIO
) -> int:
    # csv writes text: each batch goes through one reused buffer and out as UTF-8, so the
    # caller's binary stream is never wrapped (a wrapper would close it when collected).
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(selection.names)
    _drain(buffer, out)
    # Only these can hold a value csv would not write as wanted: a bool, a list or an object.
    converted = [
        i
        for i, column in enumerate(selection.columns)
        if column.field is not None or column.name == "truncated"
    ]
    count = 0
    for batch in batches:
        for n, row in enumerate(batch, 1):
            values = selection.values(row)
            for i in converted:
                values[i] = _csv_value(values[i])
            writer.writerow(values)
            if n % _CSV_DRAIN_ROWS == 0:
                _drain(buffer, out)
        _drain(buffer, out)
        count += len(batch)
    return count


def _drain(buffer: io.StringIO, out: BinaryIO) -> None:
    out.write(buffer.getvalue().encode())
    buffer.seek(0)
    buffer.truncate()


def _page_row(row: tuple[Any, ...]) -> PageRow:
    # Struct() does not validate: the columns already have the fields' types, except that
    # SQLite stores truncated as 0/1, and data is JSON text, written as it is.
    page = PageRow(*row)
    page.truncated = bool(page.truncated)
    if page.data is not None:
        page.data = msgspec.Raw(row[DATA])
    return page


def _raw(values: list[Any], data_at: int | None) -> list[Any]:
    if data_at is not None and values[data_at] is not None:
        values[data_at] = msgspec.Raw(values[data_at])
    return values


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return value


def _refuse_to_overwrite_the_database(db: Path, out: Path, target: Path) -> None:
    if target in {Path(f"{db.resolve()}{suffix}") for suffix in ("", "-wal", "-shm")}:
        raise FatalError(f"refusing to export {db} over itself ({out})")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
