"""HTTP: the only package that imports httpx and aiohttp.

- :mod:`~crawler.fetch.client`: the :class:`Fetcher` (one shared ``httpx.AsyncClient``, streamed
  and capped bodies);
- :mod:`~crawler.fetch.failures`: the translation of httpx's and aiohttp's errors into
  :mod:`crawler.errors`, in one place;
- :mod:`~crawler.fetch.body`: reading a body up to its cap, decoding on the way;
- :mod:`~crawler.fetch.downloads`: which bodies besides HTML are read (``fetch.download_types``);
- :mod:`~crawler.fetch.transport`: the aiohttp session behind the client;
- :mod:`~crawler.fetch.headers`: the headers of each request, per host, and basic auth;
- :mod:`~crawler.fetch.proxies`: which proxy, if any, carries each request;
- :mod:`~crawler.fetch.addresses`: the address guard (SSRF defence);
- :mod:`~crawler.fetch.dns`: the crawl's one resolver, cached (``fetch.dns_ttl``,
  ``fetch.resolve``), shared by the guard and the connector;
- :mod:`~crawler.fetch.cookies`: one small cookie jar per host;
- :mod:`~crawler.fetch.cookies_file`: a Netscape cookies.txt read into them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.lazy import lazy_exports

if TYPE_CHECKING:
    from crawler.fetch.addresses import AddressBlocked, AddressGuard
    from crawler.fetch.client import Fetcher
    from crawler.fetch.dns import DnsCache
    from crawler.fetch.headers import ACCEPT, ACCEPT_ENCODING
    from crawler.fetch.proxies import ProxyRoutes

__all__ = [
    "ACCEPT",
    "ACCEPT_ENCODING",
    "AddressBlocked",
    "AddressGuard",
    "DnsCache",
    "Fetcher",
    "ProxyRoutes",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AddressBlocked": "crawler.fetch.addresses",
        "AddressGuard": "crawler.fetch.addresses",
        "ACCEPT": "crawler.fetch.headers",
        "ACCEPT_ENCODING": "crawler.fetch.headers",
        "Fetcher": "crawler.fetch.client",
        "DnsCache": "crawler.fetch.dns",
        "ProxyRoutes": "crawler.fetch.proxies",
    },
)
