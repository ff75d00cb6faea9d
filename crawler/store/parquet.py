"""``crawl export --format parquet``: the export's columns as typed Parquet columns, streamed.

Written with pyarrow (the optional extra ``crawler[parquet]``), imported only here and only
when a Parquet export runs. The export's batches of rows become Arrow record batches, and every
:data:`ROW_GROUP_ROWS` rows one Parquet row group is written and let go: memory holds one row
group whatever the size of the database (row groups much smaller cost readers time and grow
the file footer, which the writer holds until it closes).

The columns are CSV's (:mod:`crawler.store.columns`), typed: integers (``status``, ``depth``,
``size``) int64, ``elapsed_ms`` float64, ``truncated`` bool, the others strings (``fetched_at``
stays ISO 8601 text, as stored). A user field gets the type of its values over the whole
database (:mod:`crawler.store.fields`): string, int64, float64 (integers and reals) or bool;
any other mix (lists, objects, a string on one page and a number on another) is a string
holding each value's JSON. Flat columns rather than one struct: pandas and DuckDB read
``data.price`` as a column of the right type, under the name CSV gives it, and a field whose
values do not share a type still loads (a struct column needs one type per field).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import msgspec

from crawler.errors import FatalError
from crawler.store.columns import Column, Selection

ROW_GROUP_ROWS = 10_000
INSTALL_HINT = "pip install 'crawler[parquet]'"

_PAGE_TYPES = {
    "status": "int64",
    "depth": "int64",
    "size": "int64",
    "elapsed_ms": "float64",
    "truncated": "bool",
}
_JSON = "json"  # a string column holding each value as JSON


def require_pyarrow() -> None:
    """Raise :class:`FatalError` (one line: how to install it) when pyarrow is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise FatalError(f"--format parquet needs pyarrow: {INSTALL_HINT}") from None


def write_parquet(
    batches: Iterator[list[tuple[Any, ...]]], selection: Selection, out: BinaryIO
) -> int:
    """Write the rows of ``batches`` (the columns of ``pages`` as stored) to ``out`` as one
    Parquet file of ``selection``'s columns; return the number of rows. ``out`` is not closed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kinds = [_kind(column) for column in selection.columns]
    schema = pa.schema(
        [
            (column.name, pa.string() if kind == _JSON else pa.type_for_alias(kind))
            for column, kind in zip(selection.columns, kinds, strict=True)
        ]
    )
    json_at = [i for i, kind in enumerate(kinds) if kind == _JSON]
    count = 0
    pending: list[Any] = []  # record batches of the row group being gathered
    with pq.ParquetWriter(out, schema) as writer:
        for batch in batches:
            columns = selection.columns_of(batch)
            for i in json_at:
                columns[i] = [_json(value) for value in columns[i]]
            pending.append(pa.record_batch(columns, schema=schema))
            count += len(batch)
            if sum(map(len, pending)) >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending, schema))
                pending = []
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema))
    return count


def _kind(column: Column) -> str:
    """The Arrow type alias of ``column``, or :data:`_JSON`."""
    if column.field is None:
        return _PAGE_TYPES.get(column.name, "string")
    types = column.field.types
    if types <= {"text"}:  # only nulls, too: an all-null string column
        return "string"
    if types <= {"integer"}:
        return "int64"
    if types <= {"integer", "real"}:
        return "float64"
    if types <= {"true", "false"}:
        return "bool"
    return _JSON


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()
