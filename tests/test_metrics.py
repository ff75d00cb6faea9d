"""``--metrics-port``: the endpoint scraped over HTTP during a real crawl and parsed with the
official client's parser; the series of one sample, value by value."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from crawler.abort import AbortController
from crawler.config_load import load_config
from crawler.demo import SiteServer, SiteSpec
from crawler.engine import Crawl
from crawler.models import FrontierCounts
from crawler.observe.gauges import CrawlSample, DatabaseCountReader, DatabaseCounts, Gauges
from crawler.observe.metrics import MAX_CONNECTIONS, REQUEST_TIMEOUT, MetricsServer, exposition
from crawler.observe.stats import LATENCY_BUCKETS, Stats
from tests.helpers import crawl_process, write_config, write_seeds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def parse(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(family: Metric, suffix: str = "", **labels: str) -> float:
    (sample,) = [s for s in family.samples if s.name == family.name + suffix and s.labels == labels]
    return sample.value


def test_one_sample_value_by_value() -> None:
    latency = [0] * (len(LATENCY_BUCKETS) + 1)
    latency[0], latency[3], latency[-1] = 5, 2, 1
    sample = CrawlSample(
        at=0.0,
        elapsed=12.5,
        pages=20,
        failed=3,
        retries=4,
        bytes=12345,
        statuses=Counter({200: 7, 404: 1}),
        errors={"timeout": 2, "connect_failed": 1},
        skipped={"robots_disallowed": 8, "pattern_budget": 1},
        robots_fetched=2,
        throttled=1,
        breaker_trips=1,
        latency_counts=tuple(latency),
        latency_sum=42.0,
        frontier=FrontierCounts("running", 3, 1, 1, 10, 4, 0, 20, 100),
        database=DatabaseCounts(
            {"pending": 50, "leased": 14, "done": 108, "failed": 3, "skipped": 9}, 2
        ),
        loop_lag=0.003,
        loop_lag_peak=0.01,
        max_pages=500,
    )
    metrics = parse(exposition(sample).decode())
    assert value(metrics["crawler_pages"], "_total", outcome="done") == 8
    assert value(metrics["crawler_pages"], "_total", outcome="failed") == 3
    assert value(metrics["crawler_pages"], "_total", outcome="skipped") == 9
    assert value(metrics["crawler_responses"], "_total", code="404") == 1
    assert value(metrics["crawler_bytes"], "_total") == 12345
    assert value(metrics["crawler_errors"], "_total", reason="timeout") == 2
    assert value(metrics["crawler_skipped"], "_total", reason="pattern_budget") == 1
    assert value(metrics["crawler_retries"], "_total") == 4
    decisions = metrics["crawler_robots_decisions"]
    assert value(decisions, "_total", decision="disallowed") == 8
    assert value(decisions, "_total", decision="unavailable") == 0
    assert value(metrics["crawler_frontier_urls"], state="pending") == 50
    assert value(metrics["crawler_frontier_urls"], state="leased") == 14
    assert value(metrics["crawler_hosts_active"]) == 2
    assert value(metrics["crawler_hosts_cooling_down"]) == 1
    assert value(metrics["crawler_in_flight"]) == 4
    assert value(metrics["crawler_event_loop_lag_seconds"]) == 0.003
    assert value(metrics["crawler_page_budget"]) == 500
    histogram = metrics["crawler_fetch_latency_seconds"]
    assert histogram.type == "histogram"
    assert value(histogram, "_bucket", le="0.005") == 5
    assert value(histogram, "_bucket", le="0.05") == 7  # cumulative
    assert value(histogram, "_bucket", le="30.0") == 7
    assert value(histogram, "_bucket", le="+Inf") == 8
    assert value(histogram, "_count") == 8
    assert value(histogram, "_sum") == 42.0
    assert {m.type for n, m in metrics.items() if n.endswith(("_urls", "_active"))} == {"gauge"}


@pytest.mark.anyio
async def test_scraped_over_http_during_a_real_crawl(tmp_path: Path) -> None:
    port = free_port()
    cfg = load_config(
        overrides={
            "crawl.concurrency": 2,
            "politeness.per_host_delay": 0.0,
            "runtime.stats_interval": 0.0,
            "output.metrics_port": port,
        },
        environ={},
    )
    enough = asyncio.Event()
    scraped_all = asyncio.Event()

    class Gate(httpx.AsyncHTTPTransport):
        """Holds every request after the 10th until the scrape is over: the crawl is still
        running while it is scraped, whatever the speed of the machine."""

        requests = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.requests += 1
            if self.requests > 10:
                enough.set()
                async with asyncio.timeout(30):
                    await scraped_all.wait()
            return await super().handle_async_request(request)

    scraped: dict[str, Metric] = {}
    answers: dict[str, tuple[int, str]] = {}

    async def scrape() -> None:
        try:
            async with asyncio.timeout(30):
                await enough.wait()  # the crawl is running: its endpoint is up
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(timeout=10) as client:
                metrics = await client.get(f"{base}/metrics")
                assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
                scraped.update(parse(metrics.text))
                for path in ("/healthz", "/nope"):
                    answer = await client.get(base + path)
                    answers[path] = (answer.status_code, answer.text)
                answer = await client.post(f"{base}/metrics")
                answers["POST"] = (answer.status_code, answer.text)
        finally:
            scraped_all.set()  # let the crawl go on, also when the scrape failed

    spec = SiteSpec(pages=40)
    with SiteServer(spec) as site:
        crawl = Crawl(
            cfg, [f"{site.base_url}/"], tmp_path / "c.db", AbortController().signal,
            transport=Gate(),
        )  # fmt: skip
        async with asyncio.TaskGroup() as group:
            group.create_task(scrape())
            report = await crawl.run()
    total = report.stats.pages
    pages = scraped["crawler_pages"]
    done = value(pages, "_total", outcome="done")
    assert 0 < done <= 10 < total
    assert value(pages, "_total", outcome="failed") == 0
    assert value(scraped["crawler_responses"], "_total", code="200") <= done
    urls = scraped["crawler_frontier_urls"]
    assert {s.labels["state"] for s in urls.samples} == {
        "pending",
        "leased",
        "done",
        "failed",
        "skipped",
    }
    assert value(scraped["crawler_robots_fetched"], "_total") == 1
    histogram = scraped["crawler_fetch_latency_seconds"]
    assert value(histogram, "_count") == done
    assert value(histogram, "_sum") > 0
    assert 0 <= value(scraped["crawler_event_loop_lag_seconds"]) < 5
    assert answers["/healthz"] == (200, "ok\n")
    assert answers["/nope"][0] == 404
    assert answers["POST"][0] == 405
    with pytest.raises(httpx.ConnectError):  # closed with the crawl
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/healthz")


def test_a_port_in_use_is_a_fatal_error(tmp_path: Path) -> None:
    with socket.socket() as busy, SiteServer(SiteSpec(pages=3)) as site:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        proc = crawl_process(
            "run", seeds, "--db", tmp_path / "c.db", "--config", write_config(tmp_path),
            "--metrics-port", port,
        )  # fmt: skip
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"error: cannot serve metrics on 127.0.0.1:{port}: Address already in use" in err
    assert "Traceback" not in err


@pytest.mark.anyio
async def test_idle_connections_do_not_lock_out_healthz(tmp_path: Path) -> None:
    # Sixteen connections that never send a request (a port scanner, a stuck client) used to
    # take every slot for REQUEST_TIMEOUT: /healthz was closed unanswered for 10 s.
    gauges = Gauges(Stats(), lambda: None, DatabaseCountReader(tmp_path / "c.db"))
    async with MetricsServer(gauges, "127.0.0.1", 0) as server:
        idle = [
            await asyncio.open_connection("127.0.0.1", server.port)
            for _ in range(MAX_CONNECTIONS + 4)
        ]
        try:
            async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT / 2) as client:
                for _ in range(3):
                    answer = await client.get(f"{server.url}/healthz")
                    assert (answer.status_code, answer.text) == (200, "ok\n")
            # The oldest idle connection made room: the server closed it, unanswered.
            async with asyncio.timeout(REQUEST_TIMEOUT / 2):
                assert await idle[0][0].read() == b""
        finally:
            for _, writer in idle:
                writer.close()
