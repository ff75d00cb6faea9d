"""The one HTTP/1.1 server core of the tests' sites (the hostile site, the sitemap site, the
small sites of single tests, the fetch layer's wire tests).

A :class:`TestServer` reads each request head once, answers it with what its handler returns
for the parsed :class:`Request`, and counts what it was asked (targets, arrival and end times,
connections). It writes bytes on asyncio streams itself, not through an HTTP library, because
the hostile cases break HTTP on purpose and a library would refuse. A handler returns:

- a :data:`Response` ``(status, headers, body)``: sent with ``Content-Length`` (no body after
  ``HEAD``), the connection kept alive if the request allows it;
- ``bytes``: written exactly as given, in one write, and the connection kept for the next
  request (a test that wants to send a malformed or interim response);
- a :data:`Stream`: a coroutine function given the connection's reader and writer, which
  takes the connection over; it is closed when the stream returns (a drop, a trickle, a
  reset, an answer whose body ends at the close).

A handler may be a coroutine function (a response held until the test releases it).

``with server:`` serves from a background thread with its own event loop (for tests whose
client blocks, or runs in another process); ``async with server:`` serves on the running
loop, so what it received is known exactly when the client's call returns. Both stop
promptly with connections still open (endless, stalled or unread ones are aborted).

``TestServer(..., tls=context)`` speaks https with that server-side ``ssl.SSLContext`` (the
certificates of tests/tls.py) and its URLs say ``https://``.

``crawler.demo.SiteServer`` (the product's demo site, with its own spec and latency) and
``crawler.bench.server`` (the benchmark's fast multi-process server) keep their own: they ship
in the package, which cannot import its tests, and the bench's figures depend on its speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import math
import ssl
import threading
import time
import weakref
from asyncio import StreamReader, StreamWriter
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Self

from crawler.demo import MAX_HEADER_BYTES

HOST = "127.0.0.1"

Response = tuple[int, Mapping[str, str], bytes]
Stream = Callable[[StreamReader, StreamWriter], Awaitable[None]]
Reply = Response | bytes | Stream

_IDLE_TIMEOUT = 60.0  # an idle keep-alive connection is dropped after this long
_STARTUP_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_MAX_REQUESTS_PER_CONNECTION = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One request head as received (values decoded as Latin-1, so byte for byte)."""

    method: str
    target: str
    """The request target as sent: path and query, undecoded."""
    version: str
    headers: Mapping[str, str]
    """Field names lower-cased; a repeated field keeps its last value."""
    connection: int
    """The number of the connection it came on (0 for the first), for per-connection state."""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2].partition("#")[0]


Handler = Callable[[Request], Reply | Awaitable[Reply]]
Pace = Callable[[float], Awaitable[None]]
"""How a trickling handler waits between two writes: ``asyncio.sleep`` or a :class:`StepPacer`."""


