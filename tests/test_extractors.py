"""Where extraction runs: the worker processes (crawler.extractors) give the same outcomes as
build_outcome itself, survive hostile pages and crashes, and leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from crawler.errors import InternalError
from crawler.extractors import (
    ExtractorFailed,
    ProcessExtractor,
    ThreadExtractor,
    make_extractor,
)
from crawler.models import Lease, Response
from crawler.outcome import LinkRules, build_outcome
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
    async with ProcessExtractor(RULES, processes=2, timeout=30) as extractor:
        got = await asyncio.gather(*(extractor.outcome(le, r, NOW) for le, r in CASES))
    assert got == [build_outcome(le, r, RULES, NOW) for le, r in CASES]
    assert got[1].follow  # the cases are not trivially empty
    assert got[0].lease is CASES[0][0]


async def test_a_worker_process_offers_a_link_once_and_records_it_every_time() -> None:
    same = html(b"<a href=/a>a</a> <a href=/b>b</a>")
    async with ProcessExtractor(RULES, processes=1, timeout=30) as extractor:
        first = await extractor.outcome(lease(1), same, NOW)
        second = await extractor.outcome(lease(2), same, NOW)
    assert first.follow == ["http://a.test/a", "http://a.test/b"]
    assert second.follow == []  # offered by the first page already
    assert second.links == first.links  # both pages' links are recorded
    assert second.rows is not None
    assert second.rows.hosts == ()


async def test_threads_give_the_same_outcomes() -> None:
    async with ThreadExtractor(RULES, threads=2) as extractor:
        got = await asyncio.gather(*(extractor.outcome(le, r, NOW) for le, r in CASES))
    assert got == [build_outcome(le, r, RULES, NOW) for le, r in CASES]


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_a_response_with_nothing_to_parse_is_extracted_on_the_loop(kind: str) -> None:
    # Not entered: no child runs and no thread is asked, and outcome() must not need either.
    extractor = (
        ThreadExtractor(RULES, threads=1)
        if kind == "threads"
        else ProcessExtractor(RULES, processes=1, timeout=30)
    )
    for le, response in CASES[3:5] + CASES[6:]:  # a redirect, an image, a 404
        step = extractor.outcome(le, response, NOW)
        with pytest.raises(StopIteration) as done:
            step.send(None)  # finishes at once, without waiting for anything
        assert done.value.value == build_outcome(le, response, RULES, NOW)


def test_zero_processes_means_threads() -> None:
    assert isinstance(make_extractor(RULES, 0, 4, 30), ThreadExtractor)
    assert isinstance(make_extractor(RULES, 2, 4, 30), ProcessExtractor)


async def test_a_page_that_takes_too_long_is_recorded_unparsed_and_the_rest_go_on() -> None:
    async with ProcessExtractor(RULES, processes=1, timeout=0.5) as extractor:
        async with asyncio.timeout(20):  # the parse alone would take ~40 s
            hostile, *others = await asyncio.gather(
                extractor.outcome(lease(1), html(HOSTILE), NOW),
                *(extractor.outcome(le, r, NOW) for le, r in CASES),
            )
    assert hostile.page.notes == "parse_timeout"
    assert hostile.page.status == 200
    assert hostile.page.size == len(HOSTILE)
    assert hostile.links == []
    assert hostile.follow == []
    # The jobs queued behind it were answered by the replacement process.
    assert others == [build_outcome(le, r, RULES, NOW) for le, r in CASES]


async def test_a_crashed_worker_process_costs_only_its_current_page() -> None:
    async with ProcessExtractor(RULES, processes=1, timeout=60) as extractor:
        await extractor.outcome(*CASES[0], NOW)  # the child has started
        child = extractor._children[0]
        process = child._process
        assert process is not None

        async def crash() -> None:
            assert child.waiting() == 2  # both jobs queued, the hostile one first
            os.kill(process.pid, signal.SIGKILL)

        # Tasks start in the order they were created: the crash comes after both submissions.
        stuck = asyncio.create_task(extractor.outcome(lease(1), html(HOSTILE), NOW))
        queued = asyncio.create_task(extractor.outcome(*CASES[0], NOW))
        async with asyncio.timeout(20):
            crashed, after, _ = await asyncio.gather(stuck, queued, crash())
        assert child._process is not process  # replaced
    assert crashed.page.notes == "parse_crashed: exit code -9"
    assert crashed.links == []
    assert after == build_outcome(*CASES[0], RULES, NOW)


async def test_the_worker_process_ignores_ctrl_c_and_ends_with_the_crawl() -> None:
    async with ProcessExtractor(RULES, processes=1, timeout=30) as extractor:
        await extractor.outcome(*CASES[0], NOW)  # it is past its start-up, signals set
        process = extractor._children[0]._process
        assert process is not None
        os.kill(process.pid, signal.SIGINT)
        os.kill(process.pid, signal.SIGTERM)
        outcome = await extractor.outcome(*CASES[0], NOW)
        assert outcome == build_outcome(*CASES[0], RULES, NOW)
        assert extractor._children[0]._process is process  # the same one answered
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
    # Even when no page needed parsing: it is raised when the extractor closes.
    with pytest.raises(ExtractorFailed, match="did not start"):
        async with ProcessExtractor(RULES, processes=1, timeout=30):
            pass


@pytest.mark.usefixtures("no_python_here")
async def test_pages_waiting_for_a_worker_process_that_cannot_start_get_the_error() -> None:
    # The child starts in the background: every page handed over meanwhile hears why, and
    # none waits for ever.
    extractor = ProcessExtractor(RULES, processes=1, timeout=30)
    await extractor.__aenter__()
    async with asyncio.timeout(20):
        answers = await asyncio.gather(
            *(extractor.outcome(*CASES[0], NOW) for _ in range(2)), return_exceptions=True
        )
    await extractor.__aexit__(ExtractorFailed, answers[0], None)  # as when a worker raised
    assert len(answers) == 2
    for answer in answers:
        assert isinstance(answer, ExtractorFailed)
        assert "did not start" in str(answer)


async def test_an_exception_in_extraction_is_that_pages_internal_error() -> None:
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
    async with ProcessExtractor(bad, processes=1, timeout=30) as extractor:
        with pytest.raises(InternalError, match=r"^AttributeError: 'str' object") as info:
            await extractor.outcome(*CASES[1], NOW)
        assert info.value.describe().startswith("internal_error: AttributeError: ")
        assert "Traceback (most recent call last)" in info.value.__notes__[0]
        assert "build_outcome" in info.value.__notes__[0]
        image = await extractor.outcome(*CASES[4], NOW)  # needs no scope
        assert image.page.status == 200  # the same child answers the next page
