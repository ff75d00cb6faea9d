"""A deliberately hostile local website: one endpoint per way a server can hurt a crawler.

`with HostileSite() as site:` serves it on 127.0.0.1 from a background thread with its own
event loop, on the tests' server core (tests/servers.py), which writes raw bytes because most
endpoints break HTTP on purpose (wrong lengths, malformed chunks, resets, byte-at-a-time
headers) and a library would refuse.

`ENDPOINTS` maps a concrete, requestable path for every case to a one-line description;
`index_paths()` is what `/` links to and `trap_paths()` what `/traps/` links to. Pages that only
exist as the target of some other case (`LINK_TARGETS`) are deliberately NOT linked from `/`:
linking `/meta/not-followed` from the index would let a crawler reach it without ignoring
`nofollow`, and linking `/links/sub/rel` would hide a broken `<base href>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import fcntl
import gzip
import hashlib
import html
import importlib
import importlib.util
import math
import random
import re
import socket
import struct
import termios
import threading
import time
import zlib
from asyncio import StreamReader, StreamWriter
from collections import Counter
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Literal
from urllib.parse import parse_qsl, quote

from crawler.demo import canonical_path
from tests.servers import HOST, Pace, Reply, Request, Response, TestServer, head

HTML_TYPE = "text/html; charset=utf-8"

# Bombs: 1 GiB of spaces once inflated. Built from one 1 MiB block (see `_raw_deflate_bomb`).
BOMB_SIZE = 1 << 30
BOMB_BLOCK = 1 << 20
# brotli and zstandard are optional (not crawler dependencies). Without them the br/zstd
# endpoints send seeded random bytes that merely claim the encoding; with them, real bombs.
BROTLI_BOMB_IS_REAL = importlib.util.find_spec("brotli") is not None
ZSTD_BOMB_IS_REAL = importlib.util.find_spec("zstandard") is not None
FAKE_BOMB_SIZE = 64 * 1024
BINARY_SIZE = 200_000
SLOW_HEADER_INTERVAL = 0.5  # seconds between bytes of /time/slow-headers' status line+headers
SLOW_HEADER_LIMIT = 60.0  # give up trickling headers after this long
SLOW_BODY_INTERVAL = 0.2
SLOW_BODY_LENGTH = 100_000
RESET_BODY_SENT = 1_000
RETRY_AFTER_SECONDS = 2
RETRY_AFTER_DAY = 86400  # /rate/retry-after-day: far above any sane politeness.max_retry_after
CORNER_PAGES = 200  # /corner/N: a site of good pages...
CORNER_BROKEN_EVERY = 5  # ...where every fifth inner page links its own always-503 URL
CORNER_RETRY_AFTER = 1
SESSION_PAGES = ("home", "products", "about")
CALENDAR_START = "2024-01-01"

# Endless, stalled and slow responses end when the client leaves or the server stops; this cap
# only guarantees no loop here runs unbounded if a test leaks a connection.
_MAX_STREAM_SECONDS = 300.0
_MAX_READS = 100_000  # bound on the reads of a stalled connection (it is time-capped anyway)
_ACK_POLLS = 5_000  # /time/reset-mid-body waits at most this many polls for the client's ACK
_ACK_POLL_INTERVAL = 0.001
_ENDLESS_CHUNK = b"<p>" + b"x" * 16_000 + b"</p>\n"
_NUMBER = r"(0|[1-9][0-9]{0,8})"  # no leading zeros (one spelling per page), bounded size

Where = Literal["index", "traps", "target", "corner", "unlinked"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Endpoint:
    path: str
    where: Where  # which page links it: `/`, `/traps/`, another case, /corner/0, or none
    description: str


_ENDPOINTS = (
    _Endpoint("/", "unlinked", "HTML index linking every non-trap case, plus /traps/"),
    _Endpoint("/robots.txt", "unlinked", "body from HostileSite.robots_txt (None -> 404)"),
    _Endpoint("/redirect/chain/20", "index", "302 to /redirect/chain/N-1; N=0 is 200 'chain end'"),
    _Endpoint("/redirect/loop/a", "index", "302 /redirect/loop/b, which 302s back to a"),
    _Endpoint("/redirect/self", "index", "302 to itself"),
    _Endpoint("/redirect/offsite", "index", "302 to http://offsite.invalid/page (off scope)"),
    _Endpoint("/redirect/scheme", "index", "302 to ftp://127.0.0.1/file"),
    _Endpoint("/redirect/nolocation", "index", "302 with no Location header"),
    _Endpoint("/redirect/private", "index", "302 to http://10.0.0.1/secret (SSRF: never connect)"),
    _Endpoint(
        "/redirect/loopback", "index", "302 to http://localhost:PORT/links/target (this server)"
    ),
    _Endpoint("/body/gzip-bomb", "index", "gzip of 1 GiB of spaces, ~1 MB on the wire"),
    _Endpoint("/body/deflate-bomb", "index", "zlib-wrapped deflate of 1 GiB of spaces"),
    _Endpoint(
        "/body/br-bomb", "index", "unasked-for br: bomb if brotli imports, else 64 KiB noise"
    ),
    _Endpoint(
        "/body/zstd-bomb", "index", "unasked-for zstd: bomb if zstandard imports, else noise"
    ),
    _Endpoint("/body/endless", "index", "chunked HTML that never ends"),
    _Endpoint("/body/wrong-length-short", "index", "Content-Length 10000, 100 bytes, close"),
    _Endpoint("/body/wrong-length-long", "index", "Content-Length 50, 5000 bytes sent"),
    _Endpoint("/body/no-length", "index", "HTML with no length or chunking, ends at close"),
    _Endpoint("/body/broken-chunked", "index", "one good chunk, then chunk size line 'zz'"),
    _Endpoint("/body/truncated-gzip", "index", "first half of a gzip body, honest length"),
    _Endpoint("/body/binary-as-html", "index", "200 KB of random bytes labelled text/html"),
    # Unlinked: a crawl from / would spend the whole parse deadline on it.
    _Endpoint("/body/deep-nesting", "unlinked", "150,000 nested <div>s: ~40 s for lexbor"),
    _Endpoint("/time/slow-headers", "index", "status line and headers one byte per 0.5 s"),
    _Endpoint("/time/slow-body", "index", "Content-Length 100000, one body byte per 0.2 s"),
    _Endpoint("/time/stall", "index", "reads the request, never answers"),
    _Endpoint("/time/reset-mid-body", "index", "1000 of 100000 body bytes, then TCP RST"),
    _Endpoint("/rate/retry-after-seconds", "index", "429 Retry-After: 2 twice, then 200"),
    _Endpoint("/rate/retry-after-date", "index", "503 Retry-After: <HTTP-date +2 s>, then 200"),
    _Endpoint("/rate/always-503", "index", "503 forever, no Retry-After"),
    # Unlinked: a crawl reaching it gives up on the whole host for the run.
    _Endpoint("/rate/retry-after-day", "unlinked", "429 Retry-After: 86400 forever"),
    _Endpoint("/rate/flaky/1", "index", "500 twice per N of /rate/flaky/N, then 200"),
    _Endpoint("/charset/header-vs-meta", "index", "header utf-8, meta windows-1251, UTF-8 body"),
    _Endpoint("/charset/unknown", "index", "charset=x-no-such-charset"),
    _Endpoint("/charset/invalid-bytes", "index", "utf-8 declared, title has bytes ff fe"),
    _Endpoint("/charset/bom", "index", "UTF-16LE with BOM, header claims utf-8"),
    _Endpoint("/links/schemes", "index", "javascript:, mailto:, data:, tel:, file: + one link"),
    _Endpoint("/links/idn", "index", "link to http://bücher.example/x"),
    _Endpoint("/links/long", "index", "link to /links/target? + 5000 'a's"),
    _Endpoint("/links/base", "index", '<base href="/links/sub/"> then href="rel"'),
    _Endpoint("/links/dups", "index", "six spellings of /links/target"),
    _Endpoint(
        "/links/userinfo", "index", "link to http://user:pw@127.0.0.1:PORT/links/from-userinfo"
    ),
    _Endpoint("/links/arbitrary", "unlinked", "links HostileSite.arbitrary_hrefs (set by a test)"),
    _Endpoint("/private/secret", "index", "disallowed by the default robots.txt"),
    _Endpoint("/meta/noindex", "index", "meta robots noindex; links /meta/from-noindex"),
    _Endpoint("/meta/nofollow", "index", "meta robots nofollow; links /meta/not-followed"),
    _Endpoint("/meta/x-robots-tag", "index", "X-Robots-Tag: noindex, nofollow header"),
    _Endpoint("/meta/rel-nofollow", "index", 'a rel="nofollow" to /meta/rel-target'),
    _Endpoint("/meta/canonical", "index", "link rel=canonical to /links/target"),
    _Endpoint("/traps/", "index", "index of the crawler traps below"),
    _Endpoint("/links/target", "target", "plain page (from schemes, long, dups, canonical)"),
    _Endpoint("/links/sub/rel", "target", "plain page, reached only through <base>"),
    _Endpoint("/links/from-userinfo", "target", "plain page, linked only with user info"),
    _Endpoint("/meta/from-noindex", "target", "plain page linked from the noindex page"),
    _Endpoint("/meta/not-followed", "target", "plain page linked only with meta nofollow"),
    _Endpoint("/meta/not-followed-header", "target", "linked only under X-Robots-Tag nofollow"),
    _Endpoint("/meta/rel-target", "target", 'linked only with rel="nofollow"'),
    _Endpoint(f"/traps/calendar?date={CALENDAR_START}", "traps", "links the next and previous day"),
    _Endpoint("/traps/session/home", "traps", "links 3 pages, each time with a new ?sid="),
    _Endpoint("/traps/jsession/home", "traps", "links 3 pages with a new ;jsessionid= each time"),
    _Endpoint("/traps/deep/a", "traps", "links itself and itself plus one more segment"),
    _Endpoint("/traps/repeat/x", "traps", "links itself + /x and + /y (x/y/x/y/...)"),
    _Endpoint("/traps/query?a=1", "traps", "links one more query parameter and permutations"),
    _Endpoint("/traps/numbered/0", "traps", "/traps/numbered/N links N+1 and N+2"),
    # A site with a broken corner: 200 good pages, /corner/N linking 2N+1 and 2N+2; while
    # HostileSite.corner_broken, every fifth inner page (N < 100: those that have children)
    # also links its /corner/broken/N (20 in all), and /corner/1 and /corner/2 each one of
    # the connections that end before any response.
    _Endpoint("/corner/0", "unlinked", "/corner/N (N < 200): a good page of the corner site"),
    _Endpoint("/corner/broken/0", "corner", "503 Retry-After: 1 forever, any /corner/broken/N"),
    _Endpoint("/time/reset-before-response", "corner", "reads the request, then TCP RST"),
    _Endpoint("/time/empty-reply", "corner", "reads the request, then closes: no byte sent"),
)
ENDPOINTS: dict[str, str] = {e.path: e.description for e in _ENDPOINTS}
LINK_TARGETS: tuple[str, ...] = tuple(e.path for e in _ENDPOINTS if e.where == "target")


def index_paths() -> list[str]:
    """The hrefs of `/`, in page order: every case except traps and link targets, and /traps/."""
    return [e.path for e in _ENDPOINTS if e.where == "index"]


def trap_paths() -> list[str]:
    """The hrefs of `/traps/`: one entry point per infinite URL space."""
    return [e.path for e in _ENDPOINTS if e.where == "traps"]


def corner_paths() -> list[str]:
    """The broken corner's cases (linked from the corner site while it is broken)."""
    return [e.path for e in _ENDPOINTS if e.where == "corner"]


