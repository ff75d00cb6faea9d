"""The frontier over a real SQLite store, with a hand-driven clock: no sleeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from crawler.abort import AbortController, AbortReason
from crawler.config import Config
from crawler.config_load import load_config
from crawler.errors import TurnRefused
from crawler.frontier.frontier import Frontier, FrontierState
from crawler.frontier.retries import RetryPolicy
from crawler.frontier.robots import RobotsCache, RobotsFetch
from crawler.frontier.robots_gate import RobotsGate, Verdict
from crawler.models import Lease, PageRecord
from crawler.observe.stats import Stats
from crawler.store.database import Store
from crawler.store.rows import page_rows
from crawler.store.sink import Sink
from tests.helpers import FakeClock

pytestmark = pytest.mark.anyio


def config(**overrides: object) -> Config:
    defaults = {"politeness.per_host_concurrency": 1, "politeness.per_host_delay": 0.0}
    return load_config(overrides={**defaults, **overrides}, environ={})


@asynccontextmanager
async def running_frontier(
    db: Path,
    seeds: list[str],
    cfg: Config,
    clock: FakeClock | None = None,
    controller: AbortController | None = None,
    wall_clock: FakeClock | None = None,
) -> AsyncIterator[Frontier]:
    controller = controller or AbortController()
    async with Store(db) as store:
        frontier = Frontier(
            store,
            cfg.politeness,
            controller.signal,
            retries=RetryPolicy.of(cfg.fetch, cfg.politeness, wall_clock=wall_clock or FakeClock()),
            max_pages=cfg.crawl.max_pages,
            max_hosts=cfg.crawl.max_hosts_in_memory,
            clock=clock or FakeClock(),
        )
        await frontier.open(seeds)
        async with anyio.create_task_group() as tg:
            tg.start_soon(frontier.run)
            yield frontier
            frontier.stop()


def state(frontier: Frontier) -> FrontierState:
    """The frontier's state, as its counts tell it."""
    return FrontierState(frontier.counts().state)


async def try_lease(frontier: Frontier) -> Lease | str | None:
    """Lease, but give up (returning "waiting") once the frontier would make us wait."""
    await frontier._claims_settled()  # else "waiting" may only mean a claim is still running
    result: list[Lease | None] = []

    async def take() -> None:
        result.append(await frontier.lease())

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.wait_all_tasks_blocked()
        if not result:
            tg.cancel_scope.cancel()
    return result[0] if result else "waiting"


async def record(
    frontier: Frontier,
    store: Store,
    lease: Lease,
    found: list[str] = (),  # type: ignore[assignment]
    *,
    fetched: bool = True,
) -> None:
    """What the worker and the sink do with a finished lease (``fetched`` False: skipped)."""
    frontier.release(lease, fetched=fetched)
    page = PageRecord(
        url=lease.url, depth=lease.depth, fetched_at="t", status=200 if fetched else None,
        skipped=not fetched,
    )  # fmt: skip
    hosts = {u.split("/")[2] for u in found}
    await store.write_batch([(lease.id, page.state, page_rows(page, [], list(found), 1, 0))])
    frontier.on_committed(1, hosts)


SEEDS = ["http://a.test/1", "http://a.test/2", "http://a.test/3"]


async def test_hands_out_seeds_in_order_then_finishes(tmp_path: Path) -> None:
    async with running_frontier(tmp_path / "db", SEEDS, config()) as frontier:
        store = frontier._store
        got = []
        for _ in SEEDS:
            lease = await frontier.lease()
            assert lease is not None
            got.append(lease.url)
            await record(frontier, store, lease)
        assert got == SEEDS
        assert await frontier.lease() is None
        assert state(frontier) is FrontierState.STOPPED
        assert (await store.state_counts())["done"] == 3


async def test_per_host_concurrency_cap(tmp_path: Path) -> None:
    async with running_frontier(tmp_path / "db", SEEDS, config()) as frontier:
        first = await frontier.lease()
        assert isinstance(first, Lease)
        assert await try_lease(frontier) == "waiting"  # cap 1: the host is busy
        await record(frontier, frontier._store, first)
        second = await try_lease(frontier)
        assert isinstance(second, Lease)
        assert second.url == SEEDS[1]


