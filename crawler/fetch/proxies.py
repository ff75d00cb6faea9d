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

Credentials in a proxy URL (``http://user:pw@proxy:3128``) become a ``Proxy-Authorization``
header sent to the proxy only: on an http target's request, which goes to the proxy (which
removes it before forwarding), and on the CONNECT of an https one, never inside its tunnel.
The URL handed to aiohttp carries none, so no error of its can quote them, and a
:class:`Proxy` shows only its address.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from crawler.config import FetchSection
from crawler.config_checks import host_table_key


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


class ProxyRoutes:
    """``for_netloc(netloc)``: the :class:`Proxy` of a request to that host[:port], or None
    for a direct connection."""

    __slots__ = ("_default", "_hosts", "_no_proxy")

    def __init__(self, config: FetchSection) -> None:
        self._default = Proxy.parse(config.proxy) if config.proxy else None
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
        return found if self._default is None else [self._default, *found]

    def for_netloc(self, netloc: str) -> Proxy | None:
        if netloc in self._hosts:
            return self._hosts[netloc]
        if self._default is None or self._bypasses(netloc):
            return None
        return self._default

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
