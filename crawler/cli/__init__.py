"""The ``crawl`` command line (typer), a thin layer over :mod:`crawler.api`.

- :mod:`~crawler.cli.app`: the app and its entry point, :func:`main`;
- :mod:`~crawler.cli.run` (``crawl run``), :mod:`~crawler.cli.database` (``crawl stats``,
  ``crawl export``), :mod:`~crawler.cli.bench` (``crawl bench``, which loads the benchmark
  harness only when it runs), :mod:`~crawler.cli.output` (what they share).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.lazy import lazy_exports

if TYPE_CHECKING:
    from crawler.cli.app import app, main

__all__ = [
    "app",
    "main",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "app": "crawler.cli.app",
        "main": "crawler.cli.app",
    },
)
