"""The fetch layer: one shared ``httpx.AsyncClient``, streamed and capped bodies, typed errors.

This module and :mod:`crawler.fetch.transport` (the default transport behind the client, over
aiohttp) are the only ones that use httpx and aiohttp (:mod:`crawler.fetch.addresses` implements
aiohttp's resolver interface; the engine passes an injected transport through). Their
exceptions are translated into the :mod:`crawler.errors` tree at one boundary,
:mod:`crawler.fetch.failures`, so the rest of the crawler never sees a transport library's
names.

Per request:

- redirects are not followed: a 3xx comes back as a :class:`Response` with its raw
  ``Location``, whatever it holds, and the engine sends the target through the frontier
  (scope, dedup, politeness);
- the address guard is asked before every request (no connection to private addresses);
- the body is read only for HTML and for ``fetch.download_types`` (decided from the headers;
  :mod:`crawler.fetch.downloads`, whose bodies get their SHA-256 as they are read), and decoded by
  :mod:`crawler.fetch.body`, not by httpx, so that decompression itself stops at
  ``max_body_bytes``: a gzip bomb costs at most the cap. We ask only for gzip and deflate; a
  body in an encoding we did not ask for (br, zstd, ...) is refused unread
  (``unsupported_encoding``);
- connect and read timeouts bound each step, and ``total_timeout`` bounds the whole response,
  so a server that drips one byte at a time cannot hold a worker;
- ``Fetcher(on_request_sent=...)`` hears when each request really goes out, for politeness.
- the request's headers are the crawler's own, ``fetch.headers`` and its host's
  ``[fetch.hosts]`` headers and basic auth (:mod:`crawler.fetch.headers`), the same for
  pages, robots.txt and sitemaps;
- https is verified against the transport's usual CAs and ``fetch.ca_file``'s; a certificate
  that does not verify, or a failed handshake, is :class:`~crawler.errors.TlsFailed`, in the
  same words from either transport.

The per-request CPU cost matters (a crawl makes thousands of requests a second on one event
loop), so the request is built and the response read with less than httpx's general-purpose
work where the result is the same: :meth:`Fetcher._request`, :func:`_pick_headers`.

Cookies (``fetch.cookies``) are kept per host by :class:`crawler.fetch.cookies.HostCookies`, not by
httpx's client, whose one jar shares a cookie with every host its Domain attribute names and
whose Cookie header fails on a non-ASCII cookie; the client's own jar never stores anything.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx

from crawler.config import FetchSection
from crawler.errors import (
    ProxyFailed,
    TimedOut,
    UnsupportedURL,
)
from crawler.fetch.addresses import AddressGuard
from crawler.fetch.body import CappedBody, read_capped
from crawler.fetch.cookies import HostCookies
from crawler.fetch.cookies_file import read_cookies_file
from crawler.fetch.downloads import DownloadTypes
from crawler.fetch.failures import translate
from crawler.fetch.headers import RequestHeaders, crawler_headers
from crawler.fetch.proxies import Proxy, ProxyRoutes
from crawler.fetch.transport import (
    BODILESS_STATUSES,
    aiohttp_default_context,
    aiohttp_transport,
    sending_url,
)
from crawler.models import Response, is_html_type
from crawler.resource import AsyncResource

_NO_BODY = httpx.ByteStream(b"")
"""Every request's body: a GET sends none (the stream holds no state, so one serves all)."""
_UNREAD = CappedBody(b"", truncated=False, notes=(), sha256=None)
"""The body of a response whose body is not read (a redirect, a type not asked for)."""


