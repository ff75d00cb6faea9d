"""Forgetting the least recently used entries of a per-host table, but those still needed: the
one mechanism behind ``crawl.max_hosts_in_memory`` (the frontier's hosts, the robots.txt cache,
the trap guard's counts), so that each table's bound holds for the idle hosts alike."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

FORGET_SCAN = 16
"""Entries :func:`forget_least_recent` forgets at most in one call, and may look at beyond
those: a table far past its bound (while its hosts are all needed) comes back to it over the
next calls, and no call costs more than ``2 * FORGET_SCAN`` steps."""


def forget_least_recent(table: dict[K, V], count: int, needed: Callable[[K, V], bool]) -> int:
    """Delete up to ``count`` (and :data:`FORGET_SCAN` at most) entries of ``table`` (a dict in
    least recently used order: a use moves an entry to the end), oldest first, but those
    ``needed`` keeps: they move to the end, so the next call does not look at them again.
    Looks at ``count + FORGET_SCAN`` entries at most, so that forgetting stays O(1) when all
    are needed; returns how many went."""
    count = min(count, FORGET_SCAN)
    forgotten = 0
    for key in list(itertools.islice(table, count + FORGET_SCAN)):
        if forgotten == count:
            break
        value = table.pop(key)
        if needed(key, value):
            table[key] = value
        else:
            forgotten += 1
    return forgotten