async def test_per_host_delay_without_blocking_other_hosts(tmp_path: Path) -> None:
    clock = FakeClock()
    cfg = config(**{"politeness.per_host_concurrency": 5, "politeness.per_host_delay": 10.0})
    seeds = ["http://a.test/1", "http://a.test/2", "http://b.test/1"]
    async with running_frontier(tmp_path / "db", seeds, cfg, clock) as frontier:
        first = [await try_lease(frontier), await try_lease(frontier)]
        assert sorted(lease.url for lease in first if isinstance(lease, Lease)) == [
            "http://a.test/1",
            "http://b.test/1",
        ]
        for lease in first:
            assert isinstance(lease, Lease)
            frontier.request_sent(lease.url)
        assert await try_lease(frontier) == "waiting"  # a.test must wait 10 s
        clock.now += 9.9
        assert await try_lease(frontier) == "waiting"
        clock.now += 0.1
        third = await try_lease(frontier)
        assert isinstance(third, Lease)
        assert third.url == "http://a.test/2"


async def test_a_delayed_host_wakes_its_waiting_worker_by_itself(tmp_path: Path) -> None:
    # The real clock and a short delay: the frontier's own timer must hand the lease over.
    cfg = config(**{"politeness.per_host_concurrency": 5, "politeness.per_host_delay": 0.05})
    async with Store(tmp_path / "db") as store:
        frontier = Frontier(store, cfg.politeness, AbortController().signal, retries=RetryPolicy())
        await frontier.open(SEEDS[:2])
        async with anyio.create_task_group() as tg:
            tg.start_soon(frontier.run)
            first = await frontier.lease()
            assert isinstance(first, Lease)
            frontier.request_sent(first.url)
            with anyio.fail_after(5):
                second = await frontier.lease()
            assert isinstance(second, Lease)
            frontier.stop()


async def test_a_worker_waiting_on_an_unsent_request_is_woken_once_it_is_sent(
    tmp_path: Path,
) -> None:
    # The real clock: the second worker already waits when the first request goes out, and
    # the frontier's timer must hand it the host's next URL one delay after that send.
    cfg = config(**{"politeness.per_host_concurrency": 5, "politeness.per_host_delay": 0.05})
    async with Store(tmp_path / "db") as store:
        frontier = Frontier(store, cfg.politeness, AbortController().signal, retries=RetryPolicy())
        await frontier.open(SEEDS[:2])
        async with anyio.create_task_group() as tg:
            tg.start_soon(frontier.run)
            first = await frontier.lease()
            assert isinstance(first, Lease)
            got: list[Lease | None] = []
            handed_over = anyio.Event()

            async def second_worker() -> None:
                got.append(await frontier.lease())
                handed_over.set()

            tg.start_soon(second_worker)
            await anyio.wait_all_tasks_blocked()
            assert got == []  # the first URL has not been sent: its host starts nothing
            frontier.request_sent(first.url)
            with anyio.fail_after(5):
                await handed_over.wait()
            assert isinstance(got[0], Lease)
            frontier.stop()


async def test_with_two_allowed_the_next_url_waits_for_the_last_one_to_be_sent(
    tmp_path: Path,
) -> None:
    # a.test/1 is handed out at 1000 and, connecting slowly, goes out only at 1012. The turn
    # dispatch reserved ends at 1010, but a.test/2 must not start then: it could reach the
    # server before a.test/1 or just after it. It goes at 1022, one delay after that send.
    clock = FakeClock()
    cfg = config(**{"politeness.per_host_concurrency": 2, "politeness.per_host_delay": 10.0})
    async with running_frontier(tmp_path / "db", SEEDS, cfg, clock) as frontier:
        first = await try_lease(frontier)
        assert isinstance(first, Lease)
        clock.now += 10.0
        assert await try_lease(frontier) == "waiting"
        clock.now += 2.0
        frontier.request_sent(first.url)
        clock.now += 9.9
        assert await try_lease(frontier) == "waiting"
        clock.now += 0.1
        second = await try_lease(frontier)
        assert isinstance(second, Lease)
        assert second.url == SEEDS[1]