class Fetcher(AsyncResource):
    """Owns the crawl's one HTTP client. Use ``async with Fetcher(...) as fetcher``.

    ``on_request_sent(url)``, if given, is called once for each request that goes out, with the
    URL exactly as passed to :meth:`fetch`, when it goes out: the frontier spaces a host's
    requests by when they were really sent, which on a busy event loop can be well after the
    worker asked for them. With the default (aiohttp) transport that is when the request's
    headers are written to the connection: a connection that cannot be made announces
    nothing, and a GET that aiohttp sends again on a new connection (the kept-alive one closed
    before any answer) is announced again, as the server sees it twice. With httpx's own
    transport or an injected one, which say nothing of it, it is just before the request is
    handed to httpx. A request the address guard refuses is never announced. The hook runs on
    the event loop, inside the request: it must be quick and must not raise."""

    def __init__(
        self,
        config: FetchSection,
        *,
        user_agent: str,
        concurrency: int,
        transport: httpx.AsyncBaseTransport | None = None,
        guard: AddressGuard | None = None,
        on_request_sent: Callable[[str], None] | None = None,
    ) -> None:
        self._config = config
        self._cookies = (
            HostCookies(read_cookies_file(config.cookies_file) if config.cookies_file else ())
            if config.cookies == "per-host"
            else None
        )
        self._guard = guard
        self._downloads = DownloadTypes(config.download_types) or None
        """None: HTML only (nothing to match per response)."""
        self._on_request_sent = on_request_sent
        self._sent_by_transport = False
        """Whether the transport calls ``on_request_sent`` (else :meth:`_get` does)."""
        routes = ProxyRoutes(config)
        self._routes = routes if routes.proxies else None
        """None when no request goes through a proxy: nothing to look up per request."""
        if transport is None and config.transport == "aiohttp":
            proxy_hosts = frozenset(proxy.host for proxy in routes.proxies)
            tls = _trusting(aiohttp_default_context(), config.ca_file) if config.ca_file else None
            transport = aiohttp_transport(concurrency, guard, on_request_sent, proxy_hosts, tls=tls)
            self._sent_by_transport = on_request_sent is not None
        self._client = _Client(
            headers=crawler_headers(user_agent),
            timeout=httpx.Timeout(
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=config.read_timeout,
                pool=config.total_timeout,
            ),
            # One connection per worker: every worker can be talking at once, and idle
            # connections stay open for the next request to the same host.
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
            # Proxies and netrc from the environment would make crawls differ between machines.
            trust_env=False,
            transport=transport,  # None: httpx builds its own (httpcore) pool
            # httpcore's (else aiohttp's own, above): certifi's CAs, and fetch.ca_file's.
            verify=_trusting(httpx.create_ssl_context(trust_env=False), config.ca_file)
            if config.ca_file and transport is None
            else True,
        )
        # What build_request would add to each request, computed once (see _request).
        self._extensions: dict[str, object] = {"timeout": self._client.timeout.as_dict()}
        self._headers = RequestHeaders(self._client.headers.raw, config)

    @property
    def cookies(self) -> HostCookies | None:
        """The crawl's cookie jars (None: ``fetch.cookies = "off"``), saved and loaded by the
        engine across the crawl's runs."""
        return self._cookies

    async def _aopen(self) -> None:
        await self._client.__aenter__()

    async def _aclose(self) -> None:
        # Closes the transport too (aiohttp's session and its connections, or httpcore's
        # pool), opened or not.
        await self._client.aclose()

    async def fetch(
        self, url: str, *, any_type: bool = False, max_bytes: int = 0, checked: bool = False
    ) -> Response:
        """GET ``url``. Raises a :class:`PageError` subclass when no usable response arrives.

        The body is read for HTML and ``fetch.download_types`` only, unless ``any_type``; at
        most ``max_bytes`` (default: the configured cap). ``checked``: the caller already ran
        :meth:`check_address` (its verdict is cached, so a second check would only repeat
        it)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._config.total_timeout):
                if not checked:
                    await self.check_address(url)
                cap = max_bytes or self._config.max_body_bytes
                return await self._get(url, started, any_type, cap)
        except aiohttp.ClientError as exc:  # before TimeoutError: some are both
            raise translate(exc) from None
        except TimeoutError:
            raise TimedOut(f"no complete response within {self._config.total_timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise translate(exc) from None
        except httpx.InvalidURL as exc:
            raise UnsupportedURL(str(exc)) from None

    async def check_address(self, url: str) -> None:
        """Raise :class:`AddressBlocked` if the address guard refuses ``url``'s host."""
        if self._guard is not None:
            parts = urlsplit(url)
            await self._guard.check(parts.hostname or "", parts.port or 0)

    async def _get(self, url: str, started: float, any_type: bool, cap: int) -> Response:
        request, response = await self._send(url)
        try:
            items = response.headers.multi_items()
            wanted = _pick_headers(items)
            content_type = wanted.get("content-type")
            read = _UNREAD
            if "set-cookie" in wanted and self._cookies is not None:
                raw = response.headers.raw
                self._cookies.store(
                    str(request.url),
                    request.url.host,
                    [value for key, value in raw if key.lower() == b"set-cookie"],
                )
            # A fetch for the crawl's own use (robots.txt, a sitemap: any_type) is no download:
            # it has no page row to carry a digest.
            download = (
                not any_type and self._downloads is not None and self._downloads.match(content_type)
            )
            if (any_type or download or is_html_type(content_type)) and not response.is_redirect:
                encoding = wanted.get("content-encoding", "")
                read = await read_capped(response.aiter_raw(), encoding, cap, digest=download)
            return Response(
                url=url,
                status=response.status_code,
                content_type=content_type,
                body=read.data,
                location=wanted.get("location") if response.is_redirect else None,
                truncated=read.truncated,
                elapsed=time.perf_counter() - started,
                retry_after=wanted.get("retry-after"),
                robots_tag=wanted.get("x-robots-tag"),
                notes=read.notes,
                headers=tuple(response.headers.raw),
                http_version=response.http_version,
                reason=response.extensions.get("reason_phrase", b""),
                sha256=read.sha256,
            )
        finally:
            if response.status_code in BODILESS_STATUSES:
                await _close_connection(response)
            await response.aclose()
            # httpx's response and its stream refer to each other: left so, every response
            # (aiohttp's under it: ~36 objects) is freed only by the cyclic garbage
            # collector, whose pauses then stall the event loop. Unlinked, it goes at once.
            del response.stream

    async def _send(self, url: str) -> tuple[httpx.Request, httpx.Response]:
        """The request for ``url``, sent, and its response (the body not read yet).

        Through ``fetch.proxies`` a proxy that fails for itself (no connection, a refused
        CONNECT, a 407) is taken out of rotation and the request goes through the next one:
        each proxy at most once per fetch, then :class:`ProxyFailed`."""
        pool = None if self._routes is None else self._routes.pool
        if pool is None:
            request = self._request(url)
            return request, await self._send_once(url, request)
        for _ in pool.proxies:
            request = self._request(url)  # through the next proxy in rotation
            proxy: Proxy | None = request.extensions.get("proxy")
            if proxy is None or proxy not in pool:  # no_proxy, or the host's own route
                return request, await self._send_once(url, request)
            try:
                response = await self._send_once(url, request)
            except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError):
                pool.failed(proxy)
                continue
            if response.status_code != 407:  # else the proxy's own refusal, not the target's
                pool.succeeded(proxy)
                return request, response
            await response.aclose()
            del response.stream  # as _get does: freed at once
            pool.failed(proxy)
        raise ProxyFailed(f"the request failed through each of {len(pool.proxies)} proxies")

    async def _send_once(self, url: str, request: httpx.Request) -> httpx.Response:
        if self._sent_by_transport:
            # The transport's request class finds the URL here (same task, same context).
            token = sending_url.set(url)
            try:
                return await self._client.send(request, stream=True)
            finally:
                sending_url.reset(token)
        if self._on_request_sent is not None:
            self._on_request_sent(url)
        return await self._client.send(request, stream=True)

    def _request(self, url: str) -> httpx.Request:
        """The request ``client.build_request("GET", url)`` would build, built with less work.

        ``build_request`` merges the client's URL, params, headers and cookies with the call's
        (none here) and copies headers and cookie jar twice on the way; this client has no
        base URL and no params, so what is left is its headers (per host:
        :mod:`crawler.fetch.headers`), its timeouts and the Cookie header for this URL (ours,
        last, where build_request has the client's jar add its own). The request is made with
        an empty body stream, which spares httpx encoding a body it does not have and copying
        the headers again to add the one it would add itself, ``Host``."""
        parsed = httpx.URL(url)
        netloc = parsed.netloc
        headers = [(b"Host", netloc), *self._headers.for_url(parsed.scheme, netloc)]
        if self._cookies:  # none kept (or off): nothing to look up
            # Bytes, as they came in Set-Cookie: httpx would encode a str as ASCII, or fail.
            cookie = self._cookies.header(url, parsed.host)
            if cookie is not None:
                headers.append((b"Cookie", cookie))
        extensions = self._extensions
        if self._routes is not None:
            proxy = self._routes.for_netloc(netloc.decode("ascii"))
            if proxy is not None:  # the transport sends it through the proxy
                extensions = {**extensions, "proxy": proxy}
                if proxy.authorization is not None and parsed.scheme == "http":
                    # This very request goes to the proxy (absolute-form), which removes the
                    # header; an https one's is sent with the CONNECT (the transport's).
                    headers.append((b"Proxy-Authorization", proxy.authorization.encode()))
        request = httpx.Request(
            "GET", parsed, headers=headers, extensions=extensions, stream=_NO_BODY
        )
        request.read()  # what Request does with a body it encodes: its content is known
        return request

    def __repr__(self) -> str:
        return f"<Fetcher state={self.state.value}>"


