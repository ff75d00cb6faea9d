"""Turns: a host's slot given to a request that is not a lease's (a sitemap file).

Every request to a host goes through its :class:`~crawler.frontier.politeness.HostSlot`, so its
concurrency cap, its delay (counted from when each request is sent), its Crawl-delay and its
cooldown hold for pages and other requests together. The frontier hands out leases to its
workers; a part that sends a request of its own asks :class:`Turns` (through
``Frontier.turn``) and waits, first come first served per host, until the slot lets a request
begin. The frontier gives waiting turns before leases each time it dispatches
(:meth:`Turns.give`), and wakes for the earliest of them (:meth:`Turns.earliest`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from crawler.errors import TurnRefused
from crawler.frontier.politeness import HostSlot
from crawler.models import Lease
from crawler.urls import host_key


class Turns:
    """Turns waiting for their hosts. ``slot_of`` gives a host's slot; ``refused`` says why
    a host gets no turn now (None: it may); ``changed`` tells the frontier a slot changed (a
    turn asked for or given back), so it dispatches again; ``spacing`` jitters a delay."""

    def __init__(
        self,
        slot_of: Callable[[str], HostSlot],
        *,
        refused: Callable[[str], str | None],
        changed: Callable[[HostSlot], None],
        spacing: Callable[[float], float],
    ) -> None:
        self._slot_of = slot_of
        self._refused = refused
        self._changed = changed
        self._spacing = spacing
        self._waiting: dict[HostSlot, deque[tuple[Lease, asyncio.Future[None]]]] = {}
        self._ids = itertools.count(1)

    @asynccontextmanager
    async def turn(self, url: str) -> AsyncIterator[None]:
        """See ``Frontier.turn``."""
        host = host_key(url)
        if (why := self._refused(host)) is not None:
            raise TurnRefused(f"no turn for {url}: {why}")
        slot = self._slot_of(host)
        token = Lease(-next(self._ids), url, host, 0)  # not a URL of the database
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(slot, deque()).append((token, waiter))
        self._changed(slot)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled() and waiter.exception() is None:
                self._give_back(slot, token)  # given just as we were cancelled
            raise  # (a turn still waiting is dropped when its turn comes: give() skips it)
        try:
            yield
        finally:
            self._give_back(slot, token)

    def give(self, now: float) -> list[HostSlot]:
        """Give the waiting turns whose host lets a request begin at ``now``; returns the
        slots that gave one (the frontier schedules their hosts again)."""
        changed = []
        for slot, waiting in list(self._waiting.items()):
            while waiting and (ready := slot.turn_at()) is not None and ready <= now:
                token, waiter = waiting.popleft()
                if not waiter.done():  # else its task was cancelled while waiting
                    slot.reserve(token, now, self._spacing(slot.delay))
                    waiter.set_result(None)
                    changed.append(slot)
            if not waiting:
                del self._waiting[slot]
        return changed

    def earliest(self) -> float | None:
        """When the first waiting turn may be given, if the rules let any begin."""
        times = [t for slot in self._waiting if (t := slot.turn_at()) is not None]
        return min(times, default=None)

    def refuse(self, host: str, why: str) -> None:
        """Waiting turns of ``host`` raise :class:`TurnRefused` (no turn will come)."""
        for token, waiter in self._waiting.pop(self._slot_of(host), ()):
            if not waiter.done():
                waiter.set_exception(TurnRefused(f"no turn for {token.url}: {why}"))

    def refuse_all(self, why: str) -> None:
        for slot in list(self._waiting):
            self.refuse(slot.host, why)

    def waiting_for(self, slot: HostSlot) -> bool:
        """Whether a turn waits for ``slot``."""
        return slot in self._waiting

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def _give_back(self, slot: HostSlot, token: Lease) -> None:
        slot.finish(token)
        self._changed(slot)

    def __repr__(self) -> str:
        waiting = sum(len(turns) for turns in self._waiting.values())
        return f"<Turns waiting={waiting} hosts={len(self._waiting)}>"
