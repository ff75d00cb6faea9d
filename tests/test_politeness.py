"""HostSlot rules, with plain numbers for time: no loop, no sleeping."""

from __future__ import annotations

from crawler.models import Lease
from crawler.politeness import HostSlot


def lease(n: int, attempt: int = 0) -> Lease:
    return Lease(id=n, url=f"http://h/{n}", host="h", depth=0, attempt=attempt)


def slot(concurrency: int = 2, delay: float = 1.0, urls: int = 3) -> HostSlot:
    s = HostSlot("h", concurrency, delay)
    s.window.extend(lease(i) for i in range(urls))
    return s


def test_an_empty_slot_is_never_ready() -> None:
    assert slot(urls=0).ready_at() is None


def test_a_fresh_slot_is_ready_at_once() -> None:
    assert slot().ready_at() == float("-inf")


def test_starts_are_spaced_by_the_delay() -> None:
    s = slot(concurrency=5, delay=1.5)
    s.start(10.0)
    assert s.ready_at() == 11.5


def test_no_delay_means_ready_again_at_once() -> None:
    s = slot(concurrency=5, delay=0.0)
    s.start(10.0)
    assert s.ready_at() == 10.0


def test_concurrency_cap_blocks_until_a_request_finishes() -> None:
    s = slot(concurrency=2, delay=0.0)
    s.start(0.0)
    s.start(0.0)
    assert s.ready_at() is None
    s.finish()
    assert s.ready_at() == 0.0


def test_urls_come_out_in_window_order() -> None:
    s = slot(concurrency=3, delay=0.0)
    assert [s.start(0.0).id for _ in range(3)] == [0, 1, 2]


def test_a_retry_waits_for_its_not_before_time() -> None:
    s = slot(urls=0, delay=0.0)
    s.schedule_retry(lease(7, attempt=1), not_before=30.0)
    assert s.has_work()
    assert s.ready_at() == 30.0


def test_a_retry_also_obeys_the_delay() -> None:
    s = slot(urls=1, delay=5.0, concurrency=2)
    s.start(28.0)  # next start allowed at 33
    s.schedule_retry(lease(7, attempt=1), not_before=30.0)
    assert s.ready_at() == 33.0


def test_a_due_retry_goes_before_the_window() -> None:
    s = slot(urls=2, delay=0.0, concurrency=5)
    s.schedule_retry(lease(7, attempt=1), not_before=5.0)
    assert s.start(1.0).id == 0  # the retry is not due yet
    assert s.start(6.0).id == 7
