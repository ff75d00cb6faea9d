"""The hostile test site misbehaves exactly as specified, byte for byte on the wire.

These tests use raw sockets wherever a client library would hide the misbehaviour, and
httpx.Client (short timeouts, no proxies from the environment) where its reaction is the proof.
"""

from __future__ import annotations

import gzip
import html
import itertools
import random
import re
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
import pytest

from tests.helpers import FakeClock, wait_until
from tests.hostile_site import (
    BINARY_SIZE,
    BOMB_BLOCK,
    BOMB_SIZE,
    BROKEN_CHUNK,
    BROTLI_BOMB_IS_REAL,
    ENDPOINTS,
    FAKE_BOMB_SIZE,
    HTML_TYPE,
    LINK_TARGETS,
    LONG_BODY,
    NO_LENGTH_BODY,
    SHORT_BODY,
    SLOW_BODY,
    SLOW_BODY_INTERVAL,
    SLOW_HEADER_INTERVAL,
    TRUNCATED_GZIP_BODY,
    TRUNCATED_GZIP_FULL,
    ZSTD_BOMB_IS_REAL,
    HostileSite,
    bombs,
    corner_paths,
    index_paths,
    trap_paths,
)
from tests.servers import StepPacer
from tests.servers import head as head_bytes

TIMEOUT = 2.0
ANCHOR_RE = re.compile(r'<a [^>]*href="([^"]*)"')
TITLE_RE = re.compile(r"<title>(.*?)</title>")
Head = tuple[int, dict[str, str]]


@pytest.fixture
def site() -> Iterator[HostileSite]:
    with HostileSite() as server:
        yield server


def http_client(site: HostileSite) -> httpx.Client:
    # trust_env=False: a proxy from the environment must never see test traffic.
    return httpx.Client(base_url=site.base_url, trust_env=False, timeout=TIMEOUT)


@pytest.fixture
def client(site: HostileSite) -> Iterator[httpx.Client]:
    with http_client(site) as c:
        yield c


def send(site: HostileSite, target: str, method: str = "GET") -> socket.socket:
    """A connected socket that has sent one request for `target`, exactly as given."""
    sock = socket.create_connection(("127.0.0.1", site.port), timeout=TIMEOUT)
    request = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    sock.sendall(request.encode("latin-1"))
    return sock


def read_to_close(sock: socket.socket, limit: int = 10_000_000) -> bytes:
    """Everything the server sends until it closes (bounded in bytes and by the socket timeout)."""
    chunks: list[bytes] = []
    received = 0
    for _ in range(100_000):
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        received += len(chunk)
        if received > limit:
            break
    raise AssertionError(f"server sent more than {limit} bytes without closing")


