"""Prometheus metrics of a running crawl: ``--metrics-port PORT`` serves ``/metrics`` and
``/healthz`` over HTTP, on 127.0.0.1 unless ``output.metrics_host`` says otherwise.

The numbers are read when Prometheus scrapes (:func:`metric_families` over one
:class:`~crawler.observe.gauges.CrawlSample`), so metrics cost nothing per page; the text exposition
format is the official client library's (``prometheus_client``). Series (all ``crawler_``):

counters: ``pages_total{outcome}`` (done, failed, skipped), ``responses_total{code}``,
``bytes_total``, ``errors_total{reason}`` (failures without a response), ``skipped_total{reason}``,
``retries_total``, ``robots_fetched_total``, ``robots_decisions_total{decision}`` (disallowed,
unavailable), ``throttled_total`` (429/503 cooldowns), ``circuit_breaker_trips_total``;
gauges: ``frontier_urls{state}`` (the database's counts, all runs), ``hosts_active`` (hosts with
URLs pending or leased), ``hosts_known``, ``hosts_cooling_down``, ``hosts_paused``,
``in_flight``, ``event_loop_lag_seconds``, ``elapsed_seconds``, ``page_budget``;
histogram: ``fetch_latency_seconds`` (request to end of body, per response).

The server is a minimal HTTP/1.0 responder on asyncio streams, owned by the crawl: ``async with
MetricsServer(...)`` binds (a port in use is a :class:`FatalError`: exit 1) and closing it
cancels the connections still open. Each request has :data:`REQUEST_TIMEOUT` to arrive; at most
:data:`MAX_CONNECTIONS` are open at once. A connection past that evicts the oldest one whose
request has not arrived yet (idle connections must not lock out a scrape or a liveness probe
for the whole timeout: they did, with 16 of them); only when all are being answered is the new
one closed unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from crawler.errors import FatalError
from crawler.observe.gauges import STATES, CrawlSample, Gauges
from crawler.observe.stats import LATENCY_BUCKETS
from crawler.resource import AsyncResource

log = logging.getLogger("crawler")

REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 16
MAX_REQUEST_BYTES = 8192
CLOSE_TIMEOUT = 5.0


def metric_families(sample: CrawlSample) -> list[Metric]:
    """Every series of one sample (pure)."""
    families: list[Metric] = []

    def counter(name: str, doc: str, value: float) -> None:
        families.append(CounterMetricFamily(f"crawler_{name}", doc, value=value))

    def gauge(name: str, doc: str, value: float) -> None:
        families.append(GaugeMetricFamily(f"crawler_{name}", doc, value=value))

    done = sum(sample.statuses.values())
    pages = CounterMetricFamily(
        "crawler_pages", "Pages recorded by this run, by outcome.", labels=["outcome"]
    )
    families.append(pages)
    for outcome, count in (
        ("done", done),
        ("failed", sample.failed),
        ("skipped", sum(sample.skipped.values())),
    ):
        pages.add_metric([outcome], count)
    responses = CounterMetricFamily(
        "crawler_responses", "Responses recorded, by HTTP status.", labels=["code"]
    )
    for code, count in sorted(sample.statuses.items()):
        responses.add_metric([str(code)], count)
    families.append(responses)
    counter("bytes", "Body bytes read (HTML, fetch.download_types; no others).", sample.bytes)
    errors = CounterMetricFamily(
        "crawler_errors", "Pages that got no response, by reason.", labels=["reason"]
    )
    for reason, count in sorted(sample.errors.items()):
        errors.add_metric([reason], count)
    families.append(errors)
    skipped = CounterMetricFamily(
        "crawler_skipped", "URLs deliberately not fetched, by reason.", labels=["reason"]
    )
    for reason, count in sorted(sample.skipped.items()):
        skipped.add_metric([reason], count)
    families.append(skipped)
    counter("retries", "Fetches scheduled again after a transient failure.", sample.retries)
    counter("robots_fetched", "robots.txt policies learned.", sample.robots_fetched)
    robots = CounterMetricFamily(
        "crawler_robots_decisions",
        "URLs robots.txt kept us from fetching, by decision.",
        labels=["decision"],
    )
    robots.add_metric(["disallowed"], sample.skipped.get("robots_disallowed", 0))
    robots.add_metric(["unavailable"], sample.skipped.get("robots_unavailable", 0))
    families.append(robots)
    counter("throttled", "429/503 answers that put a host in cooldown.", sample.throttled)
    counter(
        "circuit_breaker_trips", "Hosts paused after failing again and again.", sample.breaker_trips
    )

    urls = GaugeMetricFamily(
        "crawler_frontier_urls", "URLs in the frontier table by state (all runs).", labels=["state"]
    )
    if sample.database is not None:
        for state in STATES:
            urls.add_metric([state], sample.database.states[state])
        gauge("hosts_active", "Hosts with URLs pending or leased.", sample.database.hosts_with_work)
    families.append(urls)
    frontier = sample.frontier
    if frontier is not None:
        gauge("hosts_known", "Hosts the frontier has seen in this run.", frontier.hosts)
        gauge(
            "hosts_cooling_down",
            "Hosts waiting out a Retry-After, a robots.txt retry or a pause.",
            frontier.hosts_cooling_down,
        )
        gauge("hosts_paused", "Hosts whose circuit breaker is open.", frontier.hosts_paused)
        gauge("in_flight", "URLs being fetched right now.", frontier.in_flight)
    gauge(
        "event_loop_lag_seconds",
        "How late the event loop ran a timer, last probe.",
        sample.loop_lag,
    )
    gauge("elapsed_seconds", "Seconds since this run started.", sample.elapsed)
    gauge("page_budget", "The page budget over all runs (0: none).", sample.max_pages)

    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), sample.latency_counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    families.append(
        HistogramMetricFamily(
            "crawler_fetch_latency_seconds",
            "Seconds from request to the end of the body, per response.",
            buckets=buckets,
            sum_value=sample.latency_sum,
        )
    )
    return families


def exposition(sample: CrawlSample) -> bytes:
    """``sample`` in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metric_families(sample)))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


