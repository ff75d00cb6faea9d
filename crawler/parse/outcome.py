"""From a response to an :class:`Outcome`: the page row and the links to record and follow.

Pure and thread-safe (it only reads its arguments), because for HTML pages the worker runs it
off the event loop through :mod:`crawler.parse.pool` (a worker process by default, threads
with ``runtime.parse_processes = 0``): parsing, resolving and canonicalizing every link is the
crawl's main CPU cost and must not stall other hosts.

Page-level rules applied here (each leaves a note on the page row, counted in stats):

- redirects: the target is followed if in scope (or within ``crawl.max_offsite_hops``) and
  within ``fetch.max_redirects`` hops; notes
  ``redirect_off_scope``, ``too_many_redirects``, ``redirect_loop`` (to itself; longer loops end
  at dedup: a URL is fetched once), ``redirect_invalid`` (a Location we cannot follow, e.g.
  another scheme), ``redirect_without_location``;
- robots directives from ``<meta name="robots">`` and ``X-Robots-Tag`` (for all agents or ours):
  ``noindex`` keeps title, description and canonical out of the database, ``nofollow`` (or
  ``none``) follows no link of the page; ``rel="nofollow"`` links are recorded, not followed
  (``politeness.respect_nofollow``);
- traps: session IDs removed from links, paths with repeated segments not followed
  (:mod:`crawler.frontier.traps`);
- the user's data (``[extract]``, :mod:`crawler.parse.extract`), noindex pages included; a hook
  that fails leaves ``extract_error: ...``. The hook is the user's code: with threads
  (``parse_processes = 0``) it must be thread-safe itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import chain

from crawler.errors import PageError
from crawler.frontier.traps import SessionStripper, repeated_segments
from crawler.models import Lease, Outcome, PageRecord, Response
from crawler.parse.extract import Extracted, ExtractRules, extract
from crawler.parse.html import read_html
from crawler.parse.offered import RecentlyOffered
from crawler.scope import Scope
from crawler.store.rows import page_rows
from crawler.urls import BaseURL, canonicalize


@dataclass(frozen=True, slots=True)
class LinkRules:
    """Which links a page's outcome offers to the frontier."""

    scope: Scope
    max_depth: int
    max_url_length: int
    max_redirects: int
    respect_nofollow: bool
    product_token: str
    """Our robots.txt product token, for ``X-Robots-Tag: ourbot: noindex``."""
    strip_sessions: SessionStripper
    max_repeated_segments: int
    extract: ExtractRules = field(default_factory=ExtractRules)
    """The user's extraction rules and hook, run on the same tree (``[extract]``)."""


def needs_parsing(response: Response) -> bool:
    """Worth a trip off the loop (to the parse pool): a successful HTML response with a body."""
    return bool(response.body) and 200 <= response.status < 300 and response.is_html


def build_outcome(
    lease: Lease,
    response: Response,
    rules: LinkRules,
    fetched_at: str,
    offered: RecentlyOffered | None = None,
) -> Outcome:
    """Record ``response`` for ``lease``; parse it when :func:`needs_parsing` says so. With
    ``offered`` (a parse worker's memory, :mod:`crawler.parse.offered`) a page's links that worker
    offered lately are not offered again; the ``links`` table still gets every one."""
    notes = list(response.notes)
    page = _page_record(lease, response, fetched_at)
    if 300 <= response.status < 400:
        return _redirect(lease, response, rules, page, notes)
    if not needs_parsing(response):
        return Outcome(lease, _noted(page, notes))

    document = read_html(response.body, lease.url, response.content_type)
    parsed = document.page
    base = BaseURL(parsed.base_url)
    # Also on noindex pages: the user asked for their data, and noindex is about search indexes.
    extracted = (
        extract(document, lease, response, rules.extract, base, rules.max_url_length)
        if rules.extract.enabled
        else _NOTHING_EXTRACTED
    )
    resolved = extracted.resolved
    if extracted.note is not None:
        notes.append(extracted.note)
    directives = _directives(parsed.robots, rules.product_token)
    directives |= _directives(response.robots_tag or "", rules.product_token)
    links: dict[str, None] = {}  # ordered set: first occurrence wins
    unfollowed: set[str] = set()
    for href in chain(parsed.links, extracted.follow):
        if href in resolved:  # a rule read it
            url = resolved[href]
        else:
            url = base.resolve(href, max_length=rules.max_url_length)
        if url is None:
            continue
        url = rules.strip_sessions(url)
        links[url] = None
        if rules.respect_nofollow and href in parsed.nofollow:
            unfollowed.add(url)
    follow: list[str] = []
    offsite: list[int] = []
    if "nofollow" in directives:
        notes.append("nofollow")
    elif lease.depth < rules.max_depth:
        limit = rules.max_repeated_segments
        reached: dict[str, int] = {}  # url -> its offsite distance
        for url in links:
            if url in unfollowed or (
                limit and url.count("/") > limit + 2 and repeated_segments(url) > limit
            ):
                continue
            away = rules.scope.reach(url, lease.offsite)
            if away is not None:
                reached[url] = away
        follow = list(reached) if offered is None else offered.new(reached)
        if any(reached.values()):
            offsite = [reached[url] for url in follow]
    recorded: dict[str, object] = {}
    if "noindex" in directives:
        notes.append("noindex")
    else:
        recorded.update(
            title=parsed.title, description=parsed.description, canonical=parsed.canonical
        )
    if extracted.data is not None:
        recorded["data"] = extracted.data
    if recorded:  # one copy of the record (dataclasses.replace costs microseconds)
        page = replace(page, **recorded)  # type: ignore[arg-type]
    link_list = list(links)
    depth = lease.depth + 1
    # Encoded here, off the event loop, for the sink (crawler.store.rows).
    page = _noted(page, notes)
    rows = page_rows(page, link_list, follow, depth, 0, offsite)
    return Outcome(
        lease, page, link_list, follow, follow_depth=depth, follow_offsite=offsite, rows=rows
    )


