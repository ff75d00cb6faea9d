"""Progress for people: a live display on a terminal, a plain line every N seconds elsewhere.

Both show the same numbers (:class:`ProgressNumbers`): pages done and the rate now (over the
last :data:`RATE_WINDOW` seconds) and on average, pending and leased URLs (the database's
counts, all runs), URLs in flight, hosts with work left and in cooldown, failures and skips by
reason, bytes, elapsed time, the event loop's lag and, with a page budget, the ETA.

- ``live``: a frame (:func:`render_frame`) redrawn twice a second in place on standard error,
  with the log lines of the meantime above it (the terminal side: :mod:`crawler.observe.live`). The
  last frame stays.
- ``plain``: one log record (event ``progress``, the numbers as fields in JSON logs) every
  ``interval`` seconds and once more at the end; for containers and CI, where a redrawn display
  would be a mess of escape codes. ``interval`` 0: none.

The engine picks the mode (``output.progress``: ``auto`` is live when standard error is a
terminal) and owns the task: :meth:`Progress.run` returns after :meth:`Progress.stop` (having
shown the final numbers) or when cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from crawler.observe.gauges import CrawlSample, Gauges
from crawler.observe.live import LiveDisplay

log = logging.getLogger("crawler")

ProgressMode = Literal["live", "plain"]
LIVE_REFRESH = 0.5
"""Seconds between two frames of the live display."""
RATE_WINDOW = 10.0
"""Seconds of history behind "pages/s now"."""


class Rate:
    """Pages per second over the last ``window`` seconds of samples."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._points: deque[tuple[float, int]] = deque()

    def add(self, sample: CrawlSample) -> None:
        self._points.append((sample.at, sample.pages))
        # Keep one point older than the window, so the rate always spans a whole window.
        while len(self._points) > 2 and self._points[1][0] <= sample.at - self.window:
            self._points.popleft()

    @property
    def per_second(self) -> float:
        if len(self._points) < 2:
            return 0.0
        (t0, p0), (t1, p1) = self._points[0], self._points[-1]
        return (p1 - p0) / (t1 - t0) if t1 > t0 else 0.0


