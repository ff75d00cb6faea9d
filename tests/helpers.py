"""Helpers shared by the crawl tests: running the CLI, reading the database, waiting for a
server-side condition with a deadline, a clock moved by hand."""

from __future__ import annotations

import ipaddress
import itertools
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from crawler.config import Config, TrapsSection
from crawler.config_load import load_config
from crawler.fetch.dns import Address, DnsCache
from crawler.frontier.traps import SessionStripper
from crawler.parse.outcome import LinkRules
from crawler.scope import Scope

TEST_CONFIG = """
[crawl]
concurrency = 4
[politeness]
per_host_concurrency = 4
per_host_delay = 0.0
[fetch]
retry_backoff = 0.05
[runtime]
stats_interval = 0.0
grace_period = 5.0
"""


def crawl_config(concurrency: int = 4, **overrides: object) -> Config:
    """The config of an in-process test crawl: ``concurrency`` workers, as many per host, no
    delay between requests, no stats ticks; ``overrides`` as ``section.key`` names."""
    base = {
        "crawl.concurrency": concurrency,
        "politeness.per_host_concurrency": concurrency,
        "politeness.per_host_delay": 0.0,
        "runtime.stats_interval": 0.0,
    }
    return load_config(overrides={**base, **overrides}, environ={})


def link_rules(scope: Scope | None = None) -> LinkRules:
    """The parse rules of a default crawl of ``a.test`` (or of ``scope``), for outcome tests."""
    return LinkRules(
        scope=Scope(["a.test"]) if scope is None else scope,
        max_depth=5,
        max_url_length=2048,
        max_redirects=3,
        respect_nofollow=True,
        product_token="crawler",
        strip_sessions=SessionStripper(TrapsSection().session_params),
        max_repeated_segments=3,
    )


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "test.toml"
    path.write_text(TEST_CONFIG + extra)
    return path


def write_seeds(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "seeds.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def crawl_process(
    *args: str | Path, module: str = "crawler", **popen: object
) -> subprocess.Popen[str]:
    """Start ``crawl ARGS`` (``python -m MODULE ARGS``) as a real process; stdout and stderr
    are pipes unless given."""
    options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", module, *map(str, args)], text=True, **options
    )


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``condition`` until true; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.005)


@contextmanager
def database(path: Path | str) -> Iterator[sqlite3.Connection]:
    """A connection to the SQLite file ``path``: committed if the block succeeds, rolled back
    if not, closed either way (``with sqlite3.connect(...)`` commits but never closes, and
    Python 3.13 warns about every connection left to the garbage collector)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        yield conn


def pages(db: Path) -> dict[str, tuple[int | None, str | None]]:
    """Path of each stored page -> (status, title)."""
    with database(db) as conn:
        rows = conn.execute("SELECT url, status, title FROM pages").fetchall()
    return {urlsplit(url).path: (status, title) for url, status, title in rows}


def assert_consistent(db: Path) -> None:
    """The invariants every stop must leave: an intact file, and pages and frontier agree."""
    with database(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        recorded_but_open = conn.execute(
            "SELECT count(*) FROM pages JOIN frontier USING (url) "
            "WHERE frontier.state NOT IN ('done', 'failed')"
        ).fetchone()[0]
        finished_without_page = conn.execute(
            "SELECT count(*) FROM frontier WHERE state IN ('done', 'failed') "
            "AND url NOT IN (SELECT url FROM pages)"
        ).fetchone()[0]
    assert (recorded_but_open, finished_without_page) == (0, 0)


def min_gap(times: list[float]) -> float:
    """The shortest time between two of ``times`` (at least two)."""
    times = sorted(times)
    assert len(times) >= 2
    return min(b - a for a, b in itertools.pairwise(times))


class FakeClock:
    """A clock for the parts that take one: it says ``now``, which the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


NO_SERVER = "127.0.0.254"
"""An address the rebinding tests' first answer gives and their guard allows, so that it
passes the check: a loopback address no test server listens on, so that even a broken guard
that connected to it would reach nothing, and send nothing off this machine."""


def rebinding_dns(first: str, then: str) -> DnsCache:
    """A resolver cache whose first lookup of any name answers ``first`` and every later one
    ``then``, and whose answers are stale at once: DNS rebinding, the guard's check seeing
    ``first`` and the connection, asking again, ``then``."""
    answers: list[str] = []

    async def lookup(host: str, port: int) -> list[Address]:
        answers.append(host)
        return [ipaddress.ip_address(first if len(answers) == 1 else then)]

    return DnsCache(ttl=1.0, lookup=lookup, clock=itertools.count(step=10).__next__)
