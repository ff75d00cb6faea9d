"""The columns of ``crawl export``: the page's own, one per user field (``data.NAME``), and the
choice ``--fields`` makes among them.

The page's columns are those of ``pages`` (:class:`PageRow`), in that order. The user's fields
(:mod:`crawler.store.fields`) are ``data`` as one JSON object in JSON Lines, and one column
each, ``data.NAME``, in CSV and Parquet, after the page's other columns, names in code point
order. ``--fields`` names the columns to write, in its order, from both kinds, for every format.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from crawler.errors import FatalError
from crawler.store.fields import DataField

DATA_PREFIX = "data."


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
    data: msgspec.Raw | None
    """The user's fields: the stored JSON object, written as it is."""
    sha256: str | None


FIELDS: tuple[str, ...] = PageRow.__struct_fields__
DATA = FIELDS.index("data")
TRUNCATED = FIELDS.index("truncated")


@dataclass(frozen=True, slots=True)
class Column:
    """One exported column."""

    name: str
    """As written: a column of ``pages`` (``url``) or a user field (``data.price``)."""
    field: DataField | None = None
    """The user field of a ``data.NAME`` column; None for a column of ``pages``."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The columns one export writes, and how a stored row becomes their values."""

    columns: tuple[Column, ...]
    # Where each value comes from: (its index in the stored row, or -1 for a user field; the
    # field's name), worked out once rather than for every row.
    _sources: tuple[tuple[int, str], ...] = dataclasses.field(init=False, repr=False)
    _reads_fields: bool = dataclasses.field(init=False, repr=False)
    _truncated_at: int | None = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        sources = tuple(
            (-1, column.field.name) if column.field else (FIELDS.index(column.name), column.name)
            for column in self.columns
        )
        object.__setattr__(self, "_sources", sources)
        object.__setattr__(self, "_reads_fields", any(index < 0 for index, _ in sources))
        names = self.names
        truncated = names.index("truncated") if "truncated" in names else None
        object.__setattr__(self, "_truncated_at", truncated)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def is_every_page_column(self) -> bool:
        """The columns of ``pages`` in their order: JSON Lines' default, written as PageRows."""
        return self.names == FIELDS

    def values(self, row: tuple[Any, ...]) -> list[Any]:
        """The values of ``row`` (the columns of ``pages`` as stored) for these columns:
        ``truncated`` a bool, ``data`` the stored JSON text, a user field its JSON value (None
        where the page has none)."""
        data = _decode(row[DATA]) if self._reads_fields else {}
        values = [row[index] if index >= 0 else data.get(name) for index, name in self._sources]
        if self._truncated_at is not None:
            values[self._truncated_at] = bool(values[self._truncated_at])
        return values

    def columns_of(self, rows: list[tuple[Any, ...]]) -> list[list[Any]]:
        """The values of ``rows`` as :meth:`values` gives them, one list per column (for a
        columnar writer: no list per row)."""
        data = [_decode(row[DATA]) for row in rows] if self._reads_fields else []
        columns = []
        for index, name in self._sources:
            if index < 0:
                columns.append([fields.get(name) for fields in data])
            elif index == TRUNCATED:
                columns.append([bool(row[index]) for row in rows])
            else:
                columns.append([row[index] for row in rows])
        return columns


def select_columns(
    fields: Sequence[DataField], flat: bool, chosen: Sequence[str] | None = None
) -> Selection:
    """The columns to write: ``chosen`` (``--fields``), else every column of ``pages``, with
    ``data`` as one column (``flat`` false: JSON Lines) or as one ``data.NAME`` column per
    field in ``fields`` (CSV, Parquet). Raises :class:`FatalError` naming an unknown or
    repeated field, and listing the known ones."""
    by_name = {
        f"{DATA_PREFIX}{data_field.name}": Column(f"{DATA_PREFIX}{data_field.name}", data_field)
        for data_field in fields
    }
    if chosen is None:
        page = [Column(name) for name in FIELDS if not (flat and name == "data")]
        return Selection(tuple(page + (list(by_name.values()) if flat else [])))
    known = {name: Column(name) for name in FIELDS} | by_name
    columns: list[Column] = []
    for name in chosen:
        if name not in known:
            raise FatalError(f"unknown field {name!r} in --fields; known: {', '.join(known)}")
        if name in (column.name for column in columns):
            raise FatalError(f"field {name!r} is named twice in --fields")
        columns.append(known[name])
    if not columns:
        raise FatalError(f"--fields names no field; known: {', '.join(known)}")
    return Selection(tuple(columns))


def _decode(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    data: dict[str, Any] = msgspec.json.decode(text)
    return data
