"""The crawler's one exception tree.

::

    CrawlError
    ├── FatalError                the run cannot go on: clear message, exit code 1
    │   ├── ConfigError           bad config file, key or value (names the key)
    │   ├── SeedsError            unreadable seeds file or no valid seed
    │   └── StorageError          the database cannot be opened or written
    └── PageError                 one page failed: recorded with its reason, the crawl goes on
        ├── TransientError        worth retrying later (through the frontier, never by sleeping)
        │   ├── ConnectFailed         connection refused, DNS failure, reset before response
        │   ├── TimedOut              connect / read timeout or the per-response deadline
        │   └── ConnectionDropped     the peer closed or reset the connection mid-response
        └── PermanentError        retrying will not help
            ├── InvalidResponse       the server broke the HTTP protocol
            └── UnsupportedURL        the URL cannot be requested

An HTTP status is never an error here: every response is a page, recorded with its status;
the worker decides whether a 5xx is retried. Workers catch exactly :class:`PageError`.
Everything else propagates and ends the run loudly: a bug must never be recorded as a page
failure. Only ``fetch.py`` names httpx's exceptions;
it translates them into this tree at one boundary.
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


class PageError(CrawlError):
    """A per-page failure: data to record, never a reason to stop the crawl."""

    reason = "page_error"
    """A short stable code stored in ``pages.error`` and counted in stats."""
    retryable = False
    speaks_for_host = False
    """Whether the failure says the host is failing, not just this URL: each attempt then
    counts towards the host's circuit breaker, not only the URL's first."""

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


class PermanentError(PageError):
    pass


class InvalidResponse(PermanentError):
    reason = "invalid_response"


class UnsupportedURL(PermanentError):
    reason = "unsupported_url"
