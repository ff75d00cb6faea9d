"""A crawl of a real site nobody on the team wrote, compared with an independent reference.

The site is Python's own documentation as Debian ships it (package ``python3.11-doc``: ~530
pages of Sphinx HTML with relative links of every form: ``download.html``, ``../library/``,
``whatsnew/3.11.html``, ``#anchors``), served by the standard library's ``http.server``, not by
our test servers. The reference walks the same site with the standard library alone
(``urllib.request``, ``html.parser``, ``urljoin``), so a mistake in our parser, URL resolution
or scheduling shows up as a difference between the two URL sets. (A ``re`` bug of Debian's
Python 3.11.2 once made every relative link lose its first character: 39 404s, then nothing.)
"""

from __future__ import annotations

import functools
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

from tests.helpers import crawl_process, database, write_config, write_seeds

# `make docs-site` unpacks Debian's package into build/ (installing it would also upgrade the
# system's python3.11, the oldest build CI tests); an installed copy serves as well.
DOCS = next(
    (
        path
        for path in (
            Path(__file__).parent.parent / "build/python-docs/usr/share/doc/python3.11/html",
            Path("/usr/share/doc/python3.11/html"),
        )
        if (path / "index.html").is_file()
    ),
    None,
)
CRAWL_TIMEOUT = 120.0


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def docs_site() -> Iterator[str]:
    if DOCS is None:
        pytest.skip("no copy of Python's documentation: `make docs-site` unpacks one")
    # The standard library's own server on purpose, not tests/servers.py: the reference.
    handler = functools.partial(_QuietHandler, directory=str(DOCS))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/"
        finally:
            server.shutdown()
            thread.join(timeout=10)


class _Links(HTMLParser):
    """``<a href>`` and ``<area href>`` of a page, and its first ``<base href>``."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if href is None:
            return
        if tag in ("a", "area"):
            self.hrefs.append(href.strip())
        elif tag == "base" and self.base is None:
            self.base = href.strip()


def reference_walk(seed: str) -> dict[str, int]:
    """Every URL of the seed's host reachable by links from the seed, with its HTTP status: a
    breadth-first walk with the standard library only (a redirect's target is walked too)."""
    host = urlsplit(seed).netloc
    statuses: dict[str, int] = {}
    queue = deque([seed])
    seen = {seed}

    def offer(url: str) -> None:
        url = urldefrag(url)[0]
        parts = urlsplit(url)
        if parts.scheme == "http" and parts.netloc == host and url not in seen:
            seen.add(url)
            queue.append(url)

    while queue:
        url = queue.popleft()
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body, final = response.read(), response.geturl()
                content_type = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            statuses[url] = error.code
            continue
        if final != url:  # http.server redirects a directory to its path with a slash
            statuses[url] = 301
            offer(final)
            continue
        statuses[url] = 200
        if content_type.startswith("text/html"):
            links = _Links()
            links.feed(body.decode("utf-8", "replace"))
            for href in links.hrefs:
                offer(urljoin(urljoin(url, links.base) if links.base else url, href))
    return statuses


def test_a_crawl_of_the_python_docs_stores_what_the_reference_walk_finds(
    tmp_path: Path, docs_site: str
) -> None:
    db = tmp_path / "docs.db"
    config = write_config(tmp_path)
    crawl = crawl_process("run", write_seeds(tmp_path, docs_site), "--db", db, "--config", config)
    # The reference walks the site meanwhile: both are bounded (the site is finite).
    reference = reference_walk(docs_site)
    _, stderr = crawl.communicate(timeout=CRAWL_TIMEOUT)
    assert crawl.returncode == 0, stderr
    with database(db) as conn:
        crawled = dict(conn.execute("SELECT url, status FROM pages").fetchall())
        unfinished = conn.execute(
            "SELECT count(*) FROM frontier WHERE state NOT IN ('done', 'skipped')"
        ).fetchone()[0]
    assert len(reference) > 500  # the whole documentation, not a corner of it
    assert sorted(set(reference) - set(crawled)) == []
    assert sorted(set(crawled) - set(reference)) == []
    assert {url: s for url, s in crawled.items() if s != reference[url]} == {}
    assert unfinished == 0