class MetricsServer(AsyncResource):
    """Serves ``/metrics`` and ``/healthz`` while open; see the module docstring."""

    def __init__(self, gauges: Gauges, host: str, port: int) -> None:
        self.gauges = gauges
        self.host = host
        self.port = port
        """The bound port once open (useful with port 0: any free port)."""
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], bool] = {}
        """Open connections, oldest first: True while their request has not arrived."""
        self.scrapes = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _aopen(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, limit=MAX_REQUEST_BYTES
            )
        except OSError as exc:
            # asyncio wraps the reason in a long message; the errno says it in a few words.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise FatalError(f"cannot serve metrics on {self.host}:{self.port}: {reason}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "metrics at %s/metrics",
            self.url,
            extra={"event": "metrics_listening", "url": f"{self.url}/metrics"},
        )

    async def _aclose(self) -> None:
        """Stop listening and end the open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.gather(*self._connections, return_exceptions=True)
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = True
        try:
            if len(self._connections) > MAX_CONNECTIONS and not self._evict_idle(task):
                return
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                self._connections[task] = False
                status, content_type, body = await self._answer(head)
                writer.write(_response(status, content_type, body, head.startswith(b"HEAD ")))
                await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # a client that hung up, stalled or sent too much gets nothing more
        except asyncio.CancelledError:
            # Only aclose() and _evict_idle() cancel these tasks. Ending normally matters: on
            # Python 3.11 the streams server logs every connection task that ends cancelled as
            # an error.
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()

    def _evict_idle(self, newcomer: asyncio.Task[None]) -> bool:
        """Close the oldest connection still waiting for its request; False if there is none."""
        for task, idle in self._connections.items():
            if idle and task is not newcomer and not task.cancelling():
                task.cancel()
                return True
        return False

    async def _answer(self, head: bytes) -> tuple[int, str, bytes]:
        method, _, rest = head.partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        if method not in (b"GET", b"HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        if target == b"/metrics":
            sample = await self.gauges.sample()
            self.scrapes += 1
            # What generate_latest writes, and what every Prometheus version reads.
            return 200, CONTENT_TYPE_PLAIN_0_0_4, exposition(sample)
        if target == b"/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n"

    def __repr__(self) -> str:
        state = "open" if self._server is not None else "closed"
        return f"<MetricsServer {state} {self.url} scrapes={self.scrapes}>"


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}


def _response(status: int, content_type: str, body: bytes, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.0 {status} {_REASONS.get(status, '')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (b"" if head_only else body)
