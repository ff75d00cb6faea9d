"""``crawl stats``: a summary of a crawl database, finished or still being written.

SQLite does all the counting (``GROUP BY``), so the cost is a few sequential scans of ``pages``
(one of them through ``pages.data`` with ``json_each``: pages per user field,
:mod:`crawler.store.fields`) plus index-only scans of ``frontier``, and memory holds only the
aggregates: fine for millions of pages. All queries read one snapshot
(:mod:`crawler.store.snapshot`), so the numbers agree with each other even while a crawl writes.
Two shapes of output, one content: :func:`format_text` for people, :func:`to_json` for scripts
(its keys are a contract, documented in docs/database.md).
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from crawler.models import Deferred, iso_seconds
from crawler.store.database import DEFERRED_SUMMARY
from crawler.store.fields import read_data_fields
from crawler.store.snapshot import read_snapshot

# Always reported, in this order; a state a later schema adds is reported after them.
FRONTIER_STATES = ("done", "failed", "skipped", "pending", "leased")
DEFAULT_TOP_HOSTS = 10
# The text view merges minutes into wider buckets so a long crawl still fits on a screen.
MAX_THROUGHPUT_ROWS = 24
_BUCKET_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
_BAR_WIDTH = 40

_TOTALS = "SELECT count(*), coalesce(sum(size), 0), min(fetched_at), max(fetched_at) FROM pages"
_STATUSES = "SELECT status, count(*) FROM pages GROUP BY status ORDER BY status IS NULL, status"
# `pages.error` is `reason: detail`, or only `reason` when there is no detail.
_ERRORS = """
SELECT CASE WHEN instr(error, ':') > 0 THEN substr(error, 1, instr(error, ':') - 1)
            ELSE error END AS reason,
       count(*) AS n
FROM pages WHERE error IS NOT NULL
GROUP BY reason ORDER BY n DESC, reason
"""
_DEPTHS = "SELECT depth, count(*) FROM pages GROUP BY depth ORDER BY depth"
# fetched_at is ISO 8601 UTC with a fixed layout, so its first 16 characters are the minute.
_THROUGHPUT = """
SELECT substr(fetched_at, 1, 16) AS minute, count(*) FROM pages GROUP BY minute ORDER BY minute
"""
_FRONTIER = "SELECT state, count(*) FROM frontier GROUP BY state"
_HOST_COUNT = "SELECT count(DISTINCT host) FROM frontier"
# A page row and the move of its frontier row out of pending/leased commit together (the sink's
# transaction), so recorded frontier rows per host are pages per host. Counting them needs no
# join with `pages`: the (host, state) index covers the query, ~7x faster than the join.
_TOP_HOSTS = """
SELECT host,
       sum(state NOT IN ('pending', 'leased')) AS pages,
       sum(state = 'failed') AS failed,
       sum(state IN ('pending', 'leased')) AS queued
