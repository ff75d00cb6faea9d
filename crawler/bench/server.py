"""The synthetic web on sockets: worker processes serving a :class:`~crawler.bench.web.WebSpec`,
one ``127.0.0.1`` port per host, and the server's view of each crawler's politeness.

The parent (:class:`SyntheticWeb`) binds every host's listening socket itself, so all ports
are known before any page is rendered (pages link across hosts), then starts ``workers``
processes that inherit the sockets (``pass_fds``) and each serve a slice of the hosts on
uvloop, reading and writing its sockets directly (no transports or streams: the server must
not be the bottleneck, and it needs each request's kernel timestamp). A worker is controlled
through its stdin, one command a line, one JSON answer a line on stdout: ``reset``,
``stats``, ``quit``. End of stdin (the parent died) stops it too. ``reset`` can also turn the
spec's latency off, so that one web serves a scenario and its no-latency reference.

What the server records per host, as seen on the wire: requests, requests in flight at once
(from the request's arrival to its answer), the shortest gap between two request arrivals,
and requests for paths robots.txt disallows; and page requests per 0.1 s for the plot.

Arrival times are the kernel's: each connection is read with ``recvmsg`` and
``SO_TIMESTAMPNS``, which stamps a request when it reaches this machine's TCP stack. Stamping
when the worker read it, as before, put the worker's own delays into the gaps it measured: on
the fan-out scenario a worker busy with a burst (or stalled, up to 148 ms once) read a host's
request late and the next one on time, and a crawler whose own log had sent the two
1,000.5-1,012 ms apart was seen 989-995 ms apart (19 such gaps in one run, 0 with kernel
stamps; shortest gap then 1,000.2 ms). A worker also asks for real-time scheduling
(``SCHED_FIFO``, lowest priority; root or ``CAP_SYS_NICE``) so that it answers as promptly as a
server on its own machine would; the kernel still keeps 5% of each core for others. Where that
is not allowed it runs as before, and the results say so (``server_realtime``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from crawler.bench.web import HTML_TYPE, Web, WebSpec

BUCKET = 0.1
"""Seconds per timeline bucket."""
STARTUP_TIMEOUT = 20.0
CONTROL_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
_MAX_HEAD = 16 * 1024


@dataclass(slots=True)
class HostCounters:
    requests: int = 0
    robots: int = 0
    private: int = 0
    """Requests for paths robots.txt disallows."""
    active: int = 0
    max_active: int = 0
    last_start: float = -1.0
    last_path: str = ""
    min_gap: float = float("inf")
    min_gap_paths: tuple[str, str] = ("", "")
    """The two requests (earlier, later) the shortest gap was between."""
    short_gaps: int = 0
    """Gaps shorter than the worker's ``spacing`` (set by ``reset SECONDS``)."""


@dataclass(slots=True)
class ServerStats:
    """What the servers saw since the last reset, all workers together."""

    pages: int = 0
    """Requests other than robots.txt."""
    robots: int = 0
    private: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    max_active_per_host: int = 0
    min_gap_per_host: float | None = None
    """Seconds; None when no host got two requests."""
    min_gap_paths: tuple[str, str] = ("", "")
    """The two requests of that shortest gap (earlier, later): which kind broke the spacing."""
    short_gaps: int = 0
    """Gaps between two requests to one host shorter than the spacing given to reset()."""
    hosts_seen: int = 0
    timeline: dict[int, int] = field(default_factory=dict)
    """Bucket (``int(time.monotonic() / BUCKET)``) -> page requests."""
    cpu_seconds: float = 0.0
    """CPU time the server processes used."""
    delayed: int = 0
    """Answers held back by the spec's latency (none while it is turned off)."""


class _Host:
    __slots__ = ("counters", "failed_once", "index", "worker")

    def __init__(self, worker: _Worker, index: int) -> None:
        self.worker = worker
        self.index = index
        self.counters = HostCounters()
        self.failed_once: set[str] = set()