def phrase(status: int) -> str:
    """The reason phrase of ``status``; "Unknown" for numbers http.HTTPStatus does not know."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def head(status: int, headers: Iterable[tuple[str, str | int]] = ()) -> bytes:
    """A status line and header block, ending with the blank line."""
    lines = [f"HTTP/1.1 {status} {phrase(status)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_reply(status: int, *extra: tuple[str, str]) -> bytes:
    """A short plain-text error answer that closes the connection."""
    body = f"{status} {phrase(status)}\n".encode()
    fields = [("Content-Length", str(len(body))), ("Content-Type", "text/plain"), *extra]
    return head(status, [*fields, ("Connection", "close")]) + body


def html(title: str, body: str = "", status: int = 200) -> Response:
    """A tiny HTML page (the small sites' answer)."""
    page = f"<title>{title}</title>{body}".encode()
    return status, {"Content-Type": "text/html"}, page


def two_pages(request: Request) -> Response:
    """A two-page site: ``/`` links to ``/next``; every other path (robots.txt) is 404."""
    if request.path == "/":
        return html("/", '<a href="/next">next</a>')
    if request.path == "/next":
        return html("/next")
    return 404, {}, b""


class _Parked:
    """Handlers parked on their server's loop until a test thread lets them go: the one
    mechanism under :class:`StepPacer` and :class:`Gate`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parked: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    async def _park(self, through: Callable[[], bool] = lambda: False) -> None:
        """Wait until released, or not at all if ``through()`` (checked under the lock)."""
        loop = asyncio.get_running_loop()
        entry = (loop, loop.create_future())
        with self._lock:
            if through():
                return
            self._parked.append(entry)
        try:
            await entry[1]
        finally:  # released, or cancelled by the server's stop
            with self._lock:
                if entry in self._parked:
                    self._parked.remove(entry)

    @property
    def waiting(self) -> int:
        """Handlers parked now."""
        with self._lock:
            return len(self._parked)

    def _release(self, count: int | None) -> int:
        """Let the oldest ``count`` parked handlers go (all of them for None); how many."""
        with self._lock:
            end = len(self._parked) if count is None else count
            released, self._parked = self._parked[:end], self._parked[end:]
        for loop, parked in released:
            loop.call_soon_threadsafe(_resume, parked)
        return len(released)


class StepPacer(_Parked):
    """A :data:`Pace` the test drives: each pause lasts until the test calls :meth:`step`.

    A trickle paced by it writes exactly one step's bytes per call, so a test can read what was
    sent at each pause instead of counting bytes over a stretch of wall-clock time. Pauses run
    on the server's loop (any thread); :meth:`step` and the counts may be used from any thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self._asked: list[float] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pauses={len(self.asked)} waiting={self.waiting}>"

    async def __call__(self, seconds: float) -> None:
        def record() -> bool:
            self._asked.append(seconds)
            return False

        await self._park(record)

    @property
    def asked(self) -> list[float]:
        """The length of every pause asked for so far, in seconds, in order."""
        with self._lock:
            return list(self._asked)

    def step(self) -> None:
        """End the oldest pause (the test must have seen one waiting)."""
        if not self._release(1):
            raise AssertionError("step() with no pause waiting")


class Gate(_Parked):
    """A hold on handlers that the test lifts: :meth:`wait` returns once :meth:`open` has been
    called (from any thread), at once if it already was. For a site that must be slow until
    the client reached a state the test observes, instead of slow for a guessed time."""

    def __init__(self) -> None:
        super().__init__()
        self._open = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} open={self._open} waiting={self.waiting}>"

    async def wait(self) -> None:
        await self._park(lambda: self._open)

    def open(self) -> None:
        """Let every held handler go on, and every later one through."""
        with self._lock:
            self._open = True
        self._release(None)


def _resume(resumed: asyncio.Future[None]) -> None:
    if not resumed.done():  # a pause cancelled meanwhile stays cancelled
        resumed.set_result(None)


