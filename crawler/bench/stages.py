"""What one page costs in each stage, measured alone: ``python -m crawler.bench.stages [N]``.

The scenarios say how fast the whole crawler is; this says where a page's CPU goes, so that a
change to one stage can be judged before the whole is run again. Each line is CPU time per page
(``time.process_time``, all threads) over ``N`` synthetic pages of 20 KB with 35 links:

- parsing and link handling, as the parse worker runs them (``parse_html``, first with the C
  heap as glibc leaves it, then kept as :mod:`crawler.parse.malloc` does; resolving links; the whole
  ``build_outcome``), and the bare-loop equivalents;
- handing a page to a thread and back (``asyncio.to_thread``);
- the sink: one page's rows, links and discovered URLs, in batches as the crawl writes them;
- the HTTP stack, fetch only, 100 requests in flight against the synthetic web: raw aiohttp,
  httpx over each transport, and our ``Fetcher``; and httpx alone, over a transport that
  answers from memory (what the client costs with no I/O at all).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

import aiohttp
import httpx

from crawler.abort import AbortController
from crawler.bench.server import SyntheticWeb
from crawler.bench.transports import make_transport, missing
from crawler.bench.web import HTML_TYPE, Web, WebSpec
from crawler.config import Config
from crawler.config_load import load_config
from crawler.engine import Crawl
from crawler.fetch.client import Fetcher
from crawler.models import Lease, Outcome, Response
from crawler.parse.html import parse_html
from crawler.parse.malloc import keep_freed_memory
from crawler.parse.outcome import LinkRules, build_outcome
from crawler.store.database import Store
from crawler.store.sink import Sink
from crawler.urls import BaseURL

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "bench.toml"
IN_FLIGHT = 100
ORIGIN = "http://127.0.0.1:8080"


def _line(label: str, seconds: float, count: int) -> str:
    return f"{label:<52} {seconds / count * 1000:7.3f} ms CPU/page"


def _timed(function: Callable[[int], object], count: int) -> float:
    started = time.process_time()
    for i in range(count):
        function(i)
    return time.process_time() - started


def _resolve_all(base: BaseURL, hrefs: list[str]) -> list[str | None]:
    return [base.resolve(href) for href in hrefs]


def _rules(config: Config) -> LinkRules:
    # The engine's own rules for these seeds, so this follows whatever the engine does.
    crawl = Crawl(config, [f"{ORIGIN}/"], Path("unused.db"), AbortController().signal)
    return crawl._rules


def parse_stages(count: int, echo: Callable[[str], None]) -> list[Outcome]:
    web = Web(WebSpec(hosts=1, pages=count + 2), [8080])
    urls = [f"{ORIGIN}/p/{i}" for i in range(1, count + 1)]
    bodies = [web.page(0, i) for i in range(1, count + 1)]
    parsed = [parse_html(body, url, HTML_TYPE) for body, url in zip(bodies, urls, strict=True)]
    rules = _rules(load_config(CONFIG))
    leases = [Lease(id=i, url=url, host="127.0.0.1:8080", depth=1) for i, url in enumerate(urls)]
    responses = [
        Response(url=url, status=200, content_type=HTML_TYPE, body=body)
        for url, body in zip(urls, bodies, strict=True)
    ]

    def parse(i: int) -> object:
        return parse_html(bodies[i], urls[i], HTML_TYPE)

    echo(_line("parse_html, C heap trimmed (glibc's default)", _timed(parse, count), count))
    if keep_freed_memory():  # as the parse worker does; the stages below run so too
        echo(
            _line(
                "parse_html, freed C heap kept (crawler.parse.malloc)", _timed(parse, count), count
            )
        )
    echo(
        _line(
            "canonicalize each link of a page (one BaseURL a page)",
            _timed(lambda i: _resolve_all(BaseURL(urls[i]), parsed[i].links), count),
            count,
        )
    )
    echo(
        _line(
            "urljoin + urldefrag, each link (the bare loops)",
            _timed(lambda i: [urldefrag(urljoin(urls[i], h))[0] for h in parsed[i].links], count),
            count,
        )
    )
    outcomes: list[Outcome] = []
    echo(
        _line(
            "build_outcome (parse, links, scope, trap rules)",
            _timed(
                lambda i: outcomes.append(build_outcome(leases[i], responses[i], rules, "now")),
                count,
            ),
            count,
        )
    )
    return outcomes


async def _thread_and_sink(
    outcomes: list[Outcome], count: int, echo: Callable[[str], None]
) -> None:
    started = time.process_time()
    for _ in range(count):
        await asyncio.to_thread(int)
    echo(
        _line("asyncio.to_thread round trip (nothing to do)", time.process_time() - started, count)
    )
    config = load_config(CONFIG)
    with tempfile.TemporaryDirectory(prefix="crawl-bench-stages-") as tmp:
        async with Store(Path(tmp) / "stages.db") as store:
            await store.add_urls([(o.lease.url, o.lease.host, 1, 0) for o in outcomes])
            sink = Sink(store, config.storage, lambda pages, hosts: None)
            started = time.process_time()
            writer = asyncio.create_task(sink.run())
            for outcome in outcomes:
                await sink.put(outcome)
            await sink.finish()
            await writer
            echo(_line("sink: page, links, discovered URLs", time.process_time() - started, count))


async def _fetch_loop(fetch: Callable[[str], Awaitable[object]], urls: list[str]) -> float:
    queue = list(urls)

    async def worker() -> None:
        while queue:
            await fetch(queue.pop())

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return time.process_time() - started


async def _http_stacks(seeds: list[str], count: int, echo: Callable[[str], None]) -> None:
    urls = [f"{seeds[0]}p/{i % 19_000 + 1}" for i in range(count)]
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def raw(url: str) -> object:
            async with session.get(url) as response:
                return await response.read()

        echo(_line("HTTP: aiohttp alone", await _fetch_loop(raw, urls), count))
    for name in ("httpcore", "httpx-aiohttp"):
        if missing(name) is not None:
            continue
        async with httpx.AsyncClient(transport=make_transport(name, IN_FLIGHT)) as client:
            spent = await _fetch_loop(client.get, urls)
            echo(_line(f"HTTP: httpx client.get over {name}", spent, count))
    config = load_config(CONFIG)
    # The second as the crawl uses it: the frontier hears of every request sent.
    hooks: list[tuple[str, Callable[[str], None] | None]] = [
        ("HTTP: our Fetcher.fetch (default transport)", None),
        ("HTTP: our Fetcher.fetch, announcing each request", lambda url: None),
    ]
    for label, hook in hooks:
        async with Fetcher(
            config.fetch, user_agent="bench", concurrency=IN_FLIGHT, on_request_sent=hook
        ) as fetcher:
            spent = await _fetch_loop(fetcher.fetch, urls)
        echo(_line(label, spent, count))


class _FromMemory(httpx.AsyncBaseTransport):
    """Answers every request at once with the same page: httpx's own cost, no I/O."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = [
            (b"content-type", HTML_TYPE.encode()),
            (b"content-length", b"%d" % len(self._body)),
        ]
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(self._body))


