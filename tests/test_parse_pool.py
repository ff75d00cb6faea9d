"""The parse pool (crawler.parse.pool): its worker processes give the same outcomes as
build_outcome itself, survive hostile pages and crashes, and leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from crawler.errors import InternalError
from crawler.models import Lease, Outcome, Response
from crawler.parse.outcome import LinkRules, build_outcome
from crawler.parse.pool import (
    ParsePoolFailed,
    ProcessParsePool,
    ThreadParsePool,
    make_parse_pool,
)
from tests.test_outcome import RULES

pytestmark = pytest.mark.anyio

NOW = "2026-11-25T00:00:00.000+00:00"
PAGE = (
    b"<html><head><title>T</title><meta name=description content=D>"
    b"<link rel=canonical href=/c></head><body>"
    b"<a href=/a>a</a> <a href='http://b.test/x'>b</a> <a rel=nofollow href=/n>n</a>"
    b"<a href='/s?sid=1&q=2'>s</a></body></html>"
)
HOSTILE = b"<div>" * 150_000 + b"x"
"""Takes lexbor about 40 s to parse (its work grows with the square of the nesting)."""


def lease(n: int, depth: int = 1) -> Lease:
    return Lease(id=n, url=f"http://a.test/p/{n}", host="a.test:80", depth=depth)


def html(body: bytes, **fields: object) -> Response:
    return Response(url="", status=200, content_type="text/html", body=body, **fields)  # type: ignore[arg-type]


CASES = [
    (lease(1), html(PAGE, notes=("truncated_encoding",), robots_tag="nofollow")),
    (lease(2), html(PAGE, elapsed=0.25, truncated=True)),
    (lease(3, depth=5), html(PAGE)),
    (lease(4), Response(url="", status=301, content_type=None, body=b"", location="/moved")),
    (lease(5), Response(url="", status=200, content_type="image/png", body=b"\x89PNG")),
    (lease(6), html(b"<html><meta name=robots content=noindex><a href=/z>z</a></html>")),
    (lease(7), Response(url="", status=404, content_type="text/html", body=b"<a href=/q>q</a>")),
]


async def test_the_same_outcomes_as_build_outcome_itself() -> None:
    async with ProcessParsePool(RULES, processes=2, timeout=30) as pool:
        got = await asyncio.gather(*(pool.outcome(le, r, NOW) for le, r in CASES))
    assert got == [build_outcome(le, r, RULES, NOW) for le, r in CASES]
    assert got[1].follow  # the cases are not trivially empty
    assert got[0].lease is CASES[0][0]


async def test_a_worker_process_offers_a_link_once_and_records_it_every_time() -> None:
    same = html(b"<a href=/a>a</a> <a href=/b>b</a>")
    async with ProcessParsePool(RULES, processes=1, timeout=30) as pool:
        first = await pool.outcome(lease(1), same, NOW)
        second = await pool.outcome(lease(2), same, NOW)
    assert first.follow == ["http://a.test/a", "http://a.test/b"]
    assert second.follow == []  # offered by the first page already
    assert second.links == first.links  # both pages' links are recorded
    assert second.rows is not None
    assert second.rows.hosts == ()


async def test_threads_give_the_same_outcomes() -> None:
    async with ThreadParsePool(RULES, threads=2) as pool:
        got = await asyncio.gather(*(pool.outcome(le, r, NOW) for le, r in CASES))
    assert got == [build_outcome(le, r, RULES, NOW) for le, r in CASES]


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_a_response_with_nothing_to_parse_is_handled_on_the_loop(kind: str) -> None:
    # Not entered: no child runs and no thread is asked, and outcome() must not need either.
    pool = (
        ThreadParsePool(RULES, threads=1)
        if kind == "threads"
        else ProcessParsePool(RULES, processes=1, timeout=30)
    )
    for le, response in CASES[3:5] + CASES[6:]:  # a redirect, an image, a 404
        step = pool.outcome(le, response, NOW)
        with pytest.raises(StopIteration) as done:
            step.send(None)  # finishes at once, without waiting for anything
        assert done.value.value == build_outcome(le, response, RULES, NOW)


async def test_a_pool_opens_once_and_closes_once() -> None:
    # A second ``async with`` would start a second set of children, and the first set would
    # never be stopped.
    pool = ProcessParsePool(RULES, processes=1, timeout=30)
    assert repr(pool) == "<ProcessParsePool state=new processes=1 waiting=0>"
    async with pool:
        await pool.outcome(*CASES[0], NOW)  # its child has started
        process = pool._children[0]._process
        assert process is not None
        with pytest.raises(RuntimeError, match="ProcessParsePool is open: it opens once"):
            await pool.__aenter__()
        assert pool._children[0]._process is process  # no second child was started
    assert process.returncode == 0  # stopped when the pool closed
    await pool.aclose()  # closing again does nothing
    assert repr(pool) == "<ProcessParsePool state=closed processes=1 waiting=0>"


def test_zero_processes_means_threads() -> None:
    assert isinstance(make_parse_pool(RULES, 0, 4, 30), ThreadParsePool)
    assert isinstance(make_parse_pool(RULES, 2, 4, 30), ProcessParsePool)


async def test_a_page_that_takes_too_long_is_recorded_unparsed_and_the_rest_go_on() -> None:
    async with ProcessParsePool(RULES, processes=1, timeout=0.5) as pool:
        async with asyncio.timeout(20):  # the parse alone would take ~40 s
            hostile, *others = await asyncio.gather(
                pool.outcome(lease(1), html(HOSTILE), NOW),
                *(pool.outcome(le, r, NOW) for le, r in CASES),
            )
    assert hostile.page.notes == "parse_timeout"
    assert hostile.page.status == 200
    assert hostile.page.size == len(HOSTILE)
    assert hostile.links == []
    assert hostile.follow == []
    # The jobs queued behind it were answered by the replacement process.
    assert others == [build_outcome(le, r, RULES, NOW) for le, r in CASES]


async def test_a_crashed_worker_process_costs_only_its_current_page() -> None:
    async with ProcessParsePool(RULES, processes=1, timeout=60) as pool:
        await pool.outcome(*CASES[0], NOW)  # the child has started
        child = pool._children[0]
        process = child._process
        assert process is not None

        async def crash() -> None:
            assert child.waiting() == 2  # both jobs queued, the hostile one first
            os.kill(process.pid, signal.SIGKILL)

        # Tasks start in the order they were created: the crash comes after both submissions.
        stuck = asyncio.create_task(pool.outcome(lease(1), html(HOSTILE), NOW))
        queued = asyncio.create_task(pool.outcome(*CASES[0], NOW))
        async with asyncio.timeout(20):
            crashed, after, _ = await asyncio.gather(stuck, queued, crash())
        assert child._process is not process  # replaced
    assert crashed.page.notes == "parse_crashed: exit code -9"
    assert crashed.links == []
    assert after == build_outcome(*CASES[0], RULES, NOW)


async def test_the_worker_process_ignores_ctrl_c_and_ends_with_the_crawl() -> None:
    async with ProcessParsePool(RULES, processes=1, timeout=30) as pool:
        await pool.outcome(*CASES[0], NOW)  # it is past its start-up, signals set
        process = pool._children[0]._process
        assert process is not None
        os.kill(process.pid, signal.SIGINT)
        os.kill(process.pid, signal.SIGTERM)
        outcome = await pool.outcome(*CASES[0], NOW)
        assert outcome == build_outcome(*CASES[0], RULES, NOW)
        assert pool._children[0]._process is process  # the same one answered
    assert process.returncode == 0  # it left when its input closed


@pytest.fixture
def no_python_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The parse worker's interpreter is a script that fails at once."""
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'no python here' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))


