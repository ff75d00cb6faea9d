from __future__ import annotations

from pathlib import Path

import pytest

from crawler.config import TrapsSection
from crawler.frontier.traps import SessionStripper, TrapGuard, path_pattern, repeated_segments
from crawler.models import Lease
from crawler.store.database import Store

strip = SessionStripper(TrapsSection().session_params)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://a.test/p?sid=abc123", "http://a.test/p"),
        ("http://a.test/p?x=1&PHPSESSID=9f&y=2", "http://a.test/p?x=1&y=2"),
        ("http://a.test/p;jsessionid=ABC?x=1", "http://a.test/p?x=1"),
        ("http://a.test/p;JSESSIONID=ABC", "http://a.test/p"),
        ("http://a.test/p?session_id=1&sessionid=2", "http://a.test/p"),
        ("http://a.test/p?sidebar=1", "http://a.test/p?sidebar=1"),  # a name, not a prefix
        ("http://a.test/consider?x=1", "http://a.test/consider?x=1"),
    ],
)
def test_session_ids_are_removed(url: str, expected: str) -> None:
    assert strip(url) == expected


def test_custom_session_names_are_checked_too() -> None:
    assert SessionStripper(["token"])("http://a.test/?token=1&b=2") == "http://a.test/?b=2"
    assert SessionStripper([])("http://a.test/?sid=1") == "http://a.test/?sid=1"


@pytest.mark.parametrize(
    ("url", "count"),
    [
        ("http://a.test/", 0),
        ("http://a.test/a/b/c", 1),
        ("http://a.test/x/y/x/y/x?q=x/x/x/x", 3),  # the query does not count
    ],
)
def test_repeated_segments(url: str, count: int) -> None:
    assert repeated_segments(url) == count


def test_path_pattern_folds_digits_and_drops_the_query() -> None:
    assert path_pattern("http://a.test:8080/cal/2024/01/02?view=day") == "http://a.test:#/cal/#/#/#"
    assert path_pattern("http://a.test/cal/1999/12/31") == path_pattern("http://a.test/cal/2/3/4")


def lease(n: int, url: str, host: str = "a.test", attempt: int = 0) -> Lease:
    return Lease(id=n, url=url, host=host, depth=1, attempt=attempt)


@pytest.mark.anyio
async def test_pattern_budget_skips_once_spent_and_stops_following() -> None:
    guard = TrapGuard(TrapsSection(max_urls_per_pattern=2))
    assert await guard.admit(lease(1, "http://a.test/item/1")) is None
    assert await guard.admit(lease(2, "http://a.test/item/2")) is None
    reason = await guard.admit(lease(3, "http://a.test/item/3"))
    assert reason == "pattern_budget: 2 pages for http://a.test/item/#"
    assert await guard.admit(lease(4, "http://a.test/other")) is None
    assert guard.worth_following(["http://a.test/item/9", "http://a.test/x"]) == ["http://a.test/x"]


@pytest.mark.anyio
async def test_retries_are_not_counted_twice() -> None:
    guard = TrapGuard(TrapsSection(max_urls_per_pattern=1))
    assert await guard.admit(lease(1, "http://a.test/item/1")) is None
    assert await guard.admit(lease(1, "http://a.test/item/1", attempt=1)) is None


@pytest.mark.anyio
async def test_host_budget() -> None:
    guard = TrapGuard(TrapsSection(max_pages_per_host=2, max_urls_per_pattern=0))
    assert await guard.admit(lease(1, "http://a.test/1")) is None
    assert await guard.admit(lease(2, "http://a.test/2")) is None
    assert await guard.admit(lease(3, "http://a.test/3")) == "host_budget: 2 pages per host"
    assert await guard.admit(lease(4, "http://b.test/3", host="b.test")) is None
    urls = ["http://a.test/9", "http://b.test/9"]
    assert guard.worth_following(urls) == ["http://b.test/9"]


@pytest.mark.anyio
async def test_no_budgets_follow_everything_untouched() -> None:
    guard = TrapGuard(TrapsSection(max_urls_per_pattern=0))
    urls = ["http://a.test/1"]
    for n in range(100):
        assert await guard.admit(lease(n, f"http://a.test/{n}")) is None
    assert guard.worth_following(urls) is urls


@pytest.mark.anyio
async def test_past_its_bound_the_guard_keeps_the_counts_of_hosts_the_frontier_holds(
    tmp_path: Path,
) -> None:
    # Bound 1: admitting b and c forgets the idle ones, never a.test, which the frontier holds
    # (its counts would be read back from the database at each of its next pages).
    async with Store(tmp_path / "c.db") as store:
        guard = TrapGuard(TrapsSection(max_urls_per_pattern=10), max_hosts=1)
        await guard.resume(store, in_use=lambda host: host == "a.test")
        for n, host in enumerate(("a.test", "b.test", "c.test")):
            assert await guard.admit(lease(n, f"http://{host}/p", host=host)) is None
        assert list(guard._charges) == ["a.test"]
