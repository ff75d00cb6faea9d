"""Adaptive politeness (``politeness.adaptive``): the rule with plain numbers, the host's slot
with an injected clock, and one real crawl of a host that slows down under load, its request
gaps measured on the server side, with adaptive off as the negative control."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crawler.abort import AbortController
from crawler.config import PolitenessSection
from crawler.engine import Crawl
from crawler.frontier.adaptive import AdaptiveDelay
from crawler.frontier.host_feedback import HostFeedback
from crawler.frontier.politeness import HostSlot
from crawler.frontier.retries import RetryPolicy
from crawler.models import Lease
from tests.helpers import FakeClock, crawl_config, min_gap
from tests.servers import Request, Response, TestServer, html

RULE = AdaptiveDelay(factor=2.0, max_delay=10.0)


def test_a_slower_answer_raises_the_delay_to_its_target_at_once() -> None:
    assert RULE.next(current=0.5, floor=0.0, response_time=1.5, status=200) == 3.0


def test_a_faster_answer_moves_the_delay_halfway_down() -> None:
    assert RULE.next(current=3.0, floor=0.0, response_time=0.5, status=200) == 2.0


def test_the_delay_never_falls_below_the_hosts_own_delay() -> None:
    assert RULE.next(current=3.0, floor=2.5, response_time=0.1, status=200) == 2.5


def test_the_delay_never_rises_above_the_maximum() -> None:
    assert RULE.next(current=1.0, floor=0.0, response_time=60.0, status=200) == 10.0


def test_an_own_delay_above_the_maximum_still_holds() -> None:
    assert RULE.next(current=12.0, floor=12.0, response_time=60.0, status=200) == 12.0


@pytest.mark.parametrize("status", [301, 404, 429, 500, 503])
def test_an_error_answer_never_shrinks_the_delay(status: int) -> None:
    assert RULE.next(current=3.0, floor=0.0, response_time=0.01, status=status) == 3.0


def test_a_slow_error_answer_still_raises_the_delay() -> None:
    assert RULE.next(current=1.0, floor=0.0, response_time=2.0, status=503) == 4.0


def feedback(clock: FakeClock, **politeness: object) -> tuple[HostFeedback, HostSlot, list[str]]:
    """A host ``h`` (1 s delay, one request at a time) and the feedback that adapts it; the
    list collects the hosts whose slot changed."""
    section = PolitenessSection(per_host_delay=1.0, per_host_concurrency=1, **politeness)  # type: ignore[arg-type]
    slot = HostSlot.configured(section, "h")
    changed: list[str] = []
    hosts = HostFeedback(
        lambda name: slot, changed.append, politeness=section, policy=RetryPolicy(), clock=clock
    )
    return hosts, slot, changed


def answered(slot: HostSlot, clock: FakeClock) -> None:
    """One URL of ``slot`` handed out, sent and done with at ``clock``'s time."""
    slot.window.append(Lease(id=1, url="http://h/1", host="h", depth=0))
    lease = slot.begin(clock())
    slot.sent(clock(), slot.delay, lease.url)
    slot.finish(lease)


def test_a_slow_host_starts_its_next_request_later() -> None:
    clock = FakeClock(100.0)
    hosts, slot, changed = feedback(clock, adaptive=True, adaptive_factor=2.0)
    answered(slot, clock)
    clock.now = 101.5
    hosts.responded("h", 1.5, 200)
    slot.window.append(Lease(id=2, url="http://h/2", host="h", depth=0))
    assert slot.ready_at() == 103.0  # 3 s after the last request went out, not the 1 s delay
    assert changed == ["h"]


def test_without_adaptive_the_delay_stays() -> None:
    clock = FakeClock(100.0)
    hosts, slot, changed = feedback(clock, adaptive=False, adaptive_factor=2.0)
    answered(slot, clock)
    hosts.responded("h", 1.5, 200)
    slot.window.append(Lease(id=2, url="http://h/2", host="h", depth=0))
    assert (slot.delay, slot.ready_at(), changed) == (1.0, 101.0, [])


def test_a_fast_host_never_goes_below_its_crawl_delay() -> None:
    clock = FakeClock()
    hosts, slot, _ = feedback(clock, adaptive=True, max_crawl_delay=30.0)
    hosts.set_crawl_delay("h", 4.0)
    for _ in range(10):
        hosts.responded("h", 0.01, 200)
    assert slot.delay == 4.0


def test_a_crawl_delay_learnt_later_keeps_a_longer_adapted_delay() -> None:
    clock = FakeClock()
    hosts, slot, _ = feedback(clock, adaptive=True, adaptive_factor=1.0)
    hosts.responded("h", 6.0, 200)
    hosts.set_crawl_delay("h", 2.0)
    assert (slot.delay, slot.own_delay) == (6.0, 2.0)


# -- a real crawl ---------------------------------------------------------------------------

PAGES = 8
WORKERS = 4
BASE_LATENCY = 0.1
"""Seconds the host takes for one request alone; each one in flight beside it adds as much."""


def loaded_site() -> TestServer:
    """A host whose answers take longer the more requests it is answering at once."""
    in_flight = 0

    async def answer(request: Request) -> Response:
        nonlocal in_flight
        in_flight += 1
        try:
            await asyncio.sleep(BASE_LATENCY * in_flight)  # the host's work, not a wait for us
        finally:
            in_flight -= 1
        return html(request.path)

    return TestServer(answer)


@pytest.mark.anyio
@pytest.mark.parametrize("adaptive", [True, False])
async def test_a_host_that_slows_down_under_load_is_asked_less_often(
    tmp_path: Path, adaptive: bool
) -> None:
    cfg = crawl_config(
        WORKERS,
        **{
            "politeness.robots": False,
            "politeness.adaptive": adaptive,
            "politeness.adaptive_factor": 3.0,
        },
    )
    with loaded_site() as site:
        seeds = [site.url(f"/slow/{n}") for n in range(PAGES)]
        report = await Crawl(cfg, seeds, tmp_path / "crawl.db", AbortController().signal).run()
    assert report.stats.pages == PAGES
    # With no delay configured the first WORKERS requests go out together either way. From the
    # first answer on, an adapted delay is at least 3 x the shortest answer (0.1 s alone):
    # 0.3 s between arrivals. Without it, the next request follows each answer, and answers
    # come back about 0.1 s apart (their latency grows by 0.1 s per request in flight).
    later_gap = min_gap(sorted(site.request_times("/slow/"))[WORKERS - 1 :])
    if adaptive:
        assert later_gap >= 0.2
    else:
        assert later_gap < 0.2
