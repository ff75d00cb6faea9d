"""A page's rows for the ``links`` table and the frontier, encoded as the sink's statements take
them.

The sink writes each batch with one statement per table, all of a table's rows given as one
JSON array (:mod:`crawler.store`). A page's share of those arrays (~35 links, ~35 discovered
URLs each with its host key) is Python work per link: done by the sink on the event loop, it
was ~8% of the loop's time on the fan-out benchmark, where the loop is what limits the crawl.
So the parse worker encodes them, off the loop, right after finding the links
(:func:`crawler.extract.build_outcome`), and the sink only joins the pieces (:func:`json_array`).
An outcome without them (a redirect, a page whose followed links changed) is encoded by the
sink with the same :func:`page_rows`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from crawler.models import Outcome, PageRows
from crawler.urls import host_key

_encode = msgspec.json.encode


def page_rows(
    page_url: str, links: Sequence[str], follow: Sequence[str], depth: int, hops: int
) -> PageRows:
    """The rows of a page at ``page_url`` linking to ``links``, offering ``follow`` (each at
    ``depth`` and ``hops``) to the frontier."""
    hosts = [host_key(url) for url in follow]
    discovered = [(url, host, depth, hops) for url, host in zip(follow, hosts, strict=True)]
    return PageRows(
        links=_elements([(page_url, dst) for dst in links]),
        discovered=_elements(discovered),
        hosts=tuple(dict.fromkeys(hosts)),
    )


def rows_of(outcome: Outcome) -> PageRows:
    """``outcome``'s rows: as the parse worker encoded them, or encoded now."""
    if outcome.rows is not None:
        return outcome.rows
    return page_rows(
        outcome.page.url, outcome.links, outcome.follow, outcome.follow_depth, outcome.follow_hops
    )


def json_array(pieces: Iterable[str]) -> str:
    """Comma-joined elements (as in :class:`PageRows`) as one JSON array; "" pieces are none."""
    return "[" + ",".join(piece for piece in pieces if piece) + "]"


def _elements(rows: Sequence[tuple[object, ...]]) -> str:
    # Text, not bytes: SQLite reads a blob as its binary JSONB format (or refuses it).
    return _encode(rows).decode()[1:-1] if rows else ""
