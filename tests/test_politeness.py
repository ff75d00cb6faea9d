"""HostSlot rules, with plain numbers for time: no loop, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crawler.frontier.politeness import HOST_WIDE_503_PATHS, HostSlot
from crawler.frontier.retries import RETRY_AFTER_LIMIT, RetryPolicy, retry_after_seconds
from crawler.models import Lease

COOLDOWN_5S = RetryPolicy(cooldown=5.0, max_retry_after=600.0)
"""429/503 without Retry-After: 5 s, doubling; at most 600 s."""


def breaker(threshold: int) -> RetryPolicy:
    """A circuit breaker tripping after ``threshold`` failures, for a 60 s pause."""
    return RetryPolicy(circuit_breaker=threshold, circuit_breaker_pause=60.0)


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
    first = s.begin(10.0)
    s.sent(10.0, 1.5, first.url)
    assert s.ready_at() == 11.5


def test_with_a_delay_nothing_starts_before_the_last_url_handed_out_is_sent() -> None:
    # Two at once allowed, 1 s apart. The first URL, handed out at t=10, is still connecting
    # at t=11.2: had the second started at 11, its request could reach the server before or
    # just after the first one's. It waits for that send and is spaced from it.
    s = slot(concurrency=2, delay=1.0)
    first = s.begin(10.0)
    assert s.ready_at() is None
    s.sent(11.2, 1.0, "http://h/robots.txt")  # another request of the host's: not the URL's
    assert s.ready_at() is None
    s.sent(11.5, 1.0, first.url)
    assert s.ready_at() == 12.5


def test_a_url_that_never_goes_out_frees_its_host() -> None:
    s = slot(concurrency=2, delay=1.0)
    first = s.begin(10.0)
    s.finish(first, fetched=False)  # refused before any request (a connect that failed, say)
    assert s.ready_at() is not None


def test_without_a_delay_unsent_urls_do_not_hold_the_host() -> None:
    s = slot(concurrency=2, delay=0.0)
    s.begin(10.0)
    assert s.ready_at() == 10.0


def test_no_delay_means_ready_again_at_once() -> None:
    s = slot(concurrency=5, delay=0.0)
    s.begin(10.0)
    assert s.ready_at() == 10.0


def test_concurrency_cap_blocks_until_a_request_finishes() -> None:
    s = slot(concurrency=2, delay=0.0)
    first = s.begin(0.0)
    s.begin(0.0)
    assert s.ready_at() is None
    s.finish(first)
    assert s.ready_at() == 0.0


def test_urls_come_out_in_window_order() -> None:
    s = slot(concurrency=3, delay=0.0)
    assert [s.begin(0.0).id for _ in range(3)] == [0, 1, 2]


def test_a_retry_waits_for_its_not_before_time() -> None:
    s = slot(urls=0, delay=0.0)
    s.schedule_retry(lease(7, attempt=1), not_before=30.0)
    assert s.has_work()
    assert s.ready_at() == 30.0


def test_a_retry_also_obeys_the_delay() -> None:
    s = slot(urls=1, delay=5.0, concurrency=2)
    s.sent(28.0, 5.0, s.begin(28.0).url)  # next start allowed at 33
    s.schedule_retry(lease(7, attempt=1), not_before=30.0)
    assert s.ready_at() == 33.0


def test_a_due_retry_goes_before_the_window() -> None:
    s = slot(urls=2, delay=0.0, concurrency=5)
    s.schedule_retry(lease(7, attempt=1), not_before=5.0)
    assert s.begin(1.0).id == 0  # the retry is not due yet
    assert s.begin(6.0).id == 7


# -- cooldowns, throttling, circuit breaker ---------------------------------------------------


def test_a_cooldown_holds_the_host_until_it_ends() -> None:
    s = slot(delay=0.0)
    s.cool_down(50.0)
    assert s.ready_at() == 50.0
    s.cool_down(40.0)  # an earlier end never shortens it
    assert s.ready_at() == 50.0


def test_throttled_uses_retry_after_capped() -> None:
    s = slot()
    assert s.throttled(100.0, 30.0, COOLDOWN_5S) == 30.0
    assert s.ready_at() == 130.0
    assert s.throttled(100.0, 9999.0, COOLDOWN_5S) == 600.0


def test_throttled_without_retry_after_doubles_until_a_success() -> None:
    s = slot()
    waits = [s.throttled(0.0, None, COOLDOWN_5S) for _ in range(4)]
    assert waits == [5.0, 10.0, 20.0, 40.0]
    s.succeeded()
    assert s.throttled(0.0, None, COOLDOWN_5S) == 5.0


def test_circuit_breaker_trips_after_consecutive_failures() -> None:
    s = slot()
    assert [s.failed(10.0, breaker(3)) for _ in range(3)] == [False, False, True]
    assert s.ready_at() == 70.0
    assert s.failed(80.0, breaker(3)) is True  # tripped: one more failure re-trips
    assert s.ready_at() == 140.0
    s.succeeded()
    assert s.failed(200.0, breaker(3)) is False


def test_a_503_speaks_for_the_host_only_after_several_distinct_failures() -> None:
    s = slot()
    assert s.speaks_for_host(429)  # a rate limit is always the host's
    s.failed(0.0, breaker(10))
    assert not s.speaks_for_host(503)  # one broken path
    for _ in range(HOST_WIDE_503_PATHS - 1):
        s.failed(0.0, breaker(10))
    assert s.speaks_for_host(503)
    s.succeeded()
    assert not s.speaks_for_host(503)


def test_circuit_breaker_off() -> None:
    s = slot()
    assert not any(s.failed(0.0, breaker(0)) for _ in range(50))


def test_a_success_between_failures_resets_the_count() -> None:
    s = slot()
    s.failed(0.0, breaker(3))
    s.failed(0.0, breaker(3))
    s.succeeded()
    assert s.failed(0.0, breaker(3)) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # now is 07:28:00
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("", None),
        (None, None),
        ("-5", None),
        # Unreadable values are no answer, never an exception (issue 23: each one ended the
        # crawl, and every resume leased the same URL first and died again).
        ("\u00b2", None),  # '²'.isdigit() is True
        ("\u0663", None),  # an Arabic-Indic three
        ("Wed, 99999999999999999999 Oct 2015 07:28:30 GMT", None),
        ("Wed, 21 Oct 2015 99999999999999999999:28:30 GMT", None),
        ("Wed, 21 Oct 2015 07:28:30 +99999999999999999999", None),
        ("9" * 400, RETRY_AFTER_LIMIT),
        ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_LIMIT),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds(value, now) == expected


def test_delay_jitter_spreads_a_delay_within_its_bounds_and_leaves_none_alone() -> None:
    import random

    from crawler.frontier.politeness import DelayJitter

    jitter = DelayJitter(0.25, random.Random(7))
    spread = [jitter(2.0) for _ in range(200)]
    assert all(1.5 <= d <= 2.5 for d in spread)
    assert max(spread) - min(spread) > 0.8  # spread out, not one value
    assert jitter(0.0) == 0.0
    assert DelayJitter(0.0)(2.0) == 2.0