def _trusting(context: ssl.SSLContext, ca_file: str) -> ssl.SSLContext:
    """``context`` trusting the CAs of ``ca_file`` too (checked at load by
    :mod:`crawler.config_checks`): in addition to the transport's usual ones, as wget's
    ``--ca-certificate`` does, so a crawl that needs a private CA for some hosts still reaches
    every other site (curl's ``--cacert`` replaces them instead)."""
    context.load_verify_locations(cafile=ca_file)
    return context


_WANTED_HEADERS = frozenset(
    # set-cookie: only whether there is one (joined with ", ", its value would be ambiguous;
    # the cookie store reads each raw value).
    ("content-type", "content-encoding", "location", "retry-after", "x-robots-tag", "set-cookie")
)


async def _close_connection(response: httpx.Response) -> None:
    """Close the connection that carried ``response`` so that it is never reused (see
    :data:`~crawler.fetch.transport.BODILESS_STATUSES`), when the transport says which it is:
    httpx's own (httpcore) does, in the ``network_stream`` extension; ours closes it itself
    (:class:`~crawler.fetch.transport.ClosingAfterBodiless`).

    Closed before the response: closing the response returns the connection to the pool, where
    a waiting request could take it at once; a closed one the pool sees expired, and drops."""
    stream = response.extensions.get("network_stream")
    if stream is not None:
        await stream.aclose()


