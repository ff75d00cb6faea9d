"""The crawl's optional services, wired in one place so the engine stays small.

Besides the database a crawl can show its progress (:mod:`crawler.observe.progress`), serve metrics
(:mod:`crawler.observe.metrics`), archive responses (:mod:`crawler.archive.warc`), keep bodies
(:mod:`crawler.archive.bodies`) and seed itself from sitemaps (:mod:`crawler.frontier.sitemaps`).
Each is off or on by ``config.output`` / ``config.sitemaps``; :class:`CrawlServices` opens those
that are on, starts their tasks in the engine's service group and stops them in order. The engine
calls:

- ``async with CrawlServices(config, stats, store=..., sink=..., ...) as extras`` (an
  :class:`~crawler.resource.AsyncResource`: opens files and sockets; a port in use or an
  unwritable directory is a :class:`FatalError` before any fetch);
- :meth:`~CrawlServices.start` once the frontier is open;
- ``extras.on_response`` for every response and :meth:`~CrawlServices.room` between pages (the
  archives' backpressure); ``extras.sitemaps`` (None when off) hears of every robots.txt policy
  from the robots gate (:mod:`crawler.frontier.robots_gate`);
- :meth:`~CrawlServices.workers_done` when the workers have ended (no more responses: the
  archives finish, writing what is queued; sitemap reading stops), then
  :meth:`~CrawlServices.stop` once the sink has written everything (the progress display
  shows its final frame).

On cancellation the task group cancels the tasks and leaving ``async with`` closes every file
and socket (each service's own ``aclose``, in the reverse order of opening).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from crawler.archive.bodies import BodyStore, bodies_path
from crawler.archive.warc import WarcArchive
from crawler.frontier.robots import origin_of
from crawler.frontier.sitemaps import SitemapSeeder
from crawler.models import Lease, OnResponse, Response
from crawler.observe.gauges import DatabaseCountReader, Gauges, LoopLag
from crawler.observe.metrics import MetricsServer
from crawler.observe.progress import Progress, ProgressMode
from crawler.resource import AsyncResource
from crawler.scope import Scope
from crawler.urls import host_key

if TYPE_CHECKING:
    from crawler.config import Config
    from crawler.fetch.client import Fetcher
    from crawler.frontier.frontier import Frontier
    from crawler.observe.stats import Stats
    from crawler.store.database import Store
    from crawler.store.sink import Sink


class CrawlServices(AsyncResource):
    """See the module docstring."""

    def __init__(
        self,
        config: Config,
        stats: Stats,
        *,
        store: Store,
        sink: Sink,
        frontier: Frontier,
        fetcher: Fetcher,
        seeds: Sequence[str],
        scope: Scope,
        on_response: OnResponse | None = None,
    ) -> None:
        """``config`` says which services are on (its ``output`` and ``sitemaps`` sections);
        ``seeds`` and ``scope`` are the crawl's, for the sitemaps; ``on_response`` is the
        caller's own hook (see :class:`crawler.engine.Crawl`)."""
        output = config.output
        self._config = config
        self._seeds = seeds
        self._sink = sink
        self._stack = contextlib.AsyncExitStack()
        self._lag_task: asyncio.Task[None] | None = None
        mode = progress_mode(output.progress)
        watched = mode is not None or output.metrics_port > 0
        self.lag = LoopLag() if watched else None
        self.gauges = Gauges(
            stats,
            frontier.counts,
            DatabaseCountReader(store.path),
            lag=self.lag,
            max_pages=config.crawl.max_pages,
        )
        self.progress = (
            Progress(self.gauges, mode, interval=config.runtime.stats_interval)
            if mode is not None
            else None
        )
        self.metrics = (
            MetricsServer(self.gauges, output.metrics_host, output.metrics_port)
            if output.metrics_port > 0
            else None
        )
        self.warc = (
            WarcArchive(
                Path(output.warc_dir),
                max_bytes=output.warc_max_bytes,
                user_agent=config.crawl.user_agent,
                fetch=config.fetch,
                robots=config.politeness.robots,
            )
            if output.warc_dir
            else None
        )
        self.bodies = BodyStore(bodies_path(store.path)) if output.store_bodies else None
        self.sitemaps = (
            SitemapSeeder(
                config.sitemaps,
                partial(fetcher.fetch, any_type=True, max_bytes=config.sitemaps.max_bytes),
                self._add_urls,
                scope=scope,
                hold=frontier.hold,
                release=frontier.release_hold,
                turn=frontier.turn,
                max_url_length=config.crawl.max_url_length,
            )
            if config.sitemaps.enabled
            else None
        )
        self.on_response = _fan_out(
            [
                hook
                for hook in (
                    on_response,
                    self.warc.add if self.warc else None,
                    self.bodies.add if self.bodies else None,
                )
                if hook is not None
            ]
        )
        """What the workers call for every response (None when nobody listens)."""

    async def _aopen(self) -> None:
        for service in (self.warc, self.bodies, self.metrics):
            if service is not None:
                await self._stack.enter_async_context(service)

    async def _aclose(self) -> None:
        await self._stack.aclose()  # also what a failed _aopen had opened

    def start(self, group: asyncio.TaskGroup) -> None:
        """Start the service tasks (the frontier is open)."""
        if self.lag is not None:
            self._lag_task = group.create_task(self.lag.run(), name="loop-lag")
        for name, service in (
            ("progress", self.progress),
            ("warc", self.warc),
            ("bodies", self.bodies),
            ("sitemaps", self.sitemaps),
        ):
            if service is not None:
                group.create_task(service.run(), name=name)
        if self.sitemaps is not None and not self._config.politeness.robots:
            # No robots.txt policies will be learned: read the seeds' origins' sitemaps now.
            for origin in dict.fromkeys(origin_of(seed) for seed in self._seeds):
                self.sitemaps.discover(origin, ())

    async def room(self) -> None:
        """Wait while the archives have too much queued."""
        if self.warc is not None:
            await self.warc.room()
        if self.bodies is not None:
            await self.bodies.room()

    def workers_done(self) -> None:
        """The workers have ended: no more responses, no more URLs wanted. Synchronous."""
        for archive in (self.warc, self.bodies):
            if archive is not None:
                archive.finish()
        if self.sitemaps is not None:
            self.sitemaps.stop()

    def stop(self) -> None:
        """Everything is written: show the final progress, stop the probes."""
        if self.progress is not None:
            self.progress.stop()
        if self._lag_task is not None:
            self._lag_task.cancel()  # a probe has no end of its own

    async def _add_urls(self, urls: Sequence[str]) -> None:
        # At depth 0, like seeds; through the sink, committed before the sitemap's hold ends.
        await self._sink.offer([(url, host_key(url), 0, 0) for url in urls])

    def __repr__(self) -> str:
        on = [
            name
            for name, service in (
                ("progress", self.progress),
                ("metrics", self.metrics),
                ("warc", self.warc),
                ("bodies", self.bodies),
                ("sitemaps", self.sitemaps),
            )
            if service is not None
        ]
        return f"<CrawlServices {' '.join(on) or 'none'}>"


def progress_mode(setting: str, *, stream: object = None) -> ProgressMode | None:
    """The progress display for ``output.progress``: ``auto`` is live on a terminal (standard
    error, where it is drawn), plain elsewhere."""
    if setting == "off":
        return None
    if setting == "live":
        return "live"
    if setting == "plain":
        return "plain"
    target = stream if stream is not None else sys.stderr
    isatty = getattr(target, "isatty", None)
    return "live" if callable(isatty) and isatty() else "plain"


def _fan_out(hooks: Sequence[OnResponse]) -> OnResponse | None:
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]

    def on_response(lease: Lease, response: Response) -> None:
        for hook in hooks:
            hook(lease, response)

    return on_response