# ---------------------------------------------------------------------------------------------
# Bodies that are expensive or fiddly to build, computed once per process.


def _raw_deflate_bomb() -> bytes:
    """Raw deflate of BOMB_SIZE spaces, built from one compressed block repeated.

    Compressing the full GiB takes ~6 s; instead compress one block and end it with a full flush,
    which byte-aligns the output and resets the dictionary, so every later block compresses to
    exactly the same bytes. Repeating them is a valid stream (~1 KB per MiB, ~1 MB in all).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b" " * BOMB_BLOCK) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * (BOMB_SIZE // BOMB_BLOCK) + compressor.flush(zlib.Z_FINISH)


def _checksums_of_spaces() -> tuple[int, int]:
    """(crc32, adler32) of BOMB_SIZE spaces, for the gzip and zlib trailers (~0.5 s)."""
    buffer = b" " * (16 * BOMB_BLOCK)
    crc, adler = 0, 1
    for _ in range(BOMB_SIZE // len(buffer)):
        crc = zlib.crc32(buffer, crc)
        adler = zlib.adler32(buffer, adler)
    return crc, adler


def _optional_bomb(module_name: str, seed: int) -> bytes:
    if module_name == "brotli" and BROTLI_BOMB_IS_REAL:
        brotli = importlib.import_module("brotli")
        # Quality 1 is ~7x faster than 5 here and still ~5000:1 on a run of spaces.
        br = brotli.Compressor(quality=1)
        parts = [bytes(br.process(b" " * BOMB_BLOCK)) for _ in range(BOMB_SIZE // BOMB_BLOCK)]
        return b"".join(parts) + bytes(br.finish())
    if module_name == "zstandard" and ZSTD_BOMB_IS_REAL:
        zstandard = importlib.import_module("zstandard")
        # Declaring the size in the frame header is honest: a defence may check it up front.
        zc = zstandard.ZstdCompressor(level=3).compressobj(size=BOMB_SIZE)
        parts = [bytes(zc.compress(b" " * BOMB_BLOCK)) for _ in range(BOMB_SIZE // BOMB_BLOCK)]
        return b"".join(parts) + bytes(zc.flush())
    return random.Random(seed).randbytes(FAKE_BOMB_SIZE)


@dataclasses.dataclass(frozen=True, slots=True)
class Bombs:
    gzip: bytes
    deflate: bytes
    br: bytes
    zstd: bytes


_bombs: Bombs | None = None
_bombs_lock = threading.Lock()


def bombs() -> Bombs:
    """The compressed bomb bodies, built on first use and then shared by every HostileSite."""
    global _bombs
    with _bombs_lock:
        if _bombs is None:
            raw = _raw_deflate_bomb()
            crc, adler = _checksums_of_spaces()
            # gzip: magic, CM=deflate, no flags, mtime 0, XFL=2 (max compression), OS=unix.
            gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03" + raw
            gz += struct.pack("<II", crc, BOMB_SIZE & 0xFFFFFFFF)
            # zlib: CMF 0x78 (deflate, 32K window), FLG 0xDA (level 9, header checksum ok).
            deflate = b"\x78\xda" + raw + struct.pack(">I", adler)
            _bombs = Bombs(
                gzip=gz,
                deflate=deflate,
                br=_optional_bomb("brotli", 2),
                zstd=_optional_bomb("zstandard", 3),
            )
        return _bombs


def _page(
    title: str,
    hrefs: Iterable[str] = (),
    *,
    head: str = "",
    body: str = "",
    meta_charset: str | None = "utf-8",
) -> str:
    charset = f'<meta charset="{meta_charset}">' if meta_charset else ""
    links = "".join(f'<li><a href="{html.escape(h)}">{html.escape(h)}</a></li>\n' for h in hrefs)
    return (
        f"<!doctype html>\n<html><head>{charset}<title>{html.escape(title)}</title>{head}</head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n<ul>\n{links}</ul>\n{body}</body></html>\n"
    )


def _html(title: str, hrefs: Iterable[str] = (), **kwargs: str) -> Response:
    return 200, {"Content-Type": HTML_TYPE}, _page(title, hrefs, **kwargs).encode()


def _redirect(location: str | None) -> Response:
    headers = {"Content-Type": HTML_TYPE}
    if location is not None:
        headers["Location"] = location
    return 302, headers, _page("Found", [location] if location else []).encode()


def _padded(title: str, size: int) -> bytes:
    """An HTML page of exactly `size` bytes, so a client that waits for it all gets valid HTML."""
    start = f"<!doctype html>\n<html><head><title>{title}</title></head><body><p>".encode()
    end = b"</p></body></html>\n"
    return start + b"x" * (size - len(start) - len(end)) + end


def _truncated_gzip_page() -> tuple[bytes, bytes]:
    """(full gzip, first half): varied text so the cut lands mid-stream, not in the trailer."""
    rng = random.Random(4)
    words = ["crawler", "hostile", "gzip", "stream", "cut", "half", "bytes", "page", "end"]
    paragraphs = "".join(f"<p>{' '.join(rng.choices(words, k=40))}</p>\n" for _ in range(200))
    full = gzip.compress(_page("truncated gzip", body=paragraphs).encode(), mtime=0)
    return full, full[: len(full) // 2]


TRUNCATED_GZIP_FULL, TRUNCATED_GZIP_BODY = _truncated_gzip_page()
BINARY_BODY = random.Random(1).randbytes(BINARY_SIZE)
DEEP_NESTING_BODY = b"<!doctype html><title>deep</title>" + b"<div>" * 150_000 + b"x"
SHORT_BODY = _padded("wrong length short", 1000)[:100]
LONG_BODY = _padded("wrong length long", 5000)
SLOW_BODY = _padded("slow body", SLOW_BODY_LENGTH)
NO_LENGTH_BODY = _page("no length", ["/links/target"]).encode()
BROKEN_CHUNK = b"<!doctype html>\n<html><head><title>broken chunked</title></head><body>\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _client_gone(reader: StreamReader, writer: StreamWriter) -> bool:
    # EOF: the client closed its side. is_closing: a write already failed (reset, broken pipe).
    return reader.at_eof() or writer.is_closing()


def _unacknowledged_bytes(sock: socket.socket) -> int:
    """Bytes in the socket's send queue that the peer has not acknowledged (Linux SIOCOUTQ)."""
    queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return int(struct.unpack("i", queued)[0])


