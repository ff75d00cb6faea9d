"""A small HTTP forward proxy for the tests: a :class:`~tests.servers.TestServer` whose handler
forwards each absolute-form request (``GET http://host:port/path``) to its target and relays
the target's answer byte for byte.

Its requests are the server's bookkeeping (``proxy.requests()``: absolute-form targets, the
``Proxy-Authorization`` each carried). It answers 407 when ``credentials`` are set and a
request carries others. It forwards neither ``Proxy-*`` headers nor the client's
``Connection``, and adds ``Via: 1.1 test-proxy`` (RFC 9110 7.6.3): the target sees the proxy's
connection, closed after one answer.

``CONNECT host:port`` (an https target's request) opens a tunnel: the proxy connects to the
target, answers 200 and copies bytes both ways until each side has finished, seeing only
TLS records; the CONNECT itself (its target and headers) is in ``proxy.requests()``.
``refuse_connect``: every CONNECT is answered 502, as a proxy that may not reach the target.
"""

from __future__ import annotations

import asyncio
import base64
from asyncio import StreamReader, StreamWriter
from urllib.parse import urlsplit

from tests.servers import Reply, Request, TestServer, error_reply

_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authorization", "proxy-connection"))


class TestProxy(TestServer):
    """Forwards what it is sent; ``credentials`` (``user:password``): required of every
    request, as basic ``Proxy-Authorization``."""

    __test__ = False
    methods = frozenset(("GET", "HEAD", "CONNECT"))

    def __init__(
        self,
        *,
        host: str = "127.0.0.9",
        credentials: str | None = None,
        refuse_connect: bool = False,
    ) -> None:
        super().__init__(self._forward, host=host)
        self._refuse_connect = refuse_connect
        self._expected = (
            None
            if credentials is None
            else "Basic " + base64.b64encode(credentials.encode()).decode()
        )

    async def _forward(self, request: Request) -> Reply:
        if self._expected is not None and request.headers.get("proxy-authorization") != (
            self._expected
        ):
            return error_reply(407, ("Proxy-Authenticate", 'Basic realm="test proxy"'))
        if request.method == "CONNECT":
            return await self._connect(request.target)
        target = urlsplit(request.target)
        if target.scheme != "http" or target.hostname is None:
            return error_reply(400)
        reader, writer = await asyncio.open_connection(target.hostname, target.port or 80)
        try:
            path = target.path or "/"
            if target.query:
                path = f"{path}?{target.query}"
            lines = [f"{request.method} {path} HTTP/1.1"]
            lines += [
                f"{name}: {value}"
                for name, value in request.headers.items()
                if name not in _HOP_BY_HOP
            ]
            lines += ["Via: 1.1 test-proxy", "Connection: close"]  # RFC 9110 7.6.3
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            # The target closes after its answer (Connection: close), which then goes on as
            # it came, framed by its own Content-Length.
            return await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()

    async def _connect(self, authority: str) -> Reply:
        host, _, port = authority.rpartition(":")
        if self._refuse_connect or not port.isdigit():
            return error_reply(502)
        try:
            target_reader, target_writer = await asyncio.open_connection(host.strip("[]"), port)
        except OSError:
            return error_reply(502)

        async def tunnel(reader: StreamReader, writer: StreamWriter) -> None:
            try:
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await writer.drain()
                async with asyncio.TaskGroup() as group:
                    group.create_task(_copy(reader, target_writer))
                    group.create_task(_copy(target_reader, writer))
            finally:
                target_writer.close()
                await target_writer.wait_closed()

        return tunnel


async def _copy(reader: StreamReader, writer: StreamWriter) -> None:
    """One direction of a tunnel: what ``reader`` receives goes to ``writer`` until its end,
    which is passed on (half-close), so the other direction can still finish."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        writer.close()  # a reset on one side ends the other's too
