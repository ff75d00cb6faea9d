"""One writer per database: two real ``crawl run`` processes on one database, a server that
holds a response open so that the first crawl is surely still running, ``kill -9``."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from crawler.errors import StorageError
from crawler.store.writer_lock import WriterLock
from tests.helpers import (
    assert_consistent,
    crawl_process,
    pages,
    write_config,
    write_seeds,
)
from tests.servers import Request, Response, TestServer, html

HOLD_LIMIT = 60.0
"""A held response is answered after this long at the latest, released or not."""
WAIT = 30.0
"""Deadline for a process, or the server, to reach the step a test waits for."""


class HeldSite(TestServer):
    """``/`` links to ``/held``, whose answer waits until :attr:`release` is set;
    :attr:`arrived` is set when a request for it has come in."""

    def __init__(self) -> None:
        super().__init__(self._answer)
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def _answer(self, request: Request) -> Response:
        if request.path == "/robots.txt":
            return 404, {}, b""
        if request.path == "/held":
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, HOLD_LIMIT)
        return html(request.path, '<a href="/held">held</a>')

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()  # before the stop, which waits for the answer held on it
        super().__exit__(*exc_info)


def run_args(tmp_path: Path, site: HeldSite, db: Path) -> tuple[str | Path, ...]:
    seeds = write_seeds(tmp_path, f"{site.base_url}/")
    return ("run", seeds, "--db", db, "--config", write_config(tmp_path), "--quiet")


def leased(db: Path) -> list[str]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT url FROM frontier WHERE state = 'leased'").fetchall()
    return [url for (url,) in rows]


def test_a_second_crawl_is_refused_while_stats_and_export_read_beside_the_first(
    tmp_path: Path,
) -> None:
    db = tmp_path / "c.db"
    with HeldSite() as site:
        args = run_args(tmp_path, site, db)
        first = crawl_process(*args)
        try:
            assert site.arrived.wait(WAIT)  # the first crawl is fetching /held: it is leased
            refusal = [
                f"error: database {db} is in use by another crawl (PID {first.pid}); one "
                "crawl at a time writes a database (crawl stats and export can read it)"
            ]
            # A second run, and one that would delete the database first (--fresh).
            for extra in ((), ("--fresh",)):
                second = crawl_process(*args, *extra)
                try:
                    _, err = second.communicate(timeout=WAIT)
                finally:
                    second.kill()
                assert (second.returncode, err.splitlines()) == (1, refusal)
                # Refused before it wrote anything: the first crawl's lease was left alone.
                assert leased(db) == [f"{site.base_url}/held"]

            stats = crawl_process("stats", db, "--json")
            out, err = stats.communicate(timeout=WAIT)
            assert (stats.returncode, err) == (0, "")
            assert json.loads(out)["frontier"]["leased"] == 1

            export = crawl_process("export", db, "--out", tmp_path / "pages.jsonl")
            _, err = export.communicate(timeout=WAIT)
            assert (export.returncode, err.startswith("exported ")) == (0, True)
        finally:
            first.kill()
            first.communicate()


def test_after_kill_9_the_next_crawl_takes_the_database_and_resumes(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with HeldSite() as site:
        args = run_args(tmp_path, site, db)
        first = crawl_process(*args)
        try:
            assert site.arrived.wait(WAIT)
        finally:
            first.kill()
            first.communicate()
        assert first.returncode == -signal.SIGKILL
        assert leased(db) == [f"{site.base_url}/held"]  # killed mid-fetch: a stale lease...
        site.release.set()
        resumed = crawl_process(*args)
        _, err = resumed.communicate(timeout=WAIT)
    assert resumed.returncode == 0, err  # ...but no stale lock
    assert set(pages(db)) == {"/", "/held"}
    assert leased(db) == []
    assert_consistent(db)


def test_a_lock_is_held_until_released_and_reports_its_holder(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with WriterLock(db) as held:
        with pytest.raises(StorageError, match=r"in use by another crawl \(PID \d+\)"):
            WriterLock(db).acquire()
        assert repr(held).endswith("held=True>")
    with WriterLock(db):  # released: taken again at once
        pass
