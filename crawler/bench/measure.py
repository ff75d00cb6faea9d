"""What a crawler's process measures about itself: CPU, RSS, event-loop lag, progress over time.

Every crawler (ours and the peers) runs in a child process of its own and fills one
:class:`RunResult`, which it writes as JSON for the harness. Measuring from inside the process
is what makes the numbers the crawler's own: the server and the harness are elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_PROC_STAT = Path("/proc/stat")
LAG_INTERVAL = 0.01
"""The lag probe's sleep: it wakes 100 times a second and records how late."""


@dataclass(slots=True)
class RunResult:
    """One crawler's run, as its own process saw it."""

    crawler: str
    status: str = "ok"
    """``ok``, ``unavailable`` (not installed: ``detail`` says what to install) or ``failed``."""
    detail: str = ""
    started: float = 0.0
    """``time.monotonic()`` at the start of the crawl (system-wide on Linux: the server's
    timeline uses the same clock)."""
    elapsed: float = 0.0
    pages: int = 0
    """Responses the crawler itself counted."""
    cpu_seconds: float = 0.0
    """User + system CPU of the crawl (imports and start-up excluded)."""
    peak_rss: int = 0
    rss_start: int = 0
    rss_end: int = 0
    discovered: int = 0
    """Distinct URLs the crawler knew at the end (its frontier or seen-set)."""
    latency_ms: dict[str, float] | None = None
    """Fetch latency percentiles (p50, p95, p99), from request to end of body."""
    loop_lag_ms: dict[str, float] | None = None
    """How late the event loop ran a timer (p50, p99, max), when measured."""
    machine_busy: float | None = None
    """Share of all the machine's core time that was busy during the crawl, whoever used it
    (this crawler, the synthetic web, anything else); None where ``/proc/stat`` is missing.
    Near 1, the machine's CPU is what bounded the crawl."""
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    """(seconds since start, pages, RSS bytes, discovered URLs), every sample interval."""
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> RunResult:
        data = json.loads(path.read_text())
        data["samples"] = [tuple(s) for s in data.get("samples", [])]
        return cls(**data)


def rss_bytes() -> int:
    """This process's resident set size now."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_SIZE


def peak_rss_bytes() -> int:
    """This process's peak plus its largest child's (the parse worker process): the crawl's
    own peak when it runs one child, an upper bound when more."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + child) * 1024  # Linux: KiB


def cpu_seconds() -> float:
    """CPU of this process and of its children that have ended (the parse worker processes
    end with the crawl, before it is measured)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def percentiles(values: Sequence[float], *qs: float) -> dict[str, float] | None:
    """Nearest-rank percentiles (``{"p50": ...}``) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    out = {}
    for q in qs:
        rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
        out[f"p{q:g}"] = round(ordered[rank], 3)
    return out


class LagProbe:
    """Event-loop lag: sleeps :data:`LAG_INTERVAL` again and again on the crawler's own loop
    and records how much later than asked it woke. A parse or a callback that holds the loop
    shows up here as lag. Run it as a task; cancel it to stop."""

    def __init__(self, interval: float = LAG_INTERVAL) -> None:
        self.interval = interval
        self.lags: list[float] = []

    async def run(self) -> None:
        clock = time.perf_counter
        while True:
            before = clock()
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, clock() - before - self.interval))

    def summary(self) -> dict[str, float] | None:
        """Percentiles in milliseconds."""
        summary = percentiles([lag * 1000 for lag in self.lags], 50, 99)
        if summary is not None:
            summary["max"] = round(max(self.lags) * 1000, 3)
        return summary


class Sampler:
    """Records (time, pages, RSS, discovered) every ``interval`` seconds while it runs.

    ``pages`` and ``discovered`` are callables so any crawler can plug in its own counters;
    ``discovered`` may be a coroutine function (ours asks its database)."""

    def __init__(
        self,
        started: float,
        pages: Callable[[], int],
        discovered: Callable[[], Any] | None = None,
        interval: float = 0.5,
    ) -> None:
        self.started = started
        self.pages = pages
        self.discovered = discovered
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []

    async def sample(self) -> None:
        found = 0
        if self.discovered is not None:
            value = self.discovered()
            found = int(await value if asyncio.iscoroutine(value) else value)
        elapsed = round(time.monotonic() - self.started, 3)
        self.samples.append((elapsed, self.pages(), rss_bytes(), found))

    async def run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval)


def machine_ticks(stat: str | None = None) -> tuple[int, int] | None:
    """(busy, total) clock ticks of all the machine's cores since boot, from the ``cpu`` line
    of ``/proc/stat`` (or ``stat``, its text); None where there is none. Idle and I/O wait are
    not busy; time stolen by a hypervisor is, since no process here could have used it."""
    if stat is None:
        try:
            stat = _PROC_STAT.read_text()
        except OSError:
            return None
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            # user nice system idle iowait irq softirq steal (guest time is within user)
            ticks = [int(v) for v in fields[1:9]]
            total = sum(ticks)
            return total - ticks[3] - ticks[4], total
    return None


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of core time that was busy between two :func:`machine_ticks` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 3)


@dataclass(frozen=True, slots=True)
class Baseline:
    """What :func:`start_measuring` read at the start of a crawl, for :func:`finish_measuring`."""

    cpu_seconds: float
    machine: tuple[int, int] | None


def start_measuring(result: RunResult) -> Baseline:
    """Stamp the start of a crawl on ``result``; returns what the end is measured against."""
    result.started = time.monotonic()
    result.rss_start = rss_bytes()
    return Baseline(cpu_seconds(), machine_ticks())


def finish_measuring(result: RunResult, baseline: Baseline) -> None:
    """Stamp the end of a crawl on ``result`` (elapsed, CPU, RSS, the machine's busy share)."""
    result.elapsed = time.monotonic() - result.started
    result.cpu_seconds = cpu_seconds() - baseline.cpu_seconds
    result.machine_busy = busy_share(baseline.machine, machine_ticks())
    result.rss_end = rss_bytes()
    result.peak_rss = peak_rss_bytes()
