"""Sitemaps seed the frontier (``crawl run --sitemaps``).

For each origin the crawl reaches, once per run, right after its robots.txt is learned: the
``Sitemap:`` URLs of its robots.txt, or ``/sitemap.xml`` when it names none (and robots.txt
allows it). With ``--no-robots``, ``/sitemap.xml`` of each seed's origin when the crawl starts.

Rules (each tested in ``tests/test_sitemaps.py``):

1.  Formats: ``<urlset>`` (URLs), ``<sitemapindex>`` (more sitemaps; followed
    :data:`MAX_INDEX_DEPTH` levels deep), any namespace, and plain text (one URL per line).
    A body starting with the gzip magic is gunzipped (``.xml.gz``); a ``Content-Encoding`` the
    fetch layer has already decoded.
2.  Safety: XML is parsed by defusedxml with DTDs forbidden (sitemaps never need one; it would
    allow entity bombs and external entities). Parsing runs in a thread, on at most
    ``sitemaps.max_bytes`` bytes after decompression (the rest is ignored); a malformed or cut
    document keeps the URLs read before the fault.
3.  Limits per origin: ``sitemaps.max_files`` files read (indexes included), ``max_urls`` URLs
    offered. Origins are read ``sitemaps.concurrency`` at a time; the files of one origin one
    after the other, each request (a redirect's too) in a turn of its host given by the
    frontier like a page's (``Frontier.turn``): the host's concurrency cap, delay, Crawl-delay
    and cooldown space sitemap files and pages alike.
4.  Only in-scope URLs count, canonicalized like links; sitemap files themselves must be in
    scope too. Redirects of sitemap files are followed (:data:`MAX_REDIRECTS`, in scope).
5.  URLs are offered to the frontier after each file, at depth 0 (like seeds: they start the
    crawl, and ``crawl.max_depth`` counts from them); known URLs are ignored (dedup).
6.  A failure (no response, not 200, bad XML, a forbidden DTD) is logged (event
    ``sitemap_failed``) and the crawl goes on; each file read is logged (event ``sitemap``).

Termination: a crawl whose only work left is reading sitemaps must not end before their URLs
arrive. :meth:`SitemapSeeder.discover` calls ``hold()`` synchronously, and each origin's job
calls ``release()`` when it is over, after its URLs are committed (``add`` returns then: the
crawl hands them to the sink, :meth:`crawler.store.sink.Sink.offer`); the frontier counts a hold as
unfinished work. On :meth:`SitemapSeeder.stop` the queued jobs are dropped and
running ones cancelled, every hold released.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from io import BytesIO
from typing import Literal

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import iterparse  # type: ignore[import-untyped]

from crawler.config import SitemapsSection
from crawler.errors import PageError
from crawler.frontier.robots import RobotsPolicy
from crawler.models import Response
from crawler.scope import Scope
from crawler.urls import DEFAULT_MAX_URL_LENGTH, canonicalize

log = logging.getLogger("crawler")

MAX_INDEX_DEPTH = 2
"""Indexes above a sitemap, at most: an index may list indexes (the protocol says it must not;
some sites do), whose lists are read; a third level is not."""
MAX_REDIRECTS = 5
_GZIP_MAGIC = b"\x1f\x8b"

FetchSitemap = Callable[[str], Awaitable[Response]]
"""GETs one URL (any type, bounded body); raises :class:`PageError` when no response came."""
AddURLs = Callable[[Sequence[str]], Awaitable[None]]
"""Offers canonical URLs to the frontier; returns once they are stored."""
TakeTurn = Callable[[str], AbstractAsyncContextManager[None]]
"""``async with turn(url):`` waits for the turn of ``url``'s host to send a request for it
(``Frontier.turn``); may raise :class:`PageError` (no turn will come)."""


@dataclass(frozen=True, slots=True)
class SitemapDoc:
    """What one sitemap file holds (:func:`parse_sitemap`)."""

    kind: Literal["urlset", "index", "text"]
    locs: list[str] = field(default_factory=list)
    """The ``<loc>`` values (or text lines) in document order, stripped, at most the limit."""
    error: str | None = None
    """Why reading stopped early (malformed XML, a DTD, not a sitemap); ``locs`` has what came
    before it."""


def decompress(body: bytes, max_bytes: int) -> tuple[bytes, bool]:
    """Gunzip ``body`` if it is gzip (magic bytes), to at most ``max_bytes``. Returns the data
    and whether it was cut (or the stream was broken: what decoded is kept)."""
    if not body.startswith(_GZIP_MAGIC):
        return body[:max_bytes], len(body) > max_bytes
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        data = inflater.decompress(body, max_bytes + 1)  # bounded: a bomb costs the cap
    except zlib.error:
        return b"", True
    return data[:max_bytes], len(data) > max_bytes or not inflater.eof


def parse_sitemap(body: bytes, limit: int) -> SitemapDoc:
    """Read a sitemap (XML urlset or index, or text), keeping at most ``limit`` locations.
    Pure and blocking: call it off the event loop. Never raises for bad input."""
    if not body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return _parse_text(body, limit)
    locs: list[str] = []
    kind: Literal["urlset", "index", "text"] | None = None
    try:
        for event, element in iterparse(BytesIO(body), ("start", "end"), forbid_dtd=True):
            name = element.tag.rpartition("}")[2]
            if kind is None:
                if name == "urlset":
                    kind = "urlset"
                elif name == "sitemapindex":
                    kind = "index"
                else:
                    return SitemapDoc("urlset", error=f"not a sitemap: <{name}>")
            elif event == "end" and name == "loc":
                if element.text and element.text.strip():
                    locs.append(element.text.strip())
                    if len(locs) >= limit:
                        break
            elif event == "end" and name in ("url", "sitemap"):
                element.clear()  # keep memory flat on a 50,000-URL file
    except DefusedXmlException as exc:
        return SitemapDoc(kind or "urlset", locs, f"refused: {type(exc).__name__}")
    except SyntaxError as exc:  # ElementTree's ParseError
        return SitemapDoc(kind or "urlset", locs, f"malformed XML: {exc}")
    return SitemapDoc(kind or "urlset", locs)


def _parse_text(body: bytes, limit: int) -> SitemapDoc:
    locs: list[str] = []
    for raw in body.decode("utf-8-sig", "replace").splitlines():
        line = raw.strip()
        if line.startswith(("http://", "https://")):
            locs.append(line)
            if len(locs) >= limit:
                break
    return SitemapDoc("text", locs)


@dataclass(slots=True)
class _Job:
    origin: str
    sitemaps: tuple[str, ...]


class SitemapSeeder:
    """Reads sitemaps and offers their URLs; see the module docstring. ``run`` is a service."""

    def __init__(
        self,
        config: SitemapsSection,
        fetch: FetchSitemap,
        add: AddURLs,
        *,
        scope: Scope,
        hold: Callable[[], None],
        release: Callable[[], None],
        turn: TakeTurn,
        max_url_length: int = DEFAULT_MAX_URL_LENGTH,
    ) -> None:
        self.config = config
        self._fetch = fetch
        self._add = add
        self._scope = scope
        self._hold = hold
        self._release = release
        self._turn = turn
        self._max_url_length = max_url_length
        self._origins: set[str] = set()
        self._fetched: set[str] = set()
        self._jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._running: set[asyncio.Task[None]] = set()
        self._stopped = False
        self.files = 0
        """Sitemap files read (fetched with status 200)."""
        self.urls = 0
        """URLs offered to the frontier."""
        self.failures = 0

    def learned(self, policy: RobotsPolicy) -> None:
        """A robots.txt policy was learned: read the sitemaps it names, or ``/sitemap.xml``
        if it names none and allows it (once per origin and run)."""
        if policy.disallow_all and not policy.allow_all:
            return  # robots.txt unreachable: no requests to this origin until it is asked again
        sitemaps = policy.sitemaps
        if not sitemaps:
            fallback = f"{policy.origin}/sitemap.xml"
            if not policy.allows(fallback):
                return
            sitemaps = (fallback,)
        self.discover(policy.origin, sitemaps)

    def discover(self, origin: str, sitemaps: Iterable[str]) -> None:
        """Read ``origin``'s sitemaps (``sitemaps``; empty: ``/sitemap.xml``), once per run.
        Synchronous: the hold is taken before this returns."""
        if self._stopped or origin in self._origins:
            return
        self._origins.add(origin)
        self._hold()
        self._jobs.put_nowait(_Job(origin, tuple(sitemaps) or (f"{origin}/sitemap.xml",)))

    async def run(self) -> None:
        """Start a task per origin, ``config.concurrency`` reading at once, until stopped."""
        slots = asyncio.Semaphore(self.config.concurrency)
        async with asyncio.TaskGroup() as group:
            while (job := await self._jobs.get()) is not None:
                task = group.create_task(self._read_origin(job, slots), name="sitemaps")
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    def stop(self) -> None:
        """Drop queued jobs, cancel running ones (each releases its hold): :meth:`run` returns
        once they have ended. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        while not self._jobs.empty():
            if self._jobs.get_nowait() is not None:
                self._release()
        self._jobs.put_nowait(None)
        for task in self._running:
            task.cancel()

    async def _read_origin(self, job: _Job, slots: asyncio.Semaphore) -> None:
        try:
            async with slots:
                await self._read_files(job)
        finally:
            self._release()

    async def _read_files(self, job: _Job) -> None:
        config = self.config
        queue: list[tuple[str, int]] = []
        for url in job.sitemaps:
            canonical = self._canonical(url)
            if canonical is not None and self._scope.allows(canonical):
                queue.append((canonical, 0))
            else:
                log.info(
                    "sitemap %s: not in scope, not read",
                    url,
                    extra={"event": "sitemap_failed", "url": url, "reason": "off_scope"},
                )
        files = offered = 0
        while queue and files < config.max_files and offered < config.max_urls:
            url, level = queue.pop(0)
            if url in self._fetched:
                continue
            self._fetched.add(url)
            files += 1
            doc = await self._read(url, config.max_urls - offered)
            if doc is None:
                continue
            if doc.kind == "index":
                if level + 1 > MAX_INDEX_DEPTH:
                    self._failed(url, "index_too_deep", "an index nested too deep")
                    continue
                for loc in doc.locs:
                    child = self._canonical(loc)
                    if child is not None and self._scope.allows(child):
                        queue.append((child, level + 1))
                continue
            urls = list(
                dict.fromkeys(
                    c for loc in doc.locs if (c := self._canonical(loc)) and self._scope.allows(c)
                )
            )[: config.max_urls - offered]
            if urls:
                await self._add(urls)
            offered += len(urls)
            self.urls += len(urls)
            log.info(
                "sitemap %s: %d URLs, %d in scope offered",
                url,
                len(doc.locs),
                len(urls),
                extra={"event": "sitemap", "url": url, "found": len(doc.locs), "added": len(urls)},
            )

    async def _read(self, url: str, limit: int) -> SitemapDoc | None:
        """Fetch (following redirects in scope) and parse one file; None if it failed."""
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self._turn(target):
                    response = await self._fetch(target)
            except PageError as error:
                self._failed(url, error.reason, error.describe())
                return None
            if response.location is None:
                break
            location = self._canonical(response.location, target)
            if location is None or not self._scope.allows(location):
                self._failed(url, "redirect_off_scope", f"redirect to {response.location!r}")
                return None
            target = location
        else:
            self._failed(url, "too_many_redirects", f"more than {MAX_REDIRECTS} redirects")
            return None
        if response.status != 200:
            self._failed(url, "http_status", f"HTTP {response.status}", status=response.status)
            return None
        self.files += 1
        data, cut = decompress(response.body, self.config.max_bytes)
        doc = await asyncio.to_thread(parse_sitemap, data, max(limit, 1))
        if doc.error is not None and not cut:
            self._failed(url, "bad_sitemap", doc.error)
        elif cut or response.truncated:
            log.info(
                "sitemap %s: over %d bytes, the rest ignored",
                url,
                self.config.max_bytes,
                extra={"event": "sitemap_truncated", "url": url},
            )
        return doc

    def _canonical(self, href: str, base: str | None = None) -> str | None:
        return canonicalize(href, base, max_length=self._max_url_length)

    def _failed(self, url: str, reason: str, detail: str, *, status: int | None = None) -> None:
        self.failures += 1
        log.warning(
            "sitemap %s not read: %s",
            url,
            detail,
            extra={"event": "sitemap_failed", "url": url, "reason": reason, "status": status},
        )

    def __repr__(self) -> str:
        return (
            f"<SitemapSeeder origins={len(self._origins)} running={len(self._running)} "
            f"files={self.files} urls={self.urls} stopped={self._stopped}>"
        )
