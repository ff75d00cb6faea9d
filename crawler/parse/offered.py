"""The URLs a parse worker offered to the frontier lately, so it does not offer them again.

A site's pages link to the same pages over and over: on the benchmark's fan-out scenario each
page offers ~35 URLs and nearly all of them are known already. The frontier's table ignores a
known URL (``INSERT OR IGNORE``), but only after the URL has been encoded by the parse worker,
sent through its pipe, decoded on the event loop and looked up in the table's unique index by
the database thread: about 0.11 ms of the database thread's CPU per page of 35 known URLs, more
than half of what it spends on a page (docs/performance.md and git history).

Only an exact repeat is dropped, and only within one worker process's life, so nothing the
frontier would have kept is lost: the URL was offered before, by a page whose outcome is
already on its way to the database. (If that outcome is never committed, its page is fetched
again by the next run, by a new worker with an empty memory. If the event loop's trap budgets
dropped the URL from it, they drop it from every later page too: a spent budget stays spent,
:class:`crawler.frontier.traps.TrapGuard`; a budget that could recover would need this memory to
forget.) The memory is bounded: a URL not
seen for a while is forgotten, and a forgotten URL is merely offered again.

The cost is where every link is new (the benchmark's big-frontier: 100 new URLs a page): the
URLs kept alive cost the parse worker ~0.12 ms more a page of 100 (`build_outcome` 0.63-0.67 ->
0.74-0.81 ms), and that crawl's CPU per 1,000 pages went 1.39-1.42 -> 1.56-1.58 s. Where
links repeat, as on fan-out, CPU per 1,000 pages went 1.34-1.39 -> 1.25-1.38 s (alternating
runs).
"""

from __future__ import annotations

from collections.abc import Iterable

CAPACITY = 262_144
"""URLs remembered at most: up to ~30 MB of the parse worker's memory (~40 bytes of dict per
URL, and the URL itself kept alive). The benchmark's 1,000-host fan-out offers 147,000 distinct
URLs, all of them again and again: with 65,536 only 34% of its offers were dropped, with this
92% (all the repeats). A crawl with more URLs in play only offers some of them twice."""


class RecentlyOffered:
    """A bounded memory of URLs offered to the frontier, in two generations of dicts (an
    ``OrderedDict`` LRU's reordering cost three times as much per new URL, measured alone). A
    URL is remembered until at least ``capacity / 2`` other URLs have been seen after it was
    last seen (offered or not). Not thread-safe: one per parse worker process."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self._generation = capacity // 2
        self._current: dict[str, None] = {}
        self._previous: dict[str, None] = {}

    def new(self, urls: Iterable[str]) -> list[str]:
        """Those of ``urls`` not offered lately, in order; all of them count as seen now."""
        current, previous = self._current, self._previous
        fresh = []
        for url in urls:
            if url in current:
                continue
            if url not in previous:
                fresh.append(url)
            current[url] = None  # seen now: it outlives the previous generation
            if len(current) >= self._generation:
                previous = self._previous = current
                current = self._current = {}
        return fresh

    def __len__(self) -> int:
        return len(self._current.keys() | self._previous.keys())
