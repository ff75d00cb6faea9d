"""``--log-format json``: a real crawl's stderr parsed line by line; the formatter's fields."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crawler.demo import SiteServer, SiteSpec
from crawler.observe.logs import JsonFormatter
from tests.helpers import crawl_process, database, write_config, write_seeds
from tests.servers import Request, TestServer
from tests.servers import Response as ServerResponse


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object (fails on any line that is not one)."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = json.loads(line)
        assert isinstance(entry, dict), f"line {number}: {line!r}"
        entries.append(entry)
    return entries


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("crawler.test")
    return logger.makeRecord("crawler", logging.WARNING, __file__, 1, msg, args, None, extra=extra)


def test_formatter_writes_one_object_with_the_event_and_its_fields() -> None:
    line = JsonFormatter().format(
        record(
            "%s is slow",
            "a.test",
            event="host_paused",
            host="a.test:80",
            status=None,
            path=Path("/x"),
        )
    )
    assert "\n" not in line
    entry = json.loads(line)
    assert entry.pop("ts").endswith("Z")
    assert entry == {
        "level": "warning",
        "event": "host_paused",
        "message": "a.test is slow",
        "logger": "crawler",
        "host": "a.test:80",
        "status": None,
        "path": "/x",  # not JSON: written as a string
    }


def test_formatter_defaults_and_exceptions() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        exc_info = sys.exc_info()
    plain = logging.getLogger("x").makeRecord("x", logging.INFO, "f", 1, "hi", (), exc_info)
    entry = json.loads(JsonFormatter().format(plain))
    assert entry["event"] == "log"
    assert entry["level"] == "info"
    assert "ValueError: bad\nvalue" in entry["exc"]


def test_a_real_crawl_logs_json_lines(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with SiteServer(SiteSpec(pages=30)) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        config = write_config(tmp_path, "[output]\nprogress = 'plain'\n")
        proc = crawl_process(
            "run", seeds, "--db", db, "--config", config, "--log-format", "json", "--debug",
            "--grace-period", "1",
        )  # fmt: skip
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("crawl finished")  # stdout keeps the summary for people
    entries = json_lines(err)
    assert entries
    for entry in entries:
        assert {"ts", "level", "event", "message"} <= set(entry)
        assert entry["ts"].endswith("Z")
        assert len(entry["ts"]) == len("2026-11-25T01:28:55.389Z")
    pages = [e for e in entries if e["event"] == "page"]
    with database(db) as conn:
        stored = dict(conn.execute("SELECT url, status FROM pages").fetchall())
    conn.close()
    assert {e["url"]: e["status"] for e in pages} == stored
    assert len(pages) == len(stored)
    host = site.base_url.removeprefix("http://")
    for page in pages:
        assert page["level"] == "debug"
        assert page["host"] == host
        assert page["reason"] is None
        assert page["message"].startswith(f"{page['status']} {page['url']}")
    (robots,) = [e for e in entries if e["event"] == "robots"]
    assert (robots["url"], robots["status"]) == (f"{site.base_url}/robots.txt", 200)


def test_log_format_from_the_environment(tmp_path: Path) -> None:
    with SiteServer(SiteSpec(pages=3)) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/", "not a url")
        env = {**os.environ, "CRAWL_OUTPUT__LOG_FORMAT": "json"}
        proc = crawl_process(
            "run", seeds, "--db", tmp_path / "c.db", "--config", write_config(tmp_path), env=env
        )
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    (skipped,) = json_lines(err)  # the bad seed line: stats_interval 0, no progress lines
    assert skipped["level"] == "warning"
    assert "not an http(s) URL" in skipped["message"]


def test_text_format_is_for_people(tmp_path: Path) -> None:
    with SiteServer(SiteSpec(pages=3)) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/", "not a url")
        proc = crawl_process(
            "run", seeds, "--db", tmp_path / "c.db", "--config", write_config(tmp_path)
        )
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    (line,) = err.splitlines()
    assert " WARNING skipped " in line
    assert not line.startswith("{")


@contextmanager
def one_page_site(html: bytes) -> Iterator[str]:
    """A server on 127.0.0.1 whose ``/`` is ``html``; everything else (robots.txt) is a 404.
    Yields the page's URL."""

    def answer(request: Request) -> ServerResponse:
        if request.path == "/":
            return 200, {"Content-Type": "text/html; charset=utf-8"}, html
        return 404, {"Content-Type": "text/html; charset=utf-8"}, b""

    with TestServer(answer) as site:
        yield f"{site.base_url}/"


def crawl_one_page(tmp_path: Path, html: bytes, *flags: str) -> str:
    """Crawl the page alone with ``--debug``; the crawl's stderr."""
    with one_page_site(html) as url:
        proc = crawl_process(
            "run", write_seeds(tmp_path, url), "--db", tmp_path / "c.db",
            "--config", write_config(tmp_path), "--max-depth", "0", "--debug", *flags,
        )  # fmt: skip
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    return err


def test_debug_logs_the_crawlers_records_not_every_sql_statement(tmp_path: Path) -> None:
    links = "".join(f'<a href="/link/{n}">{n}</a>' for n in range(5000))
    html = f"<!doctype html><title>many links</title>{links}".encode()
    err = crawl_one_page(tmp_path, html, "--log-format", "json")
    entries = json_lines(err)
    assert {e["logger"] for e in entries} <= {"crawler", "httpx"}
    assert any(e["event"] == "page" for e in entries)  # --debug still logs each page
    assert len(err) < 20_000  # a few lines, where each SQL statement made 5000 links' worth


def test_a_title_with_terminal_escapes_is_logged_escaped(tmp_path: Path) -> None:
    title = "\x1b]0;owned\x07\x1b[2Jcleared"  # retitles the terminal, then clears it
    html = f"<!doctype html><title>{title}</title><p>hi</p>".encode()
    err = crawl_one_page(tmp_path, html)
    (line,) = [line for line in err.splitlines() if " DEBUG 200 " in line]
    assert line.endswith(" \\x1b]0;owned\\x07\\x1b[2Jcleared")
    assert not any(ord(c) < 0x20 for c in err.replace("\n", ""))
