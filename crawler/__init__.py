"""crawler: a fast, polite, durable asynchronous web crawler.

The public Python API (docs/python-api.md)::

    import crawler
    report = crawler.run(["https://example.com/"], db="crawl.db", max_pages=100)
    report = await crawler.crawl(["https://example.com/"], config=crawler.Config(...))

The names are imported on first use (PEP 562, :mod:`crawler.lazy`), so that ``import crawler``
stays cheap: the crawl machinery (httpx, aiohttp, SQLite, the parser) loads with the first
crawl, not with the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.lazy import lazy_exports
from crawler.version import __version__

if TYPE_CHECKING:
    from crawler.abort import AbortController, AbortReason, AbortSignal
    from crawler.api import Overrides, crawl, run
    from crawler.config import Config
    from crawler.config_load import load_config
    from crawler.engine import CrawlReport
    from crawler.errors import ConfigError, CrawlError, FatalError, SeedsError, StorageError
    from crawler.parse.hook import Page
    from crawler.runtime import ForcedStop

_EXPORTS = {
    "run": "crawler.api",
    "crawl": "crawler.api",
    "Overrides": "crawler.api",
    "CrawlReport": "crawler.engine",
    "Config": "crawler.config",
    "load_config": "crawler.config_load",
    "AbortController": "crawler.abort",
    "AbortReason": "crawler.abort",
    "AbortSignal": "crawler.abort",
    "CrawlError": "crawler.errors",
    "FatalError": "crawler.errors",
    "ConfigError": "crawler.errors",
    "SeedsError": "crawler.errors",
    "StorageError": "crawler.errors",
    "ForcedStop": "crawler.runtime",
    "Page": "crawler.parse.hook",
}
"""Each public name and the module that defines it."""

__all__ = [
    "AbortController",
    "AbortReason",
    "AbortSignal",
    "Config",
    "ConfigError",
    "CrawlError",
    "CrawlReport",
    "FatalError",
    "ForcedStop",
    "Overrides",
    "Page",
    "SeedsError",
    "StorageError",
    "__version__",
    "crawl",
    "load_config",
    "run",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
