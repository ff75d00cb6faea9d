"""Typed, frozen configuration: what a config is.

One section per concern, each a frozen :class:`msgspec.Struct` with named defaults, so a part
receives only the section it needs and can't change it. ``configs/default.toml`` documents every
key with these same defaults (a test keeps the two in step). Building one from a file, the
environment and flags is :mod:`crawler.config_load`; the checks of values that have the right
type but cannot work are :mod:`crawler.config_checks`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from crawler.scope import ScopeMode
from crawler.urls import DEFAULT_MAX_URL_LENGTH

Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0)]

DEFAULT_USER_AGENT = "crawler/0.1 (+respects robots.txt)"

MAX_CONCURRENCY = 10_000
"""``crawl.concurrency`` at most. Every worker is a task started with the crawl (an idle one
costs ~1.3 KB: 13 MB at this bound, so starting them lazily would save little) and every request
in flight a socket; one event loop is saturated far below this (docs/performance.md). Without a
bound, 10**9 ran out of memory and 10**6 took 19 s and 1.6 GB to start a 4-page crawl."""
MAX_PORT = 65535
"""``output.metrics_port`` at most: the largest TCP port."""
MAX_PARSE_PROCESSES = 64
"""``runtime.parse_processes`` at most: each is a Python process of its own (tens of MB)."""

# RFC 9309 2.2.1: a product token is letters, '_' and '-' (no digits); empty: not set.
ProductToken = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_-]*$")]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class CrawlSection(_Section, frozen=True):
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=MAX_CONCURRENCY)] = 32
    """Workers, i.e. requests in flight at once across all hosts."""
    max_pages: NonNegative = 0
    """Stop after this many pages are recorded in the database (over resumes); 0 = no limit."""
    max_pages_per_host: NonNegative = 0
    """Like ``max_pages`` for one host (host:port): counted as it counts, over resumes; a host
    that reached it starts no new URL, its others stay pending. 0 = no limit."""
    max_pages_per_domain: NonNegative = 0
    """Like ``max_pages_per_host`` for all the hosts of one registrable domain (Public Suffix
    List; an IP address is a domain of its own). 0 = no limit."""
    max_depth: NonNegative = 20
    """Links followed from a seed; seeds are depth 0, so 0 crawls the seeds only."""
    user_agent: str = DEFAULT_USER_AGENT
    robots_token: ProductToken = ""
    """The name robots.txt groups (and ``X-Robots-Tag``/meta robots) are matched by; empty:
    derived from ``user_agent`` (``compatible; NAME/x``, else its leading product)."""
    scope: ScopeMode = "hosts"
    """Hosts whose links are followed: the seeds' hosts exactly, the seeds' registrable domains
    (Public Suffix List) with their subdomains, or any host (:mod:`crawler.scope`)."""
    allow_domains: tuple[str, ...] = ()
    """Domains in scope with all their subdomains, besides what ``scope`` admits."""
    max_offsite_hops: NonNegative = 0
    """Pages outside the scope are fetched up to this many links away from an in-scope page;
    from the last of them only links back into the scope are followed. 0: none."""
    include: tuple[str, ...] = ()
    """Regular expressions (``re.search`` on the canonical URL): when given, a URL in scope
    must match one to be followed."""
    exclude: tuple[str, ...] = ()
    """Regular expressions (``re.search`` on the canonical URL): a URL that matches one is not
    followed, whatever the other rules say."""
    max_url_length: Positive = DEFAULT_MAX_URL_LENGTH
    max_hosts_in_memory: NonNegative = 100_000
    """Hosts whose politeness state the frontier keeps; past it, the least recently used idle
    host is forgotten (:meth:`crawler.frontier.hosts.HostTable.forget_idle`), and hosts with
    URLs in the database wait there until paged back in (:mod:`crawler.frontier.paging`).
    0: no cap."""


OWNED_HEADERS = frozenset(
    (
        *("host", "user-agent", "accept-encoding", "cookie"),
        # The connection's own (RFC 9110 7.6.1), set by the transport.
        *("connection", "keep-alive", "te", "transfer-encoding", "upgrade", "content-length"),
        *("proxy-authorization", "proxy-connection"),
    )
)
"""Request headers the crawler sets itself, which ``fetch.headers`` may not: the User-Agent is
``crawl.user_agent`` (robots.txt is matched by it), Accept-Encoding only what the body reader can
stop decoding at the size cap, Cookie the per-host jar's, and the rest belong to the connection."""
SECRET = "***"
"""What a repr shows in place of a header value or a password."""


