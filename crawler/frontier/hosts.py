"""The frontier's host table: one :class:`Host` per host held in memory, least recently used
first, and forgetting the idle ones past ``crawl.max_hosts_in_memory``.

Making a new host's state past the cap forgets the least recently used idle ones
(:meth:`HostTable.forget_idle`): those whose slot holds nothing a rule still needs
(:meth:`HostSlot.idle`: nothing in memory or in flight). A forgotten host that comes back starts
from its configured slot, which is all it had (the robots gate gives it its robots.txt
Crawl-delay again; its delay since its last request was waited out before it was idle). One
whose URLs may still be pending in the database is forgotten too: the table tells the frontier
(``missed``), which pages such hosts back in (:mod:`crawler.frontier.paging`). Kept whatever the
cap: a host with URLs in memory or in flight, one a claim is filling, a deferred one, one in
cooldown or with its breaker open, one within its delay of its last request, one with an adapted
delay, or one a turn waits for; so the cap can be exceeded while more hosts than that are busy.
"""

from __future__ import annotations

from collections.abc import Callable, ValuesView
from dataclasses import dataclass

from crawler.config import PolitenessSection
from crawler.frontier.forgetting import forget_least_recent
from crawler.frontier.politeness import HostSlot

Clock = Callable[[], float]


@dataclass(slots=True, eq=False)
class Host:
    """What the frontier holds of one host."""

    slot: HostSlot
    added: int = 0
    """See :class:`crawler.frontier.claims.ClaimedHost`, as ``exhausted``."""
    exhausted: int = 0
    refilling: bool = False
    due: float | None = None
    """The time this host is queued under in the ready heap (:class:`ReadyHeap`)."""
    deferred: bool = False
    """Given up on for this run: it asked to wait past ``politeness.max_retry_after``."""

    def maybe_pending_in_db(self) -> bool:
        return self.added > self.exhausted


class HostTable:
    """The hosts held, by name, in the order last used (:meth:`touch` moves one to the end):
    the oldest are the first :meth:`forget_idle` looks at. ``max_hosts`` is the cap (0: none);
    ``awaited`` says whether a turn waits for a slot (such a host is kept); ``missed`` hears
    of each host forgotten whose URLs may be pending in the database."""

    __slots__ = ("_awaited", "_clock", "_hosts", "_max_hosts", "_missed", "_politeness")

    def __init__(
        self,
        politeness: PolitenessSection,
        max_hosts: int,
        clock: Clock,
        awaited: Callable[[HostSlot], bool],
        missed: Callable[[], None],
    ) -> None:
        self._politeness = politeness
        self._max_hosts = max_hosts
        self._clock = clock
        self._awaited = awaited
        self._missed = missed
        self._hosts: dict[str, Host] = {}

    def get(self, name: str) -> Host:
        """``name``'s state, made (from its configured slot) if it is not held."""
        host = self._hosts.get(name)
        if host is None:
            if self._max_hosts and len(self._hosts) >= self._max_hosts:
                self.forget_idle(len(self._hosts) + 1 - self._max_hosts)
            host = self._hosts[name] = Host(HostSlot.configured(self._politeness, name))
        return host

    def admit(self, name: str) -> Host | None:
        """``name``'s state if it is held or there is room for it (idle hosts forgotten to make
        some); None if the table is full of hosts it must keep."""
        if name in self._hosts or self.room() > 0 or self.forget_idle(1 - self.room()):
            return self.get(name)
        return None

    def holds(self, host: Host) -> bool:
        """Whether ``host`` is the state held for its name (not forgotten since)."""
        return self._hosts.get(host.slot.host) is host

    def shrink(self) -> None:
        """Forget idle hosts while past the cap (a few at a time): hosts kept past it, whose
        waits have ended since, go without waiting for a new host to need their room."""
        if self.room() < 0:
            self.forget_idle(-self.room())

    def room(self) -> int:
        """How many hosts may be made before the cap is reached (without forgetting any)."""
        return self._max_hosts - len(self._hosts) if self._max_hosts else 1 << 30

    def touch(self, name: str) -> Host:
        """``name``'s state (held), moved to the most recently used end."""
        host = self._hosts.pop(name)
        self._hosts[name] = host
        return host

    def __getitem__(self, name: str) -> Host:
        return self._hosts[name]

    def __contains__(self, name: object) -> bool:
        return name in self._hosts

    def __len__(self) -> int:
        return len(self._hosts)

    def values(self) -> ValuesView[Host]:
        return self._hosts.values()

    def forget_idle(self, count: int) -> int:
        """Forget up to ``count`` idle hosts, least recently used first (see the module
        docstring); returns how many. The busy ones met move to the end
        (:func:`~crawler.frontier.forgetting.forget_least_recent`)."""
        now = self._clock()

        def needed(name: str, host: Host) -> bool:
            if not self.forgettable(host, now):
                return True
            if host.maybe_pending_in_db():
                self._missed()
            return False

        return forget_least_recent(self._hosts, count, needed)

    def forgettable(self, host: Host, now: float) -> bool:
        return (
            not host.deferred
            and not host.refilling
            and not self._awaited(host.slot)
            and host.slot.idle(now)
        )

    def __repr__(self) -> str:
        return f"<HostTable hosts={len(self._hosts)} max={self._max_hosts}>"
