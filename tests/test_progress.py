"""Progress: the live display drawn during real crawls (into a terminal console, and by the CLI
in a pseudo terminal), the plain line where there is no terminal, and ``--quiet``."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from crawler.abort import AbortController
from crawler.cli.app import app
from crawler.config_load import load_config
from crawler.demo import SiteServer, SiteSpec, expected_statuses
from crawler.engine import Crawl
from crawler.observe.gauges import CrawlSample, DatabaseCountReader, Gauges
from crawler.observe.progress import Progress, ProgressNumbers, Rate, render_frame
from crawler.services import progress_mode
from tests.helpers import crawl_process, write_config, write_seeds

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FIELDS = [
    "pages", "done", "/s now", "/s avg", "frontier", "pending", "leased", "in flight",
    "hosts", "active", "in cooldown", "paused", "responses", "200:", "errors", "skipped",
    "bytes", "retries", "robots.txt", "loop lag", "elapsed",
]  # fmt: skip


def plain_text(raw: str) -> str:
    return ANSI.sub("", raw).replace("\r", "")


def test_auto_is_live_on_a_terminal_only() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_mode("auto", stream=Tty()) == "live"
    assert progress_mode("auto", stream=io.StringIO()) == "plain"
    assert progress_mode("plain", stream=Tty()) == "plain"
    assert progress_mode("live", stream=io.StringIO()) == "live"
    assert progress_mode("off", stream=Tty()) is None


def test_rate_now_spans_the_window() -> None:
    rate = Rate(window=10)

    def sample(at: float, pages: int) -> CrawlSample:
        return CrawlSample(
            at, at, pages, 0, 0, 0, {}, {}, {}, 0, 0, 0, (), 0.0, None, None, 0.0, 0.0, 0
        )

    assert rate.per_second == 0.0
    for second in range(30):
        rate.add(sample(float(second), 100 * second if second < 19 else 2000))
    assert rate.per_second == pytest.approx(0.0)  # nothing in the last 10 s
    rate.add(sample(30.0, 2500))
    assert rate.per_second == pytest.approx(50.0)


def test_the_plain_line_and_its_eta() -> None:
    sample = CrawlSample(
        at=0.0,
        elapsed=75.0,
        pages=1500,
        failed=3,
        retries=2,
        bytes=3 * 1024 * 1024,
        statuses={200: 1497},
        errors={"timeout": 2, "connect_failed": 1},
        skipped={},
        robots_fetched=1,
        throttled=0,
        breaker_trips=0,
        latency_counts=(),
        latency_sum=0.0,
        frontier=None,
        database=None,
        loop_lag=0.0021,
        loop_lag_peak=0.004,
        max_pages=2000,
    )
    numbers = ProgressNumbers.of(sample, rate_now=25.0)
    assert numbers.eta == 20.0  # 500 pages left at 25/s
    assert numbers.line() == (
        "progress: 1,500 pages (25.0/s now, 20.0/s avg), ? pending, ? leased, 0 in flight, "
        "? hosts active, 0 in cooldown, 3 failed (timeout 2, connect_failed 1), 0 skipped, "
        "2 retries, 3.0 MiB, 1:15 elapsed, ETA 0:20, loop lag 2.1 ms"
    )


@pytest.mark.anyio
async def test_live_display_during_a_real_crawl(tmp_path: Path) -> None:
    spec = SiteSpec(pages=60, latency=0.005)
    cfg = load_config(
        overrides={
            "crawl.concurrency": 4,
            "crawl.max_pages": 50,
            "politeness.per_host_delay": 0.0,
            "output.progress": "off",  # this test draws its own, into a string
        },
        environ={},
    )
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system="truecolor")
    with SiteServer(spec) as site:
        crawl = Crawl(cfg, [f"{site.base_url}/"], tmp_path / "c.db", AbortController().signal)
        gauges = Gauges(
            crawl.stats,
            lambda: crawl.frontier.counts() if crawl.frontier is not None else None,
            DatabaseCountReader(tmp_path / "c.db", min_interval=0.0),
            max_pages=cfg.crawl.max_pages,
        )
        progress = Progress(gauges, "live", interval=0, console=console, refresh=0.01)
        async with asyncio.timeout(60), asyncio.TaskGroup() as group:
            task = group.create_task(progress.run())
            report = await crawl.run()
            progress.stop()
    assert task.done()
    assert progress.frames >= 2
    raw = out.getvalue()
    assert "\x1b[" in raw  # drawn for a terminal: colours and cursor movement
    text = plain_text(raw)
    final = text[text.rindex("crawl finished ─") :]
    for field in [*FIELDS, "budget", "ETA"]:
        assert field in final, field
    assert f"{report.stats.pages} done" in final
    assert f"{report.stats.pages} / 50" in final


def read_pty(master: int, proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    """Everything the process writes to its terminal, until it exits (or the deadline)."""
    chunks = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed its end of the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


def test_the_cli_draws_a_live_display_in_a_terminal_with_logs_above(tmp_path: Path) -> None:
    spec = SiteSpec(pages=80, latency=0.005)
    with SiteServer(spec) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        master, slave = pty.openpty()
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}
        env.pop("NO_COLOR", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "crawler", "run", str(seeds), "--db", str(tmp_path / "c.db"),
             "--config", str(write_config(tmp_path, "[output]\nprogress = 'auto'\n")),
             "--debug"],
            stdin=slave, stdout=slave, stderr=slave, env=env,
        )  # fmt: skip
        os.close(slave)
        try:
            raw = read_pty(master, proc, time.monotonic() + 60)
        finally:
            os.close(master)
            proc.wait(timeout=30)
    assert proc.returncode == 0, raw.decode(errors="replace")
    text = plain_text(raw.decode())
    assert "Traceback" not in text
    assert "\x1b[" in raw.decode()  # a live display, not plain lines
    assert "progress:" not in text
    final = text[text.rindex("crawl finished ─") :]  # the last frame's title, then the frame
    for field in FIELDS:
        assert field in final, field
    pages = len(expected_statuses(spec))
    assert f"{pages} done" in final
    assert f"crawl finished: {pages} pages" in final  # then the summary, on stdout
    # --debug logs every page: each line once, above the display, none lost.
    logged = re.findall(r" DEBUG (\d+) (http://\S+)", text)
    assert len(logged) == len(set(logged)) == pages


def test_plain_lines_without_a_terminal_and_quiet(tmp_path: Path) -> None:
    spec = SiteSpec(pages=30)
    with SiteServer(spec) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        config = write_config(tmp_path, "[output]\nprogress = 'auto'\n")
        config.write_text(config.read_text().replace("stats_interval = 0.0", "stats_interval = 5"))
        runs = {}
        for name, flags in {
            "plain": (),
            "json": ("--log-format", "json"),
            "quiet": ("-q",),
        }.items():
            proc = crawl_process(
                "run", seeds, "--db", tmp_path / f"{name}.db", "--config", config, *flags
            )
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            runs[name] = err
    pages = len(expected_statuses(spec))
    # The last line comes when the crawl ends, whatever the interval: the final numbers.
    last = runs["plain"].splitlines()[-1]
    assert re.search(
        rf" INFO progress: {pages} pages \([\d.]+/s now, [\d.]+/s avg\), 0 pending, 0 leased, "
        rf"0 in flight, 0 hosts active, 0 in cooldown, 0 failed, 0 skipped, 0 retries, "
        rf"[\d.]+ KiB, 0:\d\d elapsed, loop lag [\d.]+ ms$",
        last,
    ), last
    assert "\x1b[" not in runs["plain"]
    event = json.loads(runs["json"].splitlines()[-1])
    assert event["event"] == "progress"
    assert (event["pages"], event["pending"], event["leased"], event["failed"]) == (pages, 0, 0, 0)
    assert event["message"].startswith(f"progress: {pages} pages")
    assert runs["quiet"] == ""


def test_a_frame_is_pure() -> None:
    sample = CrawlSample(
        0.0, 3.0, 10, 0, 0, 100, {200: 10}, {}, {}, 1, 0, 0, (), 0.0, None, None, 0.0, 0.0, 0
    )
    first, second = io.StringIO(), io.StringIO()
    Console(file=first, width=80).print(render_frame(sample, 2.0))
    Console(file=second, width=80).print(render_frame(sample, 2.0))
    assert first.getvalue() == second.getvalue()
    assert "crawl starting" in first.getvalue()
    assert "10 done" in first.getvalue()
    assert "budget" not in first.getvalue()  # no page budget, no bar


def test_help_explains_the_options_of_the_crawl_surfaces() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in [
        "--quiet", "--log-format", "--metrics-port", "--metrics-host", "--warc",
        "--store-bodies", "--sitemaps",
    ]:  # fmt: skip
        assert option in result.output