def raw(site: HostileSite, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body as sent) of one request on its own connection."""
    with send(site, target, method) as sock:
        data = read_to_close(sock)
    return (*parse_head(data), data.partition(b"\r\n\r\n")[2])


def read_one(sock: socket.socket) -> bytes:
    """One Content-Length delimited response on a keep-alive connection."""
    data = b""
    for _ in range(10_000):
        if b"\r\n\r\n" in data:
            length = int(parse_head(data)[1]["content-length"])
            if len(data.partition(b"\r\n\r\n")[2]) >= length:
                return data
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("response did not complete")


def parse_head(data: bytes) -> Head:
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers


def anchors(body: bytes | str) -> list[str]:
    text = body.decode() if isinstance(body, bytes) else body
    return [html.unescape(h) for h in ANCHOR_RE.findall(text)]


def title(body: bytes) -> str:
    match = TITLE_RE.search(body.decode())
    assert match is not None
    return html.unescape(match[1])


# --- index ---------------------------------------------------------------------------------------


def test_index_links_every_case_but_traps_and_link_targets(client: httpx.Client) -> None:
    home = client.get("/")
    assert home.status_code == 200
    assert home.headers["content-type"] == HTML_TYPE
    assert anchors(home.text) == index_paths()
    assert anchors(client.get("/traps/").text) == trap_paths()
    assert len(ENDPOINTS) == 67
    unlinked = {"/", "/robots.txt", "/body/deep-nesting", "/rate/retry-after-day", "/corner/0"}
    unlinked |= {"/links/arbitrary"}
    linked = set(index_paths()) | set(trap_paths()) | set(LINK_TARGETS) | set(corner_paths())
    assert set(ENDPOINTS) == unlinked | linked
    assert len(linked) + len(unlinked) == len(ENDPOINTS)
    assert [p for p in index_paths() if p.startswith("/traps/")] == ["/traps/"]
    assert all(p.startswith("/traps/") for p in trap_paths())
    assert "/private/secret" in index_paths()
    # Reachable only through the case that links them, so reaching them proves that case.
    assert LINK_TARGETS == (
        "/links/target",
        "/links/sub/rel",
        "/links/from-userinfo",
        "/meta/from-noindex",
        "/meta/not-followed",
        "/meta/not-followed-header",
        "/meta/rel-target",
    )


# First status of every endpoint that answers with a complete, Content-Length framed response.
FIRST_STATUS = {
    "/": 200,
    "/robots.txt": 200,
    "/redirect/chain/20": 302,
    "/redirect/loop/a": 302,
    "/redirect/self": 302,
    "/redirect/offsite": 302,
    "/redirect/scheme": 302,
    "/redirect/nolocation": 302,
    "/redirect/private": 302,
    "/redirect/loopback": 302,
    "/body/gzip-bomb": 200,
    "/body/deflate-bomb": 200,
    "/body/br-bomb": 200,
    "/body/zstd-bomb": 200,
    "/body/truncated-gzip": 200,
    "/body/binary-as-html": 200,
    "/body/deep-nesting": 200,
    "/rate/retry-after-seconds": 429,
    "/rate/retry-after-date": 503,
    "/rate/always-503": 503,
    "/rate/retry-after-day": 429,
    "/corner/0": 200,
    "/corner/broken/0": 503,
    "/rate/flaky/1": 500,
} | {
    path: 200
    for path in ENDPOINTS
    if path.startswith(("/charset/", "/links/", "/private/", "/meta/", "/traps/"))
}
STREAMED = {
    "/body/endless",
    "/body/wrong-length-short",
    "/body/wrong-length-long",
    "/body/no-length",
    "/body/broken-chunked",
    "/time/slow-headers",
    "/time/slow-body",
    "/time/stall",
    "/time/reset-mid-body",
    "/time/reset-before-response",
    "/time/empty-reply",
}


def test_every_framed_endpoint_answers_with_its_first_status(
    site: HostileSite, client: httpx.Client
) -> None:
    assert set(FIRST_STATUS) | STREAMED == set(ENDPOINTS)
    assert not set(FIRST_STATUS) & STREAMED
    for path, status in FIRST_STATUS.items():
        # stream + no read: the bombs must not be decoded here.
        with client.stream("GET", path) as response:
            assert (path, response.status_code) == (path, status)
    assert client.get("/no/such/page").status_code == 404
    assert sum(site.request_counts().values()) == len(FIRST_STATUS) + 1


# --- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/redirect/chain/20", "/redirect/chain/19"),
        ("/redirect/chain/1", "/redirect/chain/0"),
        ("/redirect/loop/a", "/redirect/loop/b"),
        ("/redirect/loop/b", "/redirect/loop/a"),
        ("/redirect/self", "/redirect/self"),
        ("/redirect/offsite", "http://offsite.invalid/page"),
        ("/redirect/scheme", "ftp://127.0.0.1/file"),
        ("/redirect/private", "http://10.0.0.1/secret"),
    ],
)
def test_redirect_location(client: httpx.Client, path: str, location: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["location"] == location


def test_redirect_without_location(client: httpx.Client) -> None:
    response = client.get("/redirect/nolocation")
    assert response.status_code == 302
    assert "location" not in response.headers


def test_redirect_chain_is_twenty_hops(site: HostileSite, client: httpx.Client) -> None:
    response = client.get("/redirect/chain/20", follow_redirects=True)
    assert response.status_code == 200
    assert response.url.path == "/redirect/chain/0"
    assert title(response.content) == "chain end"
    assert len(response.history) == 20
    assert site.request_counts() == {f"/redirect/chain/{n}": 1 for n in range(21)}


def test_redirect_loop_never_ends(site: HostileSite) -> None:
    with httpx.Client(
        base_url=site.base_url, trust_env=False, timeout=TIMEOUT, max_redirects=9
    ) as c:
        with pytest.raises(httpx.TooManyRedirects):
            c.get("/redirect/loop/a", follow_redirects=True)
        with pytest.raises(httpx.TooManyRedirects):
            c.get("/redirect/self", follow_redirects=True)
    counts = site.request_counts()
    assert counts == {"/redirect/loop/a": 5, "/redirect/loop/b": 5, "/redirect/self": 10}


# --- bodies --------------------------------------------------------------------------------------


def stream_raw(client: httpx.Client, path: str) -> tuple[httpx.Headers, bytes]:
    """Headers and the still-encoded body (iter_raw never decompresses)."""
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        return response.headers, b"".join(response.iter_raw())


def test_gzip_bomb_is_small_on_the_wire_and_inflates_to_one_gib(client: httpx.Client) -> None:
    headers, body = stream_raw(client, "/body/gzip-bomb")
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == HTML_TYPE
    assert int(headers["content-length"]) == len(body)
    assert 1_000_000 < len(body) < 2_000_000
    assert body[:3] == b"\x1f\x8b\x08"
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(body, BOMB_BLOCK) == b" " * BOMB_BLOCK
    # ISIZE, the declared uncompressed length mod 2**32.
    assert struct.unpack("<I", body[-4:])[0] == BOMB_SIZE == 2**30


def test_bomb_payload_is_1024_identical_one_mib_blocks() -> None:
    """Proves the full 1 GiB without inflating it: each block is byte-aligned and independent
    (full flush), so if one block and the end of the stream inflate right, they all do."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflater.compress(b" " * BOMB_BLOCK) + deflater.flush(zlib.Z_FULL_FLUSH)
    payload = bombs().gzip[10:-8]
    assert len(block) < 1100
    assert payload.startswith(block * 1024)
    end = payload[len(block) * 1024 :]
    assert end == b"\x03\x00"  # an empty final block
    one = zlib.decompressobj(-15)
    assert one.decompress(block) == b" " * BOMB_BLOCK
    assert not one.eof
    last = zlib.decompressobj(-15)
    assert last.decompress(block + end) == b" " * BOMB_BLOCK
    assert last.eof
    assert last.unused_data == b""
    # The trailer's CRC is that of 1 GiB of spaces (checked here by zlib, not by inflating).
    crc = 0
    for _ in range(BOMB_SIZE // BOMB_BLOCK // 16):
        crc = zlib.crc32(b" " * (16 * BOMB_BLOCK), crc)
    assert bombs().gzip[-8:] == struct.pack("<II", crc, BOMB_SIZE)


def test_deflate_bomb_wraps_the_same_payload_in_zlib(client: httpx.Client) -> None:
    headers, body = stream_raw(client, "/body/deflate-bomb")
    assert headers["content-encoding"] == "deflate"
    assert headers["content-type"] == HTML_TYPE
    assert int(headers["content-length"]) == len(body) < 2_000_000
    assert body[:2] == b"\x78\xda"
    assert body[2:-4] == bombs().gzip[10:-8]
    assert zlib.decompressobj(15).decompress(body, BOMB_BLOCK) == b" " * BOMB_BLOCK


@pytest.mark.parametrize(
    ("path", "encoding", "seed", "real"),
    [
        ("/body/br-bomb", "br", 2, BROTLI_BOMB_IS_REAL),
        ("/body/zstd-bomb", "zstd", 3, ZSTD_BOMB_IS_REAL),
    ],
)
def test_unrequested_encoding(
    client: httpx.Client, path: str, encoding: str, seed: int, real: bool
) -> None:
    headers, body = stream_raw(client, path)
    assert headers["content-encoding"] == encoding
    assert headers["content-type"] == HTML_TYPE
    assert int(headers["content-length"]) == len(body) < 2_000_000
    if not real:
        assert body == random.Random(seed).randbytes(FAKE_BOMB_SIZE)


def test_brotli_bomb_when_brotli_is_installed(client: httpx.Client) -> None:
    brotli = pytest.importorskip("brotli")
    _, body = stream_raw(client, "/body/br-bomb")
    out = brotli.Decompressor().process(body, output_buffer_limit=BOMB_BLOCK)
    assert out[:BOMB_BLOCK] == b" " * BOMB_BLOCK


def test_zstd_bomb_when_zstandard_is_installed(client: httpx.Client) -> None:
    zstandard = pytest.importorskip("zstandard")
    _, body = stream_raw(client, "/body/zstd-bomb")
    assert zstandard.frame_content_size(body) == BOMB_SIZE
    reader = zstandard.ZstdDecompressor().stream_reader(body)
    assert reader.read(BOMB_BLOCK) == b" " * BOMB_BLOCK


def test_endless_body_keeps_coming_until_the_client_leaves(site: HostileSite) -> None:
    with send(site, "/body/endless") as sock:
        data = b""
        deadline = time.monotonic() + 5
        for _ in range(10_000):
            data += sock.recv(1 << 20)
            if len(data) > 8 << 20 or time.monotonic() > deadline:
                break
        assert len(data) > 8 << 20
        status, headers = parse_head(data)
        assert (status, headers["transfer-encoding"], headers["content-type"]) == (
            200,
            "chunked",
            HTML_TYPE,
        )
        assert "content-length" not in headers
        body = data.partition(b"\r\n\r\n")[2]
        first, _, rest = body.partition(b"\r\n")
        prologue = b"<!doctype html>\n<html><head><title>endless</title></head><body>\n"
        assert int(first, 16) == len(prologue)
        assert rest.startswith(prologue + b"\r\n3e88\r\n<p>" + b"x" * 16_000 + b"</p>\n\r\n3e88")
        assert site.in_flight("/body/endless") == 1
    wait_until(lambda: site.in_flight("/body/endless") == 0, timeout=3)


def test_wrong_length_short(site: HostileSite, client: httpx.Client) -> None:
    status, headers, body = raw(site, "/body/wrong-length-short")
    assert (status, headers["content-length"], body) == (200, "10000", SHORT_BODY)
    assert len(body) == 100
    with pytest.raises(httpx.RemoteProtocolError, match="received 100 bytes, expected 10000"):
        client.get("/body/wrong-length-short")


def test_wrong_length_long(site: HostileSite, client: httpx.Client) -> None:
    status, headers, body = raw(site, "/body/wrong-length-long")
    assert (status, headers["content-length"], body) == (200, "50", LONG_BODY)
    assert len(body) == 5000
    assert "connection" not in headers
    assert client.get("/body/wrong-length-long").content == LONG_BODY[:50]


def test_no_length_reads_until_close(site: HostileSite, client: httpx.Client) -> None:
    status, headers, body = raw(site, "/body/no-length")
    assert (status, headers) == (200, {"content-type": HTML_TYPE})
    assert body == NO_LENGTH_BODY
    assert body.endswith(b"</html>\n")
    assert client.get("/body/no-length").content == NO_LENGTH_BODY


def test_broken_chunked(site: HostileSite, client: httpx.Client) -> None:
    status, headers, body = raw(site, "/body/broken-chunked")
    assert (status, headers["transfer-encoding"]) == (200, "chunked")
    good = f"{len(BROKEN_CHUNK):x}\r\n".encode() + BROKEN_CHUNK + b"\r\n"
    assert body == good + b"zz\r\nnot a chunk\r\n"
    with pytest.raises(httpx.RemoteProtocolError, match="illegal chunk header"):
        client.get("/body/broken-chunked")


def test_truncated_gzip(site: HostileSite) -> None:
    status, headers, body = raw(site, "/body/truncated-gzip")
    assert (status, headers["content-encoding"]) == (200, "gzip")
    assert int(headers["content-length"]) == len(body) == len(TRUNCATED_GZIP_BODY)
    assert body == TRUNCATED_GZIP_BODY
    inflater = zlib.decompressobj(31)
    text = inflater.decompress(body) + inflater.flush()
    assert not inflater.eof  # the stream stops mid-way: no final block, no trailer
    assert text.startswith(b'<!doctype html>\n<html><head><meta charset="utf-8"><title>truncated')
    assert len(text) > 10_000
    assert b"</html>" not in text
    # Exactly the first half of a real gzip stream of the page.
    assert TRUNCATED_GZIP_FULL[: len(TRUNCATED_GZIP_FULL) // 2] == body
    whole = gzip.decompress(TRUNCATED_GZIP_FULL)
    assert whole.startswith(text)
    assert whole.endswith(b"</html>\n")


def test_binary_as_html(site: HostileSite) -> None:
    status, headers, body = raw(site, "/body/binary-as-html")
    assert (status, headers["content-type"], int(headers["content-length"])) == (
        200,
        HTML_TYPE,
        BINARY_SIZE,
    )
    assert body == random.Random(1).randbytes(200_000)


# --- time ----------------------------------------------------------------------------------------


def receive(sock: socket.socket, data: bytes, size: int) -> bytes:
    """``data`` plus what arrives on ``sock`` until there are at least ``size`` bytes (or the
    server closes; bounded by the socket timeout)."""
    for _ in range(10_000):
        if len(data) >= size:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def paused(pacer: StepPacer) -> None:
    """Wait until the trickle has written its step and waits for the next."""
    wait_until(lambda: pacer.waiting == 1, timeout=TIMEOUT)


def step_until_gone(site: HostileSite, pacer: StepPacer, path: str) -> int:
    """After the client closed: end pauses until the trickle notices; how many it took."""
    for steps in range(10):
        wait_until(lambda: site.in_flight(path) == 0 or pacer.waiting == 1, timeout=TIMEOUT)
        if site.in_flight(path) == 0:
            return steps
        pacer.step()
    raise AssertionError(f"{path} still trickling to a client that left")


def test_slow_headers_trickle_one_byte_per_pause() -> None:
    pacer = StepPacer()
    with HostileSite(pace=pacer) as site, send(site, "/time/slow-headers") as sock:
        # Before any pause ends, exactly one byte is out: the first is sent at once.
        paused(pacer)
        data = receive(sock, b"", 1)
        assert data == b"H"
        # Each pause ends with exactly one more byte of the head, to its blank line.
        for sent in itertools.count(2):
            pacer.step()
            paused(pacer)
            data = receive(sock, data, sent)
            assert len(data) == sent, data
            if data.endswith(b"\r\n\r\n"):
                break
        assert pacer.asked == [SLOW_HEADER_INTERVAL] * len(data)
        # After the last byte's pause the body follows at once, and the response ends.
        pacer.step()
        response = data + read_to_close(sock)
    status, headers = parse_head(response)
    body = response.partition(b"\r\n\r\n")[2]
    assert (status, headers["content-type"], int(headers["content-length"])) == (
        200,
        HTML_TYPE,
        len(body),
    )
    assert TITLE_RE.findall(body.decode()) == ["slow headers"]
    assert len(pacer.asked) == len(data)  # no pause after the body


def test_slow_headers_end_when_the_client_leaves() -> None:
    pacer = StepPacer()
    with HostileSite(pace=pacer) as site:
        with send(site, "/time/slow-headers") as sock:
            paused(pacer)
            pacer.step()
            paused(pacer)
            assert receive(sock, b"", 2) == b"HT"
            assert site.in_flight("/time/slow-headers") == 1
        # The next tick notices the client has gone (or the one after, if the tick raced
        # the client's FIN and wrote one more byte into the closed connection).
        assert step_until_gone(site, pacer, "/time/slow-headers") <= 2


def test_slow_body_trickles_one_byte_per_pause_after_prompt_headers() -> None:
    pacer = StepPacer()
    with HostileSite(pace=pacer) as site:
        with send(site, "/time/slow-body") as sock:
            # The whole head and one body byte are out before the first pause ends.
            paused(pacer)
            fields = [("Content-Type", HTML_TYPE), ("Content-Length", 100_000)]
            head_size = len(head_bytes(200, fields))
            data = receive(sock, b"", head_size + 1)
            status, headers = parse_head(data)
            assert (status, headers["content-length"]) == (200, "100000")
            assert data.index(b"\r\n\r\n") + 4 == head_size
            assert len(data) == head_size + 1
            for sent in range(2, 7):
                pacer.step()
                paused(pacer)
                data = receive(sock, data, head_size + sent)
                assert len(data) == head_size + sent
            body = data[head_size:]
            assert body == SLOW_BODY[: len(body)]
            assert pacer.asked == [SLOW_BODY_INTERVAL] * len(body)
            assert len(SLOW_BODY) == 100_000
        assert step_until_gone(site, pacer, "/time/slow-body") <= 2


def test_stall_sends_nothing(site: HostileSite) -> None:
    with send(site, "/time/stall") as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        assert site.in_flight("/time/stall") == 1
    wait_until(lambda: site.in_flight("/time/stall") == 0, timeout=2)


def test_reset_mid_body(site: HostileSite) -> None:
    with send(site, "/time/reset-mid-body") as sock:
        data = b""
        with pytest.raises(ConnectionResetError):  # noqa: PT012 - the loop is the reading
            for _ in range(1000):
                chunk = sock.recv(65536)
                assert chunk, "orderly close (FIN) where a reset (RST) was expected"
                data += chunk
    status, headers = parse_head(data)
    assert (status, headers["content-length"]) == (200, "100000")
    assert data.partition(b"\r\n\r\n")[2] == SLOW_BODY[:1000]


def test_reset_before_response(site: HostileSite) -> None:
    with send(site, "/time/reset-before-response") as sock, pytest.raises(ConnectionResetError):
        sock.recv(100)


def test_empty_reply(site: HostileSite) -> None:
    with send(site, "/time/empty-reply") as sock:
        assert sock.recv(100) == b""  # an orderly close, not one byte of a response


# --- rate limits and errors ----------------------------------------------------------------------


def test_retry_after_seconds(client: httpx.Client) -> None:
    responses = [client.get("/rate/retry-after-seconds") for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 200, 200]
    assert [r.headers.get("retry-after") for r in responses] == ["2", "2", None, None]
    assert title(responses[2].content) == "finally"


def test_retry_after_date() -> None:
    wall_clock = FakeClock(1_700_000_000.25)
    with HostileSite(wall_clock=wall_clock) as site, http_client(site) as client:
        first = client.get("/rate/retry-after-date")
        assert first.status_code == 503
        when = parsedate_to_datetime(first.headers["retry-after"]).timestamp()
        assert first.headers["retry-after"].endswith(" GMT")
        # Whole seconds, rounded up: at least Retry-After's 2 s after the site's "now".
        assert when == 1_700_000_003.0
        second = client.get("/rate/retry-after-date")
    assert (second.status_code, title(second.content)) == (200, "finally")


def test_always_503(client: httpx.Client) -> None:
    responses = [client.get("/rate/always-503") for _ in range(5)]
    assert [r.status_code for r in responses] == [503] * 5
    assert all("retry-after" not in r.headers for r in responses)


def test_retry_after_day(client: httpx.Client) -> None:
    responses = [client.get("/rate/retry-after-day") for _ in range(2)]
    assert [(r.status_code, r.headers["retry-after"]) for r in responses] == [(429, "86400")] * 2


def test_corner_site_with_and_without_its_broken_corner(
    site: HostileSite, client: httpx.Client
) -> None:
    assert anchors(client.get("/corner/0").text) == ["/corner/1", "/corner/2", "/corner/broken/0"]
    assert anchors(client.get("/corner/1").text) == [
        "/corner/3",
        "/corner/4",
        "/time/reset-before-response",
    ]
    assert anchors(client.get("/corner/2").text) == ["/corner/5", "/corner/6", "/time/empty-reply"]
    assert anchors(client.get("/corner/99").text) == ["/corner/199"]
    assert anchors(client.get("/corner/95").text) == [
        "/corner/191",
        "/corner/192",
        "/corner/broken/95",
    ]
    assert anchors(client.get("/corner/100").text) == []
    assert client.get("/corner/200").status_code == 404
    broken = client.get("/corner/broken/95")
    assert (broken.status_code, broken.headers["retry-after"]) == (503, "1")
    site.corner_broken = False
    assert anchors(client.get("/corner/0").text) == ["/corner/1", "/corner/2"]
    assert anchors(client.get("/corner/1").text) == ["/corner/3", "/corner/4"]


def test_flaky_fails_twice_per_n_and_reset_starts_over(
    site: HostileSite, client: httpx.Client
) -> None:
    assert [client.get("/rate/flaky/1").status_code for _ in range(4)] == [500, 500, 200, 200]
    assert [client.get("/rate/flaky/2").status_code for _ in range(3)] == [500, 500, 200]
    site.reset()
    assert client.get("/rate/flaky/1").status_code == 500
    assert [client.get("/rate/retry-after-seconds").status_code for _ in range(3)] == [
        429,
        429,
        200,
    ]


# --- charsets ------------------------------------------------------------------------------------


def test_charset_header_vs_meta(site: HostileSite) -> None:
    status, headers, body = raw(site, "/charset/header-vs-meta")
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert b'<meta charset="windows-1251">' in body
    assert "<title>Привет</title>".encode() in body
    body.decode("utf-8")  # valid UTF-8 throughout


def test_charset_unknown(site: HostileSite) -> None:
    status, headers, body = raw(site, "/charset/unknown")
    assert (status, headers["content-type"]) == (200, "text/html; charset=x-no-such-charset")
    assert b"<title>unknown ok</title>" in body
    assert b"<meta" not in body


def test_charset_invalid_bytes(site: HostileSite) -> None:
    status, headers, body = raw(site, "/charset/invalid-bytes")
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert b"<title>invalid \xff\xfe bytes</title>" in body
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")


def test_charset_bom(site: HostileSite) -> None:
    status, headers, body = raw(site, "/charset/bom")
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert body[:2] == b"\xff\xfe"
    assert "<title>bom wins</title>" in body[2:].decode("utf-16-le")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")


# --- links ---------------------------------------------------------------------------------------


def test_link_pages(site: HostileSite, client: httpx.Client) -> None:
    assert anchors(client.get("/links/schemes").content) == [
        "javascript:alert(1)",
        "mailto:a@b.c",
        "data:text/html,hi",
        "tel:123",
        "file:///etc/passwd",
        "/links/target",
    ]
    assert anchors(client.get("/links/idn").content) == ["http://bücher.example/x"]
    assert anchors(client.get("/links/long").content) == ["/links/target?" + "a" * 5000]
    base = client.get("/links/base").text
    assert '<base href="/links/sub/">' in base
    assert anchors(base) == ["rel"]
    origin = f"127.0.0.1:{site.port}"
    assert anchors(client.get("/links/dups").content) == [
        "/links/target",
        "/links/target#frag",
        f"http://{origin}/links/target",
        "/links/%74arget",
        "/links/./target",
        f"HTTP://{origin}/links/target",
    ]
    assert anchors(client.get("/links/userinfo").content) == [
        f"http://user:pw@{origin}/links/from-userinfo"
    ]
    assert anchors(client.get("/links/arbitrary").content) == []
    site.arbitrary_hrefs = ("/a?b=1&c", "javascript:x", 'q"<>')
    assert anchors(client.get("/links/arbitrary").content) == ["/a?b=1&c", "javascript:x", 'q"<>']


def test_link_targets_are_plain_pages(client: httpx.Client) -> None:
    for path, expected in [
        ("/links/target", "target"),
        ("/links/sub/rel", "sub rel"),
        ("/links/from-userinfo", "from userinfo"),
        ("/links/%74arget", "target"),
        ("/links/target?" + "a" * 5000, "target"),
        ("/meta/from-noindex", "from noindex"),
        ("/meta/not-followed", "not followed"),
        ("/meta/not-followed-header", "not followed header"),
        ("/meta/rel-target", "rel target"),
        ("/private/secret", "secret"),
    ]:
        response = client.get(path)
        assert (path, response.status_code, title(response.content)) == (path, 200, expected)
        assert anchors(response.content) == []
    assert client.get("/links/rel").status_code == 404  # where "rel" goes if <base> is ignored


# --- robots --------------------------------------------------------------------------------------


def test_robots_default_then_settable(site: HostileSite, client: httpx.Client) -> None:
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == (
        f"User-agent: *\nDisallow: /private/\nSitemap: {site.base_url}/sitemap.xml\n"
    )
    assert "Crawl-delay" not in response.text
    site.robots_txt = b"User-agent: *\nCrawl-delay: 1\n"
    assert client.get("/robots.txt").content == b"User-agent: *\nCrawl-delay: 1\n"
    site.robots_status = 503
    response = client.get("/robots.txt")
    assert (response.status_code, response.content) == (503, b"User-agent: *\nCrawl-delay: 1\n")
    site.reset()  # reset() leaves the robots settings alone
    assert client.get("/robots.txt").status_code == 503
    site.robots_txt = None
    assert client.get("/robots.txt").status_code == 404


def test_meta_robots_pages(client: httpx.Client) -> None:
    noindex = client.get("/meta/noindex")
    assert '<meta name="robots" content="noindex">' in noindex.text
    assert title(noindex.content) == "noindex page"
    assert anchors(noindex.text) == ["/meta/from-noindex"]
    nofollow = client.get("/meta/nofollow")
    assert '<meta name="robots" content="nofollow">' in nofollow.text
    assert anchors(nofollow.text) == ["/meta/not-followed"]
    header = client.get("/meta/x-robots-tag")
    assert header.headers["x-robots-tag"] == "noindex, nofollow"
    assert 'name="robots"' not in header.text
    assert anchors(header.text) == ["/meta/not-followed-header"]
    rel = client.get("/meta/rel-nofollow").text
    assert '<a rel="nofollow" href="/meta/rel-target">' in rel
    assert anchors(rel) == ["/meta/rel-target"]
    canonical = client.get("/meta/canonical").text
    assert '<link rel="canonical" href="/links/target">' in canonical
    assert anchors(canonical) == []


# --- traps ---------------------------------------------------------------------------------------


def test_calendar_trap(client: httpx.Client) -> None:
    assert anchors(client.get("/traps/calendar?date=2024-01-01").text) == [
        "/traps/calendar?date=2024-01-02",
        "/traps/calendar?date=2023-12-31",
    ]
    assert anchors(client.get("/traps/calendar?date=2024-03-01").text) == [
        "/traps/calendar?date=2024-03-02",
        "/traps/calendar?date=2024-02-29",
    ]
    assert anchors(client.get("/traps/calendar?date=9999-12-31").text) == [
        "/traps/calendar?date=9999-12-30"
    ]
    assert client.get("/traps/calendar?date=2024-13-01").status_code == 404
    assert client.get("/traps/calendar").status_code == 404


def test_session_traps_mint_a_new_id_per_response(client: httpx.Client) -> None:
    pages = ("home", "products", "about")
    first = anchors(client.get("/traps/session/home").text)
    second = anchors(client.get(first[1]).text)
    sid1, sid2 = first[0].partition("=")[2], second[0].partition("=")[2]
    assert first == [f"/traps/session/{p}?sid={sid1}" for p in pages]
    assert second == [f"/traps/session/{p}?sid={sid2}" for p in pages]
    assert sid1 != sid2
    assert re.fullmatch("[0-9a-f]{16}", sid1)
    j1 = anchors(client.get("/traps/jsession/home").text)
    j2 = anchors(client.get(j1[2]).text)
    jid1, jid2 = j1[0].partition("=")[2], j2[0].partition("=")[2]
    assert j1 == [f"/traps/jsession/{p};jsessionid={jid1}" for p in pages]
    assert j2 == [f"/traps/jsession/{p};jsessionid={jid2}" for p in pages]
    assert jid1 != jid2
    assert re.fullmatch("[0-9A-F]{32}", jid1)
    assert client.get("/traps/session/checkout").status_code == 404


def test_path_traps(client: httpx.Client) -> None:
    assert anchors(client.get("/traps/deep/a").text) == ["/traps/deep/a", "/traps/deep/a/b"]
    assert anchors(client.get("/traps/deep/a/b/z").text) == [
        "/traps/deep/a/b/z",
        "/traps/deep/a/b/z/a",
    ]
    assert anchors(client.get("/traps/repeat/x/y").text) == [
        "/traps/repeat/x/y",
        "/traps/repeat/x/y/x",
        "/traps/repeat/x/y/y",
    ]
    assert anchors(client.get("/traps/numbered/0").text) == [
        "/traps/numbered/1",
        "/traps/numbered/2",
    ]
    assert client.get("/traps/numbered/01").status_code == 404
    assert client.get("/traps/deep/ab").status_code == 404
    assert client.get("/traps/repeat/z").status_code == 404


def test_query_trap(client: httpx.Client) -> None:
    assert anchors(client.get("/traps/query?a=1").text) == [
        "/traps/query?a=1",
        "/traps/query?a=1&b=1",
    ]
    assert anchors(client.get("/traps/query?a=1&b=1&c=1").text) == [
        "/traps/query?a=1&b=1&c=1",
        "/traps/query?a=1&b=1&c=1&d=1",
        "/traps/query?c=1&b=1&a=1",
        "/traps/query?b=1&c=1&a=1",
    ]


def test_traps_are_endless(client: httpx.Client) -> None:
    """A naive crawler (exact-URL dedup) keeps finding new URLs however far it goes."""
    seen = set(trap_paths())
    queue = list(trap_paths())
    for _ in range(150):
        response = client.get(queue.pop(0))
        assert response.status_code == 200
        for href in anchors(response.text):
            if href not in seen:
                seen.add(href)
                queue.append(href)
    assert len(queue) > 150
    assert all(href.startswith("/traps/") for href in seen)


# --- bookkeeping ---------------------------------------------------------------------------------


def test_request_counts_and_times() -> None:
    # Each reading of this clock is one tick later: an arrival and the end of its answer.
    ticks = itertools.count(100.0)
    with HostileSite(clock=ticks.__next__) as site, http_client(site) as client:
        for target in ("/links/target", "/links/%74arget", "/links/target?x=1", "/links/target"):
            client.get(target)
    assert site.request_counts() == {
        "/links/target": 2,
        "/links/%74arget": 1,
        "/links/target?x=1": 1,
    }
    # The clock's time at each arrival, exactly: the request times are the site's clock's.
    assert site.request_times("/links/target") == [100.0, 104.0, 106.0]
    assert len(site.request_times("/links/")) == 4
    assert site.request_times("/nothing") == []
    assert site.max_concurrent("/links/") == 1
    site.reset()
    assert site.request_counts() == {}
    assert site.request_times("/links/") == []
    assert site.max_concurrent("/links/") == 0


def test_max_concurrent_counts_overlapping_requests(site: HostileSite) -> None:
    sockets = [send(site, "/time/stall") for _ in range(3)]
    try:
        wait_until(lambda: site.in_flight("/time/") == 3, timeout=2)
        assert site.max_concurrent("/time/stall") == 3
        assert site.max_concurrent("/time/slow") == 0
    finally:
        for sock in sockets:
            sock.close()
    wait_until(lambda: site.in_flight("/time/") == 0, timeout=2)
    assert site.max_concurrent("/time/stall") == 3  # history, not the present
    with send(site, "/time/stall"):
        wait_until(lambda: site.in_flight("/time/stall") == 1, timeout=2)
        site.reset()
        # An in-flight request survives reset: concurrency after it still counts it.
        assert site.max_concurrent("/time/stall") == 1
        assert site.request_counts() == {}


def test_keep_alive_head_and_bad_requests(site: HostileSite) -> None:
    with socket.create_connection(("127.0.0.1", site.port), timeout=TIMEOUT) as sock:
        for _ in range(2):
            sock.sendall(b"GET /links/target HTTP/1.1\r\nHost: x\r\n\r\n")
            response = read_one(sock)
            assert parse_head(response)[0] == 200
        sock.sendall(b"HEAD /links/target HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = read_to_close(sock)
    status, headers = parse_head(head)
    assert (status, headers["connection"]) == (200, "close")
    assert head.endswith(b"\r\n\r\n")  # no body after HEAD
    assert int(headers["content-length"]) > 0
    assert raw(site, "/links/target", method="POST")[0] == 405
    with socket.create_connection(("127.0.0.1", site.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
        assert parse_head(read_to_close(sock))[0] == 431
    with socket.create_connection(("127.0.0.1", site.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"nonsense\r\n\r\n")
        assert parse_head(read_to_close(sock))[0] == 400


# --- lifecycle -----------------------------------------------------------------------------------


def test_exit_is_prompt_with_endless_stalled_and_slow_connections_open() -> None:
    # Nothing here ends by itself: the endless body's writes block on a client that does not
    # read, the stall waits for a request that never ends, the slow headers' pause is never
    # stepped. Leaving the block must end them all; the server raises if it did not stop
    # within its stop timeout (waiting them out would never end).
    pacer = StepPacer()
    site = HostileSite(pace=pacer)
    with site:
        port = site.port
        assert site.base_url == f"http://127.0.0.1:{port}"
        held = [send(site, p) for p in ("/body/endless", "/time/stall", "/time/slow-headers")]
        idle = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        held.append(idle)
        wait_until(lambda: site.in_flight("/") == 3, timeout=TIMEOUT)
        # The kernel's buffers are full: the endless body's writes now wait in the server.
        wait_until(lambda: site.unsent_bytes() > 0, timeout=TIMEOUT)
        paused(pacer)
    try:
        assert site.in_flight("/") == 0
        assert (pacer.asked, pacer.waiting) == ([SLOW_HEADER_INTERVAL], 0)  # cut short
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
        stall = held[1]
        assert stall.recv(100) == b""  # closed by the server, not left hanging
    finally:
        for sock in held:
            sock.close()


def test_site_can_be_entered_again() -> None:
    site = HostileSite()
    for expected in (1, 2):
        with site, httpx.Client(trust_env=False, timeout=TIMEOUT) as c:
            assert c.get(site.base_url + "/links/target").status_code == 200
        # Counts live on the object: a second run adds to them until reset().
        assert site.request_counts() == {"/links/target": expected}
