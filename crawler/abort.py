"""AbortController / AbortSignal: one way to ask every part of a crawl to stop, and say why.

The runtime owns the only :class:`AbortController`; every part that waits or loops receives its
read-only :class:`AbortSignal`. Aborting is a request, not a cancellation: each part decides how
to wind down (the frontier stops leasing, the engine gives in-flight fetches a grace period, the
sink flushes). Cancellation is kept for the forceful path: of the fetches still on the wire
when grace runs out, of everything when a second signal arrives.

Aborting happens once; later calls keep the first reason, as in the DOM API this mirrors.
"""

from __future__ import annotations

import asyncio
import signal as _signal
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AbortReason:
    """Why a crawl was asked to stop, and the exit code that reports it."""

    message: str
    exit_code: int

    @classmethod
    def from_signal(cls, signum: int) -> AbortReason:
        name = _signal.Signals(signum).name
        # The shell convention: 128 + signal number (130 for SIGINT, 143 for SIGTERM).
        return cls(f"received {name}", 128 + signum)


class Aborted(Exception):
    """Raised by :meth:`AbortSignal.throw_if_aborted`; carries the reason."""

    def __init__(self, reason: AbortReason) -> None:
        super().__init__(reason.message)
        self.reason = reason


class AbortSignal:
    """The read side: ``aborted``, ``reason``, ``await wait()``, ``throw_if_aborted()``."""

    __slots__ = ("_callbacks", "_event", "_reason")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._reason: AbortReason | None = None
        self._callbacks: list[Callable[[AbortReason], None]] = []

    @property
    def aborted(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> AbortReason | None:
        return self._reason

    async def wait(self) -> AbortReason:
        """Return once aborted (at once if already)."""
        await self._event.wait()
        assert self._reason is not None
        return self._reason

    def throw_if_aborted(self) -> None:
        if self._reason is not None:
            raise Aborted(self._reason)

    def add_callback(self, callback: Callable[[AbortReason], None]) -> None:
        """Call ``callback(reason)`` synchronously on abort (at once if already aborted).

        For parts that must react without a task of their own, e.g. waking waiters.
        """
        if self._reason is not None:
            callback(self._reason)
        else:
            self._callbacks.append(callback)

    def remove_callback(self, callback: Callable[[AbortReason], None]) -> None:
        """Forget ``callback`` (no error if it was never added or already ran)."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def __repr__(self) -> str:
        state = f"aborted reason={self._reason.message!r}" if self._reason else "active"
        return f"<AbortSignal {state}>"


class AbortController:
    """The write side; owned by whoever decides that the crawl must stop."""

    __slots__ = ("signal",)

    def __init__(self) -> None:
        self.signal = AbortSignal()

    def abort(self, reason: AbortReason) -> bool:
        """Abort with ``reason``. Returns False (and changes nothing) if already aborted."""
        sig = self.signal
        if sig._reason is not None:
            return False
        sig._reason = reason
        sig._event.set()
        callbacks, sig._callbacks = sig._callbacks, []
        for callback in callbacks:
            callback(reason)
        return True