FROM frontier GROUP BY host ORDER BY pages DESC, host LIMIT ?
"""


@dataclass(frozen=True, slots=True)
class HostCount:
    """One host (``host:port``, the frontier's politeness key) and its URLs."""

    host: str
    pages: int
    """Pages stored."""
    failed: int
    """Of those, URLs that got no response (frontier state ``failed``)."""
    queued: int
    """URLs still to fetch (pending or leased)."""


@dataclass(frozen=True, slots=True)
class CrawlSummary:
    """Everything ``crawl stats`` shows, as plain data."""

    database: str
    frontier: dict[str, int]
    """URLs per frontier state; every state in :data:`FRONTIER_STATES` is present."""
    pages: int
    bytes: int
    first_fetch: str | None
    last_fetch: str | None
    statuses: list[tuple[int | None, int]]
    """(HTTP status, pages), ascending; None (no response) last."""
    errors: list[tuple[str, int]]
    """(reason, pages), most frequent first."""
    depths: list[tuple[int, int]]
    """(depth, pages), ascending."""
    hosts: int
    """Distinct hosts in the frontier."""
    top_hosts: list[HostCount]
    """Hosts with the most pages, most first (ties by name)."""
    throughput: list[tuple[str, int]]
    """(minute, pages fetched in it), ascending; minutes without pages are left out. The minute
    is ISO 8601 UTC: ``2026-11-25T01:28:00+00:00``."""
    deferred: Deferred
    """Pending URLs whose hosts asked (Retry-After) to wait past the cap, as of now."""
    fields: list[tuple[str, int]]
    """(user field, pages on which it has a value), most pages first (ties by name); empty
    when no page has data."""

    @property
    def finished(self) -> bool:
        """No URL left to fetch (a crawl stopped early has pending or leased URLs)."""
        return self.frontier["pending"] + self.frontier["leased"] == 0

    @property
    def span_seconds(self) -> float:
        """Seconds from the first to the last fetch; 0 without pages."""
        if self.first_fetch is None or self.last_fetch is None:
            return 0.0
        first = datetime.fromisoformat(self.first_fetch)
        return (datetime.fromisoformat(self.last_fetch) - first).total_seconds()


def read_summary(
    path: Path, top: int = DEFAULT_TOP_HOSTS, now: float | None = None
) -> CrawlSummary:
    """Summarize the crawl database at ``path`` (read-only; safe while a crawl writes it).

    ``top`` caps the host list. Raises :class:`~crawler.errors.StorageError` for a missing or
    non-crawl database. ``now`` (Unix time, default the present) decides which deferrals still
    hold.
    """
    now = time.time() if now is None else now
    with read_snapshot(path) as conn:
        pages, size, first, last = conn.execute(_TOTALS).fetchone()
        frontier = dict.fromkeys(FRONTIER_STATES, 0)
        frontier.update(conn.execute(_FRONTIER).fetchall())
        return CrawlSummary(
            database=str(path),
            frontier=frontier,
            pages=pages,
            bytes=size,
            first_fetch=first,
            last_fetch=last,
            statuses=conn.execute(_STATUSES).fetchall(),
            errors=conn.execute(_ERRORS).fetchall(),
            depths=conn.execute(_DEPTHS).fetchall(),
            hosts=conn.execute(_HOST_COUNT).fetchone()[0],
            top_hosts=[HostCount(*row) for row in conn.execute(_TOP_HOSTS, (top,))],
            throughput=[(f"{minute}:00+00:00", n) for minute, n in conn.execute(_THROUGHPUT)],
            deferred=_deferred(conn, now),
            fields=sorted(
                ((field.name, field.pages) for field in read_data_fields(conn)),
                key=lambda row: (-row[1], row[0]),
            ),
        )


def _deferred(conn: sqlite3.Connection, now: float) -> Deferred:
    # A database no crawl of this version has run yet has no host_deferrals table: none.
    known = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'host_deferrals'").fetchone()
    return (
        Deferred(*conn.execute(DEFERRED_SUMMARY, (now,)).fetchone())
        if known
        else Deferred(0, 0, None)
    )


def to_json(summary: CrawlSummary) -> dict[str, object]:
    """The summary as the JSON object ``crawl stats --json`` prints (keys: see docs/database.md)."""
    return {
        "database": summary.database,
        "finished": summary.finished,
        "frontier": dict(summary.frontier),
        "pages": summary.pages,
        "bytes": summary.bytes,
        "first_fetch": summary.first_fetch,
        "last_fetch": summary.last_fetch,
        "span_seconds": round(summary.span_seconds, 3),
        "statuses": [{"status": status, "pages": n} for status, n in summary.statuses],
        "errors": [{"reason": reason, "pages": n} for reason, n in summary.errors],
        "depths": [{"depth": depth, "pages": n} for depth, n in summary.depths],
        "hosts": summary.hosts,
        "top_hosts": [
            {"host": h.host, "pages": h.pages, "failed": h.failed, "queued": h.queued}
            for h in summary.top_hosts
        ],
        "throughput": [{"minute": minute, "pages": n} for minute, n in summary.throughput],
        "deferred": {
            "urls": summary.deferred.urls,
            "hosts": summary.deferred.hosts,
            "until": None
            if summary.deferred.until is None
            else iso_seconds(summary.deferred.until),
        },
        "fields": [{"field": name, "pages": n} for name, n in summary.fields],
    }


def format_json(summary: CrawlSummary) -> str:
    """:func:`to_json` on one line, so periodic summaries can be appended as JSON Lines."""
    return json.dumps(to_json(summary), ensure_ascii=False)


def format_text(summary: CrawlSummary) -> str:
    """The summary for people: a header, then one small table per histogram."""
    f = summary.frontier
    progress = (
        "finished"
        if summary.finished
        else f"not finished: {f['pending'] + f['leased']:,} URLs to go "
        "(still running, or stopped: `crawl run` resumes)"
    )
    lines = [
        f"crawl database {summary.database}: {progress}",
        f"  frontier  {sum(f.values()):,} URLs: "
        + ", ".join(f"{n:,} {state}" for state, n in f.items()),
        f"  pages     {summary.pages:,} stored, {_human_bytes(summary.bytes)}",
    ]
    if summary.deferred.urls:
        lines.append(f"  deferred  {summary.deferred.describe()} (Retry-After)")
    if summary.first_fetch is not None:
        span = summary.span_seconds
        took = _human_duration(span) + (f", {summary.pages / span:.1f} pages/s" if span > 0 else "")
        lines.append(f"  fetched   {summary.first_fetch} to {summary.last_fetch} ({took})")
    lines += _section(
        "statuses",
        [("none" if s is None else str(s), n) for s, n in summary.statuses],
        summary.pages,
    )
    lines += _section("errors by reason", summary.errors, summary.pages)
    lines += _section("depths", [(str(d), n) for d, n in summary.depths], summary.pages)
    lines += _hosts_section(summary)
    if summary.fields:  # a crawl without extraction rules or a hook has none to show
        lines += _section("fields (pages with a value)", summary.fields, summary.pages)
    lines += _throughput_section(summary.throughput)
    return "\n".join(lines)


def _section(title: str, rows: list[tuple[str, int]], total: int) -> list[str]:
    if not rows:
        return ["", title, "  (none)"]
    key_width = max(len(key) for key, _ in rows)
    count_width = max(len(f"{n:,}") for _, n in rows)
    return ["", title] + [
        f"  {key:<{key_width}}  {n:>{count_width},}  {100 * n / total:5.1f}%" for key, n in rows
    ]


def _hosts_section(summary: CrawlSummary) -> list[str]:
    title = f"top hosts by pages ({len(summary.top_hosts)} of {summary.hosts:,})"
    if not summary.top_hosts:
        return ["", title, "  (none)"]
    host_width = max(len(h.host) for h in summary.top_hosts)
    cells = [(f"{h.pages:,}", f"{h.failed:,}", f"{h.queued:,}") for h in summary.top_hosts]
    pw, fw, qw = (max(len(row[i]) for row in cells) for i in range(3))
    return ["", title] + [
        f"  {h.host:<{host_width}}  {p:>{pw}} pages  {f:>{fw}} failed  {q:>{qw}} queued"
        for h, (p, f, q) in zip(summary.top_hosts, cells, strict=True)
    ]


def _throughput_section(throughput: list[tuple[str, int]]) -> list[str]:
    if not throughput:
        return ["", "throughput", "  (none)"]
    width, buckets = _bucket(throughput)
    average = f"; average over {width}-minute buckets" if width > 1 else ""
    title = f"throughput (pages per minute, UTC{average})"
    rates = [(start, n / width) for start, n in buckets]
    peak = max(rate for _, rate in rates)
    rate_width = max(len(f"{rate:,.0f}") for _, rate in rates)
    return ["", title] + [
        f"  {start:%Y-%m-%d %H:%M}  {rate:>{rate_width},.0f}  "
        + "#" * math.ceil(_BAR_WIDTH * rate / peak)
        for start, rate in rates
    ]


def _bucket(throughput: list[tuple[str, int]]) -> tuple[int, list[tuple[datetime, int]]]:
    """Merge per-minute counts into at most MAX_THROUGHPUT_ROWS equal buckets, the narrowest
    that fits, aligned to midnight UTC (15-minute buckets start at :00, :15, ...). Empty buckets
    are kept: a pause in the crawl shows as a gap."""
    minutes = [(datetime.fromisoformat(minute), n) for minute, n in throughput]
    first, last = minutes[0][0], minutes[-1][0]
    widths = itertools.chain(_BUCKET_MINUTES, (1440 * days for days in itertools.count(2)))
    width = next(w for w in widths if _bucket_count(first, last, w) <= MAX_THROUGHPUT_ROWS)
    origin = _bucket_start(first, width)
    counts = [0] * _bucket_count(first, last, width)
    for start, n in minutes:
        counts[(start - origin) // timedelta(minutes=width)] += n
    return width, [(origin + timedelta(minutes=i * width), n) for i, n in enumerate(counts)]


def _bucket_start(moment: datetime, width: int) -> datetime:
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if width >= 1440:
        return midnight
    return midnight + (moment - midnight) // timedelta(minutes=width) * timedelta(minutes=width)


def _bucket_count(first: datetime, last: datetime, width: int) -> int:
    return (last - _bucket_start(first, width)) // timedelta(minutes=width) + 1


def _human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    while parts[0][0] == 0:  # leading zero units say nothing; seconds >= 60 keeps one unit
        parts.pop(0)
    return " ".join(f"{n}{unit}" for n, unit in parts)


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    exact = f"{n:,} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{exact} ({value:.1f} {unit})"
        value /= 1024
    return f"{exact} ({value:.1f} TiB)"
