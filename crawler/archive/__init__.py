"""Responses kept as they were received, beside the database.

- :mod:`~crawler.archive.warc` (``crawl run --warc DIR``: the writer task and file rotation) and
  :mod:`~crawler.archive.warc_records` (the WARC records and CDXJ lines of one response);
- :mod:`~crawler.archive.bodies` (``crawl run --store-bodies``: page bodies, compressed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.lazy import lazy_exports

if TYPE_CHECKING:
    from crawler.archive.bodies import BodyStore, bodies_path
    from crawler.archive.warc import WarcArchive

__all__ = [
    "BodyStore",
    "WarcArchive",
    "bodies_path",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BodyStore": "crawler.archive.bodies",
        "bodies_path": "crawler.archive.bodies",
        "WarcArchive": "crawler.archive.warc",
    },
)
