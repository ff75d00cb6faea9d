"""The fetch layer against a real HTTP server on 127.0.0.1, over both transports: cookies,
responses as received (redirects httpx cannot parse, interim and bodiless responses), and the
moment a request is announced as sent (``Fetcher(on_request_sent=...)``).

The server runs on the test's own event loop, so what it has received is known exactly when
the fetch returns, with no waiting."""

from __future__ import annotations

import asyncio
import gc
import socket

import pytest

from crawler.config import FetchSection
from crawler.errors import ConnectFailed, ConnectionDropped
from crawler.fetch.addresses import AddressBlocked, AddressGuard
from crawler.fetch.client import Fetcher
from tests.helpers import NO_SERVER, rebinding_dns
from tests.servers import Request, Stream, TestServer

pytestmark = pytest.mark.anyio

TRANSPORTS = ["aiohttp", "httpcore"]
PAGE = b"<title>page</title>"


class WireSite(TestServer):
    """Answers every request with raw bytes it builds itself, keeping connections alive. A
    target in ``set_cookie`` answers with that raw Set-Cookie value (``/login``: ``sid=42``);
    one in ``needs_cookie`` answers 403 to a request without a Cookie header; one in
    ``drop_once`` is, the first time, read and then its connection closed without an answer.
    One in ``raw`` is answered with those bytes, exactly, in one write; one in ``stray`` leaves
    those bytes to be written, on the same connection, just before the answer to the next
    request there (bytes that arrive late)."""

    def __init__(self, host: str) -> None:
        super().__init__(self._answer, host=host)
        self.set_cookie: dict[str, bytes] = {"/login": b"sid=42; Path=/"}
        self.needs_cookie: set[str] = set()
        self.drop_once: set[str] = set()
        self.raw: dict[str, bytes] = {}
        self.stray: dict[str, bytes] = {}
        self._pending: dict[int, bytes] = {}  # connection -> stray bytes left by its last answer

    def targets(self) -> list[str]:
        return [request.target for request in self.requests()]

    def cookies_sent(self) -> list[str | None]:
        return [request.headers.get("cookie") for request in self.requests()]

    def _answer(self, request: Request) -> bytes | Stream:
        target = request.target
        if target in self.drop_once:
            self.drop_once.discard(target)
            return _close_without_answer
        pending = self._pending.pop(request.connection, b"")
        if target in self.raw:
            self._pending[request.connection] = self.stray.get(target, b"")
            return pending + self.raw[target]
        cookie = self.set_cookie.get(target)
        extra = b"Set-Cookie: %s\r\n" % cookie if cookie is not None else b""
        refused = target in self.needs_cookie and "cookie" not in request.headers
        return b"%sHTTP/1.1 %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n%s\r\n%s" % (
            pending,
            b"403 Forbidden" if refused else b"200 OK",
            len(PAGE),
            extra,
            PAGE,
        )


async def _close_without_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    pass  # the server closes the connection when a stream returns


def fetcher(
    transport: str, sent: list[str], guard: AddressGuard | None = None, cookies: str = "per-host"
) -> Fetcher:
    config = FetchSection(
        transport=transport,  # type: ignore[arg-type]
        connect_timeout=5.0,
        cookies=cookies,  # type: ignore[arg-type]
    )
    return Fetcher(config, user_agent="t", concurrency=2, guard=guard, on_request_sent=sent.append)


# -- cookies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_cookie_set_by_one_response_is_sent_back_to_its_host(transport: str) -> None:
    async with WireSite("127.0.0.1") as server, fetcher(transport, []) as f:
        await f.fetch(server.url("/before"))
        await f.fetch(server.url("/login"))
        await f.fetch(server.url("/after"))
        await f.fetch(server.url("/other-host", host="localhost"))
    assert server.targets() == [
        "/before",
        "/login",
        "/after",
        "/other-host",
    ]
    assert server.cookies_sent() == [None, None, "sid=42", None]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("cookies", "sent", "status"), [("per-host", "sid=42", 200), ("off", None, 403)]
)
async def test_a_page_that_needs_the_cookie_set_by_the_one_before(
    transport: str, cookies: str, sent: str | None, status: int
) -> None:
    async with WireSite("127.0.0.1") as server, fetcher(transport, [], cookies=cookies) as f:
        server.needs_cookie.add("/members")
        await f.fetch(server.url("/login"))
        members = await f.fetch(server.url("/members"))
    assert server.cookies_sent() == [None, sent]
    assert members.status == status


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_cookie_set_by_one_loopback_host_is_never_sent_to_another(transport: str) -> None:
    async with (
        WireSite("127.0.0.2") as two,
        WireSite("127.0.0.3") as three,
        fetcher(transport, []) as f,
    ):
        await f.fetch(two.url("/login"))
        await f.fetch(three.url("/after"))
        await f.fetch(two.url("/after"))
    assert two.cookies_sent() == [None, "sid=42"]
    assert three.cookies_sent() == [None]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_cookie_with_non_ascii_bytes_goes_back_as_it_came(transport: str) -> None:
    # A Set-Cookie in UTF-8 (as sites send it): httpx refused to encode the Cookie header
    # built from it, and the exception ended the crawl (issue 23).
    city = "city=Köln".encode()
    async with WireSite("127.0.0.1") as server, fetcher(transport, []) as f:
        server.set_cookie["/login"] = city + b"; Path=/"
        await f.fetch(server.url("/login"))
        await f.fetch(server.url("/after"))
    assert [cookie and cookie.encode("latin-1") for cookie in server.cookies_sent()] == [None, city]


