"""Parsing held back until a crawl's grace period is over: pages that are being parsed when
the grace period ends, for the tests of stopping a crawl (tests/test_shutdown.py).

In this process (``with HeldParsing(...).installed():``) or in a real ``crawl`` process::

    python -m tests.held_parsing HELD_FILE AFTER run SEEDS --config ... (crawl's arguments)

which holds every parse after the first AFTER and writes each held page's URL to HELD_FILE, one
a line, as its parse starts waiting. Parsing must run in threads
(``runtime.parse_processes = 0``): only this process's ``build_outcome`` is replaced.

A held parse waits until the crawl logs ``grace_period_over`` (the engine's grace timer), and
is released by that log record: no sleeping, and the pages are being parsed, not on the wire,
when the grace period ends.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from crawler.models import Lease
from crawler.parse import pool as parse_pool

HOLD_TIMEOUT = 30.0
"""A held parse goes on after this long anyway, so a crawl that never logs the end of its grace
period still ends (and the test fails on what it stored)."""


class HeldParsing(logging.Handler):
    """A ``build_outcome`` whose parses wait while ``hold(n)`` says so (``n``: the parses
    started so far, this one included), and a log handler that releases them."""

    def __init__(
        self, hold: Callable[[int], bool], on_held: Callable[[str], None] = lambda url: None
    ) -> None:
        super().__init__()
        self._hold = hold
        self._on_held = on_held
        self._lock = threading.Lock()
        self._started = 0
        self._held: list[str] = []
        self._waiting = 0
        self.released = threading.Event()
        self._real = parse_pool.build_outcome

    @property
    def held(self) -> list[str]:
        """The URLs whose parse was held, in the order they started waiting."""
        with self._lock:
            return list(self._held)

    @property
    def waiting(self) -> int:
        """Parses held right now."""
        with self._lock:
            return self._waiting

    def build(self, lease: Lease, response: Any, rules: Any, fetched_at: str) -> Any:
        with self._lock:
            self._started += 1
            hold = self._hold(self._started)
            if hold:
                self._held.append(lease.url)
                self._waiting += 1
        if hold:
            self._on_held(lease.url)
            self.released.wait(HOLD_TIMEOUT)
            with self._lock:
                self._waiting -= 1
        return self._real(lease, response, rules, fetched_at)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "grace_period_over":
            self.released.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[HeldParsing]:
        """Replace the thread parse pool's ``build_outcome`` and listen to the crawl's log."""
        logger = logging.getLogger("crawler")
        parse_pool.build_outcome = self.build  # type: ignore[assignment]
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            parse_pool.build_outcome = self._real
            self.released.set()  # no parse may outlive its test


def main() -> None:
    held_file, after, *crawl_args = sys.argv[1:]

    def on_held(url: str) -> None:
        with open(held_file, "a", encoding="utf-8") as out:
            out.write(url + "\n")

    from crawler.cli.app import app

    with HeldParsing(lambda started: started > int(after), on_held).installed():
        app(crawl_args, prog_name="crawl")


if __name__ == "__main__":
    main()
