"""The fetch layer: one shared ``httpx.AsyncClient``, streamed and capped bodies, typed errors.

This is the only module that imports httpx. Its exceptions are translated into the
:mod:`crawler.errors` tree here, at one boundary (:func:`_translate`), so the rest of the crawler
never sees a transport library's names.

Per request:

- redirects are not followed: a 3xx comes back as a :class:`Response` with its ``Location``,
  and the engine sends the target through the frontier (scope, dedup, politeness);
- the body is read only for HTML (decided from the headers), decoded (gzip, deflate, br...),
  and reading stops at ``max_body_bytes`` (``truncated`` is set);
- connect and read timeouts bound each step, and ``total_timeout`` bounds the whole response,
  so a server that drips one byte at a time cannot hold a worker.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

import httpx

from crawler.config import FetchSection
from crawler.errors import (
    ConnectFailed,
    ConnectionDropped,
    InvalidResponse,
    PageError,
    TimedOut,
    UnsupportedURL,
)
from crawler.models import Response, is_html_type

ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"


class Fetcher:
    """Owns the crawl's one HTTP client. Use ``async with Fetcher(...) as fetcher``."""

    def __init__(
        self,
        config: FetchSection,
        *,
        user_agent: str,
        concurrency: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._client = httpx.AsyncClient(
            headers={"User-Agent": user_agent, "Accept": ACCEPT},
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
            transport=transport,
        )

    async def __aenter__(self) -> Fetcher:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    async def fetch(self, url: str) -> Response:
        """GET ``url``. Raises a :class:`PageError` subclass when no usable response arrives."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._config.total_timeout):
                return await self._get(url, started)
        except TimeoutError:
            raise TimedOut(f"no complete response within {self._config.total_timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise _translate(exc) from None
        except httpx.InvalidURL as exc:
            raise UnsupportedURL(str(exc)) from None

    async def _get(self, url: str, started: float) -> Response:
        async with self._client.stream("GET", url) as response:
            content_type = response.headers.get("content-type")
            location = response.headers.get("location") if response.is_redirect else None
            body = b""
            truncated = False
            if is_html_type(content_type) and not response.is_redirect:
                body, truncated = await _read_capped(response, self._config.max_body_bytes)
            return Response(
                url=url,
                status=response.status_code,
                content_type=content_type,
                body=body,
                location=location,
                truncated=truncated,
                elapsed=time.perf_counter() - started,
            )

    def __repr__(self) -> str:
        return f"<Fetcher closed={self._client.is_closed}>"


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """Read the decoded body up to ``cap`` bytes; True if there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def _translate(exc: httpx.HTTPError) -> PageError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TimedOut(f"{type(exc).__name__}: {detail}")
    if isinstance(exc, httpx.ConnectError):
        return ConnectFailed(detail)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return UnsupportedURL(detail)
    if isinstance(exc, httpx.DecodingError):
        return InvalidResponse(f"bad content encoding: {detail}")
    if isinstance(exc, httpx.RemoteProtocolError):
        # "peer closed connection without sending complete message body" is the common case:
        # a dropped connection, worth a retry, rather than a server that speaks bad HTTP.
        return ConnectionDropped(detail)
    if isinstance(exc, httpx.TransportError):
        return ConnectionDropped(f"{type(exc).__name__}: {detail}")
    return InvalidResponse(f"{type(exc).__name__}: {detail}")
