"""robots.txt per origin (RFC 9309): fetched once, shared by all callers, cached with an expiry.

Rules (each tested in ``tests/test_robots.py``):

1.  An origin is ``scheme://host[:port]`` as in canonical URLs (:func:`origin_of`); its file is
    ``origin + '/robots.txt'``. Its rules apply to that origin, even if reached by a redirect.
2.  2xx: parsed with Protego. Only the first ``max_bytes`` count (500 KiB; RFC 9309 2.5 asks
    for at least that); when the body reaches the cap its last, maybe cut, line is dropped too:
    half of ``Allow: /a/b`` is ``Allow: /a``, broader than written. Decoded as UTF-8, bad bytes
    replaced and a leading BOM removed (it would hide the first ``User-agent``): never raises.
3.  Groups match our product token (:func:`robots_token`), case-insensitively, never the full
    User-Agent: Protego finds a group name anywhere in it at a word start, so
    ``crawler/0.1 (+respects robots.txt)`` would obey a group for ``robots``. Accepted Protego
    leniency: a group named by a prefix of the token (``crawl`` for ``crawler``) applies too
    (RFC: exact); the longest name wins. In the group (Protego's job, pinned by tests): the
    longest match wins, Allow wins ties, ``*`` is any run, a final ``$`` anchors the end;
    ``/robots.txt`` itself is always allowed.
3b. Grouping is RFC 9309's (2.1, 2.2.4), not Protego's: a group is its ``User-agent`` lines and
    the rules after them, and other records (``Crawl-delay``, ``Sitemap``, unknown keys) between
    its ``User-agent`` lines do not end it. Protego ends a group at any such line, so the file is
    rewritten before Protego reads it (:func:`_regrouped`): the other records met among a
    group's ``User-agent`` lines move after the last of them, so they apply to the whole group.
    The rewrite also cuts a group name at its first space or ``/`` (``FooBot/1.0`` names
    ``FooBot``, as for Google) and ends lines only at CR, LF or CRLF (RFC 9309 2.2).
    ``tests/test_robots_conformance.py`` runs Google's and the RFC's cases through
    :meth:`RobotsPolicy.allows`; docs/politeness.md lists what still differs and why.
4.  3xx: ``Location`` is resolved with :func:`canonicalize` against the current URL and
    followed, to other hosts too, at most ``max_redirects`` (5) times (RFC 9309 2.3.1.2). One
    more, a loop (a URL already fetched), or no usable ``Location``: allow all, since the RFC
    lets a crawler treat too many redirects as "unavailable", which is the 4xx case.
5.  4xx but 429, 401 and 403 included: "unavailable", allow all (RFC 9309 2.3.1.3, unlike
    Google's old reading of 401/403 as disallow-all).
6.  429, 5xx, no response (``status=None``) or any other status: "unreachable", disallow all
    (RFC 9309 2.3.1.4). 429 means "slow down", not "no rules": allow-all would open the whole
    site just as the server asks us to back off. No response keeps the request's failure
    (``RobotsPolicy.failure``): a certificate that does not verify, which every request to
    the origin meets, fails the origin's pages with it at once, rather than after waiting for
    the same answer (:class:`crawler.worker.Worker`).
7.  Expiry, by the injected clock: rules and allow-all live ``max_age`` (24 h, RFC 9309 2.4);
    disallow-all only ``unreachable_retry``, so an outage is retried soon instead of closing
    the origin for a day. The next :meth:`~RobotsCache.policy` refetches an expired entry.
8.  ``crawl_delay``: our group's Crawl-delay or None. ``sitemaps``: every ``Sitemap`` line as
    written, in order (they belong to no group).
9.  One fetch per origin at a time: concurrent callers await the same task.
9b. At most ``max_origins`` policies are kept (``crawl.max_hosts_in_memory``; 0: no bound):
    storing one more forgets the least recently used whose host is not ``in_use`` (the
    frontier still holds it: forgetting the policy of a host being crawled would fetch its
    robots.txt again and again), so the bound holds for the idle ones. A forgotten origin's
    robots.txt is fetched again when next needed, under rule 9 like any other.
10. The fetch callable raising is a bug or fatal: it reaches every caller waiting on that fetch
    and nothing is cached. Per-request failures come as ``RobotsFetch(status=None, error=...)``.

Ownership: a fetch is a task owned by the cache, not by the caller that started it. Callers
await it through :func:`asyncio.shield`, so cancelling a caller ends only its own wait; the
fetch goes on and is cached. :meth:`RobotsCache.aclose` (or leaving ``async with``) cancels the
fetches in flight and waits for them; their waiters, and any later call that would need a
fetch, get ``RuntimeError``. Cached policies stay readable.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import quote

from protego import Protego

# Protego's own line reader, so that the rewrite (rule 3b) reads each line exactly as Protego
# will (its accepted spellings and typos included). Private: protego is pinned to 0.7.x.
from protego._protego import (
    _ALLOW_DIRECTIVE,
    _DISALLOW_DIRECTIVE,
    _USER_AGENT_DIRECTIVE,
    _extract_directive,
)

from crawler.config import PolitenessSection
from crawler.errors import PageError
from crawler.frontier.forgetting import forget_least_recent
from crawler.resource import AsyncResource, ResourceState
from crawler.urls import canonicalize, host_key

if TYPE_CHECKING:
    from crawler.fetch.client import Fetcher

log = logging.getLogger("crawler")

_POLITENESS = PolitenessSection()
"""The config's defaults, the cache's own (no second copy of the numbers here)."""
MAX_BYTES = 512_000
"""RFC 9309 2.5: at least 500 KiB of a robots.txt must be parsed; more is ignored (and not
read: :func:`fetch_robots` stops there)."""
DEFAULT_MAX_REDIRECTS = 5

# RFC 9309 2.2.1: a product token is made of letters, '_' and '-' only.
_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")
# The product a crawler names in a browser-like User-Agent: 'Mozilla/5.0 (compatible; MyBot/1.0)'.
# Also after other comments: '(KHTML, like Gecko; compatible; bingbot/2.0; +http://...)'.
_COMPATIBLE_PRODUCT = re.compile(r"[(;]\s*compatible\s*;\s*([A-Za-z_-]+)(?=[/;)\s])", re.I)
# A leading product that is a whole token ('MyBot/1.0 (+x)', 'crawler'), not 'bot2/1.0'.
_LEADING_PRODUCT = re.compile(r"\s*([A-Za-z_-]+)(?=[/\s(;]|$)")
# Leading products that name a browser engine, never a crawler site owners would write a group for.
_BROWSER_PRODUCTS = frozenset({"mozilla", "opera"})
# RFC 9309 2.2: a line ends at CR, LF or CRLF only. Protego splits with str.splitlines, which also
# breaks at VT, FF, FS, GS, RS, NEL, LS and PS: inside a value they are data, so they are handed on
# percent-encoded (as Protego encodes a path's non-ASCII characters anyway).
_LINE_END = re.compile(r"\r\n|\r|\n")
_DATA_BREAKS = {ord(c): quote(c) for c in "\v\f\x1c\x1d\x1e\x85\u2028\u2029"}
_RULE_DIRECTIVES = _ALLOW_DIRECTIVE | _DISALLOW_DIRECTIVE


@dataclass(frozen=True, slots=True)
class RobotsFetch:
    """What the fetch layer got for one robots.txt request (redirects NOT followed)."""

    status: int | None  # None: no response (connection failed, timeout, ...)
    body: bytes = b""  # at most the cap; the fetch layer stops reading there
    location: str | None = None  # the raw Location header of a 3xx
    error: PageError | None = None  # why, when status is None


FetchRobots = Callable[[str], Awaitable[RobotsFetch]]
"""Fetches one absolute robots.txt URL."""


async def fetch_robots(fetcher: Fetcher, url: str) -> RobotsFetch:
    """The robots cache's fetch over the crawl's fetcher (``partial(fetch_robots, fetcher)``):
    any content type, at most :data:`MAX_BYTES`, a failed request as an unreachable answer."""
    try:
        response = await fetcher.fetch(url, any_type=True, max_bytes=MAX_BYTES)
    except PageError as error:
        return RobotsFetch(status=None, error=error)
    return RobotsFetch(status=response.status, body=response.body, location=response.location)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class RobotsPolicy:
    """The rules for one origin. Weakly referable: what was learnt from a policy can be
    remembered for as long as the policy lives (:mod:`crawler.frontier.robots_gate`)."""

    origin: str
    status: int | None  # final status (after redirects); None if unreachable
    allow_all: bool  # 4xx, redirect trouble, or robots.txt ignored
    disallow_all: bool  # 429, 5xx or unreachable
    crawl_delay: float | None
    sitemaps: tuple[str, ...]
    fetched_at: float  # clock value
    failure: PageError | None  # why robots.txt had no response, if it had none
    # Private: the parsed file and the token to match, None/'*' for the all-or-nothing cases.
    _rules: Protego | None = field(default=None, repr=False, compare=False)
    _agent: str = field(default="*", repr=False, compare=False)

    def allows(self, url: str) -> bool:
        """Whether we may fetch ``url``, a canonical absolute URL on this origin. A URL on another
        origin raises ``ValueError``: the caller has a bug that no answer would make right."""
        if f"{url[: url.find(':')]}://{host_key(url)}" != self.origin:
            raise ValueError(f"{url!r} is not on origin {self.origin!r}")
        if self.disallow_all:
            return False
        if self.allow_all or self._rules is None:
            return True
        return self._rules.can_fetch(url, self._agent)


def origin_of(url: str) -> str:
    """``'http://Host:80/x'`` -> ``'http://host'``: scheme and ``host[:port]`` of the canonical
    URL (user info dropped). ``ValueError`` for a URL that is not crawlable http(s)."""
    canonical = canonicalize(url)
    if canonical is None:
        raise ValueError(f"not a crawlable http(s) URL: {url!r}")
    return f"{canonical[: canonical.find(':')]}://{host_key(canonical)}"


def product_token(user_agent: str) -> str | None:
    """The product token site owners name for this User-Agent in robots.txt, or None when it
    gives no clear one. The product in ``(compatible; NAME/x)`` first (``Mozilla/5.0
    (compatible; MyBot/1.0; +https://x)`` -> ``MyBot``), else the leading product when it is a
    whole RFC 9309 token and not a browser's (``MyBot/1.0 (+x)`` -> ``MyBot``)."""
    compatible = _COMPATIBLE_PRODUCT.search(user_agent)
    if compatible is not None:
        return compatible[1]
    leading = _LEADING_PRODUCT.match(user_agent)
    if leading is None or leading[1].lower() in _BROWSER_PRODUCTS:
        return None
    return leading[1]


def robots_token(user_agent: str, configured: str = "") -> str:
    """The token our robots.txt groups are chosen by: ``configured`` (``crawl.robots_token``)
    if set, else :func:`product_token`. Without either, ``'*'`` with a warning: only the
    groups for every crawler apply, since any name guessed from the User-Agent could pick
    another crawler's group."""
    if configured:
        return configured
    token = product_token(user_agent)
    if token is not None:
        return token
    log.warning(
        "user agent %r names no clear robots.txt product token: only `User-agent: *` groups "
        "will apply; set crawl.robots_token to the name site owners use for this crawler",
        user_agent,
        extra={"event": "robots_token_unclear", "user_agent": user_agent},
    )
    return "*"


def _regrouped(text: str) -> str:
    """``text`` rewritten so that Protego groups it as RFC 9309 does (module docstring, rule
    3b): other records held while a group's ``User-agent`` lines go on, then put before its
    first rule; group names cut at a space or ``/``; lines ended at CR, LF or CRLF only."""
    out: list[str] = []
    held: list[str] = []  # other records among the current group's user-agent lines
    in_agents = False
    for line in _LINE_END.split(text.translate(_DATA_BREAKS)):
        directive = _extract_directive(line.split("#", 1)[0].strip())
        field = directive[0] if directive is not None else None
        if field in _USER_AGENT_DIRECTIVE:
            assert directive is not None
            name = directive[1].split(None, 1)[0].split("/", 1)[0] if directive[1] else ""
            out.append(f"User-agent: {name}")
            in_agents = True
        elif field in _RULE_DIRECTIVES:
            out += held
            held.clear()
            out.append(line)
            in_agents = False
        elif in_agents:
            held.append(line)
        else:
            out.append(line)
    out += held
    return "\n".join(out)


class RobotsCache(AsyncResource):
    """robots.txt policies by origin, one small entry each, for the product ``token`` (as
    :func:`robots_token` gives it). Owns its fetch tasks: close it with :meth:`aclose` or
    ``async with`` (the module docstring gives the cancellation contract)."""

    def __init__(
        self,
        fetch: FetchRobots,
        token: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_age: float = _POLITENESS.robots_max_age,
        unreachable_retry: float = _POLITENESS.robots_unreachable_retry,
        max_bytes: int = MAX_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        max_origins: int = 0,
        in_use: Callable[[str], bool] = lambda host: False,
    ) -> None:
        if max_bytes <= 0 or max_redirects < 0 or max_origins < 0:
            raise ValueError(
                "max_bytes must be positive, max_redirects and max_origins not negative"
            )
        self._fetch = fetch
        if token != "*" and _PRODUCT_TOKEN.fullmatch(token) is None:
            raise ValueError(f"not a robots.txt product token: {token!r}")
        self._agent = token
        self._clock = clock
        self._max_age = max_age
        self._unreachable_retry = unreachable_retry
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._max_origins = max_origins
        self._in_use = in_use
        self._policies: dict[str, RobotsPolicy] = {}
        """In least recently used order (a dict keeps insertion order: a hit moves to the end)."""
        self._fetching: dict[str, asyncio.Task[RobotsPolicy]] = {}

    def cached(self, origin: str) -> RobotsPolicy | None:
        """The policy of ``origin`` if known and not expired, else None. Never fetches."""
        policy = self._policies.pop(origin, None)
        if policy is None:
            return None
        self._policies[origin] = policy  # most recently used now
        ttl = self._unreachable_retry if policy.disallow_all else self._max_age
        return policy if self._clock() < policy.fetched_at + ttl else None

    def __len__(self) -> int:
        """Policies kept (expired ones included until refetched or forgotten)."""
        return len(self._policies)

    async def policy(self, origin: str) -> RobotsPolicy:
        """The policy of ``origin`` (as :func:`origin_of` gives it), fetched if unknown or
        expired. Callers share one fetch; cancelling a caller cancels only its own wait."""
        policy = self.cached(origin)
        if policy is not None:
            return policy
        if self.state is ResourceState.CLOSED:
            raise RuntimeError("RobotsCache is closed")
        task = self._fetching.get(origin)
        if task is None:
            if origin_of(origin) != origin:
                raise ValueError(f"not an origin: {origin!r}")
            task = asyncio.create_task(self._load(origin), name=f"robots.txt {origin}")
            self._fetching[origin] = task
            task.add_done_callback(partial(self._forget, origin))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # The shared task was cancelled (only aclose() does that) while this caller was
            # not: give it an error it can read instead of a cancellation it did not ask for.
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                raise RuntimeError(f"RobotsCache closed while fetching {origin}") from None
            raise

    async def _aclose(self) -> None:
        """Cancel the fetches in flight and wait for them to end."""
        tasks = list(self._fetching.values())
        self._fetching.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def __repr__(self) -> str:
        return (
            f"<RobotsCache origins={len(self._policies)} fetching={len(self._fetching)} "
            f"state={self.state.value}>"
        )

    def _forget(self, origin: str, task: asyncio.Task[RobotsPolicy]) -> None:
        # A newer task may own the slot already if aclose() cleared it first.
        if self._fetching.get(origin) is task:
            del self._fetching[origin]

    async def _load(self, origin: str) -> RobotsPolicy:
        url = origin + "/robots.txt"
        fetched = [url]  # a list: len() counts fetches, so the cap holds apart from the loop check
        got = await self._fetch(url)
        while got.status is not None and 300 <= got.status < 400:
            target = canonicalize(got.location, url) if got.location else None
            # len(fetched) - 1 redirects were followed so far (rule 4).
            if target is None or target in fetched or len(fetched) > self._max_redirects:
                return self._store(origin, got.status)  # allow all (rule 4)
            fetched.append(target)
            url = target
            got = await self._fetch(url)
        if got.status is not None and 200 <= got.status < 300:
            return self._store(origin, got.status, self._parse(got.body))
        # A failure is the origin's own only when its own robots.txt failed, not one it
        # redirected to on another origin.
        own = got.error if origin_of(url) == origin else None
        return self._store(origin, got.status, failure=own)

    def _parse(self, body: bytes) -> Protego:
        if len(body) >= self._max_bytes:
            body = body[: self._max_bytes]
            body = body[: max(body.rfind(b"\n"), body.rfind(b"\r")) + 1]
        return Protego.parse(_regrouped(body.decode("utf-8-sig", errors="replace")))

    def _store(
        self,
        origin: str,
        status: int | None,
        rules: Protego | None = None,
        failure: PageError | None = None,
    ) -> RobotsPolicy:
        # Without rules, 3xx (rule 4) and 4xx but 429 allow all; the rest is unreachable.
        unreachable = rules is None and (status is None or status == 429 or not 300 <= status < 500)
        policy = RobotsPolicy(
            origin=origin,
            status=status,
            allow_all=rules is None and not unreachable,
            disallow_all=unreachable,
            crawl_delay=rules.crawl_delay(self._agent) if rules is not None else None,
            sitemaps=tuple(rules.sitemaps) if rules is not None else (),
            fetched_at=self._clock(),
            failure=failure if status is None else None,
            _rules=rules,
            _agent=self._agent,
        )
        self._policies.pop(origin, None)
        self._policies[origin] = policy
        if self._max_origins and len(self._policies) > self._max_origins:
            # The policies of hosts in use stay (they move to the end: recently used).
            forget_least_recent(
                self._policies,
                len(self._policies) - self._max_origins,
                lambda origin, policy: self._in_use(origin.partition("://")[2]),
            )
        return policy
