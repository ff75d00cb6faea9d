"""A page's rows for the ``pages`` and ``links`` tables and the frontier, encoded as the sink's
statements take them.

The sink writes each batch with one statement per table, all of a table's rows given as one
JSON array (:mod:`crawler.store.database`). A page's share of those arrays (~35 links, ~35
discovered URLs each with its host key) is Python work per link: done by the sink on the event loop,
it was ~8% of the loop's time on the fan-out benchmark, where the loop is what limits the crawl. So
the parse worker encodes them, off the loop, right after finding the links
(:func:`crawler.parse.outcome.build_outcome`), and the sink only joins the pieces
(:func:`json_array`). An outcome without them (a redirect, a failure, a page whose followed links
changed) is encoded by the worker, on the loop, with the same :func:`page_rows`. Either way a page's
rows are encoded while its URL is handled (:meth:`crawler.worker.Worker._outcome`), never in the
sink's batch: a page whose row cannot be encoded (a string with lone surrogates has no UTF-8 form)
is that page's failure, not the failure of the batch of pages it would have been written with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from crawler.models import Outcome, PageRecord, PageRows
from crawler.urls import host_key

_encode = msgspec.json.encode


def page_rows(
    page: PageRecord,
    links: Sequence[str],
    follow: Sequence[str],
    depth: int,
    hops: int,
    offsite: Sequence[int] = (),
) -> PageRows:
    """The rows of ``page``, linking to ``links``, offering ``follow`` (each at ``depth`` and
    ``hops``, and at its ``offsite`` distance, in order; none given: all 0) to the frontier.
    Raises ``UnicodeEncodeError`` for a string without UTF-8 form."""
    hosts = [host_key(url) for url in follow]
    discovered = [
        (url, host, depth, hops, away)
        for url, host, away in zip(follow, hosts, offsite or [0] * len(follow), strict=True)
    ]
    return PageRows(
        page=_encode(_page_columns(page)).decode(),
        links=_elements([(page.url, dst) for dst in links]),
        discovered=_elements(discovered),
        hosts=tuple(dict.fromkeys(hosts)),
    )


def rows_of(outcome: Outcome) -> PageRows:
    """``outcome``'s rows: as the parse worker encoded them, or encoded now."""
    if outcome.rows is not None:
        return outcome.rows
    return page_rows(
        outcome.page,
        outcome.links,
        outcome.follow,
        outcome.follow_depth,
        outcome.follow_hops,
        outcome.follow_offsite,
    )


def json_array(pieces: Iterable[str]) -> str:
    """Comma-joined elements (as in :class:`PageRows`) as one JSON array; "" pieces are none."""
    return "[" + ",".join(piece for piece in pieces if piece) + "]"


def _page_columns(page: PageRecord) -> tuple[object, ...]:
    """The ``pages`` row of ``page``, in the column order of the sink's statement."""
    return (
        page.url,
        page.final_url,
        page.status,
        page.content_type,
        page.title,
        page.description,
        page.canonical,
        page.depth,
        page.fetched_at,
        page.error,
        page.size,
        page.elapsed_ms,
        int(page.truncated),
        page.notes,
        page.data,  # an object in the array; the statement stores its JSON text
        page.sha256,
    )


def _elements(rows: Sequence[tuple[object, ...]]) -> str:
    # Text, not bytes: SQLite reads a blob as its binary JSONB format (or refuses it).
    return _encode(rows).decode()[1:-1] if rows else ""
