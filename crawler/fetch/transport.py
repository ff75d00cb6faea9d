"""The default transport behind the crawl's ``httpx.AsyncClient``: one aiohttp session, built
for crawling by :func:`aiohttp_transport`.

httpx stays the crawler's HTTP API; its own transport (httpcore) is the known bottleneck (its
pool does O(connections) work per request under a lock, httpx issue 3215) and aiohttp's pool is
O(1). httpx-aiohttp's transport bridges the two for any use; this one does only what
:class:`crawler.fetch.client.Fetcher` needs, which is what made it cheaper on the event loop
(measured with ``python -m crawler.bench.stages``, docs/performance.md and git history):

- the URL goes to aiohttp already parsed and percent-encoded by httpx (``yarl.URL(...,
  encoded=True)``), not encoded a second time;
- the timeouts become one ``aiohttp.ClientTimeout``, built once per distinct value, and the
  request headers one ``CIMultiDict``, built once per distinct set;
- "the request was sent" comes from a :class:`aiohttp.ClientRequest` subclass
  (:func:`announcing_request_class`, told which URL by :data:`sending_url`) rather than a
  trace config, whose signals aiohttp fires about eight times per request whether or not
  anyone listens to them;
- aiohttp's exceptions are not rewrapped: the fetcher translates them at its one boundary
  (:func:`crawler.fetch.failures.translate`), with their own names, which say more.

Only the fetcher may use this transport: it raises aiohttp's exceptions, not httpx's.
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any, cast

import aiohttp
import httpx
import yarl
from aiohttp.client_proto import ResponseHandler
from multidict import CIMultiDict

from crawler.fetch.addresses import AddressGuard, GuardedResolver
from crawler.fetch.proxies import Proxy

SessionFactory = Callable[[], aiohttp.ClientSession]
_PROTOCOLS = {aiohttp.HttpVersion10: b"HTTP/1.0", aiohttp.HttpVersion11: b"HTTP/1.1"}
BODILESS_STATUSES = frozenset({204, 304})
"""Statuses whose response ends with its headers (RFC 9110 15.3.5, 15.4.5): a connection that
carried one is closed, never reused. Bytes a server sends after it anyway (the body it may not
have) would otherwise be read as the start of the next response on that connection, failing
an innocent URL; a new connection costs little for statuses this rare."""
MAX_HEADER_SETS = 4096
"""Distinct request header sets kept converted for aiohttp (about one per host)."""


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``handle_async_request`` over the aiohttp session ``session()`` makes (lazily: aiohttp
    wants to be created inside the running loop)."""

    def __init__(self, session: SessionFactory) -> None:
        self._make_session = session
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._header_sets: dict[tuple[tuple[bytes, bytes], ...], CIMultiDict[str]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session
        if session is None:
            session = self._session = self._make_session()
        proxy: Proxy | None = request.extensions.get("proxy")
        response = await session.request(
            request.method,
            yarl.URL(str(request.url), encoded=True),
            headers=self._headers(request.headers),
            data=request.content or None,
            allow_redirects=False,
            timeout=self._timeout(request.extensions.get("timeout", {})),
            proxy=None if proxy is None else proxy.url,
            proxy_headers=self._connect_headers(proxy, request),
        )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            # As httpcore gives them: the status line's protocol and reason phrase as received
            # (aiohttp decodes the phrase with surrogateescape, so this gives its bytes back).
            extensions={
                "http_version": _protocol(response.version),
                "reason_phrase": (response.reason or "").encode("utf-8", "surrogateescape"),
            },
        )

    @staticmethod
    def _connect_headers(proxy: Proxy | None, request: httpx.Request) -> dict[str, str] | None:
        # The CONNECT of an https target (aiohttp adds only these to it): the crawl's
        # User-Agent, which the proxy logs (else aiohttp's own, "Python/3.x aiohttp/3.x"),
        # and the proxy's credentials; an http target's request goes to the proxy itself and
        # carries both (crawler.fetch.client).
        if proxy is None or request.url.scheme != "https":
            return None
        headers = {"User-Agent": request.headers.get("user-agent", "")}
        if proxy.authorization is not None:
            headers["Proxy-Authorization"] = proxy.authorization
        return headers

    def _headers(self, headers: httpx.Headers) -> CIMultiDict[str]:
        # A crawl sends the same few header sets again and again (the client's, with each
        # host's Host): converted once each, rather than by aiohttp on every request through
        # httpx's decoding mapping view. Bounded: a crawl of many hosts starts it over.
        key = tuple(headers.raw)
        found = self._header_sets.get(key)
        if found is None:
            if len(self._header_sets) >= MAX_HEADER_SETS:
                self._header_sets.clear()
            found = self._header_sets[key] = CIMultiDict(headers.multi_items())
        return found

    def _timeout(self, timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
        # httpx's connect/read/pool mapped as httpx-aiohttp maps them: pool (waiting for a
        # free connection) is aiohttp's "connect", which includes making the connection.
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return found

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _protocol(version: aiohttp.HttpVersion | None) -> bytes:
    """The status line's protocol, ``HTTP/1.1`` for the common ones without formatting."""
    if version is None:
        return b"HTTP/1.1"
    return _PROTOCOLS.get(version) or b"HTTP/%d.%d" % (version.major, version.minor)


class _Body(httpx.AsyncByteStream):
    """The response body as aiohttp buffers it; closing returns the connection to the pool
    when the body was read to its end, and closes it otherwise."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while chunk := await content.readany():  # iter_any() without its iterator object
            yield chunk

    async def aclose(self) -> None:
        self._response.release()


class ClosingAfterBodiless(aiohttp.ClientResponse):
    """The session's response class (``response_class=``): closes the connection of a response
    with a bodiless status (:data:`BODILESS_STATUSES`) instead of leaving it in the pool.

    aiohttp returns such a connection to the pool as soon as the headers are read (its empty
    body is complete at once), before anyone sees the status; it is closed here, right after,
    with no await in between, so no other request can have taken it."""

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        protocol = connection.protocol
        response = await super().start(connection)
        if self.status in BODILESS_STATUSES and protocol is not None:
            protocol.close()
        return response


def tidy_heads(data: bytes) -> tuple[bytes, bool]:
    """The first bytes a connection received after a request was written, with the two shapes
    of head that aiohttp's parser refuses made plain, and whether the next bytes still start a
    head (only interim responses were read).

    - An interim (1xx) response says ``Connection: close``, or is ``HTTP/1.0``: aiohttp then
      takes the final response after it for data after the end of the connection. Interim
      responses are skipped by the client whatever they say (RFC 9110 15.2), so those header
      lines go and the version reads 1.1.
    - A 204 or 304 with bytes after its head (a body it may not have, RFC 9110 15.3.5, 15.4.5)
      in the same packet: aiohttp reads them as the next status line and fails the response.
      They are dropped; the connection is closed after such a response anyway
      (:class:`ClosingAfterBodiless`).

    A head split across packets is left as it is."""
    start = 0
    tidied: list[bytes] = []
    while data.startswith(b"HTTP/1.", start):
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            break
        end += 4
        status = data[start + 9 : start + 12]
        if status[:1] == b"1":
            head = _CONNECTION_LINE.sub(b"", data[start:end])
            tidied.append(b"HTTP/1.1" + head[8:])
            start = end
            continue
        if status in _BODILESS and end < len(data):
            return b"".join(tidied) + data[start:end], False
        break
    if not tidied:
        return data, False
    return b"".join(tidied) + data[start:], start == len(data)


_CONNECTION_LINE = re.compile(rb"\r\nconnection:[^\r\n]*", re.IGNORECASE)
_BODILESS = frozenset(b"%d" % status for status in BODILESS_STATUSES)


class HeadTidyingHandler(ResponseHandler):
    """The connector's protocol: the start of each response goes through :func:`tidy_heads`
    before aiohttp's parser. Costs one flag test per packet, and a prefix test per response."""

    _expecting_head = False

    def set_response_params(self, **params: Any) -> None:
        # aiohttp calls this once per request, before writing it: what comes next is a head.
        self._expecting_head = True
        super().set_response_params(**params)

    def data_received(self, data: bytes) -> None:
        if self._expecting_head and data:
            data, self._expecting_head = tidy_heads(data)
        super().data_received(data)


def head_tidying_connector(**options: Any) -> aiohttp.TCPConnector:
    """An aiohttp connector whose connections are :class:`HeadTidyingHandler`s. aiohttp has no
    public hook for its protocol class; ``tests/test_fetch_wire.py`` fails if this one stops
    taking effect."""
    connector = aiohttp.TCPConnector(**options)
    factory = functools.partial(HeadTidyingHandler, loop=connector._loop)
    connector._factory = cast("functools.partial[ResponseHandler]", factory)
    return connector


def announcing_request_class(
    on_sent: Callable[[], None],
) -> type[aiohttp.ClientRequest]:
    """An aiohttp request class that calls ``on_sent()`` each time the request has been
    written to a connection, and never for one whose connection could not be made."""

    class AnnouncingRequest(aiohttp.ClientRequest):
        async def send(self, conn: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
            response = await super().send(conn)
            on_sent()
            return response

    return AnnouncingRequest


KEEPALIVE_SECONDS = 5.0
"""Idle connections are closed after this long (httpx's default)."""


sending_url: ContextVar[str | None] = ContextVar("crawler_sending_url", default=None)
"""The URL (as given to :meth:`~crawler.fetch.client.Fetcher.fetch`) of the request this task is
sending through aiohttp: the fetcher sets it around each send. aiohttp's request knows only
its own parse of it, which may be spelt otherwise (httpx and yarl normalize), and the hook's
caller keys its hosts by the URL it fetched.

Why a context variable, when "a request went out" otherwise goes straight from the request
to ``on_request_sent`` (the frontier's ``request_sent``, then the host's slot): aiohttp makes
the request object itself, inside ``session.request``, and takes nothing per request that
reaches it but trace configs (eight signals fired per request, listened to or not: slower,
see the top of this module); its client middlewares (aiohttp 3.12, newer than we require)
see the request before it is written and the response after, not the moment between. A
context variable is per task, which is exactly "the request this task is sending", costs a
set and a reset per fetch, and needs nothing from the fetcher's callers: every request
through the fetcher (a page, robots.txt, a sitemap) is announced, none can forget."""


def aiohttp_default_context() -> ssl.SSLContext:
    """The context aiohttp verifies https with by default (the system's CAs, ALPN
    http/1.1), for ``fetch.ca_file`` to add to."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context


def aiohttp_transport(
    connections: int,
    guard: AddressGuard | None,
    on_request_sent: Callable[[str], None] | None,
    proxy_hosts: frozenset[str] = frozenset(),
    tls: ssl.SSLContext | None = None,
) -> httpx.AsyncBaseTransport:
    """Our aiohttp transport over a session tuned for crawling, announcing each request as it is
    sent (``on_request_sent``, for the URLs a task marks as :data:`sending_url`). A request
    whose ``proxy`` extension holds a :class:`~crawler.fetch.proxies.Proxy` goes through it;
    the guard lets the connections to ``proxy_hosts`` through (the user chose them). ``tls``:
    the context of https connections (tunnelled ones too); None: aiohttp's verifying default."""
    request_class = aiohttp.ClientRequest
    if on_request_sent is not None:

        def sent() -> None:
            url = sending_url.get()
            if url is not None:  # else not one of our fetches
                on_request_sent(url)

        request_class = announcing_request_class(sent)

    def session() -> aiohttp.ClientSession:
        # Created lazily, inside the running loop, as aiohttp requires.
        connector = head_tidying_connector(
            limit=connections,
            limit_per_host=0,  # per-host limits are the frontier's job
            keepalive_timeout=KEEPALIVE_SECONDS,
            # The guard's resolver, cache and all (crawler.fetch.dns), even with the guard off:
            # one lookup per name for both, and fetch.resolve's answers. aiohttp's own cache
            # would only keep a second copy, with its own TTL.
            resolver=GuardedResolver(guard, proxy_hosts) if guard is not None else None,
            use_dns_cache=guard is None,
            ssl=True if tls is None else tls,
        )
        client = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # crawler.fetch.body decodes, bounded by the size cap
            cookie_jar=aiohttp.DummyCookieJar(),  # the fetcher keeps them (crawler.fetch.cookies)
            trust_env=False,
            request_class=request_class,
            response_class=ClosingAfterBodiless,
        )
        # aiohttp sends a GET again, once, when its connection is reset or closed before the
        # response (on a new connection too): under the frontier's retries every such URL was
        # requested twice per attempt, and the host saw 2 x (fetch.max_retries + 1) requests.
        # The frontier's budget is the only one. No public switch exists (aiohttp issue
        # #10790); aiohttp's own test client clears this same flag.
        client._retry_connection = False
        return client

    return AiohttpTransport(session)
