"""From a response to an :class:`Outcome`: the page row and the links to record and follow.

Pure and thread-safe (it only reads its arguments), because for HTML pages the engine runs it
off the event loop with ``asyncio.to_thread``: parsing, resolving and canonicalizing every link
is the crawl's main CPU cost and must not stall other hosts. A thread cannot be cancelled; if
the crawl is cancelled meanwhile, the result is simply dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from crawler.errors import PageError
from crawler.models import Lease, Outcome, PageRecord, Response
from crawler.parse import parse_html
from crawler.urls import Scope, canonicalize


@dataclass(frozen=True, slots=True)
class LinkRules:
    """Which links a page's outcome offers to the frontier."""

    scope: Scope
    max_depth: int
    max_url_length: int


def needs_parsing(response: Response) -> bool:
    """Worth a trip to a thread: a successful HTML response with a body."""
    return bool(response.body) and 200 <= response.status < 300 and response.is_html


def build_outcome(lease: Lease, response: Response, rules: LinkRules, fetched_at: str) -> Outcome:
    """Record ``response`` for ``lease``; parse it when :func:`needs_parsing` says so."""
    page = PageRecord(
        url=lease.url,
        depth=lease.depth,
        fetched_at=fetched_at,
        final_url=lease.url,
        status=response.status,
        content_type=response.content_type,
        size=len(response.body),
        elapsed_ms=round(response.elapsed * 1000, 3),
        truncated=response.truncated,
    )
    if response.location is not None:
        target = canonicalize(response.location, lease.url, max_length=rules.max_url_length)
        if target is None:
            return Outcome(lease, page)
        # A redirect is not a hop away from the seed: its target keeps the page's depth.
        follow = [target] if rules.scope.allows(target) else []
        return Outcome(
            lease, replace(page, final_url=target), [target], follow, follow_depth=lease.depth
        )
    if not needs_parsing(response):
        return Outcome(lease, page)

    parsed = parse_html(response.body, lease.url, response.content_type)
    links: dict[str, None] = {}  # ordered set: first occurrence wins
    for href in parsed.links:
        url = canonicalize(href, parsed.base_url, max_length=rules.max_url_length)
        if url is not None:
            links[url] = None
    follow = (
        [url for url in links if rules.scope.allows(url)] if lease.depth < rules.max_depth else []
    )
    page = replace(
        page, title=parsed.title, description=parsed.description, canonical=parsed.canonical
    )
    return Outcome(lease, page, list(links), follow, follow_depth=lease.depth + 1)


def failed_outcome(lease: Lease, error: PageError, fetched_at: str) -> Outcome:
    """Record that no usable response arrived for ``lease``."""
    page = PageRecord(
        url=lease.url, depth=lease.depth, fetched_at=fetched_at, error=error.describe()
    )
    return Outcome(lease, page)
