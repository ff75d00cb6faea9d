"""Reading a response body up to the size cap, decoding its Content-Encoding on the way.

The body is decoded here, not by httpx, so that decompression itself stops at the cap
(``fetch.max_body_bytes``): a gzip bomb costs at most the cap, never what it would inflate to.
It sees only the raw bytes, not the HTTP library. Only gzip and deflate can be stopped so (the
client asks for no other: ``ACCEPT_ENCODING`` in :mod:`crawler.fetch.headers`); a body in any other
encoding (br, zstd, ...) is refused unread (:class:`UnsupportedEncoding`).

A download's body (:mod:`crawler.fetch.downloads`) gets its SHA-256 here too, of the bytes kept:
a body cut at the cap has the digest of what was kept, as its size is of what was kept. It is
taken chunk by chunk as they are decoded, on the event loop, because that is cheap: SHA-256 runs
at ~1.8 GB/s on the machines measured (0.55 ms a MB, with the CPU's SHA extensions), about half
of what inflating the same megabyte of gzip costs here, so a chunk holds the loop a little
longer than reading it already does, and never for long; a hop to a thread costs ~45 us of the
loop's own time per call (``asyncio.to_thread``, measured), as much as hashing 80 KB.

HTML bodies are not digested. Hashing them would cost the loop ~11 us per 20 KB page, 1-2% of
its share of a page on the benchmark's single-host scenario, where the loop is what bounds the
crawl; measured there side by side (``crawl bench -s single-host``, CPU seconds per 1,000
pages, two runs each on a busy machine): 0.95, 0.92 before downloads existed, 0.92, 0.94 with
them, 0.98, 0.95 with HTML digested too: within the noise, but never free, for a digest few
crawls of pages ask for.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from crawler.errors import InvalidResponse


class UnsupportedEncoding(InvalidResponse):
    reason = "unsupported_encoding"


@dataclass(frozen=True, slots=True)
class CappedBody:
    """A body as read by :func:`read_capped`."""

    data: bytes
    truncated: bool
    """There was more than the cap."""
    notes: tuple[str, ...]
    """``truncated_encoding`` when a compressed stream ended early."""
    sha256: str | None
    """The SHA-256 of ``data``, lower-case hex, when asked for (``digest``); else None."""


async def read_capped(
    raw_body: AsyncIterator[bytes], encoding: str, cap: int, *, digest: bool = False
) -> CappedBody:
    """Read and decode (from Content-Encoding ``encoding``) ``raw_body``, the body as it came
    off the wire, up to ``cap`` decoded bytes; with ``digest``, their SHA-256 too."""
    decoder = _Decoder(encoding)
    kept = _Kept(cap, hashlib.sha256() if digest else None)
    async for raw in raw_body:
        # One byte over the cap tells "more".
        if kept.add(decoder.decode(raw, kept.room + 1)):
            return kept.body(())
    if kept.add(decoder.flush(kept.room + 1)):
        return kept.body(())
    return kept.body(() if decoder.complete else ("truncated_encoding",))


class _Kept:
    """The decoded chunks that fit in the cap, and their digest, taken as they come."""

    def __init__(self, cap: int, sha256: hashlib._Hash | None) -> None:
        self.room = cap
        self._chunks: list[bytes] = []
        self._sha256 = sha256
        self._over = False

    def add(self, chunk: bytes) -> bool:
        """Keep what of ``chunk`` fits; True once the body was more than the cap."""
        if len(chunk) > self.room:
            chunk = chunk[: self.room]
            self._over = True
        self.room -= len(chunk)
        self._chunks.append(chunk)
        if self._sha256 is not None:
            self._sha256.update(chunk)
        return self._over

    def body(self, notes: tuple[str, ...]) -> CappedBody:
        sha256 = None if self._sha256 is None else self._sha256.hexdigest()
        return CappedBody(b"".join(self._chunks), self._over, notes, sha256)


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
