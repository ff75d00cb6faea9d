"""Per-host politeness: one small slot per host (``host[:port]``), pure, with no clock of its own.

Every method takes the current time as a number, so the rules are tested with plain numbers:
no event loop, no sleeping. The frontier owns the slots and the clock.

Rules (the defaults are in ``configs/default.toml``, section ``[politeness]``):

- at most ``concurrency`` requests to one host are in flight at once;
- two requests to one host start at least ``delay`` seconds apart;
- a retry waits in its host's slot until its not-before time, and still obeys both rules.

The next issue (robots.txt, Crawl-delay, Retry-After cooldowns) extends this slot: a cooldown is
one more lower bound in :meth:`HostSlot.ready_at`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field

from crawler.models import Lease

_tiebreak = itertools.count()


@dataclass(slots=True, eq=False)
class HostSlot:
    """One host's politeness state and its window of claimed URLs."""

    host: str
    concurrency: int
    delay: float
    window: deque[Lease] = field(default_factory=deque)
    """Claimed (``leased`` in the database) URLs waiting for a worker, in discovery order."""
    retries: list[tuple[float, int, Lease]] = field(default_factory=list)
    """Heap of (not-before time, tiebreak, lease) for URLs that failed transiently."""
    active: int = 0
    """Requests to this host in flight now."""
    next_start: float = float("-inf")
    """Earliest time the next request may start (``delay`` after the last start)."""

    def has_work(self) -> bool:
        return bool(self.window) or bool(self.retries)

    def ready_at(self) -> float | None:
        """Earliest time a request to this host may start, or None if none can be started
        (no work, or at the concurrency cap: a release will ask again)."""
        if self.active >= self.concurrency:
            return None
        if self.window:
            return self.next_start
        if self.retries:
            return max(self.next_start, self.retries[0][0])
        return None

    def start(self, now: float) -> Lease:
        """Take the next URL (a due retry first) and count the request as started at ``now``.

        Callers only start a slot whose :meth:`ready_at` is at or before ``now``.
        """
        if self.retries and self.retries[0][0] <= now:
            lease = heapq.heappop(self.retries)[2]
        else:
            lease = self.window.popleft()
        self.active += 1
        self.next_start = now + self.delay
        return lease

    def finish(self) -> None:
        """A request to this host ended (recorded, or handed back for a retry)."""
        self.active -= 1

    def schedule_retry(self, lease: Lease, not_before: float) -> None:
        heapq.heappush(self.retries, (not_before, next(_tiebreak), lease))

    def __repr__(self) -> str:
        return (
            f"<HostSlot {self.host} active={self.active}/{self.concurrency} "
            f"window={len(self.window)} retries={len(self.retries)}>"
        )
