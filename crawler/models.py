"""Plain value objects that travel between the crawl's parts.

They carry data only: no I/O, no references to the parts that made them, so they can cross
threads (the parse step runs off the event loop) and be written by the sink as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Lease:
    """One URL handed to a worker by the frontier; acknowledged exactly once."""

    id: int
    url: str
    host: str
    depth: int
    attempt: int = 0
    hops: int = 0
    """Redirects followed to reach this URL from the link that was found."""
    offsite: int = 0
    """Links away from the crawl's scope (``crawl.max_offsite_hops``); 0: in scope."""


@dataclass(frozen=True, slots=True)
class Response:
    """What the fetch layer got for one request (redirects are not followed)."""

    url: str
    status: int
    content_type: str | None
    body: bytes
    location: str | None = None
    """The raw ``Location`` header of a 3xx, unresolved."""
    truncated: bool = False
    """The body stopped at the size cap."""
    elapsed: float = 0.0
    """Seconds from sending the request to the end of the body."""
    retry_after: str | None = None
    """The raw ``Retry-After`` header, if any."""
    robots_tag: str | None = None
    """The ``X-Robots-Tag`` header(s), comma-joined, if any."""
    notes: tuple[str, ...] = ()
    """Things that went wrong without losing the page (e.g. ``truncated_encoding``)."""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    """All response headers as received, in order, names in their case, values in their bytes
    (for archiving: WARC)."""
    http_version: str = "HTTP/1.1"
    """The status line's protocol as received (``HTTP/1.0``, ``HTTP/1.1``; httpx's ``HTTP/2``)."""
    reason: bytes = b""
    """The status line's reason phrase as received (``b"Fine"``; empty if there was none)."""
    sha256: str | None = None
    """The SHA-256 of ``body`` (lower-case hex) when it is a download (``fetch.download_types``,
    :mod:`crawler.fetch.downloads`), read for its page row; None otherwise (HTML, a body not
    read, robots.txt and sitemaps)."""

    @property
    def is_html(self) -> bool:
        return is_html_type(self.content_type)


OnResponse = Callable[[Lease, Response], None]
"""A hook that sees every response as received, on the event loop: it must only hand the data
on (archives, the caller of :class:`crawler.engine.Crawl`)."""

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def is_html_type(content_type: str | None) -> bool:
    """True when a Content-Type header names an HTML document (a missing header counts)."""
    if not content_type:
        return True
    return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """What the parser read from one HTML document."""

    title: str | None = None
    description: str | None = None
    canonical: str | None = None
    """The ``<link rel=canonical>`` href, resolved to an absolute URL."""
    base_url: str = ""
    """The URL relative links resolve against: ``<base href>`` if valid, else the page URL."""
    links: list[str] = field(default_factory=list)
    """Raw ``href`` values in document order, stripped, unresolved, de-duplicated."""
    charset: str = "utf-8"
    robots: str = ""
    """Directives of ``<meta name="robots">`` tags, lower-cased and comma-joined."""
    nofollow: frozenset[str] = frozenset()
    """The raw hrefs (as in ``links``) of links marked ``rel="nofollow"``."""


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One row of the ``pages`` table: the outcome of one leased URL."""

    url: str
    depth: int
    fetched_at: str
    """ISO 8601, UTC, millisecond precision."""
    final_url: str | None = None
    """The redirect target for a 3xx with a usable Location, else the URL itself."""
    status: int | None = None
    """The HTTP status; None when no response arrived (see ``error``)."""
    content_type: str | None = None
    title: str | None = None
    description: str | None = None
    canonical: str | None = None
    error: str | None = None
    """``reason: detail`` when the page failed, else None."""
    size: int = 0
    """Body bytes read (after decompression)."""
    elapsed_ms: float = 0.0
    truncated: bool = False
    notes: str | None = None
    """Comma-separated observations that did not stop the page (``noindex``, ``nofollow``,
    ``redirect_off_scope``, ``truncated_encoding``, ...)."""
    skipped: bool = False
    """Deliberately not fetched (robots.txt, a trap budget, the address guard)."""
    data: dict[str, Any] | None = None
    """The user's fields for this page (extraction rules, a hook), JSON values by name; None:
    none. Stored as one JSON object in ``pages.data``."""
    sha256: str | None = None
    """The SHA-256 of the body as read (after decompression), lower-case hex; None: not
    computed."""

    @property
    def state(self) -> str:
        """The frontier state this record moves its URL to."""
        if self.skipped:
            return "skipped"
        return "failed" if self.status is None else "done"


@dataclass(frozen=True, slots=True)
class PageRows:
    """One outcome's rows for the ``pages`` and ``links`` tables and the frontier, encoded for
    the sink's statements (:mod:`crawler.store.rows`): JSON array elements, comma-joined, without
    brackets."""

    page: str
    """The page's ``pages`` row, one JSON array."""
    links: str
    """``["src", "dst"]`` for each link of the page ("" for none)."""
    discovered: str
    """``["url", "host", depth, hops, offsite]`` for each URL offered to the frontier ("" for
    none)."""
    hosts: tuple[str, ...]
    """The distinct hosts of the discovered URLs: the frontier hears of them after the commit."""