def _masked_items(struct: msgspec.Struct, secrets: Mapping[str, bool]) -> list[tuple[str, Any]]:
    """``struct``'s fields for a repr: the values of ``secrets`` fields hidden (a dict's values
    only when its flag is true: header names are no secret), so a config printed in a log,
    a traceback with locals or ``--debug`` output never shows a password or an API key."""
    items = []
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if name in secrets and value:
            value = dict.fromkeys(value, SECRET) if secrets[name] else SECRET
        items.append((name, value))
    return items


class _Masked(_Section, frozen=True):
    """A section some of whose values are secrets (:data:`_SECRETS`), hidden from its repr."""

    _SECRETS: ClassVar[Mapping[str, bool]] = {}

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__rich_repr__())
        return f"{type(self).__name__}({fields})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return _masked_items(self, self._SECRETS)


class FetchHost(_Masked, frozen=True):
    """Requests to one host (``[fetch.hosts."host:port"]``): headers and HTTP basic auth."""

    _SECRETS = {"headers": True, "auth": False, "proxy": False}
    headers: dict[str, str] = {}
    """Added to ``fetch.headers`` for this host; a name in both takes this value."""
    auth: str = ""
    """``user:password`` for HTTP basic auth (RFC 7617, UTF-8); empty: none."""
    auth_env: str = ""
    """The environment variable holding ``user:password``, instead of ``auth``."""
    auth_over_http: bool = False
    """Send the credentials over plain http too, in clear; else over https only."""
    proxy: str | None = None
    """The proxy of this host's requests (``http://[user:pw@]host:port``); empty: direct;
    unset: as ``fetch.proxy`` and ``fetch.no_proxy`` say (:mod:`crawler.fetch.proxies`)."""

    def credentials(self) -> str:
        """``user:password`` from ``auth`` or the ``auth_env`` variable; empty: none."""
        if self.auth_env:
            return os.environ.get(self.auth_env, "")
        return self.auth


class FetchSection(_Masked, frozen=True):
    _SECRETS = {"headers": True, "proxy": False, "proxies": False}
    connect_timeout: Seconds = 10.0
    read_timeout: Seconds = 20.0
    """Longest silence between two reads of one response."""
    total_timeout: Seconds = 60.0
    """Deadline for one response, headers and body, however the server trickles."""
    max_body_bytes: Positive = 5_000_000
    """Bodies stop here; the page is kept, marked truncated."""
    max_retries: NonNegative = 2
    """Further attempts after a transient failure (connection errors, timeouts, 5xx, 429)."""
    retry_backoff: NonNegativeSeconds = 1.0
    """First retry waits this long, then doubling, with jitter; scheduled by the frontier."""
    max_redirects: NonNegative = 10
    """Redirect hops followed from one link; each hop is a page through the frontier."""
    transport: Literal["aiohttp", "httpcore"] = "aiohttp"
    """What carries the HTTP/1.1 traffic behind the one httpx client: aiohttp (faster by ~1.9x
    here, see docs/performance.md) or httpx's own httpcore pool."""
    cookies: Literal["per-host", "off"] = "per-host"
    """per-host: a cookie is kept for the session and sent back only to the host that set it
    (whatever its Domain attribute says), saved in the database for a resume; off: never
    stored, never sent."""
    cookies_file: str = ""
    """A Netscape cookies.txt (curl's, a browser extension's export) whose cookies the crawl
    starts with, e.g. a login; a path relative to the working directory; empty: none."""
    headers: dict[str, str] = {}
    """Extra headers of every request (robots.txt and sitemaps too); none of
    :data:`OWNED_HEADERS`, nor Authorization (``hosts`` gives it to one host)."""
    hosts: dict[str, FetchHost] = {}
    """Per-host headers, auth and proxy, keyed by host[:port] as in URLs."""
    dns_ttl: Seconds = 300.0
    """How long a resolved name's addresses are kept (the system resolver gives no TTL)."""
    dns_negative_ttl: Seconds = 30.0
    """How long a name that did not resolve is kept as such before it is asked again."""
    resolve: dict[str, str] = {}
    """``{"name[:port]" = "address"}``: names answered from here, not the resolver (like
    curl's ``--resolve``); the address guard still checks them. aiohttp transport only."""
    proxy: str = ""
    """``http://[user:pw@]host:port``: every request goes through this HTTP proxy (https
    targets through CONNECT), but to the hosts ``no_proxy`` matches; empty: none."""
    no_proxy: tuple[str, ...] = ()
    """Hosts reached directly despite ``proxy`` or ``proxies``: ``*``, ``host:port``, or a name
    or address (a name with its subdomains); see :mod:`crawler.fetch.proxies`."""
    proxies: tuple[str, ...] = ()
    """Instead of ``proxy``: HTTP proxies taken in turn, a failing one out of rotation for a
    while (:class:`crawler.fetch.proxies.ProxyPool`)."""
    ca_file: str = ""
    """A PEM file of CA certificates trusted for https in addition to the transport's usual
    ones (a corporate or test CA); relative to the working directory; empty: none."""
    download_types: tuple[str, ...] = ()
    """Media types (``application/pdf``, ``image/*``) whose bodies are read like pages' and
    recorded with their size and SHA-256, not parsed; empty: HTML only
    (:mod:`crawler.fetch.downloads`)."""