async def test_retry_waits_for_its_backoff(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_frontier(tmp_path / "db", SEEDS[:1], config(), clock) as frontier:
        lease = await frontier.lease()
        assert isinstance(lease, Lease)
        frontier.retry(lease, 5.0)
        assert await try_lease(frontier) == "waiting"
        clock.now += 5.0
        again = await try_lease(frontier)
        assert isinstance(again, Lease)
        assert (again.url, again.attempt) == (lease.url, 1)


async def test_discovered_urls_are_claimed_from_the_database(tmp_path: Path) -> None:
    async with running_frontier(tmp_path / "db", SEEDS[:1], config()) as frontier:
        lease = await frontier.lease()
        assert isinstance(lease, Lease)
        found = ["http://a.test/new", "http://b.test/other", "http://a.test/1"]  # last: a dup
        await record(frontier, frontier._store, lease, found)
        urls = []
        while (nxt := await frontier.lease()) is not None:
            urls.append(nxt.url)
            await record(frontier, frontier._store, nxt)
        assert sorted(urls) == ["http://a.test/new", "http://b.test/other"]


async def test_a_claim_takes_each_hosts_oldest_pending_urls(tmp_path: Path) -> None:
    urls = [f"http://{host}.test/{i}" for i in range(4) for host in "abc"]
    async with Store(tmp_path / "db") as store:
        await store.add_urls([(url, url.split("/")[2], 0, 0) for url in urls])
        claimed = await store.claim([("a.test", 2), ("b.test", 10), ("none.test", 5)])
        assert {host: [lease.url for lease in leases] for host, leases in claimed.items()} == {
            "a.test": ["http://a.test/0", "http://a.test/1"],
            "b.test": [f"http://b.test/{i}" for i in range(4)],
        }
        again = await store.claim([("a.test", 5)])
        assert [lease.url for lease in again["a.test"]] == ["http://a.test/2", "http://a.test/3"]
        counts = await store.state_counts()
        assert (counts["leased"], counts["pending"]) == (8, 4)  # c.test untouched


async def test_hosts_waiting_for_urls_together_are_claimed_together(tmp_path: Path) -> None:
    # Many hosts found at once (the seeds of a fan-out crawl, or one page linking to many)
    # must not queue one database claim each behind the sink's writes.
    seeds = [f"http://h{i}.test/" for i in range(50)]
    async with Store(tmp_path / "db") as store:
        calls: list[int] = []
        claim = store.claim

        async def counting_claim(wants: list[tuple[str, int]]) -> dict[str, list[Lease]]:
            calls.append(len(wants))
            return await claim(wants)

        store.claim = counting_claim  # type: ignore[method-assign]
        frontier = Frontier(
            store,
            config().politeness,
            AbortController().signal,
            retries=RetryPolicy(),
            clock=FakeClock(),
        )
        await frontier.open(seeds)
        async with anyio.create_task_group() as tg:
            tg.start_soon(frontier.run)
            leases = [await frontier.lease() for _ in seeds]
            frontier.stop()
    assert sorted(lease.url for lease in leases if lease) == sorted(seeds)
    assert calls == [50]


async def test_page_budget_counts_earlier_runs(tmp_path: Path) -> None:
    cfg = config(**{"crawl.max_pages": 2})
    async with running_frontier(tmp_path / "db", SEEDS, cfg) as frontier:
        lease = await frontier.lease()
        assert isinstance(lease, Lease)
        await record(frontier, frontier._store, lease)
    async with running_frontier(tmp_path / "db", SEEDS, cfg) as frontier:
        assert frontier.counts().recorded_before == 1
        lease = await frontier.lease()
        assert isinstance(lease, Lease)
        assert await try_lease(frontier) == "waiting"  # budget spent, one still in flight
        await record(frontier, frontier._store, lease)
        assert await frontier.lease() is None


async def test_abort_releases_waiting_workers(tmp_path: Path) -> None:
    controller = AbortController()
    async with running_frontier(tmp_path / "db", SEEDS[:1], config(), None, controller) as frontier:
        assert isinstance(await frontier.lease(), Lease)
        results: list[Lease | None] = []

        async def waiter() -> None:
            results.append(await frontier.lease())

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            controller.abort(AbortReason("test", 1))
        assert results == [None]
        assert "stopped" in repr(frontier)


async def test_leases_of_a_stopped_run_go_back_to_pending(tmp_path: Path) -> None:
    async with running_frontier(tmp_path / "db", SEEDS, config()) as frontier:
        assert isinstance(await frontier.lease(), Lease)
        counts = await frontier._store.state_counts()
        assert counts["leased"] == 3  # claimed into the window, and one handed out
    async with Store(tmp_path / "db") as store:
        assert await store.reset_leases() == 3
        assert (await store.state_counts())["pending"] == 3


async def test_a_host_in_cooldown_is_pending_and_others_keep_working(tmp_path: Path) -> None:
    clock = FakeClock()
    cfg = config(**{"politeness.per_host_concurrency": 5})
    seeds = ["http://a.test/1", "http://a.test/2", "http://b.test/1", "http://b.test/2"]
    async with running_frontier(tmp_path / "db", seeds, cfg, clock) as frontier:
        await frontier._claims_settled()
        frontier.hosts.cool_down("a.test", 30.0)
        got = [await try_lease(frontier), await try_lease(frontier)]
        assert [lease.host for lease in got if isinstance(lease, Lease)] == ["b.test", "b.test"]
        assert await try_lease(frontier) == "waiting"  # a.test is pending, not finished
        assert state(frontier) is FrontierState.RUNNING
        clock.now += 30.0
        later = await try_lease(frontier)
        assert isinstance(later, Lease)
        assert later.host == "a.test"


async def test_a_deferred_host_is_left_to_a_run_after_its_stored_time(tmp_path: Path) -> None:
    db = tmp_path / "db"
    cfg = config(**{"politeness.max_retry_after": 600.0})
    wall = FakeClock()  # Unix time, stored; the run's own clock is another
    seeds = ["http://a.test/1", "http://a.test/2", "http://b.test/1"]
    async with running_frontier(db, seeds, cfg, wall_clock=wall) as frontier:
        first = await try_lease(frontier)
        assert isinstance(first, Lease)
        assert first.host == "a.test"
        frontier.defer_host(first, 86400.0)
        other = await try_lease(frontier)
        assert isinstance(other, Lease)
        assert other.host == "b.test"  # a.test's second URL is never handed out
        await record(frontier, frontier._store, other)
        assert state(frontier) is FrontierState.STOPPED  # finished: a.test does not count as work
    async with Store(db) as store:
        assert (await store.state_counts())["pending"] == 2
        assert await store.host_deferrals(wall.now) == {"a.test": wall.now + 86400.0}
    wall.now += 86400.0 - 700.0  # a later run, still more than the cap ahead: left alone
    async with running_frontier(db, [], cfg, wall_clock=wall) as frontier:
        assert state(frontier) is FrontierState.STOPPED
    wall.now += 100.0  # 600 s ahead: within the cap, waited out in the run
    clock = FakeClock()
    async with running_frontier(db, [], cfg, clock, wall_clock=wall) as frontier:
        assert await try_lease(frontier) == "waiting"
        clock.now += 600.0
        again = await try_lease(frontier)
        assert isinstance(again, Lease)
        assert again.host == "a.test"


async def test_per_host_overrides(tmp_path: Path) -> None:
    clock = FakeClock()
    cfg = config(**{"politeness.hosts": {"b.test": {"concurrency": 2, "delay": 0.0}},
                    "politeness.per_host_delay": 50.0})  # fmt: skip
    seeds = ["http://a.test/1", "http://a.test/2", "http://b.test/1", "http://b.test/2"]
    async with running_frontier(tmp_path / "db", seeds, cfg, clock) as frontier:
        got = [await try_lease(frontier) for _ in range(4)]
        hosts = sorted(lease.host for lease in got if isinstance(lease, Lease))
        assert hosts == ["a.test", "b.test", "b.test"]  # a.test: one, then its 50 s delay


async def test_crawl_delay_raises_the_delay_up_to_the_cap(tmp_path: Path) -> None:
    clock = FakeClock()
    cfg = config(**{"politeness.per_host_concurrency": 5, "politeness.max_crawl_delay": 20.0,
                    "politeness.per_host_delay": 1.0})  # fmt: skip
    async with running_frontier(tmp_path / "db", SEEDS, cfg, clock) as frontier:
        frontier.hosts.set_crawl_delay("a.test", 99.0)
        assert frontier.hosts.delay("a.test") == 20.0
        frontier.hosts.set_crawl_delay("a.test", 0.5)  # never below the configured delay
        assert frontier.hosts.delay("a.test") == 1.0


async def test_jitter_spreads_the_delay(tmp_path: Path) -> None:
    clock = FakeClock()
    cfg = config(**{"politeness.per_host_concurrency": 5, "politeness.per_host_delay": 10.0,
                    "politeness.delay_jitter": 0.5})  # fmt: skip
    async with running_frontier(tmp_path / "db", SEEDS, cfg, clock) as frontier:
        assert isinstance(await try_lease(frontier), Lease)
        slot = frontier._hosts["a.test"].slot
        assert 1000.0 + 5.0 <= slot.next_start <= 1000.0 + 15.0
        assert slot.next_start != 1000.0 + 10.0


async def test_the_delay_counts_from_the_request_not_only_from_the_dispatch(
    tmp_path: Path,
) -> None:
    # A lease handed out at t=1000 whose request leaves at t=1003 (robots.txt, a busy loop):
    # the next request to the host may start at 1013, not at 1010.
    clock = FakeClock()
    cfg = config(**{"politeness.per_host_concurrency": 5, "politeness.per_host_delay": 10.0})
    async with running_frontier(tmp_path / "db", SEEDS, cfg, clock) as frontier:
        first = await try_lease(frontier)
        assert isinstance(first, Lease)
        clock.now += 3.0
        frontier.request_sent(first.url)
        clock.now += 7.0  # 1010: dispatch + delay
        assert await try_lease(frontier) == "waiting"
        clock.now += 3.0  # 1013: request + delay
        assert isinstance(await try_lease(frontier), Lease)


@pytest.mark.parametrize("fetched", [False, True])
async def test_a_url_skipped_without_a_request_gives_its_turn_back(
    tmp_path: Path, fetched: bool
) -> None:
    # a.test/1 is fetched at t=1000; a.test/2, handed out at 1010, turns out to be disallowed
    # by robots.txt: nothing reaches the server, so a.test/3 may go at once (its gap to the
    # last request is already 10 s). The control: had a.test/2 been fetched, it waits.
    clock = FakeClock()
    cfg = config(**{"politeness.per_host_delay": 10.0})
    async with running_frontier(tmp_path / "db", SEEDS, cfg, clock) as frontier:
        first = await try_lease(frontier)
        assert isinstance(first, Lease)
        frontier.request_sent(first.url)
        await record(frontier, frontier._store, first)
        clock.now += 10.0
        second = await try_lease(frontier)
        assert isinstance(second, Lease)
        if fetched:
            frontier.request_sent(second.url)
        await record(frontier, frontier._store, second, fetched=fetched)
        third = await try_lease(frontier)
        if fetched:
            assert third == "waiting"
        else:
            assert isinstance(third, Lease)
            assert third.url == SEEDS[2]


async def test_a_skipped_url_keeps_its_turn_while_another_of_its_host_is_out(
    tmp_path: Path,
) -> None:
    # Two at once allowed: a.test/1 is handed out and sent at 1000 and is still out;
    # a.test/2 (handed out at 1010) is skipped. The turn reserved at 1010 stands while
    # a.test/1 is out (with more than one out, which reservation counts is not known):
    # a.test/3 waits until 1020.
    clock = FakeClock()
    cfg = config(**{"politeness.per_host_concurrency": 2, "politeness.per_host_delay": 10.0})
    async with running_frontier(tmp_path / "db", SEEDS, cfg, clock) as frontier:
        first = await try_lease(frontier)
        assert isinstance(first, Lease)
        frontier.request_sent(first.url)
        clock.now += 10.0
        second = await try_lease(frontier)
        assert isinstance(second, Lease)
        await record(frontier, frontier._store, second, fetched=False)
        assert await try_lease(frontier) == "waiting"
        clock.now += 10.0
        assert isinstance(await try_lease(frontier), Lease)


async def test_a_crawl_delay_learnt_from_robots_txt_spaces_the_page_from_that_request(
    tmp_path: Path,
) -> None:
    # No configured delay; robots.txt, fetched at t=1000 for a.test/1, says Crawl-delay: 2.
    # The page goes back (deferred) and must wait until 1002, not go at once.
    clock = FakeClock()
    async with running_frontier(tmp_path / "db", SEEDS, config(), clock) as frontier:
        first = await try_lease(frontier)
        assert isinstance(first, Lease)
        frontier.request_sent("http://a.test/robots.txt")
        frontier.hosts.set_crawl_delay(first.host, 2.0)
        frontier.defer(first)
        assert await try_lease(frontier) == "waiting"
        clock.now += 2.0
        again = await try_lease(frontier)
        assert isinstance(again, Lease)
        assert again.url == first.url


async def test_a_retry_still_runs_once_the_budget_is_spent(tmp_path: Path) -> None:
    # The retry was counted against the budget at its first attempt: it must not be stranded
    # (leased until the next run) because the budget ran out while it waited.
    clock = FakeClock()
    cfg = config(**{"crawl.max_pages": 2})
    async with running_frontier(tmp_path / "db", SEEDS, cfg, clock) as frontier:
        first = await try_lease(frontier)
        assert isinstance(first, Lease)
        await record(frontier, frontier._store, first)
        second = await try_lease(frontier)
        assert isinstance(second, Lease)
        budget = frontier.counts()
        assert budget.recorded_before + budget.started == cfg.crawl.max_pages  # spent
        frontier.retry(second, 5.0)  # e.g. a 503
        assert state(frontier) is FrontierState.RUNNING  # not finished: the retry is pending
        assert await try_lease(frontier) == "waiting"
        clock.now += 5.0
        again = await try_lease(frontier)
        assert isinstance(again, Lease)
        assert (again.url, again.attempt) == (second.url, 1)
        assert await try_lease(frontier) == "waiting"  # finished only once it is recorded
        await record(frontier, frontier._store, again)
        assert await frontier.lease() is None
        assert state(frontier) is FrontierState.STOPPED
        assert (await frontier._store.state_counts())["done"] == 2


async def test_no_new_url_starts_once_the_budget_is_spent(tmp_path: Path) -> None:
    # Workers wait for a.test's retry while b.test has URLs ready at once: none is handed out,
    # neither before the retry nor after it.
    clock = FakeClock()
    cfg = config(**{"crawl.max_pages": 2, "politeness.per_host_concurrency": 5})
    seeds = ["http://a.test/1", "http://b.test/1", "http://b.test/2", "http://b.test/3"]
    async with running_frontier(tmp_path / "db", seeds, cfg, clock) as frontier:
        got = [await try_lease(frontier), await try_lease(frontier)]
        leases = {lease.host: lease for lease in got if isinstance(lease, Lease)}
        assert sorted(leases) == ["a.test", "b.test"]
        frontier.retry(leases["a.test"], 5.0)
        await record(frontier, frontier._store, leases["b.test"])
        assert state(frontier) is FrontierState.RUNNING
        assert await try_lease(frontier) == "waiting"
        clock.now += 5.0
        again = await try_lease(frontier)
        assert isinstance(again, Lease)
        assert (again.host, again.attempt) == ("a.test", 1)
        assert await try_lease(frontier) == "waiting"
        assert frontier.counts().started == 2
        await record(frontier, frontier._store, again)
        assert await frontier.lease() is None


async def test_a_deferred_lease_keeps_its_place_in_the_budget(tmp_path: Path) -> None:
    # A lease handed back unfetched (deferred after robots.txt) was counted when it was handed
    # out: it runs when its host allows, and no other URL takes its place meanwhile.
    clock = FakeClock()
    cfg = config(**{"crawl.max_pages": 2})
    seeds = ["http://a.test/1", "http://a.test/2", "http://b.test/1"]
    async with running_frontier(tmp_path / "db", seeds, cfg, clock) as frontier:
        got = [await try_lease(frontier), await try_lease(frontier)]
        leases = {lease.host: lease for lease in got if isinstance(lease, Lease)}
        assert sorted(leases) == ["a.test", "b.test"]
        await record(frontier, frontier._store, leases["a.test"])
        frontier.defer(leases["b.test"])
        frontier.hosts.cool_down("b.test", 10.0)
        assert await try_lease(frontier) == "waiting"  # not a.test/2 instead
        clock.now += 10.0
        again = await try_lease(frontier)
        assert again == leases["b.test"]
        await record(frontier, frontier._store, again)
        assert await frontier.lease() is None
        assert frontier.counts().started == 2


async def test_a_sitemap_request_takes_its_hosts_turn_like_a_page(tmp_path: Path) -> None:
    # A page of a.test goes out at 1000: a sitemap file of a.test waits until 1010, then the
    # next page waits until 1020. b.test's sitemap file, the negative control, goes at once.
    clock = FakeClock()
    cfg = config(**{"politeness.per_host_concurrency": 5, "politeness.per_host_delay": 10.0})
    seeds = ["http://a.test/1", "http://a.test/2"]
    async with running_frontier(tmp_path / "db", seeds, cfg, clock) as frontier:
        page = await try_lease(frontier)
        assert isinstance(page, Lease)
        frontier.request_sent(page.url)
        sent: dict[str, float] = {}
        done = anyio.Event()

        async def sitemap(url: str) -> None:
            async with frontier.turn(url):
                sent[url] = clock.now
                frontier.request_sent(url)
                await done.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sitemap, "http://a.test/sitemap.xml")
            tg.start_soon(sitemap, "http://b.test/sitemap.xml")
            await anyio.wait_all_tasks_blocked()
            assert sent == {"http://b.test/sitemap.xml": 1000.0}
            clock.now = 1009.9
            assert await try_lease(frontier) == "waiting"
            assert "http://a.test/sitemap.xml" not in sent
            clock.now = 1010.0
            assert await try_lease(frontier) == "waiting"  # the turn went to the sitemap
            assert sent["http://a.test/sitemap.xml"] == 1010.0
            clock.now = 1019.9
            assert await try_lease(frontier) == "waiting"
            clock.now = 1020.0
            second = await try_lease(frontier)
            assert isinstance(second, Lease)
            assert second.url == "http://a.test/2"
            done.set()


