"""The crawl database: what is written, by whom, and what reads it.

- :mod:`~crawler.store.schema` (the tables and their version) and
  :mod:`~crawler.store.database` (every statement a crawl runs, behind one connection);
  :mod:`~crawler.store.pg_schema` (the same tables on PostgreSQL, for a crawl shared by many
  processes: under construction, not used by a crawl yet);
- :mod:`~crawler.store.sink` (the one batched writer), :mod:`~crawler.store.spool` (a bounded
  hand-off to a writer task), :mod:`~crawler.store.rows` (a page's rows, encoded for the sink),
  :mod:`~crawler.store.writer_lock` (one writer per database);
- :mod:`~crawler.store.snapshot` (read-only snapshots), :mod:`~crawler.store.summary`
  (``crawl stats``), :mod:`~crawler.store.export` (``crawl export``), with
  :mod:`~crawler.store.fields` (the user's fields a database holds),
  :mod:`~crawler.store.columns` (the export's columns, ``--fields``) and
  :mod:`~crawler.store.parquet` (``--format parquet``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.lazy import lazy_exports

if TYPE_CHECKING:
    from crawler.store.columns import Selection, select_columns
    from crawler.store.database import Store
    from crawler.store.export import ExportFormat, export_to_file, export_to_stream
    from crawler.store.fields import DataField, read_data_fields
    from crawler.store.rows import page_rows, rows_of
    from crawler.store.schema import SCHEMA_VERSION
    from crawler.store.sink import Sink
    from crawler.store.snapshot import crawl_database_version, read_snapshot
    from crawler.store.spool import Spool
    from crawler.store.summary import (
        DEFAULT_TOP_HOSTS,
        CrawlSummary,
        format_json,
        format_text,
        read_summary,
    )
    from crawler.store.writer_lock import WriterLock

__all__ = [
    "DEFAULT_TOP_HOSTS",
    "SCHEMA_VERSION",
    "CrawlSummary",
    "DataField",
    "ExportFormat",
    "Selection",
    "Sink",
    "Spool",
    "Store",
    "WriterLock",
    "crawl_database_version",
    "export_to_file",
    "export_to_stream",
    "format_json",
    "format_text",
    "page_rows",
    "read_data_fields",
    "read_snapshot",
    "read_summary",
    "rows_of",
    "select_columns",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Selection": "crawler.store.columns",
        "select_columns": "crawler.store.columns",
        "Store": "crawler.store.database",
        "ExportFormat": "crawler.store.export",
        "export_to_file": "crawler.store.export",
        "export_to_stream": "crawler.store.export",
        "DataField": "crawler.store.fields",
        "read_data_fields": "crawler.store.fields",
        "page_rows": "crawler.store.rows",
        "rows_of": "crawler.store.rows",
        "SCHEMA_VERSION": "crawler.store.schema",
        "Sink": "crawler.store.sink",
        "crawl_database_version": "crawler.store.snapshot",
        "read_snapshot": "crawler.store.snapshot",
        "Spool": "crawler.store.spool",
        "CrawlSummary": "crawler.store.summary",
        "DEFAULT_TOP_HOSTS": "crawler.store.summary",
        "format_json": "crawler.store.summary",
        "format_text": "crawler.store.summary",
        "read_summary": "crawler.store.summary",
        "WriterLock": "crawler.store.writer_lock",
    },
)