class HostOverride(_Section, frozen=True):
    """Politeness for one host, replacing the defaults (``[politeness.hosts."host:port"]``)."""

    concurrency: Positive | None = None
    delay: NonNegativeSeconds | None = None


class PolitenessSection(_Section, frozen=True):
    per_host_concurrency: Positive = 2
    """Requests in flight at once to one host (host:port)."""
    per_host_delay: NonNegativeSeconds = 1.0
    """Seconds between the starts of two requests to one host."""
    delay_jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    """Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]."""
    robots: bool = True
    """Obey robots.txt (RFC 9309). ``--no-robots`` turns it off, with a warning."""
    robots_max_age: Seconds = 86400.0
    robots_unreachable_retry: Seconds = 600.0
    """robots.txt answered 5xx/429 or not at all: the host is disallowed, asked again after this."""
    max_crawl_delay: NonNegativeSeconds = 30.0
    """A robots.txt Crawl-delay larger than this is capped to it."""
    max_retry_after: NonNegativeSeconds = 600.0
    """The longest Retry-After (seconds or HTTP date) waited out in a run; one asking for more
    defers its host to a later run, after the time it asked for (stored)."""
    cooldown: NonNegativeSeconds = 10.0
    """429/503 without Retry-After: the host pauses this long, doubling while it persists."""
    circuit_breaker: NonNegative = 10
    """After this many consecutive failures a host is paused; 0: never. A URL counts once (its
    retries are its own budget), except a 429 or no connection at all, counted each time."""
    circuit_breaker_pause: NonNegativeSeconds = 300.0
    respect_nofollow: bool = True
    """Links marked ``rel=nofollow`` are recorded but not followed."""
    hosts: dict[str, HostOverride] = {}
    """Per-host overrides, keyed by host[:port] as in URLs."""
    adaptive: bool = False
    """A host's delay follows its response time (:mod:`crawler.frontier.adaptive`), never
    below its own delay (``per_host_delay``, ``hosts``, Crawl-delay)."""
    adaptive_factor: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """With ``adaptive``: the delay aimed at is this times the last response time."""
    adaptive_max_delay: NonNegativeSeconds = 30.0
    """With ``adaptive``: the adapted delay at most (a larger own delay still holds)."""


class TrapsSection(_Section, frozen=True):
    """Defences against crawler traps (besides ``crawl.max_depth`` and ``crawl.max_url_length``)."""

    max_pages_per_host: NonNegative = 0
    """Pages fetched per host (host:port), at most; 0: no limit."""
    max_urls_per_pattern: NonNegative = 10000
    """Pages fetched per host and path pattern (digits folded: /item/1 and /item/2 are one
    pattern; the query is ignored); stops calendars and exploding query strings. 0: no limit."""
    max_repeated_segments: NonNegative = 3
    """A path in which one segment occurs more often than this is not followed; 0: no limit."""
    session_params: tuple[str, ...] = (
        "jsessionid",
        "phpsessid",
        "aspsessionid",
        "sid",
        "sessionid",
        "session_id",
    )
    """Query parameters (and ``;jsessionid=`` path parameters) removed from links, any case."""


class SecuritySection(_Section, frozen=True):
    ssrf_guard: bool = True
    """Never connect to loopback, private, link-local or other non-public addresses, checked on
    the resolved IP of every request (every redirect hop is a request). A seed's own host is
    allowed even if private: only that host."""
    allow_addresses: tuple[str, ...] = ()
    """Networks (``10.1.0.0/16``) or host names the guard lets through anyway."""