class _Worker:
    """One server process's state: its hosts and the counters since the last reset."""

    def __init__(self, web: Web) -> None:
        self.web = web
        self.timeline: Counter[int] = Counter()
        self.statuses: Counter[int] = Counter()
        self.hosts: list[_Host] = []
        self._heads: dict[tuple[int, int], bytes] = {}
        self._cpu_base = time.process_time()
        self.spacing = 0.0
        self.latency = True
        self.delayed = 0

    def reset(self, spacing: float = 0.0, latency: bool = True) -> None:
        self.spacing = spacing
        self.latency = latency
        self.delayed = 0
        self._cpu_base = time.process_time()
        self.timeline.clear()
        self.statuses.clear()
        for host in self.hosts:
            active = host.counters.active
            host.counters = HostCounters(active=active, max_active=active)
            host.failed_once.clear()

    def stats(self) -> dict[str, Any]:
        counters = [host.counters for host in self.hosts]
        gaps = [c for c in counters if c.min_gap != float("inf")]
        shortest = min(gaps, key=lambda c: c.min_gap) if gaps else None
        return {
            "pages": sum(c.requests - c.robots for c in counters),
            "robots": sum(c.robots for c in counters),
            "private": sum(c.private for c in counters),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "max_active_per_host": max((c.max_active for c in counters), default=0),
            "min_gap_per_host": shortest.min_gap if shortest else None,
            "min_gap_paths": shortest.min_gap_paths if shortest else ("", ""),
            "short_gaps": sum(c.short_gaps for c in counters),
            "hosts_seen": sum(1 for c in counters if c.requests),
            "timeline": dict(self.timeline),
            "cpu_seconds": time.process_time() - self._cpu_base,
            "delayed": self.delayed,
        }

    def respond(self, host: _Host, target: bytes, arrived: float) -> tuple[bytes, float]:
        """The whole response to a GET of ``target`` on ``host`` that reached the machine at
        ``arrived`` (``time.time()`` seconds), and its delay."""
        path = target.partition(b"?")[0].decode("latin-1")
        counters = host.counters
        now = time.monotonic()
        counters.requests += 1
        if counters.last_start >= 0:
            gap = arrived - counters.last_start
            if gap < counters.min_gap:
                counters.min_gap = gap
                counters.min_gap_paths = (counters.last_path, path)
            if gap < self.spacing:
                counters.short_gaps += 1
        counters.last_start = arrived
        counters.last_path = path
        counters.active += 1
        counters.max_active = max(counters.max_active, counters.active)
        web = self.web
        if path == "/robots.txt":
            counters.robots += 1
            status, extra, body = web.answer(host.index, path)
            content_type = b"text/plain"
        else:
            self.timeline[int(now / BUCKET)] += 1
            if path.startswith("/private/"):
                counters.private += 1
            status, extra, body = web.answer(host.index, path)
            if status == 200 and web.fails_first(host.index, path) and path not in host.failed_once:
                host.failed_once.add(path)
                status, extra, body = 500, b"", b"<!doctype html><title>Error</title>\n"
            content_type = HTML_TYPE.encode()
        self.statuses[status] += 1
        head = self._heads.get((status, len(body)))
        if head is None:
            head = (
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Length: {len(body)}\r\n"
            ).encode()
            if len(self._heads) < 100_000:
                self._heads[status, len(body)] = head
        response = b"%sContent-Type: %s\r\n%s\r\n%s" % (head, content_type, extra, body)
        delay = web.delay(host.index, path) if self.latency else 0.0
        if delay > 0:
            self.delayed += 1
        return response, delay


