"""What the crawl learns about a host while fetching it, applied where the frontier schedules it.

The frontier owns one :class:`~crawler.frontier.politeness.HostSlot` per host. The parts that learn
about a host (the worker from its answers, the robots gate from its robots.txt) tell it through
:class:`HostFeedback`, which the frontier makes and hands out as ``Frontier.hosts``: they need
neither the frontier's scheduling nor its leases, and the frontier's own surface stays what its
callers need. The feedback also carries the :class:`~crawler.frontier.retries.RetryPolicy` that says
how long a host waits, so the worker asks one object about hosts and their retries.
"""

from __future__ import annotations

from collections.abc import Callable

from crawler.config import PolitenessSection
from crawler.frontier.adaptive import AdaptiveDelay
from crawler.frontier.politeness import HostSlot, configured_delay
from crawler.frontier.retries import RetryPolicy

Clock = Callable[[], float]


class HostFeedback:
    """Applies what is learnt about a host to its slot. ``slot_of`` gives (or makes) the slot
    of a host; ``changed`` tells the frontier a host's slot changed, so it schedules the host
    again."""

    def __init__(
        self,
        slot_of: Callable[[str], HostSlot],
        changed: Callable[[str], None],
        *,
        politeness: PolitenessSection,
        policy: RetryPolicy,
        clock: Clock,
    ) -> None:
        self._slot_of = slot_of
        self._changed = changed
        self._politeness = politeness
        self._clock = clock
        self._adaptive = (
            AdaptiveDelay(politeness.adaptive_factor, politeness.adaptive_max_delay)
            if politeness.adaptive
            else None
        )
        self.policy = policy
        """How long hosts cool down, and which answers are retried when."""

    def delay(self, host: str) -> float:
        """The delay between two requests to ``host`` now (configured, or its Crawl-delay)."""
        return self._slot_of(host).delay

    def set_crawl_delay(self, host: str, crawl_delay: float | None) -> None:
        """Apply robots.txt's Crawl-delay: the host's own delay becomes the larger of it
        (capped) and the configured delay; an adapted delay above it stays."""
        capped = min(crawl_delay or 0.0, self._politeness.max_crawl_delay)
        slot = self._slot_of(host)
        slot.own_delay = max(configured_delay(self._politeness, host), capped)
        slot.set_delay(max(slot.own_delay, slot.delay) if self._adaptive else slot.own_delay)
        slot.knows_crawl_delay = True
        self._changed(host)

    def knows_crawl_delay(self, host: str) -> bool:
        """Whether ``host``'s slot was told its robots.txt Crawl-delay (a new slot was not)."""
        return self._slot_of(host).knows_crawl_delay

    def responded(self, host: str, seconds: float, status: int) -> None:
        """``host`` answered ``status`` in ``seconds``: with ``politeness.adaptive`` its delay
        follows (:mod:`crawler.frontier.adaptive`); otherwise nothing changes."""
        if self._adaptive is None:
            return
        slot = self._slot_of(host)
        delay = self._adaptive.next(slot.delay, slot.own_delay, seconds, status)
        if delay != slot.delay:
            slot.set_delay(delay)
            self._changed(host)

    def cool_down(self, host: str, seconds: float) -> None:
        """Start nothing on ``host`` for ``seconds`` (its URLs stay pending)."""
        self._slot_of(host).cool_down(self._clock() + seconds)
        self._changed(host)

    def throttled(self, host: str, status: int, retry_after: float | None) -> float | None:
        """``host`` answered 429/503 (already counted by :meth:`failed`). If that answer
        speaks for the whole host (see :class:`HostSlot`), cool it down (Retry-After or
        doubling) and return the seconds; None: it was one URL's answer, the host goes on."""
        slot = self._slot_of(host)
        if not slot.speaks_for_host(status):
            return None
        seconds = slot.throttled(self._clock(), retry_after, self.policy)
        self._changed(host)
        return seconds

    def succeeded(self, host: str) -> None:
        """``host`` answered (not a retried status): its failure counts start again."""
        self._slot_of(host).succeeded()

    def failed(self, host: str) -> bool:
        """Count a failure of ``host``; True if its circuit breaker trips (the host pauses)."""
        tripped = self._slot_of(host).failed(self._clock(), self.policy)
        self._changed(host)
        return tripped

    def __repr__(self) -> str:
        return f"<HostFeedback {self.policy!r}>"
