"""The process around a crawl: its standard streams, the event loop, and signals turned into
an abort.

First SIGINT or SIGTERM: the controller aborts with a reason that carries the exit code (130,
143) and every part winds down within its deadline. Second signal: the main task is cancelled
at once; cleanup still runs (``async with`` everywhere), so the database stays consistent.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from crawler.abort import AbortController, AbortReason, AbortSignal

log = logging.getLogger("crawler")

T = TypeVar("T")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


STANDARD_STREAMS = ("stdin", "stdout", "stderr")
"""File descriptors 0, 1 and 2, by the names of their ``sys`` attributes."""


def reopen_closed_standard_streams() -> frozenset[str]:
    """Open ``/dev/null`` on each of file descriptors 0, 1 and 2 that is closed, and return
    the names of those (``"stdout"``). Call it first, before anything opens a file.

    Daemonizers, cron and supervisors may start a job with a stream closed (``<&-``,
    ``>&-``, ``2>&-``). The next file, pipe or socket opened would then take that number:
    a stray write to stdout would land in it, and uvloop aborts the process when it closes
    it (libuv's ``Assertion 'fd > STDERR_FILENO' failed``, exit 134). Python sets the
    ``sys`` stream of a closed descriptor to None; it gets a stream on ``/dev/null`` too, so
    nothing after this needs to care (the parse worker process inherits the descriptors).
    """
    closed = []
    for fd, name in enumerate(STANDARD_STREAMS):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)  # os.open's descriptors are not
            closed.append(name)
            if getattr(sys, name) is None:
                # closefd=False, like Python's own standard streams: never closed, no warning.
                setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115
    return frozenset(closed)


class ForcedStop(Exception):
    """The run was cancelled by a second signal before it could finish cleanly."""

    def __init__(self, reason: AbortReason) -> None:
        super().__init__(reason.message)
        self.reason = reason


def run(
    main: Callable[[AbortSignal], Coroutine[Any, Any, T]],
    *,
    use_uvloop: bool = True,
    controller: AbortController | None = None,
) -> T:
    """Run ``main(signal)`` on a new event loop (uvloop unless told otherwise) with signal
    handling. Raises :class:`ForcedStop` if a second signal cancelled it."""
    controller = controller or AbortController()
    tune_gc()
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        try:
            return runner.run(_supervise(main, controller))
        except asyncio.CancelledError:
            reason = controller.signal.reason
            if reason is None:
                raise
            raise ForcedStop(reason) from None


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Allocations between two young-generation collections (CPython's default is 700)."""


def tune_gc() -> None:
    """Set the cyclic garbage collector for a crawl, for the rest of the process.

    A crawl makes almost no reference cycles (each response is unlinked after use: see
    ``Fetcher._get``), so the collector's scans find almost nothing and only cost time on the
    event loop. What is alive before the crawl (everything imported) is frozen out of them,
    and the young generation is collected after 10,000 allocations instead of 700. On the
    benchmark's fan-out scenario at half scale this took the collector's time from 0.94 s to
    0.07 s per run and its longest pause from 25 to 11 ms (docs/performance.md and git history)."""
    gc.collect()  # what is garbage already is freed, not frozen
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the event loop for ``asyncio.Runner``: uvloop's if asked for and installed
    (else a warning), None (asyncio's own) otherwise."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop is not installed; using the default event loop")
        return None
    return uvloop.new_event_loop


async def _supervise(
    main: Callable[[AbortSignal], Coroutine[Any, Any, T]], controller: AbortController
) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def on_signal(signum: int) -> None:
        if not controller.abort(AbortReason.from_signal(signum)):
            log.warning("second signal (%s): stopping now", signal.Signals(signum).name)
            task.cancel()

    for signum in HANDLED_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await main(controller.signal)
    finally:
        for signum in HANDLED_SIGNALS:
            loop.remove_signal_handler(signum)
