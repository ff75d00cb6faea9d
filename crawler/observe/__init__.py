"""What a running crawl tells people and machines.

- :mod:`~crawler.observe.stats` (this run's counters) and :mod:`~crawler.observe.gauges` (a sample
  of the crawl now);
- :mod:`~crawler.observe.progress` and :mod:`~crawler.observe.live` (the live display and plain
  progress lines), :mod:`~crawler.observe.metrics` (Prometheus), :mod:`~crawler.observe.logs`
  (text or JSON lines).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.lazy import lazy_exports

if TYPE_CHECKING:
    from crawler.observe.gauges import DatabaseCountReader, Gauges, LoopLag
    from crawler.observe.logs import LogFormat, setup_logging
    from crawler.observe.metrics import MetricsServer
    from crawler.observe.progress import Progress, ProgressMode
    from crawler.observe.stats import Stats

__all__ = [
    "DatabaseCountReader",
    "Gauges",
    "LogFormat",
    "LoopLag",
    "MetricsServer",
    "Progress",
    "ProgressMode",
    "Stats",
    "setup_logging",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DatabaseCountReader": "crawler.observe.gauges",
        "Gauges": "crawler.observe.gauges",
        "LoopLag": "crawler.observe.gauges",
        "LogFormat": "crawler.observe.logs",
        "setup_logging": "crawler.observe.logs",
        "MetricsServer": "crawler.observe.metrics",
        "Progress": "crawler.observe.progress",
        "ProgressMode": "crawler.observe.progress",
        "Stats": "crawler.observe.stats",
    },
)