async def test_a_turn_waits_out_its_hosts_cooldown_and_cap(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_frontier(tmp_path / "db", SEEDS, config(), clock) as frontier:
        page = await try_lease(frontier)  # per_host_concurrency 1: the host is full
        assert isinstance(page, Lease)
        given = anyio.Event()

        async def sitemap() -> None:
            async with frontier.turn("http://a.test/sitemap.xml"):
                given.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sitemap)
            await anyio.wait_all_tasks_blocked()
            assert not given.is_set()  # at the cap
            frontier.hosts.cool_down("a.test", 30.0)
            await record(frontier, frontier._store, page)
            await anyio.wait_all_tasks_blocked()
            assert not given.is_set()  # cooling down
            clock.now += 30.0
            await try_lease(frontier)
            await anyio.wait_all_tasks_blocked()
            assert given.is_set()


async def test_a_turn_is_refused_once_the_frontier_stops(tmp_path: Path) -> None:
    async with running_frontier(tmp_path / "db", SEEDS, config()) as frontier:
        page = await try_lease(frontier)
        assert isinstance(page, Lease)
        refused: list[BaseException] = []

        async def sitemap() -> None:
            try:
                async with frontier.turn("http://a.test/sitemap.xml"):
                    raise AssertionError("no turn while the host is full")
            except TurnRefused as exc:
                refused.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sitemap)
            await anyio.wait_all_tasks_blocked()
            assert refused == []
            frontier.stop()
        assert len(refused) == 1
        with pytest.raises(TurnRefused):
            async with frontier.turn("http://b.test/sitemap.xml"):
                raise AssertionError("no turn once stopped")


