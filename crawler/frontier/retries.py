"""The retry and cooldown policy: which answers go again, after how long, and how long a host
waits. One owner for rules that the worker (statuses, backoff), the frontier and its host slots
(cooldowns, the circuit breaker) all apply; the numbers come from ``[fetch]`` and
``[politeness]`` (documented in ``configs/default.toml``).

Pure apart from one injected clock, ``wall_clock`` (Unix time), which reads an HTTP-date
Retry-After and dates a host deferred to a later run; the frontier paces its run by its own
monotonic clock.
"""

from __future__ import annotations

import datetime
import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from crawler.config import FetchSection, PolitenessSection

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers worth another try later; the last attempt's answer is recorded as it is."""
THROTTLE_STATUSES = frozenset({429, 503})
"""Answers whose Retry-After is honoured: by the whole host in cooldown when the answer speaks
for the host (a 429, a 503 across several paths), else by the URL's own retry."""
_FETCH = FetchSection()
_POLITENESS = PolitenessSection()
"""The sections' defaults: the policy's own are these, never numbers of its own."""
RETRY_AFTER_LIMIT = 366 * 86400.0
"""The longest wait a Retry-After is read as: a longer one (or 400 digits of one) is no more
meaningful, and a finite bound keeps every time computed from it representable."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """See the module docstring. :meth:`of` builds it from the config sections."""

    max_retries: int = _FETCH.max_retries
    backoff: float = _FETCH.retry_backoff
    cooldown: float = _POLITENESS.cooldown
    max_retry_after: float = _POLITENESS.max_retry_after
    circuit_breaker: int = _POLITENESS.circuit_breaker
    circuit_breaker_pause: float = _POLITENESS.circuit_breaker_pause
    robots_unreachable_retry: float = _POLITENESS.robots_unreachable_retry
    wall_clock: Callable[[], float] = field(default=time.time, compare=False)
    jitter: Callable[[float, float], float] = field(default=random.uniform, compare=False)
    """A random factor in [a, b], for the backoff (injected so tests can pin it)."""

    @classmethod
    def of(
        cls,
        fetch: FetchSection,
        politeness: PolitenessSection,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> RetryPolicy:
        return cls(
            max_retries=fetch.max_retries,
            backoff=fetch.retry_backoff,
            cooldown=politeness.cooldown,
            max_retry_after=politeness.max_retry_after,
            circuit_breaker=politeness.circuit_breaker,
            circuit_breaker_pause=politeness.circuit_breaker_pause,
            robots_unreachable_retry=politeness.robots_unreachable_retry,
            wall_clock=wall_clock,
        )

    def retry_delay(self, attempt: int, delay: float | None = None) -> float | None:
        """Seconds before attempt ``attempt + 1`` of a URL (``delay`` if the server named one,
        else the backoff), or None when its retries are spent."""
        if attempt >= self.max_retries:
            return None
        if delay is None:
            # Exponential backoff with jitter, so retries of many URLs do not arrive together.
            delay = self.backoff * 2**attempt * self.jitter(0.5, 1.5)
        return delay

    def retry_after(self, value: str | None) -> float | None:
        """Seconds to wait from a Retry-After header, now by :attr:`wall_clock`."""
        return retry_after_seconds(value, self.wall_clock())

    def throttle_cooldown(self, retry_after: float | None, throttles: int) -> float:
        """A host's cooldown after a 429/503: its Retry-After, else :attr:`cooldown` doubling
        with each of ``throttles`` answers in a row without one; at most ``max_retry_after``."""
        if retry_after is None:
            retry_after = self.cooldown * 2 ** (throttles - 1)
        return min(max(retry_after, 0.0), self.max_retry_after)

    def __repr__(self) -> str:
        return (
            f"<RetryPolicy retries={self.max_retries} backoff={self.backoff:g}s "
            f"cooldown={self.cooldown:g}s max_retry_after={self.max_retry_after:g}s "
            f"breaker={self.circuit_breaker}/{self.circuit_breaker_pause:g}s>"
        )


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (RFC 9110
    10.2.3), relative to ``now`` (Unix time). None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() is also true of '²' and '٣', which float() refuses.
    if value.isascii() and value.isdigit():
        return min(float(value), RETRY_AFTER_LIMIT)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:  # HTTP dates are GMT; a naive result means the zone was missing
            when = when.replace(tzinfo=datetime.UTC)
        return min(max(0.0, when.timestamp() - now), RETRY_AFTER_LIMIT)
    except (TypeError, ValueError, OverflowError, OSError):
        # OverflowError: a 20-digit day, hour or zone offset; OSError: a year the platform's
        # time functions cannot represent.
        return None