@dataclass(frozen=True, slots=True)
class RobotsRecord:
    """An origin's robots.txt outcome, for the ``robots`` table (written by the sink)."""

    origin: str
    status: int | None
    crawl_delay: float | None
    sitemaps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SavedCookie:
    """One cookie of a host's jar, for the ``cookies`` table (saved at the end of a run)."""

    host: str
    """The jar's host: the only one the cookie is sent to."""
    domain: str
    path: str
    name: str
    value: str | None = field(repr=False)  # a login: never in a repr, hence in no log
    secure: bool
    expires: int | None
    """Unix seconds; None: a session cookie."""
    http_only: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker reports back for one lease: the page, and the links it found."""

    lease: Lease
    page: PageRecord
    links: list[str] = field(default_factory=list)
    """Canonical URLs the page links to (all of them, for the ``links`` table)."""
    follow: list[str] = field(default_factory=list)
    """The subset to offer the frontier: in scope and within the depth limit."""
    follow_depth: int = 0
    """Depth the followed URLs get: one more than the page's, the same for a redirect."""
    follow_hops: int = 0
    """Redirect hops the followed URLs get: one more than the page's for a redirect, else 0."""
    follow_offsite: list[int] = field(default_factory=list)
    """The offsite distance of each of ``follow``, in its order (``crawl.max_offsite_hops``);
    empty: all 0, in scope."""
    rows: PageRows | None = None
    """``links`` and ``follow`` already encoded for the sink (by the parse worker, off the event
    loop); None: the sink encodes them. Must describe the same links and follow when set."""


@dataclass(frozen=True, slots=True)
class Deferred:
    """URLs left for a later run: their hosts asked (Retry-After) to wait longer than
    ``politeness.max_retry_after``, until a time stored in the database."""

    urls: int
    hosts: int
    until: float | None
    """The latest stored time (Unix seconds): a run after it may fetch every one of them."""

    def describe(self) -> str:
        until = "?" if self.until is None else iso_seconds(self.until)
        return f"{self.urls:,} URLs of {self.hosts:,} hosts deferred until {until}"


def iso_seconds(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class FrontierCounts:
    """What the frontier holds now (:meth:`crawler.frontier.frontier.Frontier.counts`), for progress
    and metrics."""

    state: str
    hosts: int
    hosts_cooling_down: int
    """Hosts waiting out a Retry-After, a robots.txt retry or a circuit-breaker pause."""
    hosts_paused: int
    """Hosts whose circuit breaker is open."""
    windowed: int
    """URLs claimed from the database into memory, waiting for a worker."""
    in_flight: int
    uncommitted: int
    started: int
    """URLs handed out for the first time in this run."""
    recorded_before: int
    hosts_over_budget: int = 0
    """Hosts whose ``crawl.max_pages_per_host`` (or per-domain) budget is spent: their
    further URLs stay pending."""
