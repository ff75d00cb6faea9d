"""The HTTP transports measured behind our one ``httpx.AsyncClient``.

``Crawl(..., transport=...)`` takes any ``httpx.AsyncBaseTransport``; the fetch layer is
unchanged whichever is used, so a comparison measures the transport alone. Names:

- ``default``: whatever the crawler is configured with (``fetch.transport``), as shipped;
- ``httpcore``: httpx's own transport (httpcore's pool), with the fetcher's limits;
- ``httpx-aiohttp``: the httpx-aiohttp package's general-purpose ``AiohttpTransport`` over a
  plain ``aiohttp`` connector with the same connection limit (the default is our own,
  narrower bridge to aiohttp: :mod:`crawler.fetch.transport`).
"""

from __future__ import annotations

import importlib.util

import httpx

TRANSPORTS = ("default", "httpcore", "httpx-aiohttp")


def missing(name: str) -> str | None:
    """Why transport ``name`` can't be used here (what to install), or None if it can."""
    if name not in TRANSPORTS:
        return f"unknown transport {name!r} (known: {', '.join(TRANSPORTS)})"
    if name == "httpx-aiohttp":
        for module in ("aiohttp", "httpx_aiohttp"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed: pip install -e '.[bench]'"
    return None


def make_transport(name: str, connections: int) -> httpx.AsyncBaseTransport | None:
    """A new transport ``name`` allowing ``connections`` connections in all; None for the
    configured default. Call inside the event loop that will use it."""
    problem = missing(name)
    if problem is not None:
        raise ValueError(problem)
    if name == "default":
        return None
    if name == "httpcore":
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncHTTPTransport(limits=limits)
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    def session() -> aiohttp.ClientSession:
        # limit_per_host=0: per-host limits are the frontier's job, as with httpcore.
        connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0)
        return aiohttp.ClientSession(connector=connector)

    transport: httpx.AsyncBaseTransport = AiohttpTransport(client=session)
    return transport
