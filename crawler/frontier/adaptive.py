"""Adaptive politeness (``politeness.adaptive``): a host's delay follows its response time.

A host that answers slowly is busy; asking it faster makes it slower still. The rule is
Scrapy's AutoThrottle with Heritrix's delay factor as its knob: each answer sets a target
delay of ``adaptive_factor`` times its response time (Heritrix's ``delayFactor``; Scrapy's
``1 / AUTOTHROTTLE_TARGET_CONCURRENCY``, so 1.0 aims at about one request in flight), and the
delay moves halfway towards it, at once all the way up when the target is larger (a host in
trouble is left alone quickly, recovered from slowly). Bounds: never below the host's own delay
(``per_host_delay``, its ``[politeness.hosts]`` override or robots.txt's Crawl-delay), never
above ``adaptive_max_delay`` (unless that own delay is larger). An answer that is not a 2xx
never shrinks the delay: error pages and redirects are small and quick, and letting them speed
the crawl up would push a failing host harder (Scrapy's rule too).

Pure arithmetic on numbers, so the rule is tested without a clock or a server.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AdaptiveDelay"]


@dataclass(frozen=True, slots=True)
class AdaptiveDelay:
    factor: float
    """``politeness.adaptive_factor``: seconds of delay per second of response time."""
    max_delay: float
    """``politeness.adaptive_max_delay``: the adapted delay at most."""

    def next(self, current: float, floor: float, response_time: float, status: int) -> float:
        """The host's delay after an answer with ``status`` that took ``response_time``
        seconds, from its ``current`` delay; ``floor`` is its delay without adapting."""
        target = self.factor * response_time
        smoothed = max(target, (current + target) / 2)
        delay = max(floor, min(smoothed, self.max_delay))
        if not 200 <= status < 300 and delay < current:
            return current
        return delay
