"""The parse pool: where a response becomes its :class:`~crawler.models.Outcome`. An HTML page
goes to a worker process (the default) or a thread, never the loop; a response with nothing to
parse (not HTML, an error status, a redirect) is done on the loop, by the same
:class:`~crawler.parse.outcome.LinkRules`, since a trip off it would cost more than the work.

:func:`crawler.parse.outcome.build_outcome` (parse the HTML, resolve and canonicalize every link) is
the crawl's largest CPU cost after HTTP. In a thread it still holds the GIL for most of that
time, so the event loop and the parsing share one core: a crawl measured on the benchmark's
single-host scenario spent 1.25 ms of event loop, 0.97 ms of parse threads and 0.43 ms of
database thread per page, all serialized by the GIL. A :class:`ProcessParsePool` gives the
parsing cores of its own and leaves the loop about 0.05 ms of messaging per page.

Each process slot runs one child, ``python -m crawler.parse.child`` (its protocol is described
there). A child remembers the URLs it offered to the frontier lately and does not offer them
again (:mod:`crawler.parse.offered`); threads share no such memory and offer every link, which the
frontier's table ignores when known.

A child handles its jobs in order, one at a time, so the oldest unanswered job is the one it is
working on. If that job takes longer than ``runtime.parse_timeout`` (a hostile page can make
the parser's work grow with the square of its nesting depth) the child is killed, the page is
recorded unparsed with the note ``parse_timeout``, and its other jobs go to a new child. A
child that dies (``parse_crashed``) is handled the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import sys
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable

import msgspec

from crawler.errors import FatalError, InternalError
from crawler.models import Lease, Outcome, Response
from crawler.parse.child import LENGTH, READY, UNUSABLE, Answer, Job, frame
from crawler.parse.outcome import LinkRules, build_outcome, needs_parsing, unparsed_outcome
from crawler.resource import AsyncResource

log = logging.getLogger("crawler")

START_TIMEOUT = 60.0
"""Seconds a child may take to start (import Python and the parser) before the crawl gives up."""
STOP_TIMEOUT = 5.0
"""Seconds a child gets to exit after its stdin closes before it is killed."""


class ParsePoolFailed(FatalError):
    """No parse worker process can be started: the installation is broken, the crawl ends
    (an exception in ``build_outcome`` is one page's :class:`InternalError` instead)."""


class ParsePool(AsyncResource, ABC):
    """Turns a response into an :class:`Outcome` by the crawl's :class:`LinkRules`: an HTML page
    off the event loop, any other response (no body to parse) on it. ``async with`` it."""

    def __init__(self, rules: LinkRules) -> None:
        self._rules = rules

    async def outcome(self, lease: Lease, response: Response, fetched_at: str) -> Outcome:
        if not needs_parsing(response):
            return build_outcome(lease, response, self._rules, fetched_at)
        return await self._parsed(lease, response, fetched_at)

    @abstractmethod
    async def _parsed(self, lease: Lease, response: Response, fetched_at: str) -> Outcome:
        """The outcome of an HTML ``response``, built off the event loop."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} state={self.state.value}>"


class ThreadParsePool(ParsePool):
    """``asyncio.to_thread``, ``threads`` pages at once at most (``parse_processes = 0``)."""

    def __init__(self, rules: LinkRules, threads: int) -> None:
        super().__init__(rules)
        self._slots = asyncio.Semaphore(threads)

    async def _parsed(self, lease: Lease, response: Response, fetched_at: str) -> Outcome:
        async with self._slots:
            return await asyncio.to_thread(build_outcome, lease, response, self._rules, fetched_at)


class ProcessParsePool(ParsePool):
    """``processes`` long-lived children; each job goes to the one with the fewest waiting."""

    def __init__(
        self,
        rules: LinkRules,
        processes: int,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rules)
        self._pickled_rules = pickle.dumps(rules)
        self._timeout = timeout
        self._clock = clock
        self._children = [_Child(self._pickled_rules, clock) for _ in range(processes)]
        self._watchdog: asyncio.Task[None] | None = None

    async def _parsed(self, lease: Lease, response: Response, fetched_at: str) -> Outcome:
        child = min(self._children, key=_Child.waiting)
        return await child.submit(lease, response, fetched_at)

    async def _aopen(self) -> None:
        # The children start while the crawl does (robots.txt, the first fetches), not before
        # it: a page handed over before its child is ready waits in the child's queue.
        for child in self._children:
            child.launch()
        self._watchdog = asyncio.create_task(self._watch(), name="parse-pool-watchdog")

    async def _aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self._stop_children()
        # A child that could not start is a broken installation: say so even when no page
        # needed parsing. Not when an exception is already on its way out of the pool's
        # ``async with`` (a worker's ParsePoolFailed for a page that needed parsing, a
        # cancellation): that one is what the caller hears.
        broken = next((child.broken for child in self._children if child.broken), None)
        if broken is not None and sys.exception() is None:
            raise broken

    def __repr__(self) -> str:
        waiting = sum(child.waiting() for child in self._children)
        return (
            f"<ProcessParsePool state={self.state.value} processes={len(self._children)} "
            f"waiting={waiting}>"
        )

    async def _stop_children(self) -> None:
        # Shielded: on cancellation the children must still be reaped, not left behind.
        await asyncio.shield(asyncio.gather(*(child.stop() for child in self._children)))

    async def _watch(self) -> None:
        """Kill a child stuck on one page for longer than the timeout (checked 4 times per
        timeout, at least once a second)."""
        interval = min(1.0, self._timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            for child in self._children:
                if child.working_since(now) > self._timeout:
                    child.kill("parse_timeout")


class _Child:
    """One process slot: the current child process, and the jobs it has not answered yet."""

    def __init__(self, rules: bytes, clock: Callable[[], float]) -> None:
        self._rules = rules
        self._clock = clock
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = False
        self._jobs: OrderedDict[int, tuple[Job, asyncio.Future[Outcome]]] = OrderedDict()
        self._head_since = 0.0
        """When the oldest unanswered job became the one the child works on."""
        self._next_id = 0
        self._kill_reason: str | None = None
        self._culprit: int | None = None
        """The job a killed child was working on (it may have answered just before)."""
        self.broken: ParsePoolFailed | None = None
        """Why no child can take jobs (the last start failed); then every job fails."""
        self._starter: asyncio.Task[None] | None = None
        self._stopping = False
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Answer)

    def waiting(self) -> int:
        return len(self._jobs)

    def working_since(self, now: float) -> float:
        """Seconds the child has spent on its current job (0 if it has none)."""
        if not self._ready or not self._jobs:
            return 0.0
        return now - self._head_since

    async def submit(self, lease: Lease, response: Response, fetched_at: str) -> Outcome:
        if self.broken is not None:
            raise self.broken
        self._next_id += 1
        job: Job = (self._next_id, lease, response, fetched_at)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if not self._jobs:
            self._head_since = self._clock()
        self._jobs[job[0]] = (job, future)
        if self._ready:
            self._send(job)
        # If this call is cancelled (the crawl is stopping), so is the future: the answer, if
        # it comes, is dropped. The job stays queued, so the child's order and the head's clock
        # stay right.
        return await future

    def launch(self) -> None:
        """Start the child in the background (:meth:`submit` queues jobs until it is ready)."""
        self._starter = asyncio.create_task(self._start_or_break(), name="parse-child-start")

    async def _start_or_break(self) -> None:
        try:
            await self.start()
        except Exception as error:  # nothing can take the jobs: each waiting worker hears it
            failed = error if isinstance(error, ParsePoolFailed) else ParsePoolFailed(str(error))
            self.broken = failed
            for _, waiting in self._jobs.values():
                if not waiting.done():
                    waiting.set_exception(failed)
            self._jobs.clear()

    async def start(self) -> None:
        self._kill_reason = self._culprit = None
        self._process = process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crawler.parse.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        _write(process, frame(self._rules))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                ready = await _read_frame(process.stdout)
        except (asyncio.IncompleteReadError, TimeoutError):
            with contextlib.suppress(ProcessLookupError):  # it may have ended by itself
                process.kill()
            await process.wait()
            raise ParsePoolFailed(
                f"the parse worker process did not start (exit code {process.returncode}); "
                "its error is above"
            ) from None
        if ready.startswith(UNUSABLE):
            await process.wait()
            problem = ready.removeprefix(UNUSABLE).decode(errors="replace")
            raise ParsePoolFailed(f"the parse worker process cannot start: {problem}")
        if ready != READY:
            raise ParsePoolFailed(f"the parse worker process said {ready[:80]!r}, not READY")
        self._ready = True
        self._head_since = self._clock()
        for job, _ in self._jobs.values():  # what a dead predecessor left unanswered
            self._send(job)
        self._reader = asyncio.create_task(self._read_answers(process), name="parse-child-reader")

    def _send(self, job: Job) -> None:
        assert self._process is not None
        # No drain: what waits in the pipe is bounded by the jobs in flight, at most one per
        # worker, each holding its response anyway.
        _write(self._process, frame(self._encoder.encode(job)))

    async def _read_answers(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while True:
                answer = self._decoder.decode(await _read_frame(process.stdout))
                self._answered(answer)
        except asyncio.IncompleteReadError:
            pass  # the child is gone
        except msgspec.DecodeError:
            self.kill("parse_crashed: unreadable answer")
        await process.wait()
        if not self._stopping:
            await self._replace(process.returncode)

    def _answered(self, answer: Answer) -> None:
        (job, future) = self._jobs.pop(answer[0])
        if self._jobs:
            self._head_since = self._clock()
        if future.done():
            return
        _, error, trace, page, links, follow, follow_depth, follow_hops, offsite, rows = answer
        if error or page is None:
            failure = InternalError(error)
            failure.add_note(f"raised in the parse worker process:\n{trace}")
            future.set_exception(failure)
            return
        future.set_result(
            Outcome(job[1], page, links, follow, follow_depth, follow_hops, offsite, rows)
        )

    def kill(self, reason: str) -> None:
        if self._process is not None and self._process.returncode is None:
            self._kill_reason = reason
            self._culprit = next(iter(self._jobs), None)
            self._ready = False
            with contextlib.suppress(ProcessLookupError):  # ended, not yet reaped
                self._process.kill()

    async def _replace(self, returncode: int | None) -> None:
        """The child died: record its current page unparsed, give the rest to a new child."""
        self._ready = False
        reason = self._kill_reason or f"parse_crashed: exit code {returncode}"
        culprit = self._culprit if self._kill_reason else next(iter(self._jobs), None)
        if culprit is not None and culprit in self._jobs:  # else answered before the kill
            job, future = self._jobs.pop(culprit)
            _, lease, response, fetched_at = job
            log.warning(
                "%s: %s; recorded without its links",
                lease.url,
                reason,
                extra={"event": "parse_failed", "url": lease.url, "reason": reason},
            )
            if not future.done():
                future.set_result(unparsed_outcome(lease, response, fetched_at, reason))
        await self._start_or_break()

    async def stop(self) -> None:
        self._stopping = True
        if self._starter is not None:
            # A child half started is stopped like any other; how its start ended (even a
            # cancellation) must not keep this from stopping it.
            await asyncio.gather(self._starter, return_exceptions=True)
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        for _, future in self._jobs.values():
            future.cancel()


def _write(process: asyncio.subprocess.Process, data: bytes) -> None:
    assert process.stdin is not None
    # A child that has just died: its reader sees the end of its output and replaces it, and
    # the jobs it had not answered are sent again then.
    with contextlib.suppress(RuntimeError, ConnectionError):  # uvloop / asyncio
        process.stdin.write(data)


async def _read_frame(stream: asyncio.StreamReader) -> bytes:
    (length,) = LENGTH.unpack(await stream.readexactly(LENGTH.size))
    return await stream.readexactly(length)


def make_parse_pool(rules: LinkRules, processes: int, threads: int, timeout: float) -> ParsePool:
    """The configured parse pool: ``processes`` children, or threads when ``processes`` is 0."""
    if processes == 0:
        return ThreadParsePool(rules, threads)
    return ProcessParsePool(rules, processes, timeout)
