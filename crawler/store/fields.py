"""The user's fields in a crawl database: the names ``pages.data`` holds, on how many pages
each has a value, and of which JSON types.

One pass of SQLite's JSON functions (``json_each``) over ``pages.data``, grouped by name and
type, so memory holds one row per name and type whatever the size of the database. ``crawl
export`` reads it for its ``data.NAME`` columns (and Parquet for their types), ``crawl stats``
for its pages per field. A database older than schema version 4 has no ``data`` column: no
fields.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby

from crawler.store.schema import page_columns

# json_each's types: 'null', 'true', 'false', 'integer', 'real', 'text', 'array', 'object'.
# Names in BINARY collation: the order of their UTF-8 bytes, the order of code points.
_FIELDS = """
SELECT field.key, field.type, count(*)
FROM pages, json_each(pages.data) AS field
WHERE json_type(pages.data) = 'object'
GROUP BY field.key, field.type
ORDER BY field.key
"""


@dataclass(frozen=True, slots=True)
class DataField:
    """One name in ``pages.data``."""

    name: str
    pages: int
    """Pages on which it has a value (a null is none)."""
    types: frozenset[str]
    """The JSON types of those values, as SQLite names them: ``text``, ``integer``, ``real``,
    ``true``, ``false``, ``array``, ``object``; empty when every value is null."""


def read_data_fields(conn: sqlite3.Connection) -> list[DataField]:
    """Every name found in ``pages.data`` on ``conn``, in code point order."""
    if "data" not in page_columns(conn):
        return []
    return [_field(name, rows) for name, rows in groupby(conn.execute(_FIELDS), lambda r: r[0])]


def _field(name: str, rows: Iterable[tuple[str, str, int]]) -> DataField:
    counts = {type_: n for _, type_, n in rows if type_ != "null"}
    return DataField(name, sum(counts.values()), frozenset(counts))