# --- hosts kept in memory (crawl.max_hosts_in_memory) -----------------------------------------


def chain_links(url: str, hosts: int) -> list[str]:
    """A web of ``hosts`` hosts in a chain: each host's /1 links to its /2, which links to the
    next host's /1, so a host is done with before the next one is met."""
    host, page = url.split("/")[2], url.rsplit("/", 1)[1]
    number = int(host.removeprefix("h").removesuffix(".test"))
    if page == "1":
        return [f"http://{host}/2"]
    return [f"http://h{number + 1}.test/1"] if number + 1 < hosts else []


async def crawl_chain(db: Path, cfg: Config, hosts: int) -> tuple[list[str], int]:
    """Crawl :func:`chain_links` to the end with one worker: the URLs in the order leased and
    the most hosts the frontier held at once."""
    leased: list[str] = []
    most = 0
    async with running_frontier(db, ["http://h0.test/1"], cfg) as frontier:
        for _ in range(4 * hosts):  # bounded: 2 URLs per host
            if state(frontier) is FrontierState.STOPPED:
                break
            lease = await try_lease(frontier)
            most = max(most, frontier.counts().hosts)
            assert isinstance(lease, Lease)
            leased.append(lease.url)
            frontier.request_sent(lease.url)
            await record(frontier, frontier._store, lease, chain_links(lease.url, hosts))
        assert state(frontier) is FrontierState.STOPPED
    return leased, most