_NOTHING_EXTRACTED = Extracted(None)


def unparsed_outcome(lease: Lease, response: Response, fetched_at: str, note: str) -> Outcome:
    """Record ``response`` without its links: parsing it failed (``note`` says how)."""
    page = _page_record(lease, response, fetched_at)
    return Outcome(lease, _noted(page, [*response.notes, note]))


def _page_record(lease: Lease, response: Response, fetched_at: str) -> PageRecord:
    return PageRecord(
        url=lease.url,
        depth=lease.depth,
        fetched_at=fetched_at,
        final_url=lease.url,
        status=response.status,
        content_type=response.content_type,
        size=len(response.body),
        elapsed_ms=round(response.elapsed * 1000, 3),
        truncated=response.truncated,
        sha256=response.sha256,  # a download's (fetch.download_types); None for a page
    )


def _redirect(
    lease: Lease, response: Response, rules: LinkRules, page: PageRecord, notes: list[str]
) -> Outcome:
    if response.location is None:
        return Outcome(lease, _noted(page, [*notes, "redirect_without_location"]))
    target = canonicalize(response.location, lease.url, max_length=rules.max_url_length)
    if target is None:
        return Outcome(lease, _noted(page, [*notes, "redirect_invalid"]))
    target = rules.strip_sessions(target)
    page = replace(page, final_url=target)
    follow: list[str] = []
    # A redirect is no link: an offsite page's target keeps its distance (reach adds the one
    # taken off here), an in-scope page's target outside the scope is one link out.
    away = rules.scope.reach(target, max(lease.offsite - 1, 0))
    if target == lease.url:
        notes.append("redirect_loop")
    elif away is None:
        notes.append("redirect_off_scope")
    elif lease.hops >= rules.max_redirects:
        notes.append("too_many_redirects")
    else:
        follow = [target]
    # A redirect is not a hop away from the seed: its target keeps the page's depth.
    return Outcome(
        lease,
        _noted(page, notes),
        [target],
        follow,
        follow_depth=lease.depth,
        follow_hops=lease.hops + 1,
        follow_offsite=[away] if follow and away else [],
    )


_DIRECTIVE_WORDS = frozenset({"noindex", "nofollow", "none", "all", "unavailable_after"})


def _directives(value: str, product_token: str) -> set[str]:
    """The robots directives in a meta content or X-Robots-Tag value that apply to us.

    ``otherbot: noindex, nofollow`` names an agent; the directives after it, up to the next
    agent, are for that agent only."""
    found: set[str] = set()
    applies = True
    for part in value.lower().split(","):
        agent, colon, rest = part.partition(":")
        agent = agent.strip()
        if colon and agent not in _DIRECTIVE_WORDS:
            applies = agent in (product_token, "*")
            part = rest
        directive = part.strip()
        if not applies or not directive:
            continue
        if directive == "none":
            found |= {"noindex", "nofollow"}
        else:
            found.add(directive)
    return found


def _noted(page: PageRecord, notes: list[str]) -> PageRecord:
    return replace(page, notes=",".join(notes)) if notes else page


def failed_outcome(lease: Lease, error: PageError, fetched_at: str) -> Outcome:
    """Record that no usable response arrived for ``lease``."""
    page = PageRecord(
        url=lease.url, depth=lease.depth, fetched_at=fetched_at, error=error.describe()
    )
    return Outcome(lease, page)


def skipped_outcome(lease: Lease, reason: str, fetched_at: str) -> Outcome:
    """Record that ``lease`` was deliberately not fetched, and why (``reason: detail``)."""
    page = PageRecord(
        url=lease.url, depth=lease.depth, fetched_at=fetched_at, error=reason, skipped=True
    )
    return Outcome(lease, page)
