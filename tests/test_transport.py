"""The aiohttp transport's head tidying (crawler.fetch.transport.tidy_heads): pure, byte for byte.
The same cases over real connections are in tests/test_fetch_wire.py."""

from __future__ import annotations

import pytest

from crawler.fetch.transport import tidy_heads

FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # Nothing to tidy: returned as it is.
        (FINAL, (FINAL, False)),
        (b"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n" + FINAL,
         (b"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n" + FINAL, False)),
        (b"<p>not a head</p>", (b"<p>not a head</p>", False)),
        # Interim heads lose what aiohttp would take for the end of the connection.
        (b"HTTP/1.1 103 Early Hints\r\nConnection: close\r\nLink: <a>\r\n\r\n" + FINAL,
         (b"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n" + FINAL, False)),
        (b"HTTP/1.1 100 Continue\r\nCONNECTION: Close\r\n\r\n" + FINAL,
         (b"HTTP/1.1 100 Continue\r\n\r\n" + FINAL, False)),
        (b"HTTP/1.0 100 Continue\r\n\r\n" + FINAL,
         (b"HTTP/1.1 100 Continue\r\n\r\n" + FINAL, False)),
        # The final response's own Connection header is its own business.
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhi",
         (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhi", False)),
        # Only interim heads so far: the next packet starts a head too.
        (b"HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\n",
         (b"HTTP/1.1 103 Early Hints\r\n\r\n", True)),
        # A bodiless status keeps its head and loses the body it may not have.
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
         (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", False)),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\nstray",
         (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n", False)),
        (b"HTTP/1.1 204 No Content\r\n\r\n", (b"HTTP/1.1 204 No Content\r\n\r\n", False)),
        # A head split across packets is aiohttp's to assemble, untouched.
        (b"HTTP/1.1 103 Early Hints\r\nConnection: cl",
         (b"HTTP/1.1 103 Early Hints\r\nConnection: cl", False)),
    ],
)  # fmt: skip
def test_tidy_heads(data: bytes, expected: tuple[bytes, bool]) -> None:
    assert tidy_heads(data) == expected
