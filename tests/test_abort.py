from __future__ import annotations

import signal

import anyio
import pytest

from crawler.abort import AbortController, Aborted, AbortReason

pytestmark = pytest.mark.anyio

REASON = AbortReason("test", 99)


def test_reason_from_signal_gives_shell_exit_codes() -> None:
    assert AbortReason.from_signal(signal.SIGINT).exit_code == 130
    assert AbortReason.from_signal(signal.SIGTERM).exit_code == 143
    assert "SIGTERM" in AbortReason.from_signal(signal.SIGTERM).message


async def test_signal_starts_active_and_aborts_once() -> None:
    controller = AbortController()
    sig = controller.signal
    assert not sig.aborted
    assert sig.reason is None
    sig.throw_if_aborted()
    assert controller.abort(REASON) is True
    assert controller.abort(AbortReason("later", 1)) is False
    assert sig.reason == REASON
    with pytest.raises(Aborted) as info:
        sig.throw_if_aborted()
    assert info.value.reason == REASON
    assert "aborted" in repr(sig)


async def test_wait_returns_the_reason() -> None:
    controller = AbortController()
    result: list[AbortReason] = []

    async def waiter() -> None:
        result.append(await controller.signal.wait())

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert result == []
        controller.abort(REASON)
    assert result == [REASON]


async def test_callbacks_run_once_and_can_be_removed() -> None:
    controller = AbortController()
    calls: list[str] = []
    kept = lambda r: calls.append("kept")  # noqa: E731
    removed = lambda r: calls.append("removed")  # noqa: E731
    controller.signal.add_callback(kept)
    controller.signal.add_callback(removed)
    controller.signal.remove_callback(removed)
    controller.abort(REASON)
    controller.abort(REASON)
    controller.signal.add_callback(lambda r: calls.append("late"))  # already aborted: at once
    assert calls == ["kept", "late"]
