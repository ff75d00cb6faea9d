"""Paging hosts back in: hosts whose URLs wait in the database while the frontier holds no state
for them (past ``crawl.max_hosts_in_memory``, or not read yet when a run resumes).

The frontier keeps no list of them, only that some may exist (:meth:`HostPager.missed`, a
generation count like a host's ``added``), and asks for a page of them (:meth:`HostPager.request`)
when it has room or its workers wait. Pages come from the store in host-name order after a cursor
that wraps around at the end (:meth:`~crawler.store.database.Store.pending_hosts_after`, one
index seek per host): a round robin, so every pending host is offered once per pass, and a host
forgotten again comes back only when the cursor reaches its name again, never ahead of one that
has waited longer. The cursor moves only past hosts taken, so a pass from the first name to the
last took every host pending when it began that the frontier did not hold: it settles every miss
counted before it began, and none is left (:meth:`HostPager.may_have_more`) until the next miss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from crawler.store.database import Store


class HostPager:
    """Pages pending hosts to the frontier (:meth:`run` is the service). ``take`` is offered
    each page of names in order and returns how many it took (the rest wait for a later page:
    no room); ``settled`` hears that a page was handled."""

    def __init__(
        self, store: Store, take: Callable[[Sequence[str]], int], settled: Callable[[], None]
    ) -> None:
        self._store = store
        self._take = take
        self._settled = settled
        self._requests: asyncio.Queue[int | None] = asyncio.Queue()
        self._cursor = ""
        """The last name offered and taken; "" at the start of a pass."""
        self._misses = 0
        self._settled_misses = 0
        """:attr:`_misses` as it was when the last complete pass began."""
        self._pass_began = 0
        """:attr:`_misses` when the pass under way began."""
        self.running = False
        """A page is asked for or being read: the crawl cannot end before it is handled."""
        self.blocked = False
        """The last page offered found no room: not asked again until the frontier says it has
        some (a host finished), so that a full frontier does not read pages in a loop."""

    def missed(self) -> None:
        """A host with URLs possibly pending in the database is not held (forgotten, or not
        made: no room)."""
        self._misses += 1

    def may_have_more(self) -> bool:
        """Whether the database may have pending hosts the frontier does not hold."""
        return self._misses > self._settled_misses

    def request(self, limit: int) -> None:
        """Read the next page of up to ``limit`` hosts (unless one is being read already)."""
        if not self.running and not self.blocked:
            self.running = True
            self._requests.put_nowait(limit)

    async def run(self) -> None:
        """Read the pages asked for until :meth:`stop`."""
        while (limit := await self._requests.get()) is not None:
            try:
                await self.read(limit)
            finally:
                self._requests.task_done()

    async def settled(self) -> None:
        """Return once no page is asked for or being read."""
        await self._requests.join()

    async def read(self, limit: int) -> None:
        """Read the next page of up to ``limit`` hosts now and offer it (:meth:`run` does, as
        asked; the frontier too when it opens, so that a run with nothing to do ends at once)."""
        self.running = True
        if self._cursor == "":
            self._pass_began = self._misses
        try:
            names = await self._store.pending_hosts_after(self._cursor, limit)
        finally:
            self.running = False
        taken = self._take(names)
        self.blocked = taken == 0 < len(names)
        if taken:  # those not taken come first in the next page
            self._cursor = names[taken - 1]
        if taken == len(names) and len(names) < limit:  # the end: the next pass begins
            self._settled_misses = max(self._settled_misses, self._pass_began)
            self._cursor = ""
        self._settled()

    def stop(self) -> None:
        """End :meth:`run` (at once if it waits, else after the page it reads)."""
        self._requests.put_nowait(None)

    def __repr__(self) -> str:
        return (
            f"<HostPager may_have_more={self.may_have_more()} running={self.running} "
            f"blocked={self.blocked} cursor={self._cursor!r}>"
        )