async def test_a_capped_frontier_forgets_idle_hosts_and_leases_the_same_urls(
    tmp_path: Path,
) -> None:
    capped, most_capped = await crawl_chain(
        tmp_path / "capped.db", config(**{"crawl.max_hosts_in_memory": 3}), 12
    )
    control, most_control = await crawl_chain(
        tmp_path / "control.db", config(**{"crawl.max_hosts_in_memory": 0}), 12
    )
    assert len(control) == 24
    assert capped == control
    assert most_capped <= 3
    assert most_control == 12  # the control: without the cap every host stays


@pytest.mark.parametrize("wait", ["delay", "cooldown"])
async def test_a_host_with_a_wait_left_is_kept_past_the_cap_and_its_wait_holds(
    tmp_path: Path, wait: str
) -> None:
    clock = FakeClock()
    delay = 10.0 if wait == "delay" else 0.0
    cfg = config(**{"crawl.max_hosts_in_memory": 1, "politeness.per_host_delay": delay})
    async with running_frontier(tmp_path / "db", ["http://a.test/1"], cfg, clock) as frontier:
        store = frontier._store
        first = await try_lease(frontier)
        assert isinstance(first, Lease)
        frontier.request_sent(first.url)
        if wait == "cooldown":
            frontier.hosts.cool_down("a.test", 10.0)
        # a.test may start nothing before 1010: idle, it is still kept when b.test comes, and
        # b.test waits in the database until a worker waits (then it is paged in past the cap).
        await record(frontier, store, first, ["http://b.test/1"])
        assert frontier.holds("a.test")
        assert not frontier.holds("b.test")
        second = await try_lease(frontier)
        assert isinstance(second, Lease)
        assert second.url == "http://b.test/1"
        assert frontier.counts().hosts == 2
        frontier.request_sent(second.url)
        await record(frontier, store, second, ["http://a.test/2"])
        assert await try_lease(frontier) == "waiting"  # a.test's wait holds
        clock.now += 10.0
        third = await try_lease(frontier)
        assert isinstance(third, Lease)
        assert third.url == "http://a.test/2"
        frontier.request_sent(third.url)
        clock.now += 10.0
        await record(frontier, store, third, ["http://c.test/1"])
        assert frontier.counts().hosts == 1  # its wait is over: both idle hosts forgotten


