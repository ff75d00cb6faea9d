"""The synthetic web's own ceiling, measured with a bare client that does nothing but ask:
``python -m crawler.bench.loadgen URLS.json SECONDS CONNECTIONS``, printing JSON.

Keep-alive connections, one request at a time each, responses framed by Content-Length and
thrown away. With the server's CPU time over the same window this gives what one server core
can serve, to set beside what the crawlers reach: the server must not be what limits them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import sys
import time
from pathlib import Path
from typing import cast


class _Client(asyncio.Protocol):
    """One keep-alive connection asking for ``paths`` at random until ``deadline``."""

    def __init__(self, host: str, paths: list[str], deadline: float, done: asyncio.Future[int]):
        self._host = host.encode()
        self._paths = paths
        self._deadline = deadline
        self._done = done
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._need = -1
        self._rng = random.Random(hash(host))
        self.answers = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are only alike
        self._ask()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_result(self.answers)

    def _ask(self) -> None:
        assert self._transport is not None
        if time.monotonic() >= self._deadline:
            self._transport.close()
            return
        path = self._rng.choice(self._paths).encode()
        self._transport.write(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, self._host))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if self._need < 0:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self._buffer[:end].lower()
                start = head.find(b"content-length:") + len(b"content-length:")
                length = int(head[start : head.find(b"\r\n", start)].strip() or b"0")
                self._buffer = self._buffer[end + 4 :]
                self._need = length
            if len(self._buffer) < self._need:
                return
            self._buffer = self._buffer[self._need :]
            self._need = -1
            self.answers += 1
            self._ask()


async def _load(urls: list[str], seconds: float, connections: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + seconds
    origins = sorted({url.split("/", 3)[2] for url in urls})
    paths = ["/" + url.split("/", 3)[3] for url in urls]
    futures: list[asyncio.Future[int]] = []
    for k in range(connections):
        host, _, port = origins[k % len(origins)].partition(":")
        done: asyncio.Future[int] = loop.create_future()
        futures.append(done)
        await loop.create_connection(
            functools.partial(_Client, f"{host}:{port}", paths, deadline, done),
            host,
            int(port),
        )
    started = time.monotonic()
    async with asyncio.timeout(seconds + 10):
        answers = sum(await asyncio.gather(*futures))
    elapsed = time.monotonic() - started
    return {"requests": answers, "seconds": elapsed, "per_second": answers / elapsed}


def main(argv: list[str]) -> int:
    urls_path, seconds, connections = argv
    urls = json.loads(Path(urls_path).read_text())
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover
        runner = asyncio.Runner()
    with runner:
        result = runner.run(_load(urls, float(seconds), int(connections)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