class TestServer:
    """Serves ``handler``'s answers on ``host`` (an ephemeral port) and counts the requests.

    The bookkeeping may be read from any thread; ``clock`` stamps arrivals and ends."""

    __test__ = False  # not a test class, whatever pytest makes of its name

    methods: frozenset[str] = frozenset(("GET", "HEAD"))
    """The methods handed to the handler; others are answered 405."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = HOST,
        clock: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        """``port``: 0, an ephemeral one; a scheme's default (80, 443) for URLs without one."""
        self.host = host
        self._port = self.port = port
        self.scheme = "http" if tls is None else "https"
        self._tls = tls
        self._handler = handler
        self._clock = clock
        # Handlers run on the server loop while tests read the bookkeeping from another thread.
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._arrivals: list[tuple[str, float]] = []
        self._finished: list[tuple[str, float, float]] = []
        self._in_flight: dict[int, tuple[str, float]] = {}
        self._request_ids = itertools.count()
        self._connection_ids = itertools.count()
        self._connections = 0
        self._errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[object]] = set()
        # Transports still flushing after their handler returned must be aborted on stop too;
        # weak, so closed ones drop out without bookkeeping.
        self._transports: weakref.WeakSet[asyncio.WriteTransport] = weakref.WeakSet()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._listener: asyncio.Server | None = None
        self._thread_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url} requests={len(self.requests())}>"

    @property
    def base_url(self) -> str:
        return self.url("")

    def url(self, target: str, host: str | None = None) -> str:
        """The URL of ``target`` here, optionally under another name for this address."""
        default = {"http": 80, "https": 443}[self.scheme] == self.port
        return f"{self.scheme}://{host or self.host}{'' if default else f':{self.port}'}{target}"

    # --- bookkeeping -------------------------------------------------------------------------

    def requests(self) -> list[Request]:
        """Every request since the last reset, in arrival order."""
        with self._lock:
            return list(self._requests)

    def request_counts(self) -> Counter[str]:
        """Raw request target (path and query, as sent) -> number of requests."""
        with self._lock:
            return Counter(request.target for request in self._requests)

    def request_times(self, path_prefix: str) -> list[float]:
        """The clock's time at which each request whose target starts with the prefix arrived."""
        with self._lock:
            return [t for target, t in self._arrivals if target.startswith(path_prefix)]

    def max_concurrent(self, path_prefix: str) -> int:
        """Most requests matching the prefix that were in flight (arrived, not yet answered)
        at any one moment since the last reset."""
        with self._lock:
            intervals = [(s, e) for t, s, e in self._finished if t.startswith(path_prefix)]
            intervals += [
                (s, math.inf) for t, s in self._in_flight.values() if t.startswith(path_prefix)
            ]
        # Sweep line; at equal times ends (-1) sort before starts, so back-to-back isn't overlap.
        events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
        running = peak = 0
        for _, delta in events:
            running += delta
            peak = max(peak, running)
        return peak

    def in_flight(self, path_prefix: str) -> int:
        """Requests matching the prefix still being answered now (e.g. an endless body whose
        client has not hung up yet)."""
        with self._lock:
            return sum(t.startswith(path_prefix) for t, _ in self._in_flight.values())

    def unsent_bytes(self) -> int:
        """Bytes handlers wrote that the kernel has not taken yet: non-zero once a client that
        stopped reading has let its socket buffers fill, so the handler's writes block. For a
        server run by ``with server:``, asked from another thread (it waits for the loop)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or threading.current_thread() is thread:
            raise RuntimeError("unsent_bytes() is for a `with server:` run, from another thread")

        async def count() -> int:  # on the server's loop: its transports are not thread-safe
            return sum(transport.get_write_buffer_size() for transport in self._transports)

        return asyncio.run_coroutine_threadsafe(count(), loop).result(_STOP_TIMEOUT)

    @property
    def connections(self) -> int:
        """Connections accepted since the last reset."""
        with self._lock:
            return self._connections

    def reset(self) -> None:
        """Forget requests, times and connections. Requests still in flight keep counting
        towards max_concurrent."""
        with self._lock:
            self._requests.clear()
            self._arrivals.clear()
            self._finished.clear()
            self._connections = 0

    def _begin(self, request: Request) -> int:
        now = self._clock()
        with self._lock:
            self._requests.append(request)
            self._arrivals.append((request.target, now))
            key = next(self._request_ids)
            self._in_flight[key] = (request.target, now)
        return key

    def _end(self, key: int) -> None:
        now = self._clock()
        with self._lock:
            target, start = self._in_flight.pop(key)
            self._finished.append((target, start, now))

    # --- lifecycle: on a thread of its own ---------------------------------------------------

    def __enter__(self) -> Self:
        ready = threading.Event()
        self._thread_error = None
        self._loop = self._stop = None  # a previous run's; the new thread sets its own
        self._thread = threading.Thread(target=self._run_thread, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(_STARTUP_TIMEOUT):
            self.__exit__()
            raise RuntimeError(f"{type(self).__name__} did not start within {_STARTUP_TIMEOUT}s")
        if self._thread_error is not None:
            self._thread.join(_STOP_TIMEOUT)
            raise self._thread_error
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed: nothing left to stop
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not stop within {_STOP_TIMEOUT}s")
        self._raise_handler_error()

    def _run_thread(self, ready: threading.Event) -> None:
        async def serve() -> None:
            self._stop = asyncio.Event()
            await self.start()
            try:
                ready.set()
                await self._stop.wait()
            finally:
                await self.stop()

        try:
            asyncio.run(serve())
        except BaseException as exc:  # re-raised in the caller's thread by __enter__
            self._thread_error = exc
        finally:
            ready.set()

    # --- lifecycle: on the running loop ------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        self._raise_handler_error()

    async def start(self) -> None:
        """Listen on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._listener = await asyncio.start_server(
            self._on_connection, self.host, self._port, limit=MAX_HEADER_BYTES, ssl=self._tls
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and end every connection now."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        listener.close()
        # Abort, not close: close() waits to flush, forever if an endless body's client
        # stopped reading; abort drops the buffers and closes the socket now.
        for transport in list(self._transports):
            transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
        await listener.wait_closed()

    def _raise_handler_error(self) -> None:
        """A handler that raised broke its test's site: say so instead of a dropped
        connection the client reports as something else."""
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    # --- connections -------------------------------------------------------------------------

    async def _on_connection(self, reader: StreamReader, writer: StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._transports.add(writer.transport)
        with self._lock:
            self._connections += 1
        number = next(self._connection_ids)
        try:
            for _ in range(_MAX_REQUESTS_PER_CONNECTION):
                try:
                    async with asyncio.timeout(_IDLE_TIMEOUT):
                        request_head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    writer.write(error_reply(431))
                    await writer.drain()
                    return
                if not await self._respond(request_head, number, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # clients hang up or go idle mid-request; not a server fault
        except asyncio.CancelledError:
            # Shutdown. Ending normally matters: Python 3.11's start_server logs a traceback
            # for every connection task that ends cancelled.
            writer.transport.abort()
        except Exception as exc:  # a handler's bug: raised again when the server stops
            with self._lock:
                self._errors.append(exc)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _respond(
        self, request_head: bytes, number: int, reader: StreamReader, writer: StreamWriter
    ) -> bool:
        """Answer one request; True if the connection may carry another."""
        request_line, *lines = request_head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        # Origin-form, or the absolute-form or CONNECT's authority-form a proxy is sent
        # (tests/proxy_server.py).
        if len(parts) != 3 or not (parts[0] == "CONNECT" or parts[1].startswith(("/", "http://"))):
            writer.write(error_reply(400))
            await writer.drain()
            return False
        method, target, version = parts
        fields = (line.partition(":") for line in lines if line)
        headers = {name.strip().lower(): value.strip() for name, _, value in fields}
        request = Request(method, target, version, headers, number)
        connection = headers.get("connection", "").lower()
        persistent = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        # Bodies are never read, so the stream cannot be reused after one.
        has_body = any(
            headers.get(name, "0") != "0" for name in ("content-length", "transfer-encoding")
        )
        key = self._begin(request)
        try:
            if method not in self.methods:
                writer.write(error_reply(405, ("Allow", ", ".join(sorted(self.methods)))))
                await writer.drain()
                return False
            reply = self._handler(request)
            if inspect.isawaitable(reply):
                reply = await reply
            if isinstance(reply, bytes):
                writer.write(reply)
                await writer.drain()
                return persistent and not has_body
            if not isinstance(reply, tuple):
                await reply(reader, writer)  # a stream always ends its connection
                return False
            status, response_headers, body = reply
            keep_alive = persistent and not has_body
            out = [("Content-Length", str(len(body))), *response_headers.items()]
            if not keep_alive:
                out.append(("Connection", "close"))
            writer.write(head(status, out) + (body if method == "GET" else b""))
            await writer.drain()
            return keep_alive
        finally:
            self._end(key)
