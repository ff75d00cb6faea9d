"""Where extraction runs: HTML in worker processes (the default) or in threads, never on the
loop; a response with nothing to parse (not HTML, an error status, a redirect) on the loop, by
the same :class:`~crawler.outcome.LinkRules`, since a trip off it would cost more than the work.

:func:`crawler.outcome.build_outcome` (parse the HTML, resolve and canonicalize every link) is
the crawl's largest CPU cost after HTTP. In a thread it still holds the GIL for most of that
time, so the event loop and the parsing share one core: a crawl measured on the benchmark's
single-host scenario spent 1.25 ms of event loop, 0.97 ms of parse threads and 0.43 ms of
database thread per page, all serialized by the GIL. A :class:`ProcessExtractor` gives the
parsing cores of its own and leaves the loop about 0.05 ms of messaging per page.

Protocol between the crawl and ``python -m crawler.extractors`` (one child per process slot):
frames of a 4-byte big-endian length and a msgpack body on the child's stdin and stdout.

- first frame to the child: the pickled :class:`~crawler.outcome.LinkRules`; it answers
  ``READY`` once it can parse;
- a job: ``(job_id, lease, response, fetched_at)``; the answer:
  ``(job_id, "", "", page, links, follow, follow_depth, follow_hops, rows)``, or, if
  ``build_outcome`` raised, the exception as ``"<Type>: <message>"`` and its traceback instead
  of the two ``""``: the worker records that page's ``internal_error`` (:mod:`crawler.errors`),
  as for an exception in a thread, and the crawl goes on.

A child remembers the URLs it offered to the frontier lately and does not offer them again
(:mod:`crawler.offered`); threads share no such memory and offer every link, which the
frontier's table ignores when known.

A child handles its jobs in order, one at a time, so the oldest unanswered job is the one it is
working on. If that job takes longer than ``runtime.parse_timeout`` (a hostile page can make
the parser's work grow with the square of its nesting depth) the child is killed, the page is
recorded unparsed with the note ``parse_timeout``, and its other jobs go to a new child. A
child that dies (``parse_crashed``) is handled the same way.

The child ignores SIGINT and SIGTERM (Ctrl-C in a terminal reaches the whole process group;
the crawl decides when to stop) and exits when its stdin closes, which also happens when the
crawl's process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import BinaryIO, Protocol

import msgspec

from crawler.errors import FatalError, InternalError
from crawler.malloc import keep_freed_memory
from crawler.models import Lease, Outcome, PageRecord, PageRows, Response
from crawler.offered import RecentlyOffered
from crawler.outcome import LinkRules, build_outcome, needs_parsing, unparsed_outcome

log = logging.getLogger("crawler")

_LENGTH = struct.Struct(">I")
_READY = b"READY"
START_TIMEOUT = 60.0
"""Seconds a child may take to start (import Python and the parser) before the crawl gives up."""
STOP_TIMEOUT = 5.0
"""Seconds a child gets to exit after its stdin closes before it is killed."""

_Job = tuple[int, Lease, Response, str]
_Answer = tuple[int, str, str, PageRecord | None, list[str], list[str], int, int, PageRows | None]
"""(job_id, error, traceback, page, links, follow, follow_depth, follow_hops, rows); error and
traceback are "" on success."""


class Extractor(Protocol):
    """Turns a response into an :class:`Outcome` by the crawl's :class:`LinkRules`: an HTML page
    off the event loop, any other response (no body to parse) on it (``async with`` it)."""

    async def outcome(self, lease: Lease, response: Response, fetched_at: str) -> Outcome: ...

    async def __aenter__(self) -> Extractor: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ExtractorFailed(FatalError):
    """No parse worker process can be started: the installation is broken, the crawl ends
    (an exception in ``build_outcome`` is one page's :class:`InternalError` instead)."""


class ThreadExtractor:
    """``asyncio.to_thread``, ``threads`` pages at once at most (``parse_processes = 0``)."""

    def __init__(self, rules: LinkRules, threads: int) -> None:
        self._rules = rules
        self._slots = asyncio.Semaphore(threads)

    async def outcome(self, lease: Lease, response: Response, fetched_at: str) -> Outcome:
        if not needs_parsing(response):
            return build_outcome(lease, response, self._rules, fetched_at)
        async with self._slots:
            return await asyncio.to_thread(build_outcome, lease, response, self._rules, fetched_at)

    async def __aenter__(self) -> ThreadExtractor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class ProcessExtractor:
    """``processes`` long-lived children; each job goes to the one with the fewest waiting."""

    def __init__(
        self,
        rules: LinkRules,
        processes: int,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rules = rules
        self._pickled_rules = pickle.dumps(rules)
        self._timeout = timeout
        self._clock = clock
        self._children = [_Child(self._pickled_rules, clock) for _ in range(processes)]
        self._watchdog: asyncio.Task[None] | None = None

    async def outcome(self, lease: Lease, response: Response, fetched_at: str) -> Outcome:
        if not needs_parsing(response):
            return build_outcome(lease, response, self._rules, fetched_at)
        child = min(self._children, key=_Child.waiting)
        return await child.submit(lease, response, fetched_at)

    async def __aenter__(self) -> ProcessExtractor:
        # The children start while the crawl does (robots.txt, the first fetches), not before
        # it: a page handed over before its child is ready waits in the child's queue.
        for child in self._children:
            child.launch()
        self._watchdog = asyncio.create_task(self._watch(), name="extractor-watchdog")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self._stop_children()
        # A child that could not start is a broken installation: say so even when no page
        # needed parsing (when one did, its worker has raised this already).
        broken = next((child.broken for child in self._children if child.broken), None)
        if broken is not None and exc_type is None:
            raise broken

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
        self._jobs: OrderedDict[int, tuple[_Job, asyncio.Future[Outcome]]] = OrderedDict()
        self._head_since = 0.0
        """When the oldest unanswered job became the one the child works on."""
        self._next_id = 0
        self._kill_reason: str | None = None
        self._culprit: int | None = None
        """The job a killed child was working on (it may have answered just before)."""
        self.broken: ExtractorFailed | None = None
        """Why no child can take jobs (the last start failed); then every job fails."""
        self._starter: asyncio.Task[None] | None = None
        self._stopping = False
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(_Answer)

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
        job: _Job = (self._next_id, lease, response, fetched_at)
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
        self._starter = asyncio.create_task(self._start_or_break(), name="extractor-start")

    async def _start_or_break(self) -> None:
        try:
            await self.start()
        except Exception as error:  # nothing can take the jobs: each waiting worker hears it
            failed = error if isinstance(error, ExtractorFailed) else ExtractorFailed(str(error))
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
            "crawler.extractors",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        _write(process, _frame(self._rules))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                ready = await _read_frame(process.stdout)
        except (asyncio.IncompleteReadError, TimeoutError):
            with contextlib.suppress(ProcessLookupError):  # it may have ended by itself
                process.kill()
            await process.wait()
            raise ExtractorFailed(
                f"the parse worker process did not start (exit code {process.returncode}); "
                "its error is above"
            ) from None
        if ready != _READY:
            raise ExtractorFailed(f"the parse worker process said {ready[:80]!r}, not READY")
        self._ready = True
        self._head_since = self._clock()
        for job, _ in self._jobs.values():  # what a dead predecessor left unanswered
            self._send(job)
        self._reader = asyncio.create_task(self._read_answers(process), name="extractor-reader")

    def _send(self, job: _Job) -> None:
        assert self._process is not None
        # No drain: what waits in the pipe is bounded by the jobs in flight, at most one per
        # worker, each holding its response anyway.
        _write(self._process, _frame(self._encoder.encode(job)))

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

    def _answered(self, answer: _Answer) -> None:
        (job, future) = self._jobs.pop(answer[0])
        if self._jobs:
            self._head_since = self._clock()
        if future.done():
            return
        _, error, trace, page, links, follow, follow_depth, follow_hops, rows = answer
        if error or page is None:
            failure = InternalError(error)
            failure.add_note(f"raised in the parse worker process:\n{trace}")
            future.set_exception(failure)
            return
        future.set_result(Outcome(job[1], page, links, follow, follow_depth, follow_hops, rows))

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


def _frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


async def _read_frame(stream: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await stream.readexactly(_LENGTH.size))
    return await stream.readexactly(length)


def make_extractor(rules: LinkRules, processes: int, threads: int, timeout: float) -> Extractor:
    """The configured extractor: ``processes`` children, or threads when ``processes`` is 0."""
    if processes == 0:
        return ThreadExtractor(rules, threads)
    return ProcessExtractor(rules, processes, timeout)


# The child's side: ``python -m crawler.extractors``.


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Answer jobs from ``inp`` on ``out`` until ``inp`` closes."""
    header = _read_exactly(inp, _LENGTH.size)
    if header is None:
        return
    rules_data = _read_exactly(inp, _LENGTH.unpack(header)[0])
    if rules_data is None:
        return
    rules: LinkRules = pickle.loads(rules_data)  # from our own parent only
    out.write(_frame(_READY))
    out.flush()
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(_Job)
    offered = RecentlyOffered()
    while (header := _read_exactly(inp, _LENGTH.size)) is not None:
        body = _read_exactly(inp, _LENGTH.unpack(header)[0])
        if body is None:
            return
        job_id, lease, response, fetched_at = decoder.decode(body)
        answer: _Answer
        try:
            o = build_outcome(lease, response, rules, fetched_at, offered)
        except Exception as exc:  # that page's internal_error (the crawl goes on)
            error = InternalError.of(exc).detail
            trace = "".join(traceback.format_exception(exc))
            answer = (job_id, error, trace, None, [], [], 0, 0, None)
        else:
            answer = (
                job_id, "", "", o.page, o.links, o.follow, o.follow_depth, o.follow_hops, o.rows
            )  # fmt: skip
        out.write(_frame(encoder.encode(answer)))
        out.flush()


def main() -> None:
    keep_freed_memory()  # a tree per page: see crawler.malloc
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The protocol owns fd 1; anything printed by mistake goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with out:
        serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
