"""The crawlers we compare against, each as a user would write it for the same job:
``python -m crawler.bench.peers NAME JOB.json RESULT.json``.

- ``scrapy``: a Spider following every link (``response.follow``), robots.txt obeyed,
  ``CONCURRENT_REQUESTS`` = the job's concurrency, ``CLOSESPIDER_PAGECOUNT`` = the budget;
- ``crawlee``: crawlee's ``ParselCrawler`` with ``enqueue_links()``, robots.txt respected,
  fixed concurrency, in-memory storage (its fastest);
- ``aiohttp``, ``httpx``: the bare reference loops: N tasks, one client, a seen-set and a queue
  in memory, selectolax for links, ``urljoin`` to resolve them; no robots.txt, no politeness,
  no persistence. The aiohttp one is the issue's "what one core can do".

None of these persists anything or keeps politeness bookkeeping; ours does both. Each runs in
its own process, so CPU and RSS are its own; the same :class:`~crawler.bench.measure.RunResult`
comes back from every one. A peer that is not installed is reported ``unavailable`` with what
to install, and the harness goes on.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

from crawler.bench.measure import (
    Baseline,
    LagProbe,
    RunResult,
    Sampler,
    finish_measuring,
    percentiles,
    start_measuring,
)

PEERS = ("scrapy", "crawlee", "aiohttp", "httpx")
_NEEDS = {
    "scrapy": ("scrapy",),
    "crawlee": ("crawlee", "parsel"),
    "aiohttp": ("aiohttp", "selectolax"),
    "httpx": ("httpx", "selectolax"),
}

Job = dict[str, Any]


def missing(name: str) -> str | None:
    """Why peer ``name`` can't run here (what to install), or None if it can."""
    if name not in PEERS:
        return f"unknown peer {name!r} (known: {', '.join(PEERS)})"
    for module in _NEEDS[name]:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install 'crawler[bench]'"
    return None


# -- the bare loops ------------------------------------------------------------------------------

Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]


async def _bare_loop(fetch: Fetch, job: Job, result: RunResult) -> None:
    """Fetch from the seeds breadth-first with ``concurrency`` tasks until the budget is spent
    or nothing is left; follow links on the seeds' origins."""
    from selectolax.lexbor import LexborHTMLParser

    seeds: list[str] = job["seeds"]
    budget: int = job["max_pages"]
    origins = tuple({url.split("/", 3)[2] for url in seeds})
    prefixes = tuple(f"http://{origin}/" for origin in origins)
    seen = set(seeds)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in seeds:
        queue.put_nowait(url)
    started = 0
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal started
        while True:
            url = await queue.get()
            try:
                if started >= budget:
                    continue  # drain the queue without fetching
                started += 1
                before = time.perf_counter()
                try:
                    status, body = await fetch(url)
                except Exception:  # a reference loop: count it and move on
                    continue
                latencies.append((time.perf_counter() - before) * 1000)
                result.pages += 1
                if status != 200:
                    continue
                tree = LexborHTMLParser(body.decode("utf-8", "replace"))
                for node in tree.css("a[href]"):
                    href = node.attrs.get("href")
                    if not href:
                        continue
                    link = urldefrag(urljoin(url, href))[0]
                    if link.startswith(prefixes) and link not in seen:
                        seen.add(link)
                        queue.put_nowait(link)
            finally:
                queue.task_done()

    probe = LagProbe()
    baseline = start_measuring(result)
    sampler = Sampler(result.started, lambda: result.pages, lambda: len(seen))
    async with asyncio.TaskGroup() as group:
        helpers = [group.create_task(probe.run()), group.create_task(sampler.run())]
        workers = [group.create_task(worker()) for _ in range(job["concurrency"])]
        try:
            async with asyncio.timeout(job["time_limit"]):
                await queue.join()
        except TimeoutError:
            result.extra["aborted"] = "bench time limit reached"
        for task in workers + helpers:
            task.cancel()
    finish_measuring(result, baseline)
    await sampler.sample()
    result.samples = sampler.samples
    result.discovered = len(seen)
    result.latency_ms = percentiles(latencies, 50, 95, 99)
    result.loop_lag_ms = probe.summary()


async def _aiohttp(job: Job, result: RunResult) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=job["concurrency"], limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(url: str) -> tuple[int, bytes]:
            async with session.get(url, allow_redirects=True) as response:
                return response.status, await response.read()

        await _bare_loop(fetch, job, result)


