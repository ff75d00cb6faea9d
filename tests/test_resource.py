"""The async-resource base: opened once, closed once, closed when opening fails."""

from __future__ import annotations

import pytest

from crawler.resource import AsyncResource, ResourceState

pytestmark = pytest.mark.anyio


class Recorder(AsyncResource):
    def __init__(self, fail_open: bool = False, fail_close: bool = False) -> None:
        self.events: list[str] = []
        self.fail_open = fail_open
        self.fail_close = fail_close

    async def _aopen(self) -> None:
        self.events.append("open")
        if self.fail_open:
            raise OSError("no socket")

    async def _aclose(self) -> None:
        self.events.append("close")
        if self.fail_close:
            raise OSError("close failed")


async def test_async_with_opens_then_closes_once_even_if_closed_inside() -> None:
    resource = Recorder()
    assert resource.state is ResourceState.NEW
    async with resource as entered:
        assert entered is resource
        assert resource.state is ResourceState.OPEN
        await resource.aclose()
    await resource.aclose()
    assert resource.events == ["open", "close"]
    assert resource.state is ResourceState.CLOSED


async def test_a_failed_open_releases_what_was_acquired() -> None:
    resource = Recorder(fail_open=True)
    with pytest.raises(OSError, match="no socket"):
        async with resource:
            pytest.fail("the block must not run")
    assert resource.events == ["open", "close"]
    assert resource.state is ResourceState.CLOSED


async def test_a_resource_never_opened_is_closed_by_aclose() -> None:
    resource = Recorder()
    await resource.aclose()
    await resource.aclose()
    assert resource.events == ["close"]


async def test_it_opens_once() -> None:
    resource = Recorder()
    async with resource:
        with pytest.raises(RuntimeError, match="Recorder is open: it opens once"):
            await resource.__aenter__()
    with pytest.raises(RuntimeError, match="Recorder is closed"):
        async with resource:
            pytest.fail("a closed resource must not reopen")
    assert resource.events == ["open", "close"]


async def test_a_failing_close_raises_once_and_leaves_it_closed() -> None:
    resource = Recorder(fail_close=True)
    with pytest.raises(OSError, match="close failed"):
        await resource.aclose()
    await resource.aclose()
    assert resource.state is ResourceState.CLOSED
    assert resource.events == ["close"]