def _pick_headers(items: list[tuple[str, str]]) -> dict[str, str]:
    """The headers the crawler reads, from one pass over the response's (lower-cased) items.

    Repeated headers are joined with ", ", as ``httpx.Headers.get`` joins them; one pass
    instead of a ``get`` per header, each of which decodes and compares every header again."""
    found: dict[str, str] = {}
    for key, value in items:
        if key in _WANTED_HEADERS:
            found[key] = f"{found[key]}, {value}" if key in found else value
    return found


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing: the client's own, which httpx fills from every
    response it sends on (:class:`~crawler.fetch.cookies.HostCookies` keeps the crawl's cookies).
    Skipping the parse also spares httpx's cost for it: it wraps every response and its
    request in urllib compatibility objects, parsing the URL again, copying the headers."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Client(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose cookie store is :class:`_NoCookies`, and which sends each
    request once, with no redirect handling.

    The client reads its jar through its public ``cookies`` property (to add Cookie headers,
    to store Set-Cookie); overriding the property is the public way to give it ours."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise AttributeError("the crawl's cookies are kept per host, by crawler.fetch.cookies")

    async def _send_handling_redirects(
        self, request: httpx.Request, follow_redirects: bool, history: list[httpx.Response]
    ) -> httpx.Response:
        # httpx builds the next request for every 3xx it receives, even with
        # follow_redirects=False, and a Location it cannot parse as a URL it can send
        # (javascript:, mailto:, "http://[::1", a control byte) raises there, losing the
        # response: the page failed (unsupported_url, or connection_dropped, retried and
        # counted by the circuit breaker) instead of being kept as the 3xx it is. The crawler
        # never follows redirects here (the frontier does), so it sends the one request; the
        # raw Location goes to crawler.parse.outcome's redirect rules. No public API turns this off.
        return await self._send_single_request(request)
