"""The terminal side of the live progress display: where frames and log lines meet.

:class:`LiveDisplay` owns a rich ``Live`` region on standard error. While it is open,
``sys.stderr`` is a buffer (:class:`_LogBuffer`): log lines written meanwhile (the log handler
looks ``sys.stderr`` up at each record, see :mod:`crawler.observe.logs`) are kept and printed above
the display together with the next frame. Printing each line as it comes would redraw the whole
display for every line (with ``--debug``, for every page: a crawl 15 times slower) and would write
to the terminal from the event loop.

Drawing (:meth:`LiveDisplay.draw`) runs in a thread: a terminal that stops reading (Ctrl-S,
a stalled SSH session) stalls the display, not the crawl; meanwhile at most
:data:`MAX_BUFFERED_LINES` log lines are kept and further ones are counted and dropped.
Leaving ``async with`` restores ``sys.stderr`` and prints what is left, also when cancelled.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from crawler.resource import AsyncResource

MAX_BUFFERED_LINES = 100_000


class LiveDisplay(AsyncResource):
    """``async with LiveDisplay() as display: await display.draw(frame)``."""

    def __init__(self, console: Console | None = None) -> None:
        self._real_stderr = sys.stderr
        self.console = console or Console(file=self._real_stderr)
        self._logs = _LogBuffer(self._real_stderr)
        # No refresh thread of rich's own and no redirection of its own: a frame is drawn
        # when it is ready, with the log lines since the last one (see the module docstring).
        self._live = Live(
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )

    async def _aopen(self) -> None:
        self._live.start()
        sys.stderr = self._logs

    async def _aclose(self) -> None:
        if sys.stderr is self._logs:  # not if the display never opened
            sys.stderr = self._real_stderr
        # Waits for a frame being drawn in its thread (rich's lock), then leaves the last one
        # (nothing when the display never started).
        self._live.stop()
        if leftover := self._logs.drain():  # lines logged after the last frame
            self._real_stderr.write(leftover)
            self._real_stderr.flush()

    async def draw(self, frame: RenderableType) -> None:
        """Print the log lines since the last frame above the display, then ``frame``."""
        await asyncio.to_thread(self._draw, frame)

    def _draw(self, frame: RenderableType) -> None:
        if text := self._logs.drain():
            self.console.print(
                Text(text.removesuffix("\n")), soft_wrap=True, markup=False, highlight=False
            )
        self._live.update(frame, refresh=True)


class _LogBuffer(io.TextIOBase):
    """Stands in for ``sys.stderr``: keeps what is written until the next frame (bounded)."""

    def __init__(self, real: TextIO) -> None:
        self._real = real
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._lines = 0
        self._dropped = 0

    def write(self, text: str) -> int:
        with self._lock:
            if self._lines < MAX_BUFFERED_LINES:
                self._parts.append(text)
                self._lines += text.count("\n")
            else:
                self._dropped += text.count("\n")
        return len(text)

    def drain(self) -> str:
        with self._lock:
            text = "".join(self._parts)
            if self._dropped:
                text += f"({self._dropped:,} log lines dropped: the terminal did not keep up)\n"
            self._parts.clear()
            self._lines = self._dropped = 0
        return text

    def flush(self) -> None:
        pass  # drawn with the next frame

    def isatty(self) -> bool:
        return False  # nothing else may draw on this stream as if it were the terminal

    def fileno(self) -> int:
        return self._real.fileno()