class StorageSection(_Section, frozen=True):
    batch_size: Positive = 256
    """Pages written per transaction, at most. Whatever arrived during the previous write is
    written next (group commit), so there is no flush timer."""


class RuntimeSection(_Section, frozen=True):
    uvloop: bool = True
    grace_period: NonNegativeSeconds = 5.0
    """After the first SIGINT/SIGTERM, in-flight fetches get this long before being cancelled;
    pages already received are parsed and stored after it too (each within
    ``parse_timeout``)."""
    stats_interval: NonNegativeSeconds = 10.0
    """Seconds between plain progress lines on stderr (not a terminal); 0 turns them off."""
    parse_processes: Annotated[int, msgspec.Meta(ge=0, le=MAX_PARSE_PROCESSES)] = 1
    """Worker processes that parse pages (a core of their own each); 0: parse in threads."""
    parse_threads: Positive = 4
    """With ``parse_processes = 0``: pages parsed at once in threads off the event loop."""
    parse_timeout: Seconds = 30.0
    """A page whose parsing takes longer is recorded without its links (note
    ``parse_timeout``) and its worker process replaced. Threads cannot be stopped: with
    ``parse_processes = 0`` there is no limit."""


class OutputSection(_Section, frozen=True):
    """What a crawl shows and writes besides the database: progress, logs, metrics, archives."""

    progress: Literal["auto", "live", "plain", "off"] = "auto"
    """auto: a live display when stderr is a terminal, else a plain line every
    ``runtime.stats_interval`` seconds; ``--quiet`` is off."""
    log_format: Literal["text", "json"] = "text"
    """json: one JSON object per line (ts, level, event, message, url, host, status, reason)."""
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=MAX_PORT)] = 0
    """Serve Prometheus metrics on this port (``/metrics``, ``/healthz``); 0: off."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics endpoint binds to."""
    warc_dir: str = ""
    """Write every response (and its request) to WARC 1.1 files here; empty: off."""
    warc_max_bytes: Positive = 1_000_000_000
    """A WARC file is closed and the next one started once it reaches this size."""
    store_bodies: bool = False
    """Keep the bodies read (HTML), zlib-compressed, in ``<db>-bodies.db`` beside the database."""


class SitemapsSection(_Section, frozen=True):
    """Seeding the frontier from sitemaps (robots.txt ``Sitemap:`` lines, else ``/sitemap.xml``)."""

    enabled: bool = False
    max_urls: NonNegative = 50000
    """URLs taken from one origin's sitemaps, at most."""
    max_bytes: Positive = 50_000_000
    """Bytes read of one sitemap file, after decompression; the rest is ignored."""
    max_files: Positive = 50
    """Sitemap files (indexes included) read per origin, at most."""
    concurrency: Positive = 4
    """Origins whose sitemaps are read at once."""


class ExtractField(_Section, frozen=True):
    """One field of the user's data (``[extract.fields.NAME]``), read from every HTML page whose
    URL matches ``urls`` (:mod:`crawler.parse.extract`)."""

    css: str
    """A CSS selector (selectolax/lexbor): the first match, or every match with ``all``."""
    attr: str = ""
    """An attribute's value instead of the text; a URL attribute (``href``, ``src``, ...) is
    made absolute against the page's base. Empty: the element's text, whitespace collapsed."""
    all: bool = False
    """Every match, as a list (in document order), instead of the first."""
    urls: str = ""
    """A regular expression (``re.search`` on the page's URL): only pages it matches get the
    field. Empty: every page."""


class ExtractSection(_Section, frozen=True):
    """The user's own data from each HTML page: rules, and a Python hook (docs/extraction.md)."""

    fields: dict[str, ExtractField] = {}
    """``[extract.fields.NAME]`` tables: the fields read by CSS selectors, by name."""
    hook: str = ""
    """``"package.module:function"``: called with each HTML page's
    :class:`~crawler.parse.hook.Page` in the parse worker; its dict is merged into the page's
    data. Empty: none."""


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    crawl: CrawlSection = CrawlSection()
    fetch: FetchSection = FetchSection()
    politeness: PolitenessSection = PolitenessSection()
    traps: TrapsSection = TrapsSection()
    security: SecuritySection = SecuritySection()
    storage: StorageSection = StorageSection()
    runtime: RuntimeSection = RuntimeSection()
    output: OutputSection = OutputSection()
    sitemaps: SitemapsSection = SitemapsSection()
    extract: ExtractSection = ExtractSection()
