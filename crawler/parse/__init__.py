"""From a response to an :class:`~crawler.models.Outcome`, off the event loop.

- :mod:`~crawler.parse.html`: HTML bytes to a :class:`~crawler.models.ParsedPage` (the only
  module that imports selectolax);
- :mod:`~crawler.parse.outcome`: a response to its outcome (the page row, the links to record and
  follow), pure;
- :mod:`~crawler.parse.pool` and :mod:`~crawler.parse.child`: where that runs (worker processes
  by default, threads with ``runtime.parse_processes = 0``) and the worker process's side;
- :mod:`~crawler.parse.extract` (the user's ``[extract.fields]`` rules) and
  :mod:`~crawler.parse.hook` (the user's hook and the :class:`Page` it is given);
- :mod:`~crawler.parse.offered` (URLs a worker offered lately), :mod:`~crawler.parse.malloc`
  (the worker's C heap kept between pages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.lazy import lazy_exports

if TYPE_CHECKING:
    from crawler.parse.extract import ExtractRules, FieldRule, extract
    from crawler.parse.hook import Hook, Page, hook_name, load_hook
    from crawler.parse.html import parse_html, read_html
    from crawler.parse.malloc import keep_freed_memory
    from crawler.parse.outcome import LinkRules, build_outcome, failed_outcome, skipped_outcome
    from crawler.parse.pool import ParsePool, ProcessParsePool, ThreadParsePool, make_parse_pool

__all__ = [
    "ExtractRules",
    "FieldRule",
    "Hook",
    "LinkRules",
    "Page",
    "ParsePool",
    "ProcessParsePool",
    "ThreadParsePool",
    "build_outcome",
    "extract",
    "failed_outcome",
    "hook_name",
    "keep_freed_memory",
    "load_hook",
    "make_parse_pool",
    "parse_html",
    "read_html",
    "skipped_outcome",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ExtractRules": "crawler.parse.extract",
        "FieldRule": "crawler.parse.extract",
        "extract": "crawler.parse.extract",
        "Hook": "crawler.parse.hook",
        "Page": "crawler.parse.hook",
        "hook_name": "crawler.parse.hook",
        "load_hook": "crawler.parse.hook",
        "parse_html": "crawler.parse.html",
        "read_html": "crawler.parse.html",
        "keep_freed_memory": "crawler.parse.malloc",
        "LinkRules": "crawler.parse.outcome",
        "build_outcome": "crawler.parse.outcome",
        "failed_outcome": "crawler.parse.outcome",
        "skipped_outcome": "crawler.parse.outcome",
        "ParsePool": "crawler.parse.pool",
        "ProcessParsePool": "crawler.parse.pool",
        "ThreadParsePool": "crawler.parse.pool",
        "make_parse_pool": "crawler.parse.pool",
    },
)