@pytest.mark.usefixtures("no_python_here")
async def test_a_worker_process_that_cannot_start_is_a_clear_error() -> None:
    # Even when no page needed parsing: it is raised when the pool closes.
    with pytest.raises(ParsePoolFailed, match="did not start"):
        async with ProcessParsePool(RULES, processes=1, timeout=30):
            pass


@pytest.mark.usefixtures("no_python_here")
async def test_pages_waiting_for_a_worker_process_that_cannot_start_get_the_error() -> None:
    # The child starts in the background: every page handed over meanwhile hears why, and
    # none waits for ever.
    answers: list[BaseException | Outcome] = []

    async def a_worker_hears_it() -> None:
        async with ProcessParsePool(RULES, processes=1, timeout=30) as pool:
            async with asyncio.timeout(20):
                answers.extend(
                    await asyncio.gather(
                        *(pool.outcome(*CASES[0], NOW) for _ in range(2)), return_exceptions=True
                    )
                )
            failed = answers[0]
            assert isinstance(failed, ParsePoolFailed)
            raise failed  # as a worker does; the pool's close adds no second error

    with pytest.raises(ParsePoolFailed) as raised:
        await a_worker_hears_it()
    assert raised.value is answers[0]
    assert len(answers) == 2
    for answer in answers:
        assert isinstance(answer, ParsePoolFailed)
        assert "did not start" in str(answer)


async def test_an_exception_in_build_outcome_is_that_pages_internal_error() -> None:
    # Rules that cannot work (the scope is not a Scope): the page's failure, with the
    # child's traceback for --debug; the worker process goes on with the next page.
    bad = LinkRules(
        scope="not a scope",  # type: ignore[arg-type]
        max_depth=5,
        max_url_length=2048,
        max_redirects=3,
        respect_nofollow=True,
        product_token="crawler",
        strip_sessions=RULES.strip_sessions,
        max_repeated_segments=3,
    )
    async with ProcessParsePool(bad, processes=1, timeout=30) as pool:
        with pytest.raises(InternalError, match=r"^AttributeError: 'str' object") as info:
            await pool.outcome(*CASES[1], NOW)
        assert info.value.describe().startswith("internal_error: AttributeError: ")
        assert "Traceback (most recent call last)" in info.value.__notes__[0]
        assert "build_outcome" in info.value.__notes__[0]
        image = await pool.outcome(*CASES[4], NOW)  # needs no scope
        assert image.page.status == 200  # the same child answers the next page
