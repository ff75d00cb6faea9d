"""One lifecycle for everything the crawl opens and must give back: ``async with`` it, or call
:meth:`AsyncResource.aclose`; closing twice is a no-op.

A part that holds something (a connection, a socket, child processes, a file, tasks of its
own) subclasses :class:`AsyncResource` and writes two hooks instead of its own ``__aenter__``
and ``__aexit__``:

- :meth:`~AsyncResource._aopen`, run once by ``async with`` (the default does nothing, for a
  part whose resources are made in ``__init__``);
- :meth:`~AsyncResource._aclose`, run once by the first :meth:`~AsyncResource.aclose`, whether
  or not the part was opened, and also when ``_aopen`` failed half-way: it must release what
  exists and skip what does not.

The words mean one thing each across the crawler: *open* and *aclose* for a resource's life
(this module), *close* for a synchronous file-like object, *start* and *stop* only for
background tasks a part runs (see docs/architecture.md, "Vocabulary").
"""

from __future__ import annotations

import enum
from types import TracebackType
from typing import Self

__all__ = ["AsyncResource", "ResourceState"]


class ResourceState(enum.Enum):
    NEW = "new"
    """Made, not opened: only :meth:`AsyncResource.aclose` or ``async with`` may follow."""
    OPEN = "open"
    CLOSED = "closed"
    """Closed (or its opening failed); it cannot be opened again."""


class AsyncResource:
    """Base class: ``async with`` opens, leaving the block (or :meth:`aclose`) closes, once."""

    _state: ResourceState = ResourceState.NEW

    @property
    def state(self) -> ResourceState:
        return self._state

    async def _aopen(self) -> None:
        """Acquire what the resource needs; on failure, :meth:`_aclose` releases the rest."""

    async def _aclose(self) -> None:
        """Release what the resource holds; run once."""

    async def __aenter__(self) -> Self:
        if self._state is not ResourceState.NEW:
            raise RuntimeError(f"{type(self).__name__} is {self._state.value}: it opens once")
        self._state = ResourceState.OPEN
        try:
            await self._aopen()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release everything the resource holds. Idempotent; the state is ``CLOSED`` after
        it even if releasing raised (the error is not hidden, and a retry would not help)."""
        if self._state is ResourceState.CLOSED:
            return
        self._state = ResourceState.CLOSED
        await self._aclose()
