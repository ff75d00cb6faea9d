"""Reading a response body up to the size cap, decoding its Content-Encoding on the way.

The body is decoded here, not by httpx, so that decompression itself stops at the cap
(``fetch.max_body_bytes``): a gzip bomb costs at most the cap, never what it would inflate to.
It sees only the raw bytes, not the HTTP library. Only gzip and deflate can be stopped so (the
client asks for no other: ``ACCEPT_ENCODING`` in :mod:`crawler.fetch.headers`); a body in any other
encoding (br, zstd, ...) is refused unread (:class:`UnsupportedEncoding`).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from crawler.errors import InvalidResponse


class UnsupportedEncoding(InvalidResponse):
    reason = "unsupported_encoding"


async def read_capped(
    raw_body: AsyncIterator[bytes], encoding: str, cap: int
) -> tuple[bytes, bool, tuple[str, ...]]:
    """Read and decode (from Content-Encoding ``encoding``) ``raw_body``, the body as it came
    off the wire, up to ``cap`` decoded bytes.

    Returns the body, whether there was more, and notes (``truncated_encoding`` when a
    compressed stream ended early)."""
    decoder = _Decoder(encoding)
    chunks: list[bytes] = []
    size = 0
    async for raw in raw_body:
        chunk = decoder.decode(raw, cap - size + 1)  # one byte over the cap tells "more"
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True, ()
    chunks.append(decoder.flush(cap - size + 1))
    body = b"".join(chunks)
    if len(body) > cap:
        return body[:cap], True, ()
    return body, False, () if decoder.complete else ("truncated_encoding",)


class _Decoder:
    """Content-Encoding decoding whose output per call is bounded (``max_length``): the
    decompressor keeps the rest of its input, so memory never exceeds the cap by much."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        self._first = True
        self._maybe_raw = False
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
            self._maybe_raw = True  # many servers send raw deflate without the zlib header
        else:
            raise UnsupportedEncoding(f"Content-Encoding {encoding!r} was not asked for")

    def decode(self, data: bytes, max_length: int) -> bytes:
        if self._zlib is None:
            return data
        data = self._zlib.unconsumed_tail + data  # what an earlier bounded call held back
        try:
            out = self._zlib.decompress(data, max_length)
        except zlib.error as exc:
            if self._first and self._maybe_raw:
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                self._first = False
                return self.decode(data, max_length)
            raise InvalidResponse(f"bad compressed body: {exc}") from None
        self._first = False
        return out

    def flush(self, max_length: int) -> bytes:
        if self._zlib is None:
            return b""
        # Input held back by max_length is in unconsumed_tail; give it a last bounded chance.
        tail = self._zlib.unconsumed_tail
        return self._zlib.decompress(tail, max_length) if tail else self._zlib.flush()

    @property
    def complete(self) -> bool:
        return self._zlib is None or self._zlib.eof
