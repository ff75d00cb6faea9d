"""Our crawler under measurement: ``python -m crawler.bench.runner JOB.json RESULT.json``.

Runs one :class:`~crawler.engine.Crawl` exactly as ``crawl run`` does (same config loading,
uvloop, database), in a process of its own, with two helpers on the same event loop in one
TaskGroup: the lag probe and the sampler. Nothing in the core is changed; the two variants the
harness compares are chosen here:

- ``transport``: which HTTP transport sits behind the one httpx client (see
  :mod:`crawler.bench.transports`);
- ``parse``: ``default`` (as configured), ``process`` (one worker process,
  :class:`~crawler.parse.pool.ProcessParsePool`), ``thread`` (``asyncio.to_thread``,
  :class:`~crawler.parse.pool.ThreadParsePool`), ``inline`` (parse on the event loop) or
  ``hybrid`` (inline up to ``inline_max_bytes``, a thread above). The last two replace
  ``asyncio.to_thread`` for the parse call only, in this process only.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from crawler.abort import AbortController, AbortReason
from crawler.bench.measure import (
    LagProbe,
    RunResult,
    Sampler,
    finish_measuring,
    percentiles,
    start_measuring,
)
from crawler.bench.transports import make_transport
from crawler.config_load import load_config
from crawler.engine import Crawl, CrawlReport
from crawler.models import Response
from crawler.parse.outcome import build_outcome
from crawler.runtime import tune_gc

PARSE_MODES = ("default", "process", "thread", "inline", "hybrid")
TIME_LIMIT = AbortReason("bench time limit reached", 0)


def use_parse_mode(mode: str, inline_max_bytes: int) -> dict[str, Any]:
    """Make the engine's parse call run as ``mode`` says (this process only); the config
    overrides it needs."""
    if mode not in PARSE_MODES:
        raise ValueError(f"parse mode must be one of {PARSE_MODES}")
    if mode == "default":
        return {}
    if mode == "process":
        return {"runtime.parse_processes": 1}
    if mode == "thread":
        return {"runtime.parse_processes": 0}
    original: Callable[..., Any] = asyncio.to_thread
    limit = sys.maxsize if mode == "inline" else inline_max_bytes

    async def to_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if func is build_outcome:
            response = args[1]
            if isinstance(response, Response) and len(response.body) <= limit:
                return func(*args, **kwargs)
        return await original(func, *args, **kwargs)

    asyncio.to_thread = to_thread
    return {"runtime.parse_processes": 0}


def _frontier_size(db: Path) -> Callable[[], Any]:
    """A coroutine function: URLs in the frontier table (its largest id: O(log n))."""

    def query() -> int:
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                row = conn.execute("SELECT max(id) FROM frontier").fetchone()
        except sqlite3.Error:
            return 0  # not created yet
        return int(row[0] or 0)

    async def size() -> int:
        return await asyncio.to_thread(query)

    return size


async def _crawl(job: dict[str, Any], result: RunResult) -> CrawlReport:
    config = load_config(Path(job["config"]) if job.get("config") else None, job["overrides"])
    db = Path(job["db"])
    controller = AbortController()
    loop = asyncio.get_running_loop()
    timer = loop.call_later(job["time_limit"], controller.abort, TIME_LIMIT)
    transport = make_transport(job.get("transport", "default"), config.crawl.concurrency)
    crawl = Crawl(config, job["seeds"], db, controller.signal, transport=transport)
    probe = LagProbe()
    baseline = start_measuring(result)
    sampler = Sampler(
        result.started,
        lambda: crawl.stats.pages,
        _frontier_size(db) if job.get("track_frontier") else None,
        job.get("sample_interval", 0.5),
    )
    async with asyncio.TaskGroup() as group:
        helpers = [group.create_task(probe.run()), group.create_task(sampler.run())]
        try:
            report = await crawl.run()
        finally:
            timer.cancel()
            for helper in helpers:
                helper.cancel()
    finish_measuring(result, baseline)
    await sampler.sample()
    result.loop_lag_ms = probe.summary()
    result.samples = sampler.samples
    return report


def _from_database(db: Path, result: RunResult) -> None:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        result.discovered = conn.execute("SELECT count(*) FROM frontier").fetchone()[0]
        rows = conn.execute("SELECT elapsed_ms FROM pages WHERE status IS NOT NULL").fetchall()
    result.latency_ms = percentiles([row[0] for row in rows], 50, 95, 99)


def run_job(job: dict[str, Any]) -> RunResult:
    """Run the crawl ``job`` describes and measure it."""
    result = RunResult(crawler=job.get("name", "ours"))
    job["overrides"] = {
        **job["overrides"],
        **use_parse_mode(job.get("parse", "default"), job.get("inline_max_bytes", 65_536)),
    }
    if job.get("switch_interval"):
        # An experiment knob: how long a thread may hold the GIL before it must offer it
        # (default 5 ms). Parse threads and the event loop take turns at that pace.
        sys.setswitchinterval(job["switch_interval"])
    tune_gc()  # as crawler.runtime.run does for `crawl run`
    loop_factory = None
    if job.get("uvloop", True):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        report = runner.run(_crawl(job, result))
    stats = report.stats
    result.pages = sum(stats.statuses.values())
    result.extra = {
        "outcomes": stats.pages,
        "failed": stats.failed,
        "retries": stats.retries,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "errors": dict(stats.errors),
        "skipped": dict(stats.skipped),
        "robots_fetched": stats.robots_fetched,
        "aborted": report.aborted.message if report.aborted else None,
        "transport": job.get("transport", "default"),
        "parse": job.get("parse", "default"),
    }
    _from_database(Path(job["db"]), result)
    return result


def main(argv: list[str]) -> int:
    job_path, result_path = map(Path, argv)
    result = run_job(json.loads(job_path.read_text()))
    result.write(result_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
