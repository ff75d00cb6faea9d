"""HTTP: the only package that imports httpx and aiohttp.

- :mod:`~crawler.fetch.client`: the :class:`Fetcher` (one shared ``httpx.AsyncClient``, streamed
  and capped bodies, the translation of httpx's errors into :mod:`crawler.errors`);
- :mod:`~crawler.fetch.body`: reading a body up to its cap, decoding on the way;
- :mod:`~crawler.fetch.transport`: the aiohttp session behind the client;
- :mod:`~crawler.fetch.headers`: the headers of each request, per host, and basic auth;
- :mod:`~crawler.fetch.proxies`: which proxy, if any, carries each request;
- :mod:`~crawler.fetch.addresses`: the address guard (SSRF defence);
- :mod:`~crawler.fetch.cookies`: one small cookie jar per host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.lazy import lazy_exports

if TYPE_CHECKING:
    from crawler.fetch.addresses import AddressBlocked, AddressGuard
    from crawler.fetch.client import ACCEPT, ACCEPT_ENCODING, Fetcher
    from crawler.fetch.proxies import ProxyRoutes

__all__ = [
    "ACCEPT",
    "ACCEPT_ENCODING",
    "AddressBlocked",
    "AddressGuard",
    "Fetcher",
    "ProxyRoutes",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AddressBlocked": "crawler.fetch.addresses",
        "AddressGuard": "crawler.fetch.addresses",
        "ACCEPT": "crawler.fetch.client",
        "ACCEPT_ENCODING": "crawler.fetch.client",
        "Fetcher": "crawler.fetch.client",
        "ProxyRoutes": "crawler.fetch.proxies",
    },
)
