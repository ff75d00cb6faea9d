"""The process around a crawl: the event loop, and signals turned into an abort.

First SIGINT or SIGTERM: the controller aborts with a reason that carries the exit code (130,
143) and every part winds down within its deadline. Second signal: the main task is cancelled
at once; cleanup still runs (``async with`` everywhere), so the database stays consistent.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from crawler.abort import AbortController, AbortReason, AbortSignal

log = logging.getLogger("crawler")

T = TypeVar("T")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    settle_heap()
    with asyncio.Runner(loop_factory=_loop_factory(use_uvloop)) as runner:
        try:
            return runner.run(_supervise(main, controller))
        except asyncio.CancelledError:
            reason = controller.signal.reason
            if reason is None:
                raise
            raise ForcedStop(reason) from None


def settle_heap() -> None:
    """Take what is alive before the crawl (modules, classes, configuration: everything
    imported) out of the cyclic garbage collector's scans, for the rest of the process.

    The collector's full scans otherwise walk all of it again every few seconds, on the event
    loop: on the benchmark's fan-out scenario they took 0.5 s per minute with pauses up to
    61 ms, and 0.19 s with pauses up to 26 ms after this (README "Performance")."""
    gc.collect()  # what is garbage already is freed, not kept for good
    gc.freeze()


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
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
