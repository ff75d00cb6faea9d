"""The frontier's claim service: fills each host's window of URLs from the database.

The frontier keeps a small window of claimed URLs per host (``leased`` in the database) and
asks for more (:meth:`ClaimService.refill`) when one runs low while the database may hold more
of the host. Every host asked for while the previous claim ran goes into the next one, as one
transaction: claims share the single database writer with the sink, and one claim per host
left most hosts waiting behind it when many start at once.

A host given up on for the run (``Frontier.defer_host``) has its not-before time stored
(:meth:`ClaimService.defer`) before any claim, which hands its claimed URLs back to pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from crawler.frontier.politeness import HostSlot
from crawler.store.database import Store


class ClaimedHost(Protocol):
    """What the claim service reads and keeps of a frontier's host."""

    slot: HostSlot
    added: int
    """Bumped whenever URLs for this host may have been added to the database."""
    exhausted: int
    """The value of ``added`` when a claim last came back short: equal means none left."""
    refilling: bool
    deferred: bool

    def maybe_pending_in_db(self) -> bool: ...


H = TypeVar("H", bound=ClaimedHost)


class ClaimService(Generic[H]):
    """Claims URLs for hosts in batches (:meth:`run` is the service); ``claimed`` hears of the
    hosts whose windows a claim filled. ``window``: URLs kept in memory per host, at most."""

    def __init__(self, store: Store, window: int, claimed: Callable[[Sequence[H]], None]) -> None:
        self._store = store
        self.window = window
        self._claimed = claimed
        self._refills: asyncio.Queue[H | None] = asyncio.Queue()
        self._deferrals: dict[str, float] = {}
        """Deferred hosts' not-before (Unix time), until they are stored."""
        self._stopped = False
        self.running = 0
        """Claims (and deferrals) queued or running: the crawl cannot end before they are."""

    def refill(self, host: H) -> None:
        """Claim more of ``host``'s URLs if its window runs low and the database may have
        more (and no claim for it is queued already)."""
        if (
            not host.refilling
            and not host.deferred
            and len(host.slot.window) < self.window // 2
            and host.maybe_pending_in_db()
        ):
            host.refilling = True
            self.running += 1
            self._refills.put_nowait(host)

    def defer(self, host: H, until: float) -> None:
        """Store that ``host`` is not to be fetched before ``until`` (Unix time)."""
        name = host.slot.host
        self._deferrals[name] = max(until, self._deferrals.get(name, until))
        self.running += 1
        self._refills.put_nowait(host)

    async def run(self) -> None:
        """Claim for the hosts asked for, a batch at a time, until :meth:`stop`."""
        while (batch := await self._next_batch()) is not None:
            try:
                if self._deferrals:  # before any claim: a claim skips a deferred host
                    deferrals, self._deferrals = self._deferrals, {}
                    await self._store.defer_hosts(list(deferrals.items()))
                hosts = [host for host in dict.fromkeys(batch) if not host.deferred]
                generations = [host.added for host in hosts]
                wants = [(host.slot.host, self.window - len(host.slot.window)) for host in hosts]
                claimed = await self._store.claim(wants) if wants else {}
            finally:
                for host in batch:
                    host.refilling = False
                    self.running -= 1
                    self._refills.task_done()
            filled = []
            for host, generation, (name, want) in zip(hosts, generations, wants, strict=True):
                if host.deferred:
                    continue  # deferred while claiming: storing that hands these URLs back
                leases = claimed.get(name, [])
                if len(leases) < want:
                    host.exhausted = generation
                host.slot.window.extend(leases)
                filled.append(host)
            self._claimed(filled)

    async def _next_batch(self) -> list[H] | None:
        """Every host asked for, once there is one; None once stopped."""
        batch = [await self._refills.get()]
        while not self._refills.empty():
            batch.append(self._refills.get_nowait())
        if self._stopped:
            return None
        return [host for host in batch if host is not None]

    async def settled(self) -> None:
        """Return once no claim is queued or running."""
        await self._refills.join()

    def stop(self) -> None:
        """End :meth:`run` (at once if it waits, else after the claim it runs)."""
        self._stopped = True
        self._refills.put_nowait(None)

    def __repr__(self) -> str:
        return f"<ClaimService running={self.running} window={self.window}>"