@pytest.mark.parametrize(
    ("transport", "sent"), [("aiohttp", "city=Köln".encode()), ("httpcore", b"city=K\xf6ln")]
)
async def test_a_latin_1_cookie_goes_back_too(transport: str, sent: bytes) -> None:
    # httpcore sends the bytes as they came; aiohttp takes headers as text and writes them in
    # UTF-8, so the one byte ö arrives as two.
    async with WireSite("127.0.0.1") as server, fetcher(transport, []) as f:
        server.set_cookie["/login"] = b"city=K\xf6ln; Path=/"
        await f.fetch(server.url("/login"))
        await f.fetch(server.url("/after"))
    assert [cookie and cookie.encode("latin-1") for cookie in server.cookies_sent()] == [None, sent]


# -- responses as received -------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "location",
    [
        b"javascript:void(0)",
        b"mailto:someone@example.com",
        b"data:text/html,x",
        b"tel:+1-555-0100",
        b"about:blank",
        b"http://[::1",
        b"/a\x01b",
    ],
)
async def test_a_redirect_httpx_cannot_parse_is_returned_as_received(
    transport: str, location: bytes
) -> None:
    # httpx built the next request even with follow_redirects=False, and raised on these:
    # unsupported_url, or connection_dropped (retried, counted by the circuit breaker). The
    # 302 comes back with its raw Location, for crawler.parse.outcome to note redirect_invalid.
    async with WireSite("127.0.0.1") as server, fetcher(transport, []) as f:
        server.raw["/moved"] = (
            b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location
        )
        moved = await f.fetch(server.url("/moved"))
        after = await f.fetch(server.url("/after"))
    assert (moved.status, moved.location) == (302, location.decode("latin-1"))
    assert after.status == 200
    assert server.targets() == ["/moved", "/after"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </b.css>\r\n\r\n",
        # What aiohttp's parser alone took for data after the end of the connection.
        b"HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\n",
        b"HTTP/1.0 100 Continue\r\n\r\n",
    ],
)
async def test_interim_responses_read_with_the_final_one_are_skipped(
    transport: str, interim: bytes
) -> None:
    # RFC 9110 15.2: a client parses and skips any 1xx before the final response; here all of
    # them arrive in one packet with it, and the connection serves the next request.
    final = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
    async with WireSite("127.0.0.1") as server, fetcher(transport, []) as f:
        server.raw["/hinted"] = interim + final % (len(PAGE), PAGE)
        hinted = await f.fetch(server.url("/hinted"))
        after = await f.fetch(server.url("/after"))
    assert (hinted.status, hinted.body) == (200, PAGE)
    assert (after.status, after.body) == (200, PAGE)
    assert server.connections == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
async def test_bytes_arriving_after_a_bodiless_response_never_reach_the_next_url(
    transport: str, status: bytes
) -> None:
    # The body a 204/304 may not have, written late (after the client took the response):
    # on the kept-alive connection it was read as the next URL's status line, failing it.
    async with WireSite("127.0.0.1") as server, fetcher(transport, []) as f:
        server.raw["/empty"] = b"HTTP/1.1 %s\r\nContent-Type: text/html\r\n\r\n" % status
        server.stray["/empty"] = b"<p>a body this status cannot have</p>"
        empty = await f.fetch(server.url("/empty"))
        after = await f.fetch(server.url("/after"))
    assert (empty.status, empty.body) == (int(status[:3]), b"")
    assert (after.status, after.body) == (200, PAGE)
    assert server.connections == 2  # the bodiless response's connection was not reused


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_body_sent_with_a_204_never_reaches_the_next_url(transport: str) -> None:
    # Body bytes in the same packet as the 204: aiohttp's parser read them at once as a next
    # status line and failed the 204 itself; httpcore left them for the next response on the
    # connection. The 204 is what was answered, and the next URL gets a clean connection.
    async with WireSite("127.0.0.1") as server, fetcher(transport, []) as f:
        server.raw["/empty"] = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"
        empty = await f.fetch(server.url("/empty"))
        after = await f.fetch(server.url("/after"))
    assert (empty.status, empty.body) == (204, b"")
    assert (after.status, after.body) == (200, PAGE)
    assert server.connections == 2


