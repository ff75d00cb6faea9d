"""The crawl's cookies (``fetch.cookies = "per-host"``): one small jar per host, bounded.

A cookie is sent back only to the host that set it. A ``Domain`` attribute would have a
browser share it with the whole domain (``Domain=example.com`` set by ``a.example.com`` goes to
``b.example.com``); a crawler has no user whose login should follow it around, and an
unrelated host on a shared domain (``*.github.io``) must not learn another's session, so each
host has its own jar and a jar is only ever asked about its own host's requests. Within a jar
the standard library's :class:`http.cookiejar.CookieJar` applies the rules (path, expiry,
``Secure``, ``Max-Age``, deletion). Hosts are host names, as for a browser's host-only cookie:
ports and schemes share a host's cookies.

Set-Cookie values are taken as raw bytes and read as Latin-1, which maps every byte to one
character and back, so the Cookie header goes out as the bytes that came in (``city=Köln`` in
UTF-8 included; httpx itself refused to encode such a header).

Bounded, so that a hostile site cannot grow memory without end (the limits are RFC 6265 §6.1's
minimums for a user agent): a jar keeps at most :data:`MAX_COOKIES_PER_HOST` cookies (a new
one beyond that is refused; an existing one can still change), a cookie's name and value at
most :data:`MAX_COOKIE_BYTES`, and all jars together :data:`MAX_COOKIES` (the jars of the
hosts least recently used go first).

Cookies imported from a cookies.txt (``fetch.cookies_file``, read by
:mod:`crawler.fetch.cookies_file`) start in the same jars: a host-only one in its host's jar; a
domain-wide one (the file's include-subdomains ``TRUE``, which the user asked for) is put in the
jar of each host under its domain when that host's jar is first needed (again if the jar was
dropped for the bound on all jars), so that it too is only ever sent to hosts it names. A host
that deletes them all (a logout) is remembered, and gets none from the file again in that run:
its empty jar is gone, and refilling it would log the crawl back in.

The jars are saved in the crawl database (:meth:`HostCookies.saved`, the ``cookies`` table) at
the end of every run that ends in order (finished, ``--max-pages``, SIGTERM or Ctrl-C), and
loaded when the crawl resumes (:meth:`HostCookies.load`; ``--fresh`` deletes the database,
and them with it). Session cookies are kept too: the crawl, across its runs, is the session.
Not saved with the sink's batches: a cookie is worth one write per run, not one per batch, and
a ``kill -9`` then loses the cookies set since the run began, never a page. What is loaded is
held to the same bounds.
"""

from __future__ import annotations

import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from urllib.parse import urlsplit

from crawler.models import SavedCookie

MAX_COOKIES_PER_HOST = 50
MAX_COOKIES = 3000
MAX_COOKIE_BYTES = 4096
"""Name and value of one cookie, at most (an oversized one is refused)."""


class _SizedPolicy(DefaultCookiePolicy):
    """The standard policy, refusing cookies larger than :data:`MAX_COOKIE_BYTES`."""

    def set_ok(self, cookie: Cookie, request: urllib.request.Request) -> bool:
        if len(cookie.name) + len(cookie.value or "") > MAX_COOKIE_BYTES:
            return False
        return super().set_ok(cookie, request)


_POLICY = _SizedPolicy()
"""Shared by every jar: the policy holds settings only, no state."""


