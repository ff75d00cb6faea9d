"""The frontier: which URL each worker fetches next, and when the crawl is over.

State lives in SQLite (:mod:`crawler.store.database`); memory holds one :class:`HostSlot` per host
with a small window of URLs claimed from the database, so memory grows with the number of hosts, not
with the frontier. Dedup is the database's: ``frontier.url`` is unique and new URLs are offered with
``INSERT OR IGNORE``.

How a URL moves::

    pending (db) --claim--> window (leased in db) --lease()--> worker --release()--> sink
        ^                                                         |                   |
        '-- reset when a run starts                retry() <------'       commit: done/failed

Scheduling is decided synchronously (:meth:`_dispatch`): a heap of hosts keyed by the time they
may next start a request (:mod:`crawler.frontier.schedule`); a free worker gets the earliest host
that is due. A host waiting out its delay or a retry is *pending*, not finished, and holds no
worker: a timer wakes the dispatcher when the earliest host becomes due. Windows are refilled by the
claim service (:mod:`crawler.frontier.claims`, :meth:`run`). A request that is not a lease's (a
sitemap file) takes a turn of its host's slot (:meth:`turn`, :mod:`crawler.frontier.turns`), given
before the leases; what the crawl learns about a host goes to ``frontier.hosts``
(:mod:`crawler.frontier.host_feedback`).

Memory stays bounded with many hosts (``crawl.max_hosts_in_memory``): the host table
(:mod:`crawler.frontier.hosts`) forgets the least recently used idle hosts past the cap, also
those with URLs still pending in the database, and a host given new URLs while the table is
full of hosts it must keep is not made at all. Such hosts, and all of them when a run resumes,
are paged back in from the database (:mod:`crawler.frontier.paging`) while there is room, or
past the cap, one per waiting worker, when nothing held could feed the workers later (no claim
running, no host with work waiting for its turn): then every host held is kept by a rule (a
cooldown, a breaker, an adapted delay, a deferral), and without it the crawl would stall.

The page budget (``crawl.max_pages``, counted across runs) is charged when a URL is handed out
for the first time (:mod:`crawler.frontier.budget`), and so are the per-host and per-domain
budgets (:mod:`crawler.frontier.host_budget`): a host whose budget is spent is treated as every
host is once the page budget is.

A host that asks (Retry-After) to wait longer than ``politeness.max_retry_after`` is *deferred*
for the run (:meth:`defer_host`): its time is stored, its URLs go back to pending, none is
handed out again, and it no longer counts as work; a later run holds it until that time.

The crawl is finished when nothing is in flight, nothing waits to be committed, no claim is
running, and no host that is not deferred has work in memory or possibly in the database (or
the page budget is spent and no retry is waiting). Then every waiting worker gets ``None``. The
same happens at once when the abort signal fires: in-flight work finishes, nothing new starts.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager

from crawler.abort import AbortReason, AbortSignal
from crawler.config import PolitenessSection
from crawler.frontier.budget import PageBudget
from crawler.frontier.claims import ClaimService
from crawler.frontier.host_budget import HostBudgets
from crawler.frontier.host_feedback import HostFeedback
from crawler.frontier.hosts import Host, HostTable
from crawler.frontier.paging import HostPager
from crawler.frontier.politeness import DelayJitter, HostSlot
from crawler.frontier.retries import RetryPolicy
from crawler.frontier.schedule import Alarm, ReadyHeap
from crawler.frontier.turns import Turns
from crawler.models import FrontierCounts, Lease
from crawler.store.database import Store
from crawler.urls import host_key

Clock = Callable[[], float]

PAGE = 256
"""Pending hosts read from the database at most at once (:mod:`crawler.frontier.paging`)."""
MIN_WINDOW = 32
"""Claimed URLs kept in memory per host, at least; more for a host allowed many connections."""


class FrontierState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"
    """Finished or aborted: ``lease()`` returns None from now on."""


class Frontier:
    """Hands out leases; see the module docstring. Owned and run by the engine."""

    def __init__(
        self,
        store: Store,
        politeness: PolitenessSection,
        signal: AbortSignal,
        *,
        retries: RetryPolicy,
        max_pages: int = 0,
        max_pages_per_host: int = 0,
        max_pages_per_domain: int = 0,
        max_hosts: int = 0,
        clock: Clock = time.monotonic,
    ) -> None:
        """``retries`` says how long hosts cool down; its ``wall_clock`` (Unix time) dates what
        outlives the run: the not-before time of a deferred host. ``max_pages``,
        ``max_pages_per_host`` and ``max_pages_per_domain`` are ``crawl``'s (0: no budget),
        ``max_hosts`` ``crawl.max_hosts_in_memory`` (0: no cap). ``clock`` paces the run."""
        self._store = store
        self._politeness = politeness
        self._retries = retries
        self._budget = PageBudget(max_pages)
        self._host_budgets = HostBudgets(max_pages_per_host, max_pages_per_domain)
        self._signal = signal
        self._clock = clock
        self._wall_clock = retries.wall_clock
        self._spacing = DelayJitter(politeness.delay_jitter)
        window = max(MIN_WINDOW, 4 * politeness.per_host_concurrency)
        self._claims: ClaimService[Host] = ClaimService(store, window, self._claimed)
        self._pager = HostPager(store, self._paged, self._dispatch)
        self._hosts = HostTable(
            politeness,
            max_hosts,
            clock,
            awaited=lambda slot: self._turns.waiting_for(slot),
            missed=self._pager.missed,
        )
        self._ready: ReadyHeap[Host] = ReadyHeap()
        self._waiters: deque[asyncio.Future[Lease | None]] = deque()
        self._alarm = Alarm(self._dispatch)
        """Wakes the dispatcher when the earliest waiting host (or turn) becomes due. (Every
        :meth:`lease` decides again too, so a test that moves its clock only has to ask.)"""
        self._feedback = HostFeedback(
            self._slot, self._rescheduled, politeness=politeness, policy=retries, clock=clock
        )
        self._turns = Turns(
            self._slot,
            refused=self._no_turn,
            changed=lambda slot: self._rescheduled(slot.host),
            spacing=self._spacing,
        )
        # The counters below are the frontier's own: callers read them through counts().
        self._state = FrontierState.NEW
        self._in_flight = 0
        self._uncommitted = 0
        """Outcomes released to the sink and not committed yet."""
        self._holds = 0
        """Work outside the frontier that may still add URLs (e.g. reading a sitemap)."""

    @property
    def hosts(self) -> HostFeedback:
        """Where the worker and the robots gate say what they learnt about a host."""
        return self._feedback

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, seeds: Iterable[str]) -> None:
        """Resume the database's frontier, offer the seeds, and start handing out work."""
        if self._state is not FrontierState.NEW:
            raise RuntimeError(f"frontier already opened: {self!r}")
        await self._store.reset_leases()
        now = self._wall_clock()
        for name, not_before in (await self._store.host_deferrals(now)).items():
            host = self._host(name)
            wait = not_before - now
            if wait > self._retries.max_retry_after:
                host.deferred = True  # still far ahead: this run leaves it alone too
            else:
                host.slot.cool_down(self._clock() + wait)
        await self._store.add_urls([(url, host_key(url), 0, 0) for url in seeds])
        counts = await self._store.state_counts()
        self._budget.recorded_before = counts["done"] + counts["failed"] + counts["skipped"]
        if self._host_budgets.enabled:
            self._host_budgets.resume(await self._store.recorded_per_host())
        self._state = FrontierState.RUNNING
        self._signal.add_callback(self._on_abort)
        self._pager.missed()  # the database's pending hosts, paged in as there is room
        await self._pager.read(min(PAGE, self._hosts.room()))

    async def run(self) -> None:
        """The claim service (:mod:`crawler.frontier.claims`), which refills host windows from
        the database, and the host pager (:mod:`crawler.frontier.paging`), until the frontier
        stops."""
        async with asyncio.TaskGroup() as services:
            services.create_task(self._claims.run())
            services.create_task(self._pager.run())

    async def _claims_settled(self) -> None:
        """Return once no claim and no page of hosts is queued or running: what is in memory
        is all there is. (For tests, which ask for a lease only once the database has had its
        say.)"""
        await self._claims.settled()
        while self._pager.running:  # a page read may ask for claims, and they for a page
            await self._pager.settled()
            await self._claims.settled()

    def stop(self) -> None:
        """Stop handing out work: waiting workers get None, waiting turns
        :class:`~crawler.errors.TurnRefused`. Idempotent."""
        if self._state is FrontierState.STOPPED:
            return
        self._state = FrontierState.STOPPED
        self._alarm.cancel()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self._turns.refuse_all("the crawl is stopping")
        self._claims.stop()
        self._pager.stop()

    def _on_abort(self, reason: AbortReason) -> None:
        self.stop()

    # -- the worker's side ---------------------------------------------------------------------

    async def lease(self) -> Lease | None:
        """The next URL to fetch, waiting as long as needed; None when the crawl is over."""
        if self._state is not FrontierState.RUNNING:
            return None
        waiter: asyncio.Future[Lease | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._dispatch()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and (lease := waiter.result()):
                self.defer(lease)  # handed out just as we were cancelled
            raise

    def release(self, lease: Lease, *, fetched: bool = True) -> None:
        """The worker is done with ``lease`` and hands its outcome to the sink. ``fetched``
        False: it was skipped without a request, so the host's next URL need not wait the
        delay for it (a robots.txt-disallowed link costs no turn of the host)."""
        self._finish(lease, fetched)
        self._uncommitted += 1
        self._dispatch()

    def retry(self, lease: Lease, delay: float) -> None:
        """Fetch ``lease`` again after ``delay`` seconds (never by sleeping a worker)."""
        again = Lease(lease.id, lease.url, lease.host, lease.depth, lease.attempt + 1)
        self._again(self._finish(lease), again, self._clock() + delay)

    def defer(self, lease: Lease) -> None:
        """Put ``lease`` back, unfetched and not counted as an attempt, ahead of its host's
        window: it starts again when the host's politeness allows (e.g. after the request that
        fetched the host's robots.txt). It stays charged to the page budget, so it goes back as
        a retry due now: once the budget is spent it still starts, and no new URL in its place."""
        # fetched=False: a robots.txt request, if any, was counted when it was sent.
        self._again(self._finish(lease, fetched=False), lease, self._clock())

    def _again(self, host: Host, lease: Lease, not_before: float) -> None:
        if not host.deferred:  # else its URLs wait for a later run (pending in the database)
            host.slot.schedule_retry(lease, not_before)
            self._queue(host)
        self._dispatch()

    def defer_host(self, lease: Lease, seconds: float) -> None:
        """``lease``'s host asked to wait ``seconds``, past ``politeness.max_retry_after``:
        give up on it for this run. Its not-before time is stored (Unix time, so a later run
        honours it) and its URLs, ``lease``'s too, go back to pending; nothing of it is handed
        out again and the run may end without it. URLs of it in flight finish as they do."""
        host = self._finish(lease)
        host.deferred = True
        host.slot.window.clear()  # leased in the database: storing the deferral hands them back
        host.slot.retries.clear()
        self._turns.refuse(host.slot.host, "the host is deferred for this run")
        self._claims.defer(host, self._wall_clock() + seconds)  # the run cannot end before
        self._dispatch()

    # -- requests that are not a lease's --------------------------------------------------------

    def turn(self, url: str) -> AbstractAsyncContextManager[None]:
        """``async with frontier.turn(url):`` sends one request that is no lease's (a sitemap
        file) in its host's turn: the cap, the delay and the cooldown hold for it as for a
        lease (:mod:`crawler.frontier.turns`). Raises :class:`~crawler.errors.TurnRefused` if
        the host is deferred or the frontier stops first. A turn is no work (see :meth:`hold`)
        and no charge on the page budget."""
        return self._turns.turn(url)

    def _no_turn(self, name: str) -> str | None:
        if self._state is FrontierState.STOPPED:
            return "the crawl is stopping"
        return "the host is deferred for this run" if self._host(name).deferred else None

    # -- what the engine learns about a host ---------------------------------------------------

    def request_sent(self, url: str) -> None:
        """The request for ``url`` (a lease's, robots.txt, a sitemap) is being sent now: the
        host's next one starts no earlier than ``delay`` from now. The fetcher calls this for
        every request it sends (``Fetcher(on_request_sent=...)``, wired by the engine).
        Dispatch already counted the delay from the moment it handed the lease out; what
        happened in between (robots.txt, a slow connect, a busy loop) must not shorten the gap
        the server sees."""
        entry = self._host(host_key(url))
        slot = entry.slot
        now = self._clock()
        # Recorded even with no delay: a Crawl-delay learnt next counts from this request.
        slot.sent(now, self._spacing(slot.delay), url)
        if slot.delay:
            self._queue(entry)
            if self._state is FrontierState.RUNNING:
                self._arm_timer(now)  # the host may have been waiting for this send

    def hold(self) -> None:
        """Keep the crawl from finishing until :meth:`release_hold`: something that may still
        add URLs is running (the frontier cannot see it otherwise)."""
        self._holds += 1

    def release_hold(self) -> None:
        self._holds -= 1
        self._dispatch()

    def on_committed(self, pages: int, hosts_with_new_urls: Iterable[str]) -> None:
        """The sink committed ``pages`` outcomes, which may have added URLs for these hosts."""
        self._uncommitted -= pages
        for name in hosts_with_new_urls:
            host = self._hosts.admit(name)
            if host is None:
                self._pager.missed()  # its URLs wait in the database until it is paged in
                continue
            host.added += 1
            self._queue(host)  # its window may now be refillable
        self._dispatch()

    # -- scheduling ----------------------------------------------------------------------------

    def _host(self, name: str) -> Host:
        return self._hosts.get(name)

    def holds(self, host: str) -> bool:
        """Whether ``host``'s state is in memory (not forgotten, or made again since)."""
        return host in self._hosts

    def _slot(self, name: str) -> HostSlot:
        return self._host(name).slot

    def _rescheduled(self, name: str) -> None:
        """``name``'s slot changed (:class:`HostFeedback`): schedule the host again."""
        self._queue(self._host(name))
        self._dispatch()

    def _claimed(self, hosts: Sequence[Host]) -> None:
        self._pager.blocked = False  # the claim may have left hosts idle, or workers waiting
        for host in hosts:
            self._queue(host)
        self._dispatch()

    def _finish(self, lease: Lease, fetched: bool = True) -> Host:
        host = self._hosts.touch(lease.host)  # the most recently used now
        self._hosts.shrink()
        self._pager.blocked = False  # the host may be idle now: room for a paged one
        host.slot.finish(lease, fetched)
        self._in_flight -= 1
        self._queue(host)
        return host

    def _queue(self, host: Host) -> None:
        """Put ``host`` in the ready heap under its current due time (if it has one)."""
        if not self._hosts.holds(host):
            return  # forgotten since it was queued: its stale entry surfaced, or its claim
        due = self._ready_at(host)
        if due is not None:
            self._ready.push(host, due)
        if self._state is FrontierState.RUNNING and not self._new_urls_spent(host):
            self._claims.refill(host)  # its window may be running low

    def _ready_at(self, host: Host) -> float | None:
        """When ``host`` may next start a URL: once the budget (or the host's) is spent, only
        one already charged to it (a retry or a deferred lease), never a new one from the
        window. A spent budget stays spent (``started`` only grows), so hosts left with only
        new URLs may drop out of the ready heap for good. A deferred host never is."""
        if host.deferred:
            return None
        return host.slot.ready_at(new_urls=not self._new_urls_spent(host))

    def _new_urls_spent(self, host: Host) -> bool:
        return self._new_urls_spent_of(host.slot.host)

    def _new_urls_spent_of(self, name: str) -> bool:
        """Whether a budget forbids host ``name`` new URLs: the crawl's, its own or its
        domain's."""
        return self._budget.spent or self._host_budgets.spent(name)

    def _dispatch(self) -> None:
        """Give due hosts' URLs to waiting workers; then arm a timer or finish."""
        if self._state is not FrontierState.RUNNING:
            return
        now = self._clock()
        if self._turns:  # first: a turn waits only for its host, never for a worker
            for slot in self._turns.give(now):
                self._queue(self._hosts[slot.host])  # its leases wait behind the turn
        # Entries queued before the budget ran out may be early: they are checked again below.
        while self._waiters and (host := self._ready.pop_due(now)) is not None:
            ready = self._ready_at(host)
            if ready is None or ready > now:  # its state (or the budget) changed since queued
                self._queue(host)
                continue
            waiter = self._waiters.popleft()
            if waiter.done():  # its worker was cancelled while waiting
                self._queue(host)
                continue
            charged = host.slot.retry_due(now)  # handed out before: already charged
            lease = host.slot.begin(now, self._spacing(host.slot.delay))
            self._in_flight += 1
            if not charged:
                self._budget.started += 1
                self._host_budgets.charge(host.slot.host)
            waiter.set_result(lease)
            self._queue(host)
        self._arm_timer(now)
        if self._pager.may_have_more() and (self._hosts.room() > 0 or self._waiters):
            self._pager.request(min(PAGE, max(self._hosts.room(), len(self._waiters))))
        if self._finished():
            self.stop()

    def _paged(self, names: Sequence[str]) -> int:
        """Hold a page of pending hosts, in order, while there is room (see the module
        docstring); how many were taken. One a budget forbids new URLs is taken and not held:
        its URLs wait for a later run, as a held one's do. Past the cap only when workers wait
        and nothing held can feed them later (no claim running, no host queued with work)."""
        starved = not self._claims.running and self._ready.earliest() is None
        beyond = len(self._waiters) if starved else 0
        for taken, name in enumerate(names):
            if self._new_urls_spent_of(name):
                continue
            host = self._hosts.admit(name)
            if host is None:
                if not beyond:
                    return taken
                beyond -= 1
                host = self._hosts.get(name)
            host.added += 1
            self._queue(host)
        return len(names)

    def _arm_timer(self, now: float) -> None:
        due = self._ready.earliest() if self._waiters else None
        if self._turns and (turn := self._turns.earliest()) is not None:
            due = turn if due is None else min(due, turn)
        if due is not None and due > now:
            self._alarm.ring_at(due, now)

    def _finished(self) -> bool:
        if self._in_flight or self._uncommitted or self._claims.running or self._holds:
            return False
        hosts = (h for h in self._hosts.values() if not h.deferred)  # theirs waits for later
        if self._budget.spent:  # only the URLs already charged to it are left to run
            return not any(h.slot.retries for h in hosts)
        if self._pager.running or self._pager.may_have_more():
            return False
        return not any(
            h.slot.retries
            or (
                not self._host_budgets.spent(h.slot.host)
                and (bool(h.slot.window) or h.maybe_pending_in_db())
            )
            for h in hosts
        )

    def counts(self) -> FrontierCounts:
        """Counts for progress displays and metrics; O(hosts), so for periodic use only."""
        now = self._clock()
        hosts = self._hosts.values()
        return FrontierCounts(
            state=self._state.value,
            hosts=len(self._hosts),
            hosts_cooling_down=sum(1 for h in hosts if h.slot.cooldown_until > now),
            hosts_paused=sum(1 for h in hosts if h.slot.tripped),
            hosts_over_budget=self._host_budgets.hosts_spent,
            windowed=sum(len(h.slot.window) + len(h.slot.retries) for h in hosts),
            in_flight=self._in_flight,
            uncommitted=self._uncommitted,
            started=self._budget.started,
            recorded_before=self._budget.recorded_before,
        )

    def __repr__(self) -> str:
        windowed = sum(len(h.slot.window) + len(h.slot.retries) for h in self._hosts.values())
        return (
            f"<Frontier {self._state.value} hosts={len(self._hosts)} windowed={windowed} "
            f"in_flight={self._in_flight} uncommitted={self._uncommitted} "
            f"claims={self._claims.running} started={self._budget.started} "
            f"waiting_workers={len(self._waiters)}>"
        )
