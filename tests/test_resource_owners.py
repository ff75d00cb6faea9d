"""The parts that hold the crawl's files, sockets and terminal share one lifecycle
(:class:`crawler.resource.AsyncResource`): opened once by ``async with``, closed once, and a
second ``aclose`` or a reopening attempt changes nothing."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from crawler.archive.bodies import BodyStore
from crawler.archive.warc import WarcArchive
from crawler.observe.gauges import DatabaseCountReader, Gauges
from crawler.observe.live import LiveDisplay
from crawler.observe.metrics import MetricsServer
from crawler.observe.stats import Stats
from crawler.resource import AsyncResource, ResourceState
from crawler.store.database import Store

pytestmark = pytest.mark.anyio

OWNERS: dict[str, Callable[[Path], AsyncResource]] = {
    "store": lambda tmp: Store(tmp / "crawl.db"),
    "warc": lambda tmp: WarcArchive(tmp / "warc", max_bytes=10**6, user_agent="t"),
    "bodies": lambda tmp: BodyStore(tmp / "crawl-bodies.db"),
    "metrics": lambda tmp: MetricsServer(
        Gauges(Stats(), lambda: None, DatabaseCountReader(tmp / "crawl.db")), "127.0.0.1", 0
    ),
    "live": lambda tmp: LiveDisplay(Console(file=io.StringIO())),
}


@pytest.mark.parametrize("owner", OWNERS)
async def test_a_resource_owner_opens_once_and_closes_once(tmp_path: Path, owner: str) -> None:
    resource = OWNERS[owner](tmp_path)
    async with resource:
        assert resource.state is ResourceState.OPEN
        with pytest.raises(RuntimeError, match="it opens once"):
            await resource.__aenter__()
    assert resource.state is ResourceState.CLOSED
    await resource.aclose()
    with pytest.raises(RuntimeError, match="is closed: it opens once"):
        async with resource:
            pytest.fail("a closed resource must not reopen")


async def test_a_closed_store_has_released_its_writer_lock(tmp_path: Path) -> None:
    store = Store(tmp_path / "crawl.db")
    async with store:
        pass
    await store.aclose()  # a second close must not release a lock someone else holds now
    async with Store(tmp_path / "crawl.db") as successor:
        assert successor.state is ResourceState.OPEN