class Progress:
    """Shows a crawl's progress; see the module docstring."""

    def __init__(
        self,
        gauges: Gauges,
        mode: ProgressMode,
        *,
        interval: float,
        console: Console | None = None,
        refresh: float = LIVE_REFRESH,
    ) -> None:
        self.gauges = gauges
        self.mode = mode
        self.interval = interval
        self.frames = 0
        """Frames drawn or lines logged so far."""
        self._console = console
        self._refresh = refresh
        self._rate = Rate()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Show the final numbers and return from :meth:`run`. Idempotent."""
        self._stopping.set()

    async def run(self) -> None:
        if self.mode == "live":
            await self._run_live()
        elif self.interval > 0:
            await self._run_plain()

    async def _run_live(self) -> None:
        async with LiveDisplay(self._console) as display:
            while True:
                final = self._stopping.is_set()
                sample = await self.gauges.sample(fresh=final)
                self._rate.add(sample)
                await display.draw(render_frame(sample, self._rate.per_second, final=final))
                self.frames += 1
                if final:
                    return
                await self._pause(self._refresh)

    async def _run_plain(self) -> None:
        self._rate.add(self.gauges.sample_now())
        while True:
            await self._pause(self.interval)
            final = self._stopping.is_set()
            sample = await self.gauges.sample(fresh=final)
            self._rate.add(sample)
            numbers = ProgressNumbers.of(sample, self._rate.per_second)
            log.info("%s", numbers.line(), extra={"event": "progress", **numbers.fields()})
            self.frames += 1
            if final:
                return

    async def _pause(self, seconds: float) -> None:
        # Pacing, not synchronization: the next frame is due after `seconds`, or at once on stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    def __repr__(self) -> str:
        return f"<Progress {self.mode} frames={self.frames} stopping={self._stopping.is_set()}>"


# -- the numbers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProgressNumbers:
    """What both displays show; also the fields of a JSON ``progress`` log record."""

    pages: int
    pages_per_second: float
    """Over the last :data:`RATE_WINDOW` seconds."""
    pages_per_second_avg: float
    pending: int | None
    """From the database (all runs); None until it was counted once."""
    leased: int | None
    in_flight: int
    hosts_active: int | None
    """Hosts with URLs pending or leased."""
    hosts_cooling_down: int
    hosts_paused: int
    failed: int
    errors: dict[str, int]
    """Failures by reason, most first."""
    skipped: dict[str, int]
    retries: int
    bytes: int
    elapsed: float
    eta: float | None
    """Seconds until the page budget is spent at the current rate; None without a budget."""
    budget_left: int | None
    loop_lag_ms: float
    loop_lag_peak_ms: float

    @classmethod
    def of(cls, sample: CrawlSample, rate_now: float) -> ProgressNumbers:
        database = sample.database
        frontier = sample.frontier
        left = sample.budget_left
        rate = rate_now or sample.average_rate
        eta = left / rate if left is not None and rate > 0 else None
        return cls(
            pages=sample.pages,
            pages_per_second=round(rate_now, 2),
            pages_per_second_avg=round(sample.average_rate, 2),
            pending=database.pending if database else None,
            leased=database.leased if database else None,
            in_flight=frontier.in_flight if frontier else 0,
            hosts_active=database.hosts_with_work if database else None,
            hosts_cooling_down=frontier.hosts_cooling_down if frontier else 0,
            hosts_paused=frontier.hosts_paused if frontier else 0,
            failed=sample.failed,
            errors=_most_first(sample.errors),
            skipped=_most_first(sample.skipped),
            retries=sample.retries,
            bytes=sample.bytes,
            elapsed=round(sample.elapsed, 2),
            eta=round(eta, 1) if eta is not None else None,
            budget_left=left,
            loop_lag_ms=round(sample.loop_lag * 1000, 1),
            loop_lag_peak_ms=round(sample.loop_lag_peak * 1000, 1),
        )

    def fields(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def line(self) -> str:
        """The plain one-line summary."""
        parts = [
            f"progress: {self.pages:,} pages ({self.pages_per_second:,.1f}/s now, "
            f"{self.pages_per_second_avg:,.1f}/s avg)",
            f"{_count(self.pending)} pending, {_count(self.leased)} leased, "
            f"{self.in_flight} in flight",
            f"{_count(self.hosts_active)} hosts active, {self.hosts_cooling_down} in cooldown",
            f"{self.failed:,} failed{_in_parens(self.errors)}",
            f"{sum(self.skipped.values()):,} skipped{_in_parens(self.skipped)}",
            f"{self.retries:,} retries",
            _size(self.bytes),
            f"{_duration(self.elapsed)} elapsed",
        ]
        if self.eta is not None:
            parts.append(f"ETA {_duration(self.eta)}")
        parts.append(f"loop lag {self.loop_lag_ms:g} ms")
        return ", ".join(parts)


# -- the live frame -----------------------------------------------------------------------------


def render_frame(sample: CrawlSample, rate_now: float, *, final: bool = False) -> RenderableType:
    """One frame of the live display (pure: the same sample gives the same frame)."""
    n = ProgressNumbers.of(sample, rate_now)
    rows: list[RenderableType] = [
        _grid(
            (
                "pages",
                f"[bold]{n.pages:,}[/] done   {n.pages_per_second:,.1f}/s now   "
                f"{n.pages_per_second_avg:,.1f}/s avg",
            )
        )
    ]
    if sample.max_pages:
        done = sample.max_pages - (n.budget_left or 0)
        eta = f"ETA {_duration(n.eta)}" if n.eta is not None else "ETA -"
        bar = Table.grid(padding=(0, 2))
        bar.add_column(style="bold cyan", no_wrap=True, min_width=_LABEL_WIDTH)
        bar.add_column(width=24)
        bar.add_column(no_wrap=True)
        bar.add_row(
            "budget",
            ProgressBar(total=sample.max_pages, completed=done, width=24),
            f"{done:,} / {sample.max_pages:,}   {eta}",
        )
        rows.append(bar)
    statuses = "   ".join(f"{code}: {count:,}" for code, count in sorted(sample.statuses.items()))
    rows.append(
        _grid(
            (
                "frontier",
                f"{_count(n.pending)} pending   {_count(n.leased)} leased   "
                f"{n.in_flight} in flight",
            ),
            (
                "hosts",
                f"{_count(n.hosts_active)} active   {n.hosts_cooling_down} in cooldown   "
                f"{n.hosts_paused} paused",
            ),
            ("responses", statuses or "none yet"),
            ("errors", _listed(n.errors) or "none"),
            ("skipped", _listed(n.skipped) or "none"),
            (
                "bytes",
                f"{_size(n.bytes)}   {n.retries:,} retries   {sample.robots_fetched:,} robots.txt",
            ),
            ("loop lag", f"{n.loop_lag_ms:g} ms   peak {n.loop_lag_peak_ms:g} ms"),
        )
    )
    state = "finished" if final else (sample.frontier.state if sample.frontier else "starting")
    return Panel(
        Group(*rows),
        title=f"[bold]crawl[/] {state}",
        title_align="left",
        subtitle=f"{_duration(sample.elapsed)} elapsed",
        subtitle_align="right",
        expand=False,
        border_style="blue",
    )


_LABEL_WIDTH = 9


def _grid(*rows: tuple[str, str]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True, min_width=_LABEL_WIDTH)
    grid.add_column()
    for label, value in rows:
        grid.add_row(label, value)
    return grid


# -- formatting ---------------------------------------------------------------------------------


def _most_first(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _in_parens(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{reason} {n:,}" for reason, n in counts.items()) + ")"


def _listed(counts: dict[str, int]) -> str:
    return "   ".join(f"{reason}: {n:,}" for reason, n in counts.items())


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} B"
    size = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:,.1f} {unit}"


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
