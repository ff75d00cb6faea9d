"""The retry and cooldown policy (crawler.frontier.retries), with an injected clock: no sleeping."""

from __future__ import annotations

from crawler.config_load import load_config
from crawler.frontier.retries import RetryPolicy


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_http_date_retry_after_is_read_by_the_injected_clock() -> None:
    # Sun, 06 Nov 1994 08:49:37 GMT is 784111777 in Unix time (RFC 9110's example date).
    clock = FakeClock(784111777.0 - 90.0)
    policy = RetryPolicy(wall_clock=clock)
    assert policy.retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 90.0
    clock.now += 60.0
    assert policy.retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 30.0
    assert policy.retry_after("120") == 120.0  # delay-seconds need no clock
    assert policy.retry_after(None) is None


def test_retries_back_off_exponentially_until_they_are_spent() -> None:
    policy = RetryPolicy(max_retries=3, backoff=2.0, jitter=lambda low, high: high)
    assert [policy.retry_delay(attempt) for attempt in range(4)] == [3.0, 6.0, 12.0, None]
    assert policy.retry_delay(0, 7.5) == 7.5  # the server's own wait, instead of the backoff
    assert policy.retry_delay(3, 7.5) is None


def test_a_host_cooldown_doubles_without_retry_after_and_is_capped() -> None:
    policy = RetryPolicy(cooldown=10.0, max_retry_after=60.0)
    assert [policy.throttle_cooldown(None, n) for n in range(1, 5)] == [10.0, 20.0, 40.0, 60.0]
    assert policy.throttle_cooldown(5.0, 1) == 5.0
    assert policy.throttle_cooldown(-3.0, 1) == 0.0


def test_the_policy_takes_its_numbers_from_the_config_sections() -> None:
    config = load_config(
        overrides={
            "fetch.max_retries": 5,
            "fetch.retry_backoff": 0.5,
            "politeness.cooldown": 3.0,
            "politeness.max_retry_after": 30.0,
            "politeness.circuit_breaker": 4,
            "politeness.circuit_breaker_pause": 9.0,
            "politeness.robots_unreachable_retry": 7.0,
        },
        environ={},
    )
    policy = RetryPolicy.of(config.fetch, config.politeness)
    assert policy == RetryPolicy(
        max_retries=5,
        backoff=0.5,
        cooldown=3.0,
        max_retry_after=30.0,
        circuit_breaker=4,
        circuit_breaker_pause=9.0,
        robots_unreachable_retry=7.0,
    )
    # Its defaults are the config's: one definition of each number.
    defaults = load_config(environ={})
    assert RetryPolicy() == RetryPolicy.of(defaults.fetch, defaults.politeness)
