"""Stopping a crawl: the grace period cancels what is still on the wire and nothing else.

Every page the server sent in full is parsed and stored, also when the grace period ends
while it is being parsed; a fetch cut off on the wire goes back to pending; the resumed run
fetches no page twice. Large pages (~300 kB, many links) on the demo site, whose counters say
which responses it started and which it sent in full; parsing held back on purpose
(tests/held_parsing.py) keeps pages being parsed when the grace period ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crawler.abort import AbortController, AbortReason
from crawler.config import Config
from crawler.demo import SiteServer, SiteSpec, expected_statuses
from crawler.engine import Crawl
from tests.held_parsing import HeldParsing
from tests.helpers import (
    assert_consistent,
    crawl_config,
    crawl_process,
    pages,
    wait_until,
    write_config,
    write_seeds,
)
from tests.test_warc import read_warc

ROOT = Path(__file__).resolve().parents[1]
LARGE_PAGES = SiteSpec(pages=60, links_per_page=40, page_padding=300_000)
CONCURRENCY = 4
SIGTERM = AbortReason.from_signal(signal.SIGTERM)


def config(**overrides: object) -> Config:
    held_parsing = {
        "runtime.parse_processes": 0,  # held parsing replaces build_outcome in this process
        "runtime.parse_threads": CONCURRENCY,
    }
    return crawl_config(CONCURRENCY, **{**held_parsing, **overrides})


def served(site: SiteServer) -> tuple[Counter[str], Counter[str]]:
    """(started, sent in full) responses by path, robots.txt left out (asked once per run)."""
    started, completed = site.request_counts(), site.completed_counts()
    del started["/robots.txt"], completed["/robots.txt"]
    return started, completed


def archived(warc_dir: Path) -> Counter[str]:
    """Path -> response records in every WARC file of the directory, robots.txt left out."""
    paths = Counter(
        urlsplit(record["url"]).path
        for warc in sorted(warc_dir.glob("*.warc.gz"))
        for record in read_warc(warc)
        if record["type"] == "response"
    )
    del paths["/robots.txt"]
    return paths


@pytest.mark.anyio
async def test_grace_period_cancels_the_fetch_on_the_wire_and_stores_every_page_received(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db, warc_dir = tmp_path / "crawl.db", tmp_path / "warc"
    cfg = config(**{"runtime.grace_period": 0.2, "output.warc_dir": str(warc_dir)})
    stalled = "/page/2"
    with SiteServer(LARGE_PAGES) as site:
        site.stall(stalled)
        seeds = [f"{site.base_url}/"]
        # Once the stalled response has begun, every page received is held being parsed: when
        # the other workers all hold one, the stalled fetch is the only one on the wire.
        held = HeldParsing(lambda started: site.request_counts()[stalled] > 0)
        controller = AbortController()
        with held.installed(), caplog.at_level(logging.WARNING, logger="crawler"):
            run = asyncio.create_task(Crawl(cfg, seeds, db, controller.signal).run())
            try:
                await asyncio.to_thread(wait_until, lambda: len(held.held) == CONCURRENCY - 1)
            finally:
                controller.abort(SIGTERM)
                report = await run
        started, completed = served(site)
        stored_first = pages(db)

        site.unstall(stalled)
        site.reset_counts()
        resumed = await Crawl(cfg, seeds, db, AbortController().signal).run()
        fetched_second, _ = served(site)

    # Every page the server sent in full was stored, those held being parsed too; only the
    # stalled fetch was cut off.
    assert set(stored_first) == set(completed)
    assert {urlsplit(url).path for url in held.held} <= set(stored_first)
    assert all(n == 1 for n in completed.values())
    assert started - completed == Counter({stalled: 1})
    (over,) = [r for r in caplog.records if getattr(r, "event", None) == "grace_period_over"]
    assert (over.in_flight, over.received) == (1, CONCURRENCY - 1)  # type: ignore[attr-defined]
    assert report.aborted == SIGTERM
    # The cut-off fetch was pending again for the resumed run; nothing stored was fetched again.
    assert resumed.complete
    assert fetched_second[stalled] == 1
    assert not set(fetched_second) & set(completed)
    assert all(n == 1 for n in fetched_second.values())
    statuses = {path: status for path, (status, _) in pages(db).items()}
    assert statuses == expected_statuses(LARGE_PAGES)
    assert_consistent(db)
    # One record per response received: none for the cut-off fetch, one for each page held.
    assert archived(warc_dir) == Counter(dict.fromkeys(statuses, 1))


def test_sigterm_while_pages_are_parsed_stores_them_and_the_resumed_run_fetches_none_twice(
    tmp_path: Path,
) -> None:
    db, held_file = tmp_path / "c.db", tmp_path / "held.txt"
    in_threads = {
        **os.environ,
        "CRAWL_RUNTIME__PARSE_PROCESSES": "0",
        "CRAWL_RUNTIME__PARSE_THREADS": str(CONCURRENCY),
    }
    with SiteServer(LARGE_PAGES) as site:
        args = ["run", write_seeds(tmp_path, f"{site.base_url}/"), "--db", db,
                "--config", write_config(tmp_path), "--grace-period", "0.5"]  # fmt: skip
        # After 8 pages every parse is held: SIGTERM once every worker holds a page in it.
        first = crawl_process(
            held_file, "8", *args, module="tests.held_parsing", cwd=ROOT, env=in_threads
        )
        wait_until(lambda: held_file.exists() and len(held_file.read_text().split()) == CONCURRENCY)
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 143, err
        assert "grace period over" in err
        started, completed = served(site)
        stored_first = pages(db)
        site.reset_counts()

        second = crawl_process(*args)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        fetched_second, _ = served(site)

    # Served = stored + cut off on the wire, and only what was cut off may be fetched again.
    assert started.total() == len(stored_first) + (started - completed).total()
    assert set(stored_first) == set(completed)
    assert {urlsplit(url).path for url in held_file.read_text().split()} <= set(stored_first)
    assert not set(fetched_second) & set(completed)
    assert all(n == 1 for n in fetched_second.values())
    statuses = {path: status for path, (status, _) in pages(db).items()}
    assert statuses == expected_statuses(LARGE_PAGES)
    assert_consistent(db)


@pytest.mark.anyio
async def test_a_second_signal_cancels_pages_being_parsed_too(tmp_path: Path) -> None:
    # The grace period would wait a minute; the second signal (the runtime cancels the crawl's
    # task) does not wait for the pages being parsed either.
    db = tmp_path / "crawl.db"
    cfg = config(**{"runtime.grace_period": 60.0})
    with SiteServer(LARGE_PAGES) as site:
        held = HeldParsing(lambda started: started > 1)  # all but the home page
        controller = AbortController()
        with held.installed():
            run = asyncio.create_task(
                Crawl(cfg, [f"{site.base_url}/"], db, controller.signal).run()
            )
            try:
                await asyncio.to_thread(wait_until, lambda: len(held.held) == CONCURRENCY)
            finally:
                controller.abort(SIGTERM)
                run.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await run
            assert held.waiting == CONCURRENCY  # the crawl ended with its pages still held
    assert_consistent(db)
    assert set(pages(db)) == {"/"}


@pytest.mark.anyio
async def test_a_robots_txt_still_on_the_wire_is_cut_off_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The seed's worker waits for robots.txt, which never comes: that is on the wire as well,
    # and the grace period ends it, not the fetch's own timeout (ten minutes here).
    db = tmp_path / "crawl.db"
    cfg = config(**{"runtime.grace_period": 0.2, "fetch.total_timeout": 600.0})
    with SiteServer(LARGE_PAGES) as site:
        site.stall("/robots.txt")
        controller = AbortController()
        with caplog.at_level(logging.WARNING, logger="crawler"):
            run = asyncio.create_task(
                Crawl(cfg, [f"{site.base_url}/"], db, controller.signal).run()
            )
            try:
                await asyncio.to_thread(
                    wait_until, lambda: site.request_counts()["/robots.txt"] == 1
                )
            finally:
                controller.abort(SIGTERM)
                report = await run
    (over,) = [r for r in caplog.records if getattr(r, "event", None) == "grace_period_over"]
    assert (over.in_flight, over.received) == (1, 0)  # type: ignore[attr-defined]
    assert report.aborted == SIGTERM
    assert report.database["leased"] == 1  # the seed: pending again when the next run opens
    assert pages(db) == {}
