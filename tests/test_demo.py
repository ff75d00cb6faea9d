"""The bundled demo site (crawler.demo): model, thread-mode server, process mode and `make run`."""

from __future__ import annotations

import dataclasses
import logging
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from crawler.demo import (
    BIG_TITLE,
    HOME_TITLE,
    MAX_HEADER_BYTES,
    SiteServer,
    SiteSpec,
    canonical_path,
    expected_pages,
    expected_statuses,
    render,
)
from crawler.demo.__main__ import PAGES
from tests.helpers import pages

ROOT = Path(__file__).resolve().parents[1]
SPEC = SiteSpec(pages=40, links_per_page=6, seed=7, big_page_bytes=20_000)
TITLE_RE = re.compile(r"<title>(.*?)</title>")


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(SPEC) as server:
        yield server


@pytest.fixture
def client(site: SiteServer) -> Iterator[httpx.Client]:
    # trust_env=False: a proxy from the environment must never see test traffic.
    with httpx.Client(base_url=site.base_url, trust_env=False, timeout=5.0) as c:
        yield c


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes and read until the server closes (bypasses client-side URL normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(data)
        chunks = []
        for _ in range(10_000):  # the server closes well before this; the bound is a safety net
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_page_has_title_description_and_next_link(client: httpx.Client) -> None:
    response = client.get("/page/3")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    assert TITLE_RE.findall(response.text) == ["Page 3"]
    assert '<meta name="description" content="Synthetic demo page 3 of 40.">' in response.text
    assert '<a href="/page/4">' in response.text


def test_home_links_to_first_pages(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert TITLE_RE.findall(response.text) == [HOME_TITLE]
    assert re.findall(r'href="([^"]*)"', response.text) == [f"/page/{i}" for i in range(5)]


def test_every_tenth_page_links_to_special_targets() -> None:
    body = render(SPEC, "/page/20")[2].decode()
    for href in ("/missing/20", "/redirect/20", "mailto:someone@example.invalid"):
        assert f'href="{href}"' in body
    assert 'href="javascript:void(0)"' in body
    assert "/missing/" not in render(SPEC, "/page/21")[2].decode()
    assert 'href="/big"' in render(SPEC, "/page/0")[2].decode()


def test_model_is_deterministic_and_seeded() -> None:
    assert render(SPEC, "/page/5") == render(dataclasses.replace(SPEC), "/page/5")
    other_seed = SiteSpec(pages=40, links_per_page=6, seed=8, big_page_bytes=20_000)
    assert render(SPEC, "/page/5")[2] != render(other_seed, "/page/5")[2]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/%70age/3", "/page/3"),
        ("/page/%33", "/page/3"),
        ("/page/./3", "/page/3"),
        ("/page/../page/3", "/page/3"),
        ("/page/3?x=1", "/page/3"),
        ("/a%2fb", "/a%2Fb"),
        # A request target is a path: '//' starts no authority there (a crawler asks for
        # http://host//[::1 as '//[::1'; urljoin read it as a broken IPv6 host and raised).
        ("//[::1", "//[::1"),
        ("//evil.test/page/3", "//evil.test/page/3"),
    ],
)
def test_canonical_path(target: str, expected: str) -> None:
    assert canonical_path(target) == expected


def test_robots_txt(site: SiteServer, client: httpx.Client) -> None:
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == (
        f"User-agent: *\nDisallow: /private/\nSitemap: {site.base_url}/sitemap.xml\n"
    )
    sitemap = client.get("/sitemap.xml")
    assert sitemap.status_code == 200
    assert sitemap.text.count("<loc>") == 40
    assert f"<loc>{site.base_url}/page/39</loc>" in sitemap.text


@pytest.mark.parametrize("path", ["/missing/10", "/nowhere", "/page/40", "/page/007", "/private/x"])
def test_unknown_paths_are_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert TITLE_RE.findall(response.text) == ["Not found"]


def test_redirect_location(client: httpx.Client) -> None:
    response = client.get("/redirect/10")
    assert response.status_code == 301
    assert response.headers["location"] == f"/page/{(10 * 7 + 3) % 40}"
    assert client.get("/redirect/10", follow_redirects=True).url.path == "/page/33"


