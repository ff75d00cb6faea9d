"""WARC archives of a crawl (``crawl run --warc DIR``): every response as it was received,
with the request that asked for it, in WARC 1.1 files written by warcio, plus a CDXJ index.

Files, in ``DIR``::

    crawler-20261125012855123-00000.warc.gz    a warcinfo record, then request/response pairs
    crawler-20261125012855123-00000.cdxj       one line per response record of that file

The name holds the run's start time (UTC, to the millisecond) and a serial number: a resumed
crawl adds files and never touches earlier ones. A file is written as ``NAME.open`` and renamed
when complete (it reached ``output.warc_max_bytes``, or the crawl ended); each record is its own
gzip member, so even an ``.open`` file left by ``kill -9`` reads up to its last whole record.

Records (a ``response`` and its ``request`` per response, retried ones too) and the CDXJ
lines are :mod:`crawler.archive.warc_records`' format; this module writes them and rotates the
files.

Writing is blocking I/O, so it runs in a thread, one batch at a time (:class:`_WarcFiles`,
under a lock), fed by a bounded :class:`~crawler.store.spool.Spool`: :meth:`WarcArchive.add` runs in
the engine's ``on_response`` and only queues; :meth:`WarcArchive.run` is the writer task.
Durability: each batch is flushed to the OS; files are fsynced when complete. Responses still
queued at a ``kill -9`` are lost from the archive (not from the database).
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from warcio.warcwriter import WARCWriter  # type: ignore[import-untyped]

from crawler.archive.warc_records import Capture, cdxj_line, request_record, response_record
from crawler.config import FetchSection
from crawler.errors import StorageError
from crawler.fetch.headers import RequestHeaders, crawler_headers
from crawler.models import Lease, Response
from crawler.resource import AsyncResource
from crawler.store.spool import DEFAULT_SPOOL_BYTES, Spool
from crawler.version import __version__

DEFAULT_PREFIX = "crawler"


class WarcArchive(AsyncResource):
    """Owner of a crawl's WARC output. ``async with WarcArchive(...) as archive``; run
    :meth:`run` as a service task; :meth:`finish` after the last response."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        user_agent: str,
        fetch: FetchSection | None = None,
        robots: bool = True,
        prefix: str = DEFAULT_PREFIX,
        spool_bytes: int = DEFAULT_SPOOL_BYTES,
    ) -> None:
        self.directory = directory
        self._spool: Spool[Capture] = Spool(spool_bytes)
        self._files = _WarcFiles(
            directory,
            max_bytes=max_bytes,
            prefix=prefix,
            sent=RequestHeaders(crawler_headers(user_agent), fetch or FetchSection()),
            info={
                "software": f"crawler/{__version__} (warcio)",
                "format": "WARC File Format 1.1",
                "conformsTo": "https://iipc.github.io/warc-specifications/specifications/"
                "warc-format/warc-1.1/",
                "http-header-user-agent": user_agent,
                "robots": "obey" if robots else "ignore",
            },
        )

    @property
    def files(self) -> list[Path]:
        """The complete WARC files written so far."""
        return list(self._files.finished)

    @property
    def records(self) -> int:
        """Response records written so far."""
        return self._files.responses

    async def _aopen(self) -> None:
        await asyncio.to_thread(self._files.prepare)

    async def _aclose(self) -> None:
        self.finish()
        # Shielded: on cancellation the current file must still be completed and renamed. It
        # waits for a batch being written (the lock), which is bounded by the spool size.
        await asyncio.shield(asyncio.to_thread(self._files.close))

    def add(self, lease: Lease, response: Response) -> None:
        """Queue one response (synchronous, no I/O: the engine's ``on_response``)."""
        if not self._spool.finished:
            capture = Capture(lease.url, response, datetime.now(UTC))
            self._spool.put(capture, len(response.body) + 1024)

    async def room(self) -> None:
        """Wait while too much is queued (the workers' backpressure)."""
        await self._spool.room()

    async def run(self) -> None:
        """Write batches until finished and drained (a service task)."""
        while batch := await self._spool.take():
            await asyncio.to_thread(self._files.write, batch)

    def finish(self) -> None:
        """No more responses: :meth:`run` writes what is queued and returns. Idempotent."""
        self._spool.finish()

    def __repr__(self) -> str:
        return f"<WarcArchive {self.directory} records={self.records} {self._spool!r}>"


@dataclass(slots=True)
class _OpenFile:
    name: str
    warc: BinaryIO
    index: TextIO
    writer: WARCWriter

    @property
    def index_name(self) -> str:
        return self.name.removesuffix(".warc.gz") + ".cdxj"


class _WarcFiles:
    """The files themselves; blocking, called from threads, serialized by a lock."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        prefix: str,
        sent: RequestHeaders,
        info: dict[str, str],
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.sent = sent
        self.info = info
        self.run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")[:17]
        self.serial = 0
        self.responses = 0
        self.finished: list[Path] = []
        self._lock = threading.Lock()
        self._current: _OpenFile | None = None

    def prepare(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create WARC directory {self.directory}: {exc}") from None
        if not os.access(self.directory, os.W_OK):
            raise StorageError(f"cannot write WARC files to {self.directory}: not writable")

    def write(self, captures: list[Capture]) -> None:
        with self._lock:
            try:
                for capture in captures:
                    self._write_capture(capture)
                if self._current is not None:
                    self._current.warc.flush()
                    self._current.index.flush()
            except OSError as exc:
                raise StorageError(f"cannot write WARC file in {self.directory}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            try:
                self._complete_current()
            except OSError as exc:
                raise StorageError(
                    f"cannot complete WARC file in {self.directory}: {exc}"
                ) from None

    def _write_capture(self, capture: Capture) -> None:
        current = self._current or self._open_next()
        response = response_record(current.writer, capture)
        request = request_record(current.writer, capture, self.sent)
        request.rec_headers.add_header(
            "WARC-Concurrent-To", response.rec_headers.get_header("WARC-Record-ID")
        )
        offset = current.warc.tell()
        current.writer.write_record(response)
        length = current.warc.tell() - offset
        current.writer.write_record(request)
        self.responses += 1
        current.index.write(cdxj_line(capture, response, current.name, offset, length))
        if current.warc.tell() >= self.max_bytes:
            self._complete_current()

    def _open_next(self) -> _OpenFile:
        name = f"{self.prefix}-{self.run_id}-{self.serial:05d}.warc.gz"
        self.serial += 1
        warc = open(self._path(name, open_=True), "xb")  # noqa: SIM115 (closed by _complete_current)
        try:
            index_name = name.removesuffix(".warc.gz") + ".cdxj"
            index = open(  # noqa: SIM115 (closed by _complete_current)
                self._path(index_name, open_=True), "x", encoding="utf-8"
            )
        except BaseException:
            warc.close()
            raise
        writer = WARCWriter(warc, gzip=True, warc_version="1.1")
        current = self._current = _OpenFile(name, warc, index, writer)
        writer.write_record(writer.create_warcinfo_record(name, self.info))
        return current

    def _path(self, name: str, *, open_: bool = False) -> Path:
        return self.directory / (f"{name}.open" if open_ else name)

    def _complete_current(self) -> None:
        """Complete the current file and its index: flush, fsync, close, rename."""
        current, self._current = self._current, None
        if current is None:
            return
        for handle in (current.warc, current.index):
            try:
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                handle.close()
        for name in (current.name, current.index_name):
            self._path(name, open_=True).rename(self._path(name))
        self.finished.append(self._path(current.name))
