"""Which proxy, if any, carries each request: ``fetch.proxy``, ``fetch.no_proxy`` and a host's
``[fetch.hosts."host:port"] proxy``.

The route of a URL is decided by its host[:port] as in the crawl's URLs (lower-case, IDNA, no
default port), in this order: the host's table (``proxy = "http://..."``: that one; ``proxy =
""``: direct), then ``fetch.no_proxy`` (direct), then ``fetch.proxy``. A ``no_proxy`` entry
matches:

- ``*``: every host;
- ``host:port``: that host on that port only;
- a name or an IP address (a leading dot is ignored, as curl and wget ignore it): that host
  on any port and, for a name, every subdomain of it (``example.com`` matches
  ``www.example.com``, not ``badexample.com``).

With ``fetch.proxies`` (instead of ``fetch.proxy``) the requests ``fetch.proxy`` would take
are spread over a :class:`ProxyPool`, in turn; one whose connection fails, or that refuses a
request for itself, is out of rotation for a while and the request tries the next.

Credentials in a proxy URL (``http://user:pw@proxy:3128``) become a ``Proxy-Authorization``
header sent to the proxy only: on an http target's request, which goes to the proxy (which
removes it before forwarding), and on the CONNECT of an https one, never inside its tunnel.
The URL handed to aiohttp carries none, so no error of its can quote them, and a
:class:`Proxy` shows only its address.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from crawler.config import FetchSection
from crawler.config_checks import host_table_key
from crawler.errors import ProxyFailed

OUT_OF_ROTATION_SECONDS = 30.0
"""A failed proxy's first time out of rotation. Long enough that the requests right behind the
failing one (a crawl sends many a second) do not all hit it too; short enough that a proxy
that hiccuped is back within the minute. Doubles with each failure in a row, up to
:data:`MAX_OUT_OF_ROTATION_SECONDS`; one success resets it."""
MAX_OUT_OF_ROTATION_SECONDS = 600.0
"""The longest time out of rotation: a proxy that stays down is tried every ten minutes, so one
that comes back rejoins within them, and a long crawl never gives up on it for good."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy as the transport uses it: its URL without credentials, and the
    ``Proxy-Authorization`` value made of them (for the proxy only: not in the repr)."""

    url: str
    authorization: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """The proxy at ``url`` (checked by :func:`crawler.config_checks.unusable_value`)."""
        parts = urlsplit(url)
        address = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        if parts.username is None:
            return cls(address)
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        return cls(address, "Basic " + base64.b64encode(credentials.encode()).decode())

    @property
    def host(self) -> str:
        """The proxy's host name or address (bare, lower-case), as its connection resolves it."""
        return (urlsplit(self.url).hostname or "").lower()


class ProxyPool:
    """``fetch.proxies``: ``take()`` gives the next proxy in rotation, in turn; ``failed(p)``
    takes ``p`` out of rotation (:data:`OUT_OF_ROTATION_SECONDS`, doubling), ``succeeded(p)``
    forgets its failures. ``clock``: seconds, monotonic (injected by the tests)."""

    def __init__(
        self, proxies: Sequence[Proxy], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.proxies = tuple(proxies)
        self._clock = clock
        self._next = 0
        self._failures = dict.fromkeys(self.proxies, 0)
        """Proxy -> failures in a row."""
        self._out_until = dict.fromkeys(self.proxies, 0.0)

    def take(self) -> Proxy:
        """The next proxy in rotation; raises :class:`ProxyFailed` when all are out (the
        request is retried later by the frontier: waiting here would hold a worker and its
        host's turn for up to :data:`MAX_OUT_OF_ROTATION_SECONDS`)."""
        now = self._clock()
        count = len(self.proxies)
        for step in range(count):
            proxy = self.proxies[(self._next + step) % count]
            if self._out_until[proxy] <= now:
                self._next = (self._next + step + 1) % count
                return proxy
        back = min(self._out_until.values()) - now
        raise ProxyFailed(
            f"all {count} proxies are out of rotation (the first back in {back:.0f}s)"
        )

    def failed(self, proxy: Proxy) -> None:
        failures = self._failures[proxy] = self._failures[proxy] + 1
        pause = min(OUT_OF_ROTATION_SECONDS * 2 ** (failures - 1), MAX_OUT_OF_ROTATION_SECONDS)
        self._out_until[proxy] = self._clock() + pause

    def __contains__(self, proxy: object) -> bool:
        return proxy in self._failures

    def succeeded(self, proxy: Proxy) -> None:
        if self._failures[proxy]:
            self._failures[proxy] = 0

    def in_rotation(self) -> list[Proxy]:
        now = self._clock()
        return [proxy for proxy in self.proxies if self._out_until[proxy] <= now]

    def __repr__(self) -> str:
        return f"<ProxyPool proxies={len(self.proxies)} in_rotation={len(self.in_rotation())}>"


class ProxyRoutes:
    """``for_netloc(netloc)``: the :class:`Proxy` of a request to that host[:port], or None
    for a direct connection; ``pool``: the rotation of ``fetch.proxies``, if set."""

    __slots__ = ("_default", "_hosts", "_no_proxy", "pool")

    def __init__(
        self, config: FetchSection, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._default = Proxy.parse(config.proxy) if config.proxy else None
        self.pool = (
            ProxyPool([Proxy.parse(url) for url in config.proxies], clock=clock)
            if config.proxies
            else None
        )
        self._no_proxy = tuple(_no_proxy_entry(entry) for entry in config.no_proxy)
        """(host, port or None: any), bare and lower-case; ``("*", None)`` for ``*``."""
        self._hosts: dict[str, Proxy | None] = {}
        """Netloc -> its table's route, for the hosts whose table sets ``proxy``."""
        for key, host in config.hosts.items():
            if host.proxy is not None:
                netloc = host_table_key(key) or key  # the config refuses keys with None
                self._hosts[netloc] = Proxy.parse(host.proxy) if host.proxy else None

    @property
    def proxies(self) -> list[Proxy]:
        """Every proxy a request may go through."""
        found = [p for p in self._hosts.values() if p is not None]
        if self.pool is not None:
            found += self.pool.proxies
        return found if self._default is None else [self._default, *found]

    def for_netloc(self, netloc: str) -> Proxy | None:
        """Raises :class:`ProxyFailed` when the route is the pool and all its proxies are out."""
        if netloc in self._hosts:
            return self._hosts[netloc]
        if (self._default is None and self.pool is None) or self._bypasses(netloc):
            return None
        return self._default if self.pool is None else self.pool.take()

    def _bypasses(self, netloc: str) -> bool:
        """Whether a ``fetch.no_proxy`` entry matches (see the module's docstring)."""
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname or "", parts.port
        for entry_host, entry_port in self._no_proxy:
            if entry_host == "*":
                return True
            if entry_port is not None:
                if (entry_host, entry_port) == (host, port):
                    return True
            elif host == entry_host or host.endswith(f".{entry_host}"):
                return True
        return False

    def __repr__(self) -> str:
        return f"<ProxyRoutes proxies={len(self.proxies)} no_proxy={len(self._no_proxy)}>"


def _no_proxy_entry(entry: str) -> tuple[str, int | None]:
    if entry == "*":
        return "*", None
    parts = urlsplit(f"//{entry.lstrip('.')}")
    return (parts.hostname or "", parts.port)