async def _httpx_alone(count: int, echo: Callable[[str], None]) -> None:
    body = Web(WebSpec(), [8080]).page(0, 1)
    async with httpx.AsyncClient(transport=_FromMemory(body)) as client:
        started = time.process_time()
        for i in range(count):
            await client.get(f"{ORIGIN}/p/{i}")
        echo(_line("httpx client.get, from memory (no I/O)", time.process_time() - started, count))
    config = load_config(CONFIG)
    transport: Any = _FromMemory(body)
    async with Fetcher(
        config.fetch, user_agent="bench", concurrency=IN_FLIGHT, transport=transport
    ) as fetcher:
        started = time.process_time()
        for i in range(count):
            await fetcher.fetch(f"{ORIGIN}/p/{i}")
        echo(_line("our Fetcher.fetch, from memory (no I/O)", time.process_time() - started, count))


def run_stages(count: int = 2_000, echo: Callable[[str], None] = print) -> None:
    import uvloop

    outcomes = parse_stages(count, echo)
    uvloop.run(_thread_and_sink(outcomes, count, echo))
    uvloop.run(_httpx_alone(count, echo))
    with SyntheticWeb(WebSpec(hosts=1, pages=20_000)) as web:
        uvloop.run(_http_stacks(web.seeds, count * 3, echo))


if __name__ == "__main__":
    run_stages(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000)