def _session_id(n: int, length: int = 16) -> str:
    # Random-looking yet reproducible, so each response's ids are new but a test can recompute.
    return hashlib.sha256(str(n).encode()).hexdigest()[:length]


def _next_param(index: int) -> str:
    return chr(ord("a") + index) if index < 26 else f"p{index}"


class HostileSite(TestServer):
    """Serves the hostile endpoints; `with HostileSite() as site:` runs it on its own thread.

    Bookkeeping methods may be called from any thread. `robots_txt`, `robots_status` and
    `arbitrary_hrefs` may be set at any time; they are not touched by `reset()`, which clears
    only what requests changed. Neither is `corner_broken`: False serves the corner site without
    its broken corner. `wall_clock` (Unix time) dates the Retry-After of /rate/retry-after-date;
    `pace` is how /time/slow-headers and /time/slow-body wait between two bytes (a StepPacer
    lets a test advance the trickle byte by byte).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        pace: Pace = asyncio.sleep,
    ) -> None:
        super().__init__(self._answer, clock=clock)
        self._pace = pace
        self.robots_status = 200
        self.arbitrary_hrefs: tuple[str, ...] = ()
        """What /links/arbitrary links to; may be set at any time (not touched by reset())."""
        self.corner_broken = True
        self._wall_clock = wall_clock
        self._robots_txt: bytes | None = None
        self._robots_is_default = True
        self._state_lock = threading.Lock()
        self._hits: Counter[str] = Counter()  # per-endpoint state of the /rate/ cases
        self._sessions = 0
        self._bombs = bombs()
        self._exact = self._exact_routes()
        self._patterns = self._pattern_routes()

    @property
    def robots_txt(self) -> bytes | None:
        with self._state_lock:
            if not self._robots_is_default:
                return self._robots_txt
        return (
            f"User-agent: *\nDisallow: /private/\nSitemap: {self.base_url}/sitemap.xml\n".encode()
        )

    @robots_txt.setter
    def robots_txt(self, value: bytes | None) -> None:
        with self._state_lock:
            self._robots_txt = value
            self._robots_is_default = False

    def reset(self) -> None:
        """Forget counts, times, finished requests and per-endpoint state (rate limits, session
        ids). Requests still in flight keep counting towards max_concurrent."""
        super().reset()
        with self._state_lock:
            self._hits.clear()
            self._sessions = 0

    def _hit(self, path: str) -> int:
        with self._state_lock:
            self._hits[path] += 1
            return self._hits[path]

    def _new_session(self) -> int:
        with self._state_lock:
            self._sessions += 1
            return self._sessions

    def _answer(self, request: Request) -> Reply:
        return self._route(request.target)

    # --- routing -------------------------------------------------------------------------------

    def _route(self, target: str) -> Reply:
        path = canonical_path(target)
        query = target.partition("?")[2].partition("#")[0]
        exact = self._exact.get(path)
        if exact is not None:
            return exact(query)
        for pattern, handler in self._patterns:
            if m := pattern.fullmatch(path):
                return handler(m)
        return 404, {"Content-Type": HTML_TYPE}, _page("Not found", ["/"]).encode()

    def _exact_routes(self) -> dict[str, Callable[[str], Reply]]:
        b = self._bombs
        return {
            "/": lambda q: _html("Hostile site", index_paths()),
            "/robots.txt": lambda q: self._robots(),
            "/redirect/loop/a": lambda q: _redirect("/redirect/loop/b"),
            "/redirect/loop/b": lambda q: _redirect("/redirect/loop/a"),
            "/redirect/self": lambda q: _redirect("/redirect/self"),
            "/redirect/offsite": lambda q: _redirect("http://offsite.invalid/page"),
            "/redirect/scheme": lambda q: _redirect("ftp://127.0.0.1/file"),
            "/redirect/nolocation": lambda q: _redirect(None),
            "/redirect/private": lambda q: _redirect("http://10.0.0.1/secret"),
            # The SSRF guard's negative control: a loopback target that does answer.
            "/redirect/loopback": lambda q: _redirect(f"http://localhost:{self.port}/links/target"),
            "/body/gzip-bomb": lambda q: _encoded("gzip", b.gzip),
            "/body/deflate-bomb": lambda q: _encoded("deflate", b.deflate),
            "/body/br-bomb": lambda q: _encoded("br", b.br),
            "/body/zstd-bomb": lambda q: _encoded("zstd", b.zstd),
            "/body/endless": lambda q: _endless,
            "/body/wrong-length-short": lambda q: _wrong_length_short,
            "/body/wrong-length-long": lambda q: _wrong_length_long,
            "/body/no-length": lambda q: _no_length,
            "/body/broken-chunked": lambda q: _broken_chunked,
            "/body/truncated-gzip": lambda q: _encoded("gzip", TRUNCATED_GZIP_BODY),
            "/body/binary-as-html": lambda q: (200, {"Content-Type": HTML_TYPE}, BINARY_BODY),
            "/body/deep-nesting": lambda q: (200, {"Content-Type": HTML_TYPE}, DEEP_NESTING_BODY),
            "/time/slow-headers": lambda q: self._slow_headers,
            "/time/slow-body": lambda q: self._slow_body,
            "/time/stall": lambda q: _stall,
            "/time/reset-mid-body": lambda q: _reset_mid_body,
            "/rate/retry-after-seconds": lambda q: self._retry_after_seconds(),
            "/rate/retry-after-date": lambda q: self._retry_after_date(),
            "/rate/always-503": lambda q: (503, {"Content-Type": HTML_TYPE}, _UNAVAILABLE),
            "/rate/retry-after-day": lambda q: _too_many(RETRY_AFTER_DAY),
            "/time/reset-before-response": lambda q: _reset_before_response,
            "/time/empty-reply": lambda q: _empty_reply,
            "/charset/header-vs-meta": lambda q: _charset_header_vs_meta(),
            "/charset/unknown": lambda q: _charset_unknown(),
            "/charset/invalid-bytes": lambda q: _charset_invalid_bytes(),
            "/charset/bom": lambda q: _charset_bom(),
            "/links/schemes": lambda q: _html("schemes", _SCHEME_LINKS),
            "/links/idn": lambda q: _html("idn", ["http://bücher.example/x"]),
            "/links/long": lambda q: _html("long", ["/links/target?" + "a" * 5000]),
            "/links/base": lambda q: _html("base", ["rel"], head='<base href="/links/sub/">'),
            "/links/dups": lambda q: _html("dups", self._dup_links()),
            "/links/userinfo": lambda q: _html(
                "userinfo", [f"http://user:pw@{HOST}:{self.port}/links/from-userinfo"]
            ),
            "/links/arbitrary": lambda q: _html("arbitrary", self.arbitrary_hrefs),
            "/links/target": lambda q: _html("target"),
            "/links/sub/rel": lambda q: _html("sub rel"),
            "/links/from-userinfo": lambda q: _html("from userinfo"),
            "/private/secret": lambda q: _html("secret"),
            "/meta/noindex": lambda q: _html(
                "noindex page",
                ["/meta/from-noindex"],
                head='<meta name="robots" content="noindex">',
            ),
            "/meta/nofollow": lambda q: _html(
                "nofollow page",
                ["/meta/not-followed"],
                head='<meta name="robots" content="nofollow">',
            ),
            "/meta/x-robots-tag": lambda q: (
                200,
                {"Content-Type": HTML_TYPE, "X-Robots-Tag": "noindex, nofollow"},
                _page("x-robots-tag page", ["/meta/not-followed-header"]).encode(),
            ),
            "/meta/rel-nofollow": lambda q: _html(
                "rel nofollow", body='<a rel="nofollow" href="/meta/rel-target">rel target</a>\n'
            ),
            "/meta/canonical": lambda q: _html(
                "canonical", head='<link rel="canonical" href="/links/target">'
            ),
            "/meta/from-noindex": lambda q: _html("from noindex"),
            "/meta/not-followed": lambda q: _html("not followed"),
            "/meta/not-followed-header": lambda q: _html("not followed header"),
            "/meta/rel-target": lambda q: _html("rel target"),
            "/traps/": lambda q: _html("Traps", trap_paths()),
            "/traps/calendar": _calendar,
            "/traps/query": _query_trap,
        }

    def _pattern_routes(self) -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], Reply]]]:
        return [
            (_CHAIN_RE, _chain),
            (_FLAKY_RE, lambda m: self._flaky(m[0])),
            (_SESSION_RE, lambda m: self._session(m[1])),
            (_JSESSION_RE, lambda m: self._jsession(m[1])),
            (_DEEP_RE, _deep),
            (_REPEAT_RE, _repeat),
            (_NUMBERED_RE, _numbered),
            (_CORNER_RE, lambda m: self._corner(int(m[1]))),
            (_CORNER_BROKEN_RE, lambda m: _corner_broken()),
        ]

    def _robots(self) -> Response:
        body = self.robots_txt
        if body is None:
            return 404, {"Content-Type": "text/plain"}, b"no robots.txt\n"
        return self.robots_status, {"Content-Type": "text/plain; charset=utf-8"}, body

    def _retry_after_seconds(self) -> Response:
        if self._hit("/rate/retry-after-seconds") <= 2:
            return _too_many(RETRY_AFTER_SECONDS)
        return _html("finally")

    def _retry_after_date(self) -> Response:
        if self._hit("/rate/retry-after-date") <= 1:
            # HTTP-dates have whole seconds; rounding up keeps the wait at least 2 s.
            when = formatdate(math.ceil(self._wall_clock()) + RETRY_AFTER_SECONDS, usegmt=True)
            return 503, {"Content-Type": HTML_TYPE, "Retry-After": when}, _UNAVAILABLE
        return _html("finally")

    def _corner(self, n: int) -> Response:
        if n >= CORNER_PAGES:
            return 404, {"Content-Type": HTML_TYPE}, _page("Not found", ["/"]).encode()
        hrefs = [f"/corner/{child}" for child in (2 * n + 1, 2 * n + 2) if child < CORNER_PAGES]
        if self.corner_broken:
            # Spread among the good pages, as on a real site, not all behind its last pages.
            if n < CORNER_PAGES // 2 and n % CORNER_BROKEN_EVERY == 0:
                hrefs.append(f"/corner/broken/{n}")
            hrefs += {1: ["/time/reset-before-response"], 2: ["/time/empty-reply"]}.get(n, [])
        return _html(f"corner {n}", hrefs)

    def _flaky(self, path: str) -> Response:
        if self._hit(path) <= 2:
            return 500, {"Content-Type": HTML_TYPE}, _page("Internal server error").encode()
        return _html("flaky ok")

    def _dup_links(self) -> list[str]:
        origin = f"127.0.0.1:{self.port}"
        return [
            "/links/target",
            "/links/target#frag",
            f"http://{origin}/links/target",
            "/links/%74arget",
            "/links/./target",
            f"HTTP://{origin}/links/target",
        ]

    def _session(self, page: str) -> Response:
        sid = _session_id(self._new_session())
        return _html(f"session {page}", [f"/traps/session/{p}?sid={sid}" for p in SESSION_PAGES])

    def _jsession(self, page: str) -> Response:
        sid = _session_id(self._new_session(), 32).upper()  # the style of Java servlet ids
        hrefs = [f"/traps/jsession/{p};jsessionid={sid}" for p in SESSION_PAGES]
        return _html(f"jsession {page}", hrefs)

    # --- trickles ------------------------------------------------------------------------------

    async def _slow_headers(self, reader: StreamReader, writer: StreamWriter) -> None:
        body = _page("slow headers").encode()
        status_and_fields = head(200, [("Content-Type", HTML_TYPE), ("Content-Length", len(body))])
        deadline = time.monotonic() + SLOW_HEADER_LIMIT
        for i in range(len(status_and_fields)):
            if time.monotonic() > deadline or _client_gone(reader, writer):
                return
            writer.write(status_and_fields[i : i + 1])
            await writer.drain()
            await self._pace(SLOW_HEADER_INTERVAL)
        writer.write(body)
        await writer.drain()

    async def _slow_body(self, reader: StreamReader, writer: StreamWriter) -> None:
        writer.write(head(200, [("Content-Type", HTML_TYPE), ("Content-Length", SLOW_BODY_LENGTH)]))
        await writer.drain()
        deadline = time.monotonic() + _MAX_STREAM_SECONDS
        for i in range(SLOW_BODY_LENGTH):
            if time.monotonic() > deadline or _client_gone(reader, writer):
                return
            writer.write(SLOW_BODY[i : i + 1])
            await writer.drain()
            await self._pace(SLOW_BODY_INTERVAL)


# --- routes that need no server state --------------------------------------------------------

_CHAIN_RE = re.compile(rf"/redirect/chain/{_NUMBER}")
_FLAKY_RE = re.compile(rf"/rate/flaky/{_NUMBER}")
_SESSION_RE = re.compile(r"/traps/session/(home|products|about)")
_JSESSION_RE = re.compile(r"/traps/jsession/(home|products|about)(?:;jsessionid=[0-9A-F]+)?")
_DEEP_RE = re.compile(r"/traps/deep((?:/[a-z])+)")
_REPEAT_RE = re.compile(r"/traps/repeat((?:/[xy])+)")
_NUMBERED_RE = re.compile(rf"/traps/numbered/{_NUMBER}")
_CORNER_RE = re.compile(rf"/corner/{_NUMBER}")
_CORNER_BROKEN_RE = re.compile(rf"/corner/broken/{_NUMBER}")
_SCHEME_LINKS = (
    "javascript:alert(1)",
    "mailto:a@b.c",
    "data:text/html,hi",
    "tel:123",
    "file:///etc/passwd",
    "/links/target",
)
_UNAVAILABLE = _page("Service unavailable").encode()


def _encoded(encoding: str, body: bytes) -> Response:
    return 200, {"Content-Type": HTML_TYPE, "Content-Encoding": encoding}, body


def _chain(m: re.Match[str]) -> Response:
    n = int(m[1])
    return _redirect(f"/redirect/chain/{n - 1}") if n > 0 else _html("chain end")


def _calendar(query: str) -> Response:
    try:
        day = datetime.date.fromisoformat(dict(parse_qsl(query)).get("date", ""))
    except ValueError:
        return 404, {"Content-Type": HTML_TYPE}, _page("No such date", ["/traps/"]).encode()
    hrefs = []
    for delta in (1, -1):
        # 0001-01-01 and 9999-12-31 are the only ends of this otherwise endless space.
        with contextlib.suppress(OverflowError):
            hrefs.append(f"/traps/calendar?date={day + datetime.timedelta(days=delta)}")
    return _html(f"calendar {day}", hrefs)


def _query_trap(query: str) -> Response:
    params = parse_qsl(query, keep_blank_values=True) or [("a", "1")]

    def href(items: list[tuple[str, str]]) -> str:
        return "/traps/query?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in items)

    more = [*params, (_next_param(len(params)), "1")]
    # Reversal and rotation: the same parameters in other orders, i.e. the same page again.
    hrefs = [href(params), href(more), href(params[::-1]), href(params[1:] + params[:1])]
    return _html(f"query with {len(params)} parameters", dict.fromkeys(hrefs))


def _deep(m: re.Match[str]) -> Response:
    path = m[0]
    nxt = chr((ord(path[-1]) - ord("a") + 1) % 26 + ord("a"))
    return _html(f"deep {len(m[1]) // 2}", [path, f"{path}/{nxt}"])


def _repeat(m: re.Match[str]) -> Response:
    path = m[0]
    return _html(f"repeat {len(m[1]) // 2}", [path, f"{path}/x", f"{path}/y"])


def _numbered(m: re.Match[str]) -> Response:
    n = int(m[1])
    return _html(f"numbered {n}", [f"/traps/numbered/{n + 1}", f"/traps/numbered/{n + 2}"])


def _charset_header_vs_meta() -> Response:
    body = _page("Привет", meta_charset="windows-1251").encode("utf-8")
    return 200, {"Content-Type": HTML_TYPE}, body


def _charset_unknown() -> Response:
    body = _page("unknown ok", meta_charset=None).encode()
    return 200, {"Content-Type": "text/html; charset=x-no-such-charset"}, body


def _charset_invalid_bytes() -> Response:
    body = _page("invalid XX bytes").encode().replace(b"XX", b"\xff\xfe")
    return 200, {"Content-Type": HTML_TYPE}, body


def _charset_bom() -> Response:
    body = ("\ufeff" + _page("bom wins", meta_charset=None)).encode("utf-16-le")
    return 200, {"Content-Type": HTML_TYPE}, body


# --- streamed misbehaviour ---------------------------------------------------------------------


async def _endless(reader: StreamReader, writer: StreamWriter) -> None:
    writer.write(
        head(200, [("Content-Type", HTML_TYPE), ("Transfer-Encoding", "chunked")])
        + _chunk(b"<!doctype html>\n<html><head><title>endless</title></head><body>\n")
    )
    chunk = _chunk(_ENDLESS_CHUNK)
    deadline = time.monotonic() + _MAX_STREAM_SECONDS
    while time.monotonic() < deadline and not _client_gone(reader, writer):
        writer.write(chunk)
        await writer.drain()
        # drain() returns without yielding while the socket keeps up; yield anyway, or a fast
        # reader would starve every other connection and the stop event.
        await asyncio.sleep(0)


async def _wrong_length_short(reader: StreamReader, writer: StreamWriter) -> None:
    writer.write(head(200, [("Content-Type", HTML_TYPE), ("Content-Length", 10_000)]))
    writer.write(SHORT_BODY)
    await writer.drain()


async def _wrong_length_long(reader: StreamReader, writer: StreamWriter) -> None:
    # No "Connection: close": the 4950 extra bytes look like the start of the next response.
    writer.write(head(200, [("Content-Type", HTML_TYPE), ("Content-Length", 50)]) + LONG_BODY)
    await writer.drain()


async def _no_length(reader: StreamReader, writer: StreamWriter) -> None:
    writer.write(head(200, [("Content-Type", HTML_TYPE)]) + NO_LENGTH_BODY)
    await writer.drain()


async def _broken_chunked(reader: StreamReader, writer: StreamWriter) -> None:
    start = head(200, [("Content-Type", HTML_TYPE), ("Transfer-Encoding", "chunked")])
    writer.write(start + _chunk(BROKEN_CHUNK) + b"zz\r\n" + b"not a chunk\r\n")
    await writer.drain()


async def _stall(reader: StreamReader, writer: StreamWriter) -> None:
    # Reading (not sleeping) notices at once when the client gives up and closes.
    try:
        async with asyncio.timeout(_MAX_STREAM_SECONDS):
            for _ in range(_MAX_READS):
                if not await reader.read(65536):
                    return
    except TimeoutError:
        pass


async def _reset_mid_body(reader: StreamReader, writer: StreamWriter) -> None:
    start = head(200, [("Content-Type", HTML_TYPE), ("Content-Length", SLOW_BODY_LENGTH)])
    writer.write(start + SLOW_BODY[:RESET_BODY_SENT])
    await writer.drain()
    sock = writer.get_extra_info("socket")
    if sock is not None:  # None if the client already left: nothing to reset
        # drain() only means "handed to the kernel", and a reset discards what the kernel still
        # queues: wait until the client has acknowledged it all.
        for _ in range(_ACK_POLLS):
            if _unacknowledged_bytes(sock) == 0:
                break
            await asyncio.sleep(_ACK_POLL_INTERVAL)
        # Linger on with timeout 0: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _too_many(retry_after: int) -> Response:
    headers = {"Content-Type": HTML_TYPE, "Retry-After": str(retry_after)}
    return 429, headers, _page("Too many requests").encode()


def _corner_broken() -> Response:
    headers = {"Content-Type": HTML_TYPE, "Retry-After": str(CORNER_RETRY_AFTER)}
    return 503, headers, _UNAVAILABLE


async def _reset_before_response(reader: StreamReader, writer: StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:  # None if the client already left: nothing to reset
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _empty_reply(reader: StreamReader, writer: StreamWriter) -> None:
    writer.close()  # FIN after the request: the client reads end of stream, no status line
