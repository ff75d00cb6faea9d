"""Log output: readable text for people, or JSON lines for a log shipper (``--log-format``).

The crawler logs through ``logging.getLogger("crawler")``. Calls that describe something a
machine may want to count pass an ``extra={"event": ..., ...}`` dict: the event name
(``page``, ``robots``, ``host_paused``, ``progress``, ``sitemap``, ``abort``, ...) and its
fields (``url``, ``host``, ``status``, ``reason``, and numbers). The text format shows the
message only; the JSON format writes one object per line::

    {"ts": "2026-11-25T01:28:55.389Z", "level": "debug", "event": "page",
     "message": "200 http://127.0.0.1:8000/page/0 Page 0", "url": "http://...", ...}

(one line in reality). ``ts`` is ISO 8601 UTC with milliseconds; ``level`` is lower-case;
``logger`` names the logger (``crawler``, or a library's); records without an event name
(from libraries) get ``"event": "log"``; an exception adds ``exc`` (the formatted traceback).
Values that JSON cannot hold are written as strings.

Both formats go to standard error, looked up at each record: while the live progress display
runs, ``sys.stderr`` is its buffer, and the lines appear above the display
(:mod:`crawler.observe.live`) instead of being overwritten by it.

A text line has its control characters escaped (``\\x1b``, ``\\n``), as JSON escapes them: a
page's title or URL is the web's text, and must not drive the terminal (retitle it, clear it)
or forge a log line of its own. Only a traceback keeps its line breaks.

``--debug`` (level DEBUG) is for the crawler's own records: a library's debug records are
dropped (aiosqlite's would log every SQL statement with its data, megabytes a page), its INFO
and above kept.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"

OWN_LOGGER = "crawler"
"""Records of this logger and its children are shown at every level; others from INFO up."""

# C0 and C1 controls and DEL, written as Python's repr writes them.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; see the module docstring."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD and key != "event" and not key.startswith("_")
        )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        # ensure_ascii keeps each line plain ASCII: no encoding surprises in a shipper.
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`, with control characters escaped (the traceback after it aside)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(_ESCAPES)


def _not_a_library_debug_record(record: logging.LogRecord) -> bool:
    name = record.name
    return record.levelno >= logging.INFO or name == OWN_LOGGER or name.startswith(f"{OWN_LOGGER}.")


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler for whatever ``sys.stderr`` is when a record arrives (see above)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(level: int, log_format: LogFormat = "text") -> None:
    """Send every log record of ``level`` and above to stderr in ``log_format``, replacing any
    earlier setup (the CLI calls this again once the config says which format)."""
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    # A filter on the handler, not levels on loggers: nothing is left set on a logger that
    # outlives this setup (the tests run many setups in one process).
    handler.addFilter(_not_a_library_debug_record)
    logging.basicConfig(level=level, handlers=[handler], force=True)


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{int(record.msecs):03d}Z"
