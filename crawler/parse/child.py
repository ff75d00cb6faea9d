"""A parse worker process: ``python -m crawler.parse.child``, started and fed by
:class:`crawler.parse.pool.ProcessParsePool`, answers jobs until its stdin closes.

Protocol between the crawl and a child: frames of a 4-byte big-endian length and a msgpack
body on the child's stdin and stdout.

- first frame to the child: the pickled :class:`~crawler.parse.outcome.LinkRules`; it answers
  :data:`READY` once it can parse, or :data:`UNUSABLE` and why, as UTF-8, if it cannot load the
  user's hook (``extract.hook``) the rules name, and exits;
- a job (:data:`Job`): ``(job_id, lease, response, fetched_at)``; the answer (:data:`Answer`):
  ``(job_id, "", "", page, links, follow, follow_depth, follow_hops, follow_offsite, rows)``,
  or, if ``build_outcome`` raised, the exception as ``"<Type>: <message>"`` and its traceback
  instead of the two ``""``: the worker records that page's ``internal_error``
  (:mod:`crawler.errors`), as for an exception in a thread, and the crawl goes on.

A child handles its jobs in order, one at a time, and remembers the URLs it offered to the
frontier lately so as not to offer them again (:mod:`crawler.parse.offered`).

The child ignores SIGINT and SIGTERM (Ctrl-C in a terminal reaches the whole process group;
the crawl decides when to stop) and exits when its stdin closes, which also happens when the
crawl's process dies.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import traceback
from typing import BinaryIO

import msgspec

from crawler.errors import InternalError
from crawler.models import Lease, PageRecord, PageRows, Response
from crawler.parse.hook import HookUnusable, load_hook, use_search_path
from crawler.parse.malloc import keep_freed_memory
from crawler.parse.offered import RecentlyOffered
from crawler.parse.outcome import LinkRules, build_outcome

LENGTH = struct.Struct(">I")
"""The frame header: the body's length."""
READY = b"READY"
"""The child's first frame: it has the rules and can parse."""
UNUSABLE = b"UNUSABLE "
"""The start of the child's first frame instead of READY: it cannot load the hook."""

Job = tuple[int, Lease, Response, str]
Answer = tuple[
    int, str, str, PageRecord | None, list[str], list[str], int, int, list[int], PageRows | None
]
"""(job_id, error, traceback, page, links, follow, follow_depth, follow_hops, follow_offsite,
rows); error and traceback are "" on success."""


def frame(payload: bytes) -> bytes:
    return LENGTH.pack(len(payload)) + payload


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Answer jobs from ``inp`` on ``out`` until ``inp`` closes."""
    header = _read_exactly(inp, LENGTH.size)
    if header is None:
        return
    rules_data = _read_exactly(inp, LENGTH.unpack(header)[0])
    if rules_data is None:
        return
    rules: LinkRules = pickle.loads(rules_data)  # from our own parent only
    if rules.extract.hook:
        use_search_path(rules.extract.search_path)
        try:
            load_hook(rules.extract.hook)
        except HookUnusable as exc:
            out.write(frame(UNUSABLE + f"extract.hook {exc}".encode()))
            out.flush()
            return
    out.write(frame(READY))
    out.flush()
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(Job)
    offered = RecentlyOffered()
    while (header := _read_exactly(inp, LENGTH.size)) is not None:
        body = _read_exactly(inp, LENGTH.unpack(header)[0])
        if body is None:
            return
        job_id, lease, response, fetched_at = decoder.decode(body)
        answer: Answer
        try:
            o = build_outcome(lease, response, rules, fetched_at, offered)
        except Exception as exc:  # that page's internal_error (the crawl goes on)
            error = InternalError.of(exc).detail
            trace = "".join(traceback.format_exception(exc))
            answer = (job_id, error, trace, None, [], [], 0, 0, [], None)
        else:
            answer = (
                job_id, "", "", o.page, o.links, o.follow, o.follow_depth, o.follow_hops,
                o.follow_offsite, o.rows,
            )  # fmt: skip
        out.write(frame(encoder.encode(answer)))
        out.flush()


def main() -> None:
    keep_freed_memory()  # a tree per page: see crawler.parse.malloc
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The protocol owns fd 1; anything printed by mistake goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with out:
        serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