# -- memory -----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_fetched_response_is_freed_at_once_not_by_the_cycle_collector(
    transport: str,
) -> None:
    # httpx links a response and its stream both ways; the fetcher unlinks them, or every
    # response (aiohttp's under it) waits for the cyclic collector, whose pauses stall the loop.
    async with WireSite("127.0.0.1") as server, fetcher(transport, []) as f:
        await f.fetch(server.url("/warm-up"))  # pools and caches made once
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds is kept in gc.garbage
        try:
            for i in range(20):
                await f.fetch(server.url(f"/page/{i}"))
            gc.collect()
            left_for_the_collector = [type(o).__name__ for o in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert left_for_the_collector == []


# -- on_request_sent --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_each_request_sent_is_announced_once_with_its_url(transport: str) -> None:
    sent: list[str] = []
    async with WireSite("127.0.0.1") as server, fetcher(transport, sent) as f:
        # The hook gets the URL as fetched, not as the transport spells it after parsing
        # (this one's path loses "/a/..", its host its capitals): callers key hosts by it.
        urls = [
            server.url("/robots.txt"),
            server.url("/a/../page"),
            server.url("/page", host="LocalHost"),
        ]
        await f.fetch(urls[0], any_type=True)
        for url in urls[1:]:
            assert sent == urls[: urls.index(url)]  # none announced ahead of its fetch
            await f.fetch(url)
    assert sent == urls
    assert server.targets() == ["/robots.txt", "/page", "/page"]


@pytest.mark.parametrize(("transport", "announced"), [("aiohttp", 0), ("httpcore", 1)])
async def test_a_request_that_never_left_is_not_announced_by_aiohttp(
    transport: str, announced: int
) -> None:
    """aiohttp announces when the headers are written to a connection, so a refused connection
    announces nothing; httpx's own transport cannot tell, so it announces before sending (the
    control: proof that this test sees an announcement when there is one)."""
    sent: list[str] = []
    with socket.socket() as bound_not_listening:  # connecting to it is refused at once
        bound_not_listening.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound_not_listening.getsockname()[1]}/"
        async with fetcher(transport, sent) as f:
            with pytest.raises(ConnectFailed):
                await f.fetch(url)
    assert sent == [url] * announced


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_connection_closed_before_any_answer_is_not_sent_again(transport: str) -> None:
    """A connection closed before any answer: the fetch fails (the frontier's retry budget
    decides what comes next); neither transport sends the GET again on its own (aiohttp did:
    two requests per attempt). One request, one announcement."""
    sent: list[str] = []
    async with WireSite("127.0.0.1") as server, fetcher(transport, sent) as f:
        url = server.url("/flaky")
        server.drop_once.add("/flaky")
        with pytest.raises(ConnectionDropped):
            await f.fetch(url)
    assert len(server.targets()) == 1
    assert sent == [url]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_request_the_guard_refuses_is_not_announced(transport: str) -> None:
    sent: list[str] = []
    guard = AddressGuard(seed_hosts=["example.test"])  # 127.0.0.1 is not a seed host
    async with WireSite("127.0.0.1") as server, fetcher(transport, sent, guard) as f:
        with pytest.raises(AddressBlocked):
            await f.fetch(server.url("/"))
        assert sent == []
        # Negative control: the same fetcher announces a request the guard lets through.
        guard.enabled = False
        await f.fetch(server.url("/"))
    assert sent == [server.url("/")]
    assert len(server.targets()) == 1


async def test_a_request_refused_at_connect_time_is_not_announced() -> None:
    """DNS rebinding: our check sees a public address, aiohttp's connector then gets loopback
    and the guard refuses it there, before any connection (only the aiohttp transport can)."""
    sent: list[str] = []
    dns = rebinding_dns(first=NO_SERVER, then="127.0.0.1")
    guard = AddressGuard(seed_hosts=["example.test"], allow=[NO_SERVER], dns=dns)
    async with WireSite("127.0.0.1") as server, fetcher("aiohttp", sent, guard) as f:
        with pytest.raises(AddressBlocked, match="localhost resolves to non-public"):
            await f.fetch(server.url("/", host="localhost"))
    assert (sent, server.targets()) == ([], [])