class _Connection:
    """One keep-alive HTTP/1.1 connection: GET only, no request bodies (what crawlers send).

    Read with ``recvmsg`` rather than through an asyncio transport, for the kernel's receive
    timestamp of each request (``SO_TIMESTAMPNS``): the moment it reached this machine's TCP
    stack, however late the worker gets to read it."""

    __slots__ = (
        "_buffer", "_close_when_sent", "_closed", "_host", "_loop", "_open", "_sock", "_unsent"
    )  # fmt: skip

    def __init__(
        self,
        sock: socket.socket,
        host: _Host,
        loop: asyncio.AbstractEventLoop,
        open_connections: set[_Connection],
    ) -> None:
        self._sock = sock
        self._open = open_connections
        open_connections.add(self)
        self._host = host
        self._loop = loop
        self._buffer = b""
        self._unsent = bytearray()
        self._close_when_sent = False
        self._closed = False
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _ask_for_arrival_stamps(sock)  # inherited from the listener; asked again, to be sure
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self._sock.recvmsg(_READ_SIZE, _ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        arrived = _arrival(ancillary)
        buffer = self._buffer + data if self._buffer else data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head, buffer = buffer[:end], buffer[end + 4 :]
            line = head.partition(b"\r\n")[0]
            parts = line.split(b" ")
            if len(parts) != 3 or not parts[1].startswith(b"/"):
                self._send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", True, None)
                return
            close = b"connection: close" in head.lower()
            response, delay = self._host.worker.respond(self._host, parts[1], arrived)
            if delay > 0:
                self._loop.call_later(delay, self._send, response, close, self._host)
            else:
                self._send(response, close, self._host)
        if len(buffer) > _MAX_HEAD:
            self._send(b"HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n", True, None)
            return
        self._buffer = buffer

    def _send(self, response: bytes, close: bool, host: _Host | None) -> None:
        if host is not None:
            host.counters.active -= 1
        if self._closed:
            return
        self._close_when_sent = self._close_when_sent or close
        if self._unsent:  # the socket's buffer is full: queue behind what waits
            self._unsent += response
            return
        try:
            sent = self._sock.send(response)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(response):
            self._unsent += memoryview(response)[sent:]
            self._loop.add_writer(self._sock.fileno(), self._writable)
        elif self._close_when_sent:
            self.close()

    def _writable(self) -> None:
        try:
            sent = self._sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self._unsent[:sent]
        if not self._unsent:
            self._loop.remove_writer(self._sock.fileno())
            if self._close_when_sent:
                self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        fd = self._sock.fileno()
        self._loop.remove_reader(fd)
        if self._unsent:
            self._loop.remove_writer(fd)
        self._sock.close()
        self._open.discard(self)


_SO_TIMESTAMPNS: int | None = getattr(
    socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" else None
)
"""Linux's option (asm-generic/socket.h; Python does not export it) and its message type."""
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
_READ_SIZE = 64 * 1024


def _ask_for_arrival_stamps(sock: socket.socket) -> None:
    """Have the kernel stamp what ``sock`` receives (where it can; else :func:`_arrival` falls
    back to the read time)."""
    if _SO_TIMESTAMPNS is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """When the request reached the kernel (``CLOCK_REALTIME`` seconds), or now if the kernel
    did not say (another system, or a packet that came before timestamping was on)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds: int
            nanoseconds: int
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds + nanoseconds / 1e9
    return time.time()


class _Listener:
    """Accepts a host's connections as they come (its socket is shared with no one)."""

    def __init__(self, sock: socket.socket, host: _Host, loop: asyncio.AbstractEventLoop) -> None:
        self._sock = sock
        self._host = host
        self._loop = loop
        self.connections: set[_Connection] = set()
        sock.setblocking(False)
        # Here already, long before the first request: the kernel turns timestamping on for
        # the whole system asynchronously when a first socket asks, and packets that arrive
        # before that carry no stamp.
        _ask_for_arrival_stamps(sock)
        loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: the client sees a reset
                return
            _Connection(conn, self._host, self._loop, self.connections)

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for connection in list(self.connections):
            connection.close()


def _schedule_promptly() -> bool:
    """Ask for real-time scheduling (see the module docstring); True if granted."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError):  # not Linux, or not allowed
        return False
    return True


async def _serve(worker: _Worker, fds: list[int], hosts: list[int], realtime: bool) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for fd, index in zip(fds, hosts, strict=True):
        host = _Host(worker, index)
        worker.hosts.append(host)
        servers.append(_Listener(socket.socket(fileno=fd), host, loop))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _reply({"ready": True, "realtime": realtime})
    try:
        while line := (await reader.readline()).decode().strip():
            if line.startswith("reset"):  # reset [SPACING [LATENCY: 1 on, 0 off]]
                args = line.split()[1:]
                spacing = float(args[0]) if args else 0.0
                worker.reset(spacing, latency=args[1:] != ["0"])
                _reply({"ok": True})
            elif line == "stats":
                _reply(worker.stats())
            else:  # "quit" or anything unknown: stop
                break
    finally:
        for server in servers:
            server.close()


def _reply(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def _worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.bench.server")
    parser.add_argument("--setup", required=True, help="JSON file: spec and ports")
    parser.add_argument("--fds", required=True, help="comma-separated listening sockets")
    parser.add_argument("--hosts", required=True, help="comma-separated host numbers")
    args = parser.parse_args(argv)
    setup = json.loads(Path(args.setup).read_text())
    web = Web(WebSpec(**setup["spec"]), setup["ports"])
    fds = [int(fd) for fd in args.fds.split(",")]
    hosts = [int(h) for h in args.hosts.split(",")]
    realtime = _schedule_promptly()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(_Worker(web), fds, hosts, realtime))
    return 0


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
        return None
    return uvloop.new_event_loop


def raise_fd_limit(wanted: int) -> None:
    """Raise this process's open-file limit towards ``wanted`` (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class SyntheticWeb:
    """The servers for one :class:`WebSpec`: ``with SyntheticWeb(spec) as web:``.

    Leaving the block stops every worker (asked, then killed), also on errors and Ctrl-C.
    """

    def __init__(self, spec: WebSpec, workers: int | None = None) -> None:
        self.spec = spec
        self.workers = max(1, min(workers or os.cpu_count() or 1, spec.hosts))
        self.web: Web | None = None
        self._procs: list[subprocess.Popen[str]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.realtime = False
        """Whether every worker got real-time scheduling (module docstring)."""

    @property
    def seeds(self) -> list[str]:
        assert self.web is not None, "not started"
        return self.web.seeds()

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def __enter__(self) -> SyntheticWeb:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self) -> None:
        spec = self.spec
        raise_fd_limit(spec.hosts + 20_000)
        socks = []
        try:
            for _ in range(spec.hosts):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind(("127.0.0.1", 0))
                sock.listen(4096)
                sock.set_inheritable(True)
                socks.append(sock)
            ports = [sock.getsockname()[1] for sock in socks]
            self.web = Web(spec, ports)
            self._tmp = tempfile.TemporaryDirectory(prefix="crawl-bench-web-")
            setup = Path(self._tmp.name) / "setup.json"
            setup.write_text(json.dumps({"spec": asdict(spec), "ports": ports}))
            for k in range(self.workers):
                mine = list(range(k, spec.hosts, self.workers))
                fds = [socks[h].fileno() for h in mine]
                self._procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "crawler.bench.server",
                            "--setup",
                            str(setup),
                            "--fds",
                            ",".join(map(str, fds)),
                            "--hosts",
                            ",".join(map(str, mine)),
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                        pass_fds=fds,
                    )
                )
        finally:
            for sock in socks:  # the workers hold their own copies now
                sock.close()
        ready = [self._read(proc, STARTUP_TIMEOUT) for proc in self._procs]
        self.realtime = all(answer.get("realtime") for answer in ready)

    def reset(self, spacing: float = 0.0, latency: bool = True) -> None:
        """Zero the counters (between two crawlers' runs); gaps between two requests to one
        host shorter than ``spacing`` seconds are counted from now on, and answers wait the
        spec's latency unless ``latency`` is off."""
        for proc in self._procs:
            self._send(proc, f"reset {spacing!r} {int(latency)}")
        for proc in self._procs:
            self._read(proc, CONTROL_TIMEOUT)

    def stats(self) -> ServerStats:
        """The counters since the last reset, merged over the workers."""
        for proc in self._procs:
            self._send(proc, "stats")
        total = ServerStats()
        statuses: Counter[str] = Counter()
        timeline: Counter[int] = Counter()
        gaps: list[tuple[float, tuple[str, str]]] = []
        for proc in self._procs:
            part = self._read(proc, CONTROL_TIMEOUT)
            total.pages += part["pages"]
            total.robots += part["robots"]
            total.private += part["private"]
            total.hosts_seen += part["hosts_seen"]
            total.cpu_seconds += part["cpu_seconds"]
            total.delayed += part["delayed"]
            total.max_active_per_host = max(total.max_active_per_host, part["max_active_per_host"])
            total.short_gaps += part["short_gaps"]
            if part["min_gap_per_host"] is not None:
                earlier, later = part["min_gap_paths"]
                gaps.append((part["min_gap_per_host"], (earlier, later)))
            statuses.update(part["statuses"])
            timeline.update({int(k): v for k, v in part["timeline"].items()})
        if gaps:
            total.min_gap_per_host, total.min_gap_paths = min(gaps)
        total.statuses = dict(sorted(statuses.items()))
        total.timeline = dict(sorted(timeline.items()))
        return total

    def close(self) -> None:
        """Stop every worker: ``quit``, then SIGTERM, then SIGKILL. Idempotent."""
        procs, self._procs = self._procs, []
        for proc in procs:
            with contextlib.suppress(OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.close()  # end of stdin stops the worker
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @staticmethod
    def _send(proc: subprocess.Popen[str], command: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(command + "\n")
        proc.stdin.flush()

    @staticmethod
    def _read(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
        stream: IO[str] | None = proc.stdout
        assert stream is not None
        # poll, not select: with thousands of hosts the ports this process reserves push the
        # pipes' descriptors past select's limit of 1024 (the broad scenario).
        poller = select.poll()
        poller.register(stream, select.POLLIN)
        line = stream.readline() if poller.poll(timeout * 1000) else ""
        if not line:
            raise RuntimeError(
                f"synthetic web worker {proc.pid} did not answer within {timeout:g}s "
                f"(exit code {proc.poll()})"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
