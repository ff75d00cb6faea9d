"""How a transport's exception becomes the page's error: the one boundary where httpx's and
aiohttp's exceptions are translated into the :mod:`crawler.errors` tree, in the same words
from either transport (a TLS failure reads the same whichever library found it), so the rest of
the crawler never sees a transport library's names."""

from __future__ import annotations

import ssl

import aiohttp
import httpx

from crawler.errors import (
    ConnectFailed,
    ConnectionDropped,
    InvalidResponse,
    PageError,
    ProxyFailed,
    TimedOut,
    TlsFailed,
    UnsupportedURL,
)
from crawler.fetch.addresses import AddressBlocked, AddressRefused


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error under a transport's connection error, if that is what it is: aiohttp
    keeps it as the error's ``os_error``, httpx as the cause of its ``ConnectError``."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error if isinstance(exc.os_error, ssl.SSLError) else None
    if isinstance(exc, httpx.ConnectError):
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, ssl.SSLError):
            cause = cause.__cause__ or cause.__context__
        return cause
    return None


def _tls_detail(error: ssl.SSLError) -> str:
    """The same words from either transport: what failed, without their wrappers."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message}"
    return str(error)


def translate(exc: httpx.HTTPError | aiohttp.ClientError) -> PageError:
    """The one place where transport exceptions become the crawler's page errors."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException | aiohttp.ServerTimeoutError):
        return TimedOut(f"{type(exc).__name__}: {detail}")
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        # The proxy's failure, not the target's: not counted against the target's breaker.
        return ProxyFailed(f"{type(exc).__name__}: {detail}")
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, AddressRefused):
        return AddressBlocked(str(exc.os_error))  # caught at connect time (DNS rebinding)
    if (tls_error := _tls_error(exc)) is not None:
        return TlsFailed(_tls_detail(tls_error))
    if isinstance(exc, httpx.ConnectError | aiohttp.ClientConnectorError):
        return ConnectFailed(detail)
    if isinstance(exc, httpx.UnsupportedProtocol | aiohttp.InvalidURL):
        return UnsupportedURL(detail)
    if isinstance(exc, httpx.DecodingError):
        return InvalidResponse(f"bad content encoding: {detail}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return InvalidResponse(f"{type(exc).__name__}: {detail}")  # a malformed response
    if isinstance(exc, httpx.RemoteProtocolError):
        # "peer closed connection without sending complete message body" is the common case:
        # a dropped connection, worth a retry, rather than a server that speaks bad HTTP.
        return ConnectionDropped(detail)
    if isinstance(exc, httpx.TransportError | aiohttp.ClientConnectionError):
        return ConnectionDropped(f"{type(exc).__name__}: {detail}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ConnectionDropped(f"incomplete body: {detail}")
    return InvalidResponse(f"{type(exc).__name__}: {detail}")
