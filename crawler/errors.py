"""The crawler's one exception tree.

::

    CrawlError
    ├── FatalError                the run cannot go on: clear message, exit code 1
    │   ├── ConfigError           bad config file, key or value (names the key)
    │   ├── SeedsError            unreadable seeds file or no valid seed
    │   ├── StorageError          the database cannot be opened or written
    │   └── ParsePoolFailed       no parse worker process can start (crawler.parse.pool)
    └── PageError                 one page failed: recorded with its reason, the crawl goes on
        ├── TransientError        worth retrying later (through the frontier, never by sleeping)
        │   ├── ConnectFailed         connection refused, DNS failure, reset before response
        │   ├── TimedOut              connect / read timeout or the per-response deadline
        │   ├── ConnectionDropped     the peer closed or reset the connection mid-response
        │   └── ProxyFailed           the proxy, not the target, failed: never the host's blame
        └── PermanentError        retrying will not help
            ├── InvalidResponse       the server broke the HTTP protocol
            │   └── UnsupportedEncoding   a Content-Encoding that was not asked for
            │                             (crawler.fetch.body)
            ├── UnsupportedURL        the URL cannot be requested
            ├── TlsFailed             no trusted https connection: a certificate that does
            │                         not verify, or a TLS handshake that fails
            ├── TurnRefused           the frontier gives the host no more turns this run
            ├── AddressBlocked        the address guard refused the host's address; recorded
            │                         as skipped, not failed (crawler.fetch.addresses)
            └── InternalError         anything else raised while handling one URL

The classes are defined here, except the three marked with the module that raises them (each
is one part's own case of a class of this module). ``tests/test_errors.py`` checks that the
tree above is the tree in the code.

An HTTP status is never an error here: every response is a page, recorded with its status;
the worker decides whether a 5xx is retried. Only the fetch layer (``fetch/client.py``, over
``fetch/transport.py``) names httpx's and aiohttp's exceptions; it translates them into this tree at
one boundary.

No exception raised while handling one URL may end the crawl (a hostile page finds the bug
no test did). The worker handles one lease inside one ``try`` (``Worker._outcome``): a
:class:`FatalError` propagates and ends the run (exit 1, one line); any other ``Exception``
becomes that URL's :class:`InternalError`, recorded as ``internal_error: <Type>: <message>``,
counted, logged as one WARNING line (with its traceback under ``--debug``), and the crawl goes
on. ``BaseException`` that is not an ``Exception`` (cancellation, Ctrl-C) always propagates.
The crawl's own machinery (the database, the task groups, a parse worker process that cannot
start) raises :class:`FatalError` or fails outside a lease, and ends the run.
"""

from __future__ import annotations


class CrawlError(Exception):
    """Base of every error the crawler raises on purpose."""


class FatalError(CrawlError):
    """Ends the run with exit code 1 and one clear line on stderr."""


class ConfigError(FatalError):
    pass


class SeedsError(FatalError):
    pass


class StorageError(FatalError):
    pass


def find_fatal(exc: BaseException) -> FatalError | None:
    """The first :class:`FatalError` in ``exc``, itself or nested in the exception groups a
    task group wraps its errors in; None if there is none."""
    if isinstance(exc, FatalError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := find_fatal(inner)) is not None:
                return found
    return None


class PageError(CrawlError):
    """A per-page failure: data to record, never a reason to stop the crawl."""

    reason = "page_error"
    """A short stable code stored in ``pages.error`` and counted in stats."""
    retryable = False
    speaks_for_host = False
    """Whether the failure says the host is failing, not just this URL: each attempt then
    counts towards the host's circuit breaker, not only the URL's first."""
    blames_host = True
    """False: the failure is not the host's at all (a proxy's), and never counts towards its
    circuit breaker."""

    MAX_DETAIL = 300
    """Characters of detail kept: a transport's message can quote kilobytes of the response."""

    def __init__(self, detail: str = "") -> None:
        if len(detail) > self.MAX_DETAIL:
            detail = detail[: self.MAX_DETAIL] + "..."
        super().__init__(detail or self.reason)
        self.detail = detail

    def describe(self) -> str:
        """The text stored in ``pages.error``: ``reason: detail``."""
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


class TransientError(PageError):
    retryable = True


class ConnectFailed(TransientError):
    reason = "connect_failed"
    speaks_for_host = True  # no connection at all: whatever the path, the host is unreachable


class TimedOut(TransientError):
    reason = "timeout"


class ConnectionDropped(TransientError):
    reason = "connection_dropped"


class ProxyFailed(TransientError):
    """The proxy, not the target, failed: no connection to it, or it refused the request for
    itself (407, or a CONNECT answered 502/503); with ``fetch.proxies``, every proxy is out of
    rotation. Retried later, when a proxy may be back."""

    reason = "proxy_failed"
    blames_host = False


class PermanentError(PageError):
    pass


class InvalidResponse(PermanentError):
    reason = "invalid_response"


class UnsupportedURL(PermanentError):
    reason = "unsupported_url"


class TlsFailed(PermanentError):
    """The https connection could not be made trustworthy: the certificate does not verify
    (an unknown CA: see ``fetch.ca_file``; another host's name; expired) or the handshake
    failed. Not retried: the next attempt meets the same certificate."""

    reason = "tls_error"


class TurnRefused(PermanentError):
    """A request that is not a lease's (a sitemap file) gets no turn of its host: the host is
    deferred for this run, or the crawl is stopping (``Frontier.turn``)."""

    reason = "turn_refused"


class InternalError(PermanentError):
    """An unexpected exception while handling one URL: a bug, or input no rule foresaw.
    Recorded as the page's failure and never retried (it would only fail again)."""

    reason = "internal_error"

    @classmethod
    def of(cls, exc: BaseException) -> InternalError:
        """The record of ``exc``: ``<Type>: <message>``."""
        detail = f"{type(exc).__name__}: {exc}"
        # The detail goes into the database as UTF-8: a message quoting undecodable bytes
        # (lone surrogates, as aiohttp decodes headers) would fail the batch it is written in.
        return cls(detail.encode("utf-8", "backslashreplace").decode())
