"""The headers each request carries, per host: the crawler's own, ``fetch.headers``, and a
host's ``[fetch.hosts."host:port"]`` headers and basic auth.

The lists are built once, when the crawl starts, so a request costs one dictionary lookup by
the URL's host[:port] (as in the crawl's URLs: lower-case, IDNA, no default port). The frontier,
not httpx, follows redirects: every hop is a request of its own, built here for its own host,
so a host's credentials never go to another host, whatever a redirect says. They go over
https only, unless the host's ``auth_over_http`` says plain http too: a redirect from
``https://`` to ``http://`` on the same host then carries none (a downgrade would send them
in clear). Values are never logged: :class:`RequestHeaders` shows only how many hosts it
knows, and the config's repr hides them (:mod:`crawler.config`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from crawler.config import FetchHost, FetchSection
from crawler.config_checks import host_table_key

Headers = list[tuple[bytes, bytes]]

ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
ACCEPT_ENCODING = "gzip, deflate"
"""Only what :mod:`crawler.fetch.body` can stop decoding at the size cap."""


def crawler_headers(user_agent: str) -> Headers:
    """The headers the crawler sets on every request (the client's defaults)."""
    return [
        (b"User-Agent", user_agent.encode()),
        (b"Accept", ACCEPT.encode()),
        (b"Accept-Encoding", ACCEPT_ENCODING.encode()),
    ]


class RequestHeaders:
    """``for_url(scheme, netloc)``: the headers (but Host and Cookie) of a request to a URL."""

    __slots__ = ("_default", "_hosts")

    def __init__(self, own: Sequence[tuple[bytes, bytes]], config: FetchSection) -> None:
        """``own``: the crawler's headers (User-Agent, Accept, ...); ``fetch.headers`` replaces
        one of the same name (Accept: the config refuses the others)."""
        self._default = _merged(own, config.headers)
        self._hosts: dict[bytes, tuple[Headers, Headers]] = {}
        """Netloc -> (headers over http, over https), for the hosts configured."""
        for key, host in config.hosts.items():
            headers = _merged(self._default, host.headers)
            secure = headers + _authorization(host)
            netloc = (host_table_key(key) or key).encode()  # the config refuses keys with None
            self._hosts[netloc] = (secure if host.auth_over_http else headers, secure)

    def for_url(self, scheme: str, netloc: bytes) -> Headers:
        """The headers for a URL with this scheme and (httpx's) netloc; the caller may not
        change the list."""
        host = self._hosts.get(netloc)
        if host is None:
            return self._default
        return host[1] if scheme == "https" else host[0]

    def __repr__(self) -> str:
        return f"<RequestHeaders hosts={len(self._hosts)}>"


def _merged(base: Sequence[tuple[bytes, bytes]], extra: dict[str, str]) -> Headers:
    """``base`` with ``extra`` added, an ``extra`` header replacing one of the same name."""
    replaced = {name.lower().encode() for name in extra}
    kept = [(name, value) for name, value in base if name.lower() not in replaced]
    return kept + [(name.encode(), value.encode()) for name, value in extra.items()]


def _authorization(host: FetchHost) -> Headers:
    """The basic auth header (RFC 7617, the credentials in UTF-8), if the host has any."""
    credentials = host.credentials()
    if not credentials:
        return []
    return [(b"Authorization", b"Basic " + base64.b64encode(credentials.encode()))]
