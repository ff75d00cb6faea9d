"""Bundled demo site: a deterministic synthetic website and a fast asyncio HTTP/1.1 server.

The site model (`SiteSpec`, `render`, `expected_pages`, `expected_statuses`) is pure and knows
nothing about sockets, so the benchmark harness can grow it without touching `SiteServer`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import html
import os
import random
import re
import signal
import string
import threading
from asyncio import StreamReader, StreamWriter
from collections import Counter, deque
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import urljoin, urlsplit

MAX_HEADER_BYTES = 16 * 1024
HTML_TYPE = "text/html; charset=utf-8"
HOME_TITLE = "Demo site"
BIG_TITLE = "Big page"
Response = tuple[int, dict[str, str], bytes]

# Links are resolved against a placeholder origin because the real port is unknown while rendering.
_ORIGIN = "http://demo.invalid"
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PCT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_PAGE_RE = re.compile(r"/page/(0|[1-9][0-9]*)")  # no leading zeros: one canonical path per page
_REDIRECT_RE = re.compile(r"/redirect/(0|[1-9][0-9]*)")
_HREF_RE = re.compile(r'href="([^"]*)"')
_TITLE_RE = re.compile(r"<title>(.*?)</title>", re.DOTALL)
_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit "
_CACHE_LIMIT = 10_000  # unknown paths are unbounded; a scanner must not grow memory forever
_STARTUP_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
# Keep-alive connections end when the client closes or asks to; this cap only bounds the loop.
_MAX_REQUESTS_PER_CONNECTION = 10**9
_MAX_STALLED_READS = 100_000  # what a stalled client may send; bounds the loop, not the wait

# Equivalent spellings of `/page/j`, so the crawler's URL canonicalisation gets exercised.
_LINK_FORMS: tuple[Callable[[int], str], ...] = (
    lambda j: f"/page/{j}",
    lambda j: f"../page/{j}",
    lambda j: f"/page/{j}#section",
    lambda j: f"/page/./{j}",
    lambda j: f"/%70age/{j}",
    lambda j: str(j),  # relative to /page/i, as "page.html" is to "/docs/index.html"
    lambda j: f"./{j}",
    lambda j: "/page/" + "".join(f"%{ord(c):02x}" for c in str(j)),
)


@dataclasses.dataclass(frozen=True, slots=True)
class SiteSpec:
    pages: int = 200
    links_per_page: int = 8
    seed: int = 0
    latency: float = 0.0
    page_padding: int = 0
    big_page_bytes: int = 0

    def __post_init__(self) -> None:
        if self.pages < 1:
            raise ValueError(f"pages must be >= 1, got {self.pages}")
        sizes = (self.links_per_page, self.page_padding, self.big_page_bytes, self.latency)
        if min(sizes) < 0:
            raise ValueError("links_per_page, page_padding, big_page_bytes, latency must be >= 0")


def _unquote_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else "%" + match[1].upper()


def canonical_path(target: str) -> str:
    """The path (no query, no fragment) that `target` routes to, RFC 3986-normalised."""
    target = _PCT_RE.sub(_unquote_unreserved, target)
    if target.startswith("//"):  # a path of a request target, not an authority as in a link
        target = "/." + target
    path = urlsplit(urljoin(_ORIGIN + "/", target)).path
    return path or "/"


def _page_hrefs(spec: SiteSpec, i: int) -> list[str]:
    rng = random.Random(spec.seed * 1_000_003 + i)
    # The i -> i+1 chain makes every page reachable from / whatever the random links are.
    hrefs = [f"/page/{i + 1}"] if i + 1 < spec.pages else []
    for k in range(spec.links_per_page if spec.pages > 1 else 0):
        j = rng.randrange(spec.pages - 1)
        if j >= i:  # skip self so each link really goes to another page
            j += 1
        hrefs.append(_LINK_FORMS[(i + k) % len(_LINK_FORMS)](j))
    if i % 10 == 0:
        hrefs += [f"/missing/{i}", f"/redirect/{i}"]
        hrefs += ["mailto:someone@example.invalid", "javascript:void(0)"]
    if i == 0 and spec.big_page_bytes > 0:
        hrefs.append("/big")
    return hrefs


def _html(title: str, description: str, hrefs: list[str], extra: str = "") -> bytes:
    items = "".join(f'<li><a href="{html.escape(h)}">{html.escape(h)}</a></li>\n' for h in hrefs)
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
        f'<meta name="description" content="{html.escape(description)}">\n</head>\n'
        f'<body><h1 id="section">{html.escape(title)}</h1>\n<ul>\n{items}</ul>\n{extra}'
        "</body></html>\n"
    ).encode()


def _big_page(spec: SiteSpec) -> bytes:
    description = "A large page with many links."
    size = len(_html(BIG_TITLE, description, []))
    hrefs: list[str] = []
    for k in range(spec.big_page_bytes):  # every link adds bytes, so the size check ends it first
        if size >= spec.big_page_bytes:
            break
        hrefs.append(f"/page/{k % spec.pages}")
        size += len('<li><a href=""></a></li>\n') + 2 * len(hrefs[-1])
    return _html(BIG_TITLE, description, hrefs)


def render(spec: SiteSpec, path: str, base_url: str = _ORIGIN) -> Response:
    """(status, headers, body) for `path`; `base_url` only feeds the absolute Sitemap URLs."""
    p = canonical_path(path)
    if p == "/":
        home = [f"/page/{i}" for i in range(min(spec.pages, 5))]
        return 200, {"Content-Type": HTML_TYPE}, _html(HOME_TITLE, "Synthetic crawl target.", home)
    if p == "/robots.txt":
        robots = f"User-agent: *\nDisallow: /private/\nSitemap: {base_url}/sitemap.xml\n"
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, robots.encode()
    if p == "/sitemap.xml":
        urls = "".join(f"<url><loc>{base_url}/page/{i}</loc></url>\n" for i in range(spec.pages))
        xmlns = "http://www.sitemaps.org/schemas/sitemap/0.9"
        sitemap = f'<?xml version="1.0"?>\n<urlset xmlns="{xmlns}">\n{urls}</urlset>\n'
        return 200, {"Content-Type": "application/xml"}, sitemap.encode()
    if p == "/big" and spec.big_page_bytes > 0:
        return 200, {"Content-Type": HTML_TYPE}, _big_page(spec)
    if (m := _PAGE_RE.fullmatch(p)) and (i := int(m[1])) < spec.pages:
        description = f"Synthetic demo page {i} of {spec.pages}."
        filler = (_FILLER * (spec.page_padding // len(_FILLER) + 1))[: spec.page_padding]
        extra = f"<p>{filler}</p>\n" if filler else ""
        body = _html(f"Page {i}", description, _page_hrefs(spec, i), extra)
        return 200, {"Content-Type": HTML_TYPE}, body
    if (m := _REDIRECT_RE.fullmatch(p)) and (i := int(m[1])) < spec.pages:
        location = f"/page/{(i * 7 + 3) % spec.pages}"
        body = _html("Moved", "Moved permanently.", [location])
        return 301, {"Content-Type": HTML_TYPE, "Location": location}, body
    return 404, {"Content-Type": HTML_TYPE}, _html("Not found", "No such page.", ["/"])


def _resolve(base: str, href: str) -> str | None:
    parts = urlsplit(urljoin(_ORIGIN + base, html.unescape(href)))
    if parts.scheme != "http" or parts.netloc != urlsplit(_ORIGIN).netloc:
        return None  # mailto:, javascript: and off-site links are not crawled
    return canonical_path(parts.path) + (f"?{parts.query}" if parts.query else "")


@functools.lru_cache(maxsize=16)
def _walk(spec: SiteSpec) -> tuple[dict[str, int], dict[str, str]]:
    statuses: dict[str, int] = {}
    titles: dict[str, str] = {}
    queue = deque(["/"])
    # Terminates: each path is queued once and the model only links to finitely many paths.
    while queue:
        path = queue.popleft()
        status, headers, body = render(spec, path)
        statuses[path] = status
        hrefs: list[str] = []
        if "Location" in headers:
            hrefs = [headers["Location"]]
        elif status == 200 and headers["Content-Type"] == HTML_TYPE:
            text = body.decode()
            if title := _TITLE_RE.search(text):
                titles[path] = html.unescape(title[1])
            hrefs = _HREF_RE.findall(text)
        for href in hrefs:
            target = _resolve(path, href)
            if target is not None and target not in statuses:
                statuses[target] = 0  # placeholder marks it queued; overwritten when visited
                queue.append(target)
    return statuses, titles


def expected_statuses(spec: SiteSpec) -> dict[str, int]:
    """Every path a correct crawler starting from / fetches (robots.txt excluded), by status."""
    return dict(_walk(spec)[0])


def expected_pages(spec: SiteSpec) -> dict[str, str]:
    """Every HTML page a correct crawler starting from / stores, mapped to its title."""
    return dict(_walk(spec)[1])


def _reply(status: int, extra: str = "") -> bytes:
    body = f"{status} {HTTPStatus(status).phrase}\n".encode()
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Length: {len(body)}\r\n"
    return (head + extra + "Content-Type: text/plain\r\nConnection: close\r\n\r\n").encode() + body


class SiteServer:
    """Serves a `SiteSpec`; `with SiteServer(spec) as site:` runs it on a background thread.

    The counters (`request_counts()`, `completed_counts()`, `total_requests`,
    `total_connections`, `max_concurrent`) may be read from any thread. Without latency a
    request never yields to the loop, so `max_concurrent` only exceeds 1 when `spec.latency` > 0
    or a client reads slowly. `stall(target)` cuts a response off mid-body, for tests of what a
    client does with a fetch still on the wire.
    """

    def __init__(self, spec: SiteSpec | None = None, host: str = "127.0.0.1", port: int = 0):
        self.spec = spec or SiteSpec()
        self.host = host
        self.port = port
        self._bind_port = port  # kept apart from .port so a re-entered server binds afresh
        self.total_requests = 0
        self.total_connections = 0
        self.max_concurrent = 0
        self._active = 0
        self._counts: Counter[str] = Counter()
        self._completed: Counter[str] = Counter()
        self._stalled: set[str] = set()
        # Handlers run on the server loop while tests read the counters from another thread.
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[bytes, bytes]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def completed_counts(self) -> Counter[str]:
        """Request target -> responses written to the socket in full (`request_counts()` less
        these: the responses the client left, or that are stalled, before their last byte)."""
        with self._lock:
            return Counter(self._completed)

    @property
    def requests(self) -> Counter[str]:
        return self.request_counts()

    def stall(self, target: str) -> None:
        """Answer requests for `target` (as sent) with the head and half the body, then
        nothing more: the response stays unfinished until the client leaves or the server
        stops."""
        with self._lock:
            self._stalled.add(target)

    def unstall(self, target: str) -> None:
        """Answer `target` in full again (responses already stalled stay so)."""
        with self._lock:
            self._stalled.discard(target)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._completed.clear()
            self.total_requests = self.total_connections = 0
            self.max_concurrent = self._active

    async def serve(self, stop: asyncio.Event, on_ready: Callable[[], None] = lambda: None) -> None:
        """Serve on the running loop until `stop` is set; `on_ready` runs once bound."""
        server = await asyncio.start_server(
            self._on_connection, self.host, self._bind_port, limit=MAX_HEADER_BYTES, backlog=1024
        )
        self.port = server.sockets[0].getsockname()[1]
        self._cache.clear()  # robots.txt embeds the port, which may differ from a previous run
        try:
            on_ready()
            await stop.wait()
        finally:
            server.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()  # idle keep-alive connections would otherwise block shutdown
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    async def _on_connection(self, reader: StreamReader, writer: StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        with self._lock:
            self.total_connections += 1
        try:
            for _ in range(_MAX_REQUESTS_PER_CONNECTION):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    writer.write(_reply(431))
                    await writer.drain()
                    return
                if not await self._respond(head, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # clients hang up mid-request or between requests; not a server fault
        except asyncio.CancelledError:
            # Shutdown cancels open connections. Ending normally matters: Python 3.11's
            # start_server logs a traceback for every connection task that ends cancelled.
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _respond(self, head: bytes, reader: StreamReader, writer: StreamWriter) -> bool:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[1].startswith(b"/"):
            writer.write(_reply(400))
            await writer.drain()
            return False
        method, raw_target, version = parts
        connection, has_body = b"", False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"connection":
                connection = value.strip().lower()
            elif name in (b"content-length", b"transfer-encoding") and value.strip() != b"0":
                has_body = True  # bodies are never read, so the stream can't be reused after one
        # HTTP/1.1 persists unless told to close; HTTP/1.0 only when asked to keep alive.
        persistent = (
            connection != b"close" if version == b"HTTP/1.1" else connection == b"keep-alive"
        )
        keep_alive = persistent and not has_body
        target = raw_target.decode("latin-1")
        with self._lock:
            self._counts[target] += 1
            self.total_requests += 1
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
            stalled = target in self._stalled
        completed = False
        try:
            if method not in (b"GET", b"HEAD"):
                writer.write(_reply(405, "Allow: GET, HEAD\r\n"))
                await writer.drain()
                return False
            if self.spec.latency > 0:
                await asyncio.sleep(self.spec.latency)
            response_head, body = self._response(target)
            end = b"\r\n" if keep_alive else b"Connection: close\r\n\r\n"
            data = response_head + end + (body if method == b"GET" else b"")
            if stalled:
                writer.write(data[: len(data) - len(body) // 2])
                await writer.drain()
                await _until_client_leaves(reader)
                return False
            writer.write(data)
            await writer.drain()
            completed = True
            return keep_alive
        finally:
            with self._lock:
                self._active -= 1
                if completed:
                    self._completed[target] += 1

    def _response(self, target: str) -> tuple[bytes, bytes]:
        cached = self._cache.get(target)
        if cached is None:
            status, headers, body = render(self.spec, target, self.base_url)
            fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            status_line = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            head = f"{status_line}Content-Length: {len(body)}\r\n{fields}"
            cached = head.encode("latin-1"), body
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[target] = cached
        return cached

    def __enter__(self) -> SiteServer:
        ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run_thread, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(_STARTUP_TIMEOUT):
            self.__exit__()
            raise RuntimeError(f"demo site did not start within {_STARTUP_TIMEOUT}s")
        if self._error is not None:
            self._thread.join(_STOP_TIMEOUT)
            raise self._error
        return self

    def _run_thread(self, ready: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.serve(self._stop, ready.set)

        try:
            asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread by __enter__
            self._error = exc
        finally:
            ready.set()

    def __exit__(self, *exc_info: object) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed: nothing to stop
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                raise RuntimeError(f"demo site thread did not stop within {_STOP_TIMEOUT}s")


async def _until_client_leaves(reader: StreamReader) -> None:
    # Reading, not sleeping: the client's close ends it at once; the server's stop cancels it.
    for _ in range(_MAX_STALLED_READS):
        if not await reader.read(65536):
            return


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (e.g. Windows); asyncio's loop is just slower
        return asyncio.new_event_loop
    return uvloop.new_event_loop


async def _serve_until_signal(site: SiteServer, ready_file: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        if ready_file:
            # Write then rename, so a script polling for the file never reads half a URL; and
            # before printing, so whichever signal a script waits for, both are in place.
            tmp = f"{ready_file}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(site.base_url)
            os.replace(tmp, ready_file)
        print(f"listening on {site.base_url}", flush=True)

    await site.serve(stop, ready)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.demosite", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", metavar="PATH", help="write the base URL here once bound")
    # One option per SiteSpec field, so the CLI grows with the spec (--pages, --latency, ...).
    defaults = SiteSpec()
    for field in dataclasses.fields(SiteSpec):
        value = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, dest=field.name, type=type(value), default=value)
    args = vars(parser.parse_args(argv))
    port, ready_file = args.pop("port"), args.pop("ready_file")
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve_until_signal(SiteServer(SiteSpec(**args), port=port), ready_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