async def test_a_host_forgotten_past_the_cap_gets_its_crawl_delay_again_from_the_cached_policy(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    cfg = config(**{"crawl.max_hosts_in_memory": 1})

    async def fetch(url: str) -> RobotsFetch:
        return RobotsFetch(200, b"User-agent: *\nCrawl-delay: 5\n")

    async with (
        RobotsCache(fetch, "crawler", clock=clock) as robots,
        running_frontier(tmp_path / "db", ["http://a.test/1"], cfg, clock) as frontier,
    ):
        store = frontier._store
        sink = Sink(store, cfg.storage, frontier.on_committed)  # queued, never written: unneeded
        gate = RobotsGate(robots, hosts=frontier.hosts, sink=sink, stats=Stats(), sitemaps=None)

        async def fetch_one(url: str, links: list[str]) -> None:
            lease = await try_lease(frontier)
            assert isinstance(lease, Lease)
            assert lease.url == url
            assert (await gate.check(lease))[0] is Verdict.WAIT_TURN  # robots.txt took the turn
            frontier.defer(lease)
            lease = await try_lease(frontier)
            assert isinstance(lease, Lease)
            assert (await gate.check(lease))[0] is Verdict.FETCH
            frontier.request_sent(lease.url)
            clock.now += 5.0  # its Crawl-delay waited out: idle, so forgettable
            await record(frontier, store, lease, links)

        await fetch_one("http://a.test/1", ["http://b.test/1"])
        await fetch_one("http://b.test/1", ["http://a.test/2"])
        assert frontier.counts().hosts == 1  # a.test and b.test were forgotten in turn
        assert len(robots) == 2  # a.test's policy is still cached: no new robots.txt fetch
        again = await try_lease(frontier)
        assert isinstance(again, Lease)
        assert again.url == "http://a.test/2"
        # The new slot learns the Crawl-delay before its first request, which waits its turn.
        assert (await gate.check(again))[0] is Verdict.WAIT_TURN
        assert frontier.hosts.delay("a.test") == 5.0
        frontier.defer(again)