async def _httpx(job: Job, result: RunResult) -> None:
    import httpx

    connections = job["concurrency"]
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, follow_redirects=True, trust_env=False) as client:

        async def fetch(url: str) -> tuple[int, bytes]:
            response = await client.get(url)
            return response.status_code, response.content

        await _bare_loop(fetch, job, result)


# -- crawlee -------------------------------------------------------------------------------------


async def _crawlee(job: Job, result: RunResult) -> None:
    from crawlee import ConcurrencySettings
    from crawlee.crawlers import ParselCrawler, ParselCrawlingContext
    from crawlee.storage_clients import MemoryStorageClient

    concurrency = job["concurrency"]
    crawler = ParselCrawler(
        max_requests_per_crawl=job["max_pages"],
        concurrency_settings=ConcurrencySettings(
            min_concurrency=concurrency,
            max_concurrency=concurrency,
            desired_concurrency=concurrency,
        ),
        respect_robots_txt_file=True,
        storage_client=MemoryStorageClient(),
        configure_logging=False,
    )

    @crawler.router.default_handler
    async def handler(context: ParselCrawlingContext) -> None:
        result.pages += 1
        await context.enqueue_links()

    probe = LagProbe()
    baseline = start_measuring(result)
    sampler = Sampler(result.started, lambda: result.pages)
    async with asyncio.TaskGroup() as group:
        helpers = [group.create_task(probe.run()), group.create_task(sampler.run())]
        try:
            async with asyncio.timeout(job["time_limit"]):
                await crawler.run(job["seeds"])
        except TimeoutError:
            result.extra["aborted"] = "bench time limit reached"
        for task in helpers:
            task.cancel()
    finish_measuring(result, baseline)
    await sampler.sample()
    result.samples = sampler.samples
    result.loop_lag_ms = probe.summary()


# -- scrapy --------------------------------------------------------------------------------------


def _scrapy(job: Job, result: RunResult) -> None:
    import scrapy
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    latencies: list[float] = []
    baseline = Baseline(0.0, None)  # replaced when the spider opens

    class BenchSpider(scrapy.Spider):
        name = "bench"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.allowed_domains = ["127.0.0.1"]
            self.start_urls = list(job["seeds"])

        def parse(self, response: Any) -> Any:
            result.pages += 1
            latency = response.meta.get("download_latency")
            if latency is not None:
                latencies.append(latency * 1000)
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href, callback=self.parse)

    def opened(spider: Any) -> None:
        nonlocal baseline
        baseline = start_measuring(result)

    def closed(spider: Any, reason: str) -> None:
        finish_measuring(result, baseline)
        result.extra["close_reason"] = reason
        # Requests the scheduler accepted: each URL once, after its dupefilter.
        stats = spider.crawler.observe.stats
        result.discovered = int(stats.get_value("scheduler/enqueued", 0) or 0)

    concurrency = job["concurrency"]
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "DOWNLOAD_DELAY": 0,
            "ROBOTSTXT_OBEY": True,
            "CLOSESPIDER_PAGECOUNT": job["max_pages"],
            "CLOSESPIDER_TIMEOUT": job["time_limit"],
            "LOG_LEVEL": "WARNING",
            "TELNETCONSOLE_ENABLED": False,
            "DEPTH_PRIORITY": 1,  # breadth-first, as the other crawlers
            "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
            "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
        }
    )
    crawler = process.create_crawler(BenchSpider)
    crawler.signals.connect(opened, signal=signals.spider_opened)
    crawler.signals.connect(closed, signal=signals.spider_closed)
    process.crawl(crawler)
    process.start()
    result.latency_ms = percentiles(latencies, 50, 95, 99)


def run_peer(name: str, job: Job) -> RunResult:
    """Run peer ``name`` on ``job`` in this process (the harness starts one per process)."""
    result = RunResult(crawler=name)
    problem = missing(name)
    if problem is not None:
        result.status, result.detail = "unavailable", problem
        return result
    if name == "scrapy":
        _scrapy(job, result)
        return result
    runners = {"crawlee": _crawlee, "aiohttp": _aiohttp, "httpx": _httpx}
    loop_factory = None
    if job.get("uvloop", True):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(runners[name](job, result))
    return result


def main(argv: list[str]) -> int:
    name, job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    # crawlee writes its storage (and scrapy nothing) under the working directory.
    with tempfile.TemporaryDirectory(prefix="crawl-bench-peer-") as workdir:
        os.chdir(workdir)
        result = run_peer(name, job)
    result.write(Path(result_path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