def test_keep_alive_serves_many_requests_on_one_connection(
    site: SiteServer, client: httpx.Client
) -> None:
    for i in range(6):
        assert client.get(f"/page/{i}").status_code == 200
    assert site.total_connections == 1
    assert site.total_requests == 6


def test_connection_close_and_pipelining(site: SiteServer) -> None:
    two = (
        b"GET /page/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /page/2 HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    reply = raw_exchange(site.port, two)
    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert TITLE_RE.findall(reply.decode()) == ["Page 1", "Page 2"]
    assert reply.count(b"Connection: close\r\n") == 1
    assert site.total_connections == 1


def test_http10_closes_by_default(site: SiteServer) -> None:
    reply = raw_exchange(site.port, b"GET / HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in reply


def test_request_counts_use_raw_target(site: SiteServer, client: httpx.Client) -> None:
    client.get("/page/1?x=1")
    client.get("/page/1?x=1")
    client.get("/page/1")
    raw = raw_exchange(site.port, b"GET /%70age/./2 HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert TITLE_RE.findall(raw.decode()) == ["Page 2"]
    assert site.request_counts() == Counter({"/page/1?x=1": 2, "/page/1": 1, "/%70age/./2": 1})
    assert site.requests == site.request_counts()
    assert site.total_requests == 4
    site.reset_counts()
    assert site.request_counts() == Counter()
    assert (site.total_requests, site.total_connections, site.max_concurrent) == (0, 0, 0)
    client.get("/")
    assert site.request_counts() == Counter({"/": 1})


def test_head_has_headers_but_no_body(client: httpx.Client) -> None:
    get = client.get("/page/9")
    head = client.head("/page/9")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
    # The connection must still be usable: a body sent after HEAD would desync the next response.
    assert TITLE_RE.findall(client.get("/page/8").text) == ["Page 8"]


def test_other_methods_get_405(client: httpx.Client) -> None:
    response = client.post("/page/1", content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_oversized_headers_get_431(site: SiteServer) -> None:
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n"
    reply = raw_exchange(site.port, head)
    assert reply.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert site.total_requests == 0


def test_client_disconnects_do_not_log_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with SiteServer(SiteSpec(pages=5, big_page_bytes=2_000_000)) as server:
        for partial in (b"", b"GET /page/1 HTT", b"GET /page/1 HTTP/1.1\r\nHost: x\r\n"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
                sock.sendall(partial)
        # Reset (not FIN) while a 2 MB response is being written: the write side must cope too.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\n\r\n")
            sock.recv(1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # An idle keep-alive connection left open across shutdown must be cancelled quietly.
        idle = httpx.Client(base_url=server.base_url, trust_env=False, timeout=5.0)
        assert idle.get("/page/1").status_code == 200
        assert server.total_connections == 5
    idle.close()
    # Checked after shutdown, so late hang-up handling can't slip past the assertion.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_latency_is_concurrent_and_max_concurrent_is_recorded() -> None:
    with SiteServer(SiteSpec(pages=10, latency=0.3)) as slow:
        barrier = threading.Barrier(5)
        results: list[tuple[int, float]] = []

        def fetch(i: int) -> None:
            with httpx.Client(trust_env=False, timeout=5.0) as c:
                barrier.wait(timeout=5.0)
                started = time.monotonic()
                status = c.get(f"{slow.base_url}/page/{i}").status_code
                results.append((status, time.monotonic() - started))

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10.0)
        assert [status for status, _ in results] == [200] * 5
        # Each answer waited out the latency (a floor, never a speed); served one at a time
        # the five would never overlap: five in flight at once is what shows they were not.
        assert all(elapsed >= 0.3 for _, elapsed in results), results
        assert slow.max_concurrent == 5
        assert slow.total_requests == 5


def test_big_page_has_requested_size_and_links_to_pages(client: httpx.Client) -> None:
    response = client.get("/big")
    assert response.status_code == 200
    assert 20_000 <= len(response.content) < 20_100
    assert TITLE_RE.findall(response.text) == [BIG_TITLE]
    links = set(re.findall(r'href="(/page/\d+)"', response.text))
    assert links == {f"/page/{i}" for i in range(40)}
    assert render(SiteSpec(pages=40), "/big")[0] == 404  # disabled by default


def test_expected_maps_are_walked_not_hard_coded() -> None:
    statuses = expected_statuses(SPEC)
    pages = expected_pages(SPEC)
    assert pages == {"/": HOME_TITLE, "/big": BIG_TITLE} | {
        f"/page/{i}": f"Page {i}" for i in range(40)
    }
    assert {p: s for p, s in statuses.items() if s != 200} == {
        "/missing/0": 404,
        "/missing/10": 404,
        "/missing/20": 404,
        "/missing/30": 404,
        "/redirect/0": 301,
        "/redirect/10": 301,
        "/redirect/20": 301,
        "/redirect/30": 301,
    }
    assert {p for p, s in statuses.items() if s == 200} == set(pages)
    small = SiteSpec(pages=3)
    assert expected_pages(small) == {
        "/": HOME_TITLE,
        "/page/0": "Page 0",
        "/page/1": "Page 1",
        "/page/2": "Page 2",
    }
    assert expected_statuses(small) == {
        "/": 200,
        "/page/0": 200,
        "/page/1": 200,
        "/page/2": 200,
        "/missing/0": 404,
        "/redirect/0": 301,
    }


def test_expected_maps_match_what_the_server_serves(site: SiteServer, client: httpx.Client) -> None:
    statuses = expected_statuses(SPEC)
    pages = expected_pages(SPEC)
    for path, status in statuses.items():
        response = client.get(path)
        assert response.status_code == status, path
        if status == 200:
            assert TITLE_RE.findall(response.text) == [pages[path]], path
    assert site.total_requests == len(statuses) == 40 + 2 + 8
    assert site.total_connections == 1


def test_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="pages must be >= 1"):
        SiteSpec(pages=0)
    with pytest.raises(ValueError, match="must be >= 0"):
        SiteSpec(latency=-1.0)


def readline_with_deadline(stream: IO[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True)
    reader.start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no line from the demo site process within {timeout}s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_process_mode(tmp_path: Path, sig: signal.Signals) -> None:
    ready_file = tmp_path / "ready"
    cmd = [sys.executable, "-m", "crawler.demo.serve", "--port", "0", "--pages", "20"]
    cmd += ["--latency", "0.01", "--ready-file", str(ready_file)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = readline_with_deadline(proc.stdout, timeout=15.0)
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match is not None, line
        base_url = match[1]
        assert int(match[2]) > 0
        assert ready_file.read_text() == base_url
        response = httpx.get(f"{base_url}/page/19", trust_env=False, timeout=5.0)
        assert response.status_code == 200
        assert TITLE_RE.findall(response.text) == ["Page 19"]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10.0)
        assert proc.returncode == 0, err
        assert out == ""  # exactly one line was printed, and it was read above
        assert err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10.0)


def test_make_run_crawls_the_whole_demo_site_with_the_demo_config(tmp_path: Path) -> None:
    """``make run`` (``python -m crawler.demo``), as a user runs it: both processes real, the
    output in ``demo-output/`` of the working directory."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.demo"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert readline_with_deadline(proc.stdout, timeout=15.0).startswith("demo site: ")
        command = readline_with_deadline(proc.stdout, timeout=15.0)
        # Without configs/demo.toml the crawl keeps the default 1 s per-host delay (minutes).
        assert command.endswith(f" --config {ROOT / 'configs' / 'demo.toml'}\n"), command
        out, err = proc.communicate(timeout=120.0)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10.0)
    db = tmp_path / "demo-output" / "demo.db"
    assert {path: status for path, (status, _) in pages(db).items()} == expected_statuses(
        SiteSpec(pages=PAGES)
    )
    assert f"first pages stored in {Path('demo-output') / 'demo.db'}" in out
