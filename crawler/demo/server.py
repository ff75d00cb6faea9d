"""The demo site's server: a fast asyncio HTTP/1.1 server (keep-alive, pipelining, HEAD) that
serves a `SiteSpec`, on a background thread (`with SiteServer(spec) as site:`) or on the running
loop (`await site.serve(stop)`), counting every request for the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from asyncio import StreamReader, StreamWriter
from collections import Counter
from collections.abc import Callable
from http import HTTPStatus

from crawler.demo.site import SiteSpec, render

MAX_HEADER_BYTES = 16 * 1024
_CACHE_LIMIT = 10_000  # unknown paths are unbounded; a scanner must not grow memory forever
_STARTUP_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
# Keep-alive connections end when the client closes or asks to; this cap only bounds the loop.
_MAX_REQUESTS_PER_CONNECTION = 10**9
_MAX_STALLED_READS = 100_000  # what a stalled client may send; bounds the loop, not the wait


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