class HostCookies:
    """Cookies per host for one crawl. ``header(url, host)`` before a request, ``store(url,
    host, set_cookies)`` after its response; ``host`` is the URL's (lower-cased) host name."""

    def __init__(
        self,
        imported: Iterable[Cookie] = (),
        *,
        max_per_host: int = MAX_COOKIES_PER_HOST,
        max_total: int = MAX_COOKIES,
    ) -> None:
        self._max_per_host = max_per_host
        self._max_total = max_total
        self._jars: OrderedDict[str, CookieJar] = OrderedDict()
        """Host -> its jar, the least recently used first."""
        self._counts: dict[str, int] = {}
        self._total = 0
        self._domain_wide: dict[str, list[Cookie]] = {}
        """Domain (no leading dot) -> the imported cookies for it and every host under it."""
        self._emptied: OrderedDict[str, None] = OrderedDict()
        """Hosts that deleted every cookie they had, the domain-wide ones given to them included
        (as many as ``max_total``, the least recent go first): none is given to them again."""
        by_host: dict[str, list[Cookie]] = {}
        for cookie in imported:
            if cookie.domain_initial_dot:
                self._domain_wide.setdefault(cookie.domain[1:], []).append(cookie)
            else:
                by_host.setdefault(cookie.domain, []).append(cookie)
        for host, cookies in by_host.items():
            self._fill(host, [*self._domain_wide_for(host), *cookies])

    def header(self, url: str, host: str) -> bytes | None:
        """The Cookie header value for a request to ``url`` (on ``host``), if any cookie goes."""
        jar = self._jars.get(host)
        if jar is None:
            jar = self._fill(host, self._domain_wide_for(host))
            if jar is None:
                return None
        self._jars.move_to_end(host)
        request = _request(url)
        jar.add_cookie_header(request)
        value = request.get_header("Cookie")
        # Every value came in as Latin-1; only a default path taken from a URL that was not
        # percent-encoded could hold more, and that must not end the crawl.
        return value.encode("latin-1", "replace") if value else None

    def store(self, url: str, host: str, set_cookies: Sequence[bytes]) -> None:
        """Keep what the Set-Cookie header values (raw bytes) of a response to ``url`` set."""
        jar = self._jars.get(host)
        if jar is None:
            jar = self._fill(host, self._domain_wide_for(host))
        if jar is None:
            jar = self._jars[host] = CookieJar(_POLICY)
        self._jars.move_to_end(host)
        before = {(c.domain, c.path, c.name) for c in jar}
        response = _SetCookies(set_cookies)
        jar.extract_cookies(response, _request(url))  # type: ignore[arg-type]
        jar.clear_expired_cookies()
        kept = [(c.domain, c.path, c.name) for c in jar]
        new = [key for key in kept if key not in before]
        room = max(0, self._max_per_host - (len(kept) - len(new)))
        for key in new[room:]:
            jar.clear(*key)  # refused: the host has all the cookies it may have
        if not jar and self._domain_wide_for(host):
            self._emptied[host] = None
            while len(self._emptied) > self._max_total:
                self._emptied.popitem(last=False)
        self._recount(host, len(jar))
        self._evict()

    def load(self, saved: Iterable[SavedCookie]) -> None:
        """Add the jars an earlier run of the crawl saved (:meth:`saved`), within the bounds; a
        saved cookie replaces one of the same domain, path and name (it is the newer)."""
        by_host: dict[str, list[Cookie]] = {}
        for row in saved:
            cookie = make_cookie(
                row.domain, row.path, row.name, row.value, row.secure, row.expires, row.http_only
            )
            by_host.setdefault(row.host, []).append(cookie)
        for host, cookies in by_host.items():
            jar = self._jars.get(host)
            kept = self._domain_wide_for(host) if jar is None else list(jar)
            self._fill(host, [*kept, *cookies])

    def saved(self) -> list[SavedCookie]:
        """Every jar's cookies, to be saved for the next run of the crawl."""
        return [
            SavedCookie(
                host,
                cookie.domain,
                cookie.path,
                cookie.name,
                cookie.value,
                cookie.secure,
                cookie.expires,
                cookie.has_nonstandard_attr("HttpOnly"),
            )
            for host, jar in self._jars.items()
            for cookie in jar
        ]

    def _domain_wide_for(self, host: str) -> list[Cookie]:
        """The imported domain-wide cookies whose domain is ``host`` or a parent of it (none for
        a host that deleted them)."""
        if not self._domain_wide or host in self._emptied:
            return []
        labels = host.split(".")
        return [
            cookie
            for start in range(len(labels))
            for cookie in self._domain_wide.get(".".join(labels[start:]), ())
        ]

    def _fill(self, host: str, cookies: Sequence[Cookie]) -> CookieJar | None:
        """A new jar for ``host`` holding ``cookies`` (up to the host's limit); None if none."""
        if not cookies:
            return None
        jar = self._jars[host] = CookieJar(_POLICY)
        # The last of a (domain, path, name) wins, in the place of the first.
        unique = {(cookie.domain, cookie.path, cookie.name): cookie for cookie in cookies}
        for cookie in list(unique.values())[: self._max_per_host]:
            jar.set_cookie(cookie)
        jar.clear_expired_cookies()
        self._recount(host, len(jar))
        self._evict()
        return self._jars.get(host)

    def _evict(self) -> None:
        """Drop the least recently used jars until all together are within the total."""
        while self._total > self._max_total:
            oldest = next(iter(self._jars))
            del self._jars[oldest]
            self._recount(oldest, 0)

    def _recount(self, host: str, count: int) -> None:
        self._total += count - self._counts.pop(host, 0)
        if count:
            self._counts[host] = count
        else:
            self._jars.pop(host, None)  # an empty jar is not worth its memory

    def __len__(self) -> int:
        """Cookies kept, all hosts together."""
        return self._total

    def __bool__(self) -> bool:
        """Whether a request could carry a cookie: one is kept, or an imported domain-wide one
        waits for its first host."""
        return self._total > 0 or bool(self._domain_wide)

    def __repr__(self) -> str:
        return f"<HostCookies hosts={len(self._jars)} cookies={self._total}>"


def make_cookie(
    domain: str,
    path: str,
    name: str,
    value: str | None,
    secure: bool,
    expires: int | None,
    http_only: bool,
) -> Cookie:
    """A cookie for a jar; ``domain`` with a leading dot is domain-wide (a Domain attribute),
    ``expires`` None a session cookie."""
    domain_wide = domain.startswith(".")
    return Cookie(
        version=0,
        name=name,
        value=value,
        port=None,
        port_specified=False,
        domain=domain,
        domain_specified=domain_wide,
        domain_initial_dot=domain_wide,
        path=path,
        path_specified=True,
        secure=secure,
        expires=expires,
        discard=expires is None,
        comment=None,
        comment_url=None,
        rest={"HttpOnly": ""} if http_only else {},
    )


def _request(url: str) -> urllib.request.Request:
    """``url`` as the jar wants to see it: it takes the whole authority for the host."""
    parts = urlsplit(url)
    if "@" in parts.netloc:  # user:password@ is no part of the host
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return urllib.request.Request(url)


class _SetCookies:
    """The part of a urllib response that :meth:`CookieJar.extract_cookies` reads: its
    Set-Cookie headers, through ``info().get_all``."""

    def __init__(self, values: Sequence[bytes]) -> None:
        self._values = [value.decode("latin-1") for value in values]

    def info(self) -> _SetCookies:
        return self

    def get_all(self, name: str, default: list[str]) -> list[str]:
        return self._values if name.lower() == "set-cookie" else default
