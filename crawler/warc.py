"""WARC archives of a crawl (``crawl run --warc DIR``): every response as it was received,
with the request that asked for it, in WARC 1.1 files written by warcio, plus a CDXJ index.

Files, in ``DIR``::

    crawler-20261125012855123-00000.warc.gz    a warcinfo record, then request/response pairs
    crawler-20261125012855123-00000.cdxj       one line per response record of that file

The name holds the run's start time (UTC, to the millisecond) and a serial number: a resumed
crawl adds files and never touches earlier ones. A file is written as ``NAME.open`` and renamed
when complete (it reached ``output.warc_max_bytes``, or the crawl ended); each record is its own
gzip member, so even an ``.open`` file left by ``kill -9`` reads up to its last whole record.

Records. Per response (every response, retried ones too, in the order they arrived):

- ``response``: ``WARC-Target-URI`` the URL, ``WARC-Date`` when the response was complete
  (microseconds), the status line and headers as received (their bytes: :class:`_AsReceived`),
  and the body as the crawler has it.
  The fetch layer decodes ``Content-Encoding`` and removes chunking, so ``Content-Encoding`` and
  ``Transfer-Encoding`` are kept as ``X-Crawler-Orig-Content-Encoding`` /
  ``X-Crawler-Orig-Transfer-Encoding``, and ``Content-Length`` is set to the payload's length
  (a different original is kept as ``X-Crawler-Orig-Content-Length``): the record replays as
  it is. Only HTML bodies are read (non-HTML types and redirects are not downloaded): those
  records carry the headers with an empty payload and ``WARC-Truncated: unspecified``
  (unless the server announced an empty body); a body cut at ``fetch.max_body_bytes`` has
  ``WARC-Truncated: length``.
- ``request``: ``GET`` with the headers the crawler sends (``Host``, ``User-Agent``, ``Accept``,
  ``Accept-Encoding``, ``Connection``), ``WARC-Concurrent-To`` the response's record id.

robots.txt and sitemap fetches are not archived. CDXJ lines (pywb's format, in crawl order;
``LC_ALL=C sort`` them for a binary-searchable index)::

    1,0,0,127:8000)/page/0 20261125012855 {"url": "http://127.0.0.1:8000/page/0", "mime":
    "text/html", "status": "200", "digest": "sha1:...", "length": "612", "offset": "1043",
    "filename": "crawler-20261125012855123-00000.warc.gz"}

(one line each) where ``offset`` and ``length`` locate the gzip member of the response record.

Writing is blocking I/O, so it runs in a thread, one batch at a time (:class:`_WarcFiles`,
under a lock), fed by a bounded :class:`~crawler.spool.Spool`: :meth:`WarcArchive.add` runs in
the engine's ``on_response`` and only queues; :meth:`WarcArchive.run` is the writer task.
Durability: each batch is flushed to the OS; files are fsynced when complete. Responses still
queued at a ``kill -9`` are lost from the archive (not from the database).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, TextIO
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders  # type: ignore[import-untyped]
from warcio.warcwriter import WARCWriter  # type: ignore[import-untyped]

from crawler.errors import StorageError
from crawler.fetch import ACCEPT, ACCEPT_ENCODING
from crawler.models import Lease, Response
from crawler.spool import Spool
from crawler.urls import host_key
from crawler.version import __version__

DEFAULT_PREFIX = "crawler"
DEFAULT_SPOOL_BYTES = 32 * 1024 * 1024
"""Bytes of responses waiting for the writer before the workers wait (see Spool)."""
_REWRITTEN = (b"content-encoding", b"transfer-encoding")
WarcRecord = Any
"""warcio's ``ArcWarcRecord`` (warcio has no type hints)."""
_ORIGINAL = b"X-Crawler-Orig-"
_REQUEST_PROTOCOL = "HTTP/1.1"
"""What both transports send (httpx's HTTP/2 is not enabled), whatever the server answers."""


@dataclass(frozen=True, slots=True)
class Capture:
    """One response to archive, with the moment it was complete."""

    url: str
    response: Response
    at: datetime


class WarcArchive:
    """Owner of a crawl's WARC output. ``async with WarcArchive(...) as archive``; run
    :meth:`run` as a service task; :meth:`close` after the last response."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        user_agent: str,
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
            user_agent=user_agent,
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

    async def __aenter__(self) -> WarcArchive:
        await asyncio.to_thread(self._files.prepare)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        # Shielded: on cancellation the current file must still be completed and renamed. It
        # waits for a batch being written (the lock), which is bounded by the spool size.
        await asyncio.shield(asyncio.to_thread(self._files.close))

    def add(self, lease: Lease, response: Response) -> None:
        """Queue one response (synchronous, no I/O: the engine's ``on_response``)."""
        if not self._spool.closed:
            capture = Capture(lease.url, response, datetime.now(UTC))
            self._spool.put(capture, len(response.body) + 1024)

    async def room(self) -> None:
        """Wait while too much is queued (the workers' backpressure)."""
        await self._spool.room()

    async def run(self) -> None:
        """Write batches until closed and drained (a service task)."""
        while batch := await self._spool.take():
            await asyncio.to_thread(self._files.write, batch)

    def close(self) -> None:
        """No more responses: :meth:`run` writes what is queued and returns. Idempotent."""
        self._spool.close()

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
        user_agent: str,
        info: dict[str, str],
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.user_agent = user_agent
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
                self._finish()
            except OSError as exc:
                raise StorageError(
                    f"cannot complete WARC file in {self.directory}: {exc}"
                ) from None

    def _write_capture(self, capture: Capture) -> None:
        current = self._current or self._open_next()
        response_record = _response_record(current.writer, capture)
        request_record = _request_record(current.writer, capture, self.user_agent)
        request_record.rec_headers.add_header(
            "WARC-Concurrent-To", response_record.rec_headers.get_header("WARC-Record-ID")
        )
        offset = current.warc.tell()
        current.writer.write_record(response_record)
        length = current.warc.tell() - offset
        current.writer.write_record(request_record)
        self.responses += 1
        current.index.write(_cdxj_line(capture, response_record, current.name, offset, length))
        if current.warc.tell() >= self.max_bytes:
            self._finish()

    def _open_next(self) -> _OpenFile:
        name = f"{self.prefix}-{self.run_id}-{self.serial:05d}.warc.gz"
        self.serial += 1
        warc = open(self._path(name, open_=True), "xb")  # noqa: SIM115 (closed by _finish)
        try:
            index_name = name.removesuffix(".warc.gz") + ".cdxj"
            index = open(  # noqa: SIM115 (closed by _finish)
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

    def _finish(self) -> None:
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


def _response_record(writer: WARCWriter, capture: Capture) -> WarcRecord:
    response = capture.response
    body = response.body
    length = b"%d" % len(body)
    headers: list[tuple[bytes, bytes]] = []
    original_length: bytes | None = None
    for name, value in response.headers:
        lower = name.lower()
        if lower in _REWRITTEN:
            headers.append((_ORIGINAL + name, value))
        elif lower == b"content-length":
            original_length = value
        else:
            headers.append((name, value))
    if original_length is not None and original_length.strip() != length:
        headers.append((_ORIGINAL + b"Content-Length", original_length))
    headers.append((b"Content-Length", length))
    warc_headers = {"WARC-Date": _warc_date(capture.at)}
    if response.truncated:
        warc_headers["WARC-Truncated"] = "length"
    elif not body and not _announced_empty(original_length) and _not_read(response):
        warc_headers["WARC-Truncated"] = "unspecified"
    status_line = b"%s %d %s" % (response.http_version.encode(), response.status, response.reason)
    return writer.create_warc_record(
        capture.url,
        "response",
        payload=BytesIO(body),
        length=len(body),
        warc_headers_dict=warc_headers,
        http_headers=_AsReceived(status_line.rstrip(), headers),
    )


class _AsReceived(StatusAndHeaders):  # type: ignore[misc]  # warcio has no type hints
    """A status line and headers that warcio writes as these bytes.

    warcio's own encodes its text (headers decoded as Latin-1) as ASCII, percent-encoding
    whatever is not (``caf\xe9`` became ``caf%C3%A9``); its parsed view here (Latin-1 text) is
    for its readers, the bytes are the record."""

    def __init__(self, status_line: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        protocol, _, status = status_line.decode("latin-1").partition(" ")
        super().__init__(status, headers, protocol=protocol)
        lines = [status_line, *(name + b": " + value for name, value in headers)]
        self._raw = b"\r\n".join(lines) + b"\r\n\r\n"

    def compute_headers_buffer(self, header_filter: object = None) -> None:
        self.headers_buff = self._raw


def _request_record(writer: WARCWriter, capture: Capture, user_agent: str) -> WarcRecord:
    parts = urlsplit(capture.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = [
        ("Host", host_key(capture.url)),
        ("User-Agent", user_agent),
        ("Accept", ACCEPT),
        ("Accept-Encoding", ACCEPT_ENCODING),
        ("Connection", "keep-alive"),
    ]
    http_headers = StatusAndHeaders(
        f"GET {target} {_REQUEST_PROTOCOL}", headers, is_http_request=True
    )
    return writer.create_warc_record(
        capture.url,
        "request",
        warc_headers_dict={"WARC-Date": _warc_date(capture.at)},
        http_headers=http_headers,
    )


def _cdxj_line(
    capture: Capture, record: WarcRecord, filename: str, offset: int, length: int
) -> str:
    response = capture.response
    mime = (response.content_type or "").split(";", 1)[0].strip().lower() or "unk"
    fields = {
        "url": capture.url,
        "mime": mime,
        "status": str(response.status),
        "digest": record.rec_headers.get_header("WARC-Payload-Digest"),
        "length": str(length),
        "offset": str(offset),
        "filename": filename,
    }
    return f"{surt(capture.url)} {capture.at:%Y%m%d%H%M%S} {json.dumps(fields)}\n"


def surt(url: str) -> str:
    """The SURT sort key of a canonical URL, as CDX indexes use: host labels reversed and
    comma-joined (``www.`` dropped), ``:port`` if not the default, ``)``, then the path and
    query, lower-cased, query parameters sorted.

    ``http://www.Example.com:8080/A?b=2&a=1`` -> ``com,example:8080)/a?a=1&b=2``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    key = ",".join(reversed(host.split(".")))
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default:
        key += f":{parts.port}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + "&".join(sorted(parts.query.split("&")))
    return f"{key}){path}".lower()


def _warc_date(at: datetime) -> str:
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond:06d}Z"


def _announced_empty(content_length: bytes | None) -> bool:
    return content_length is not None and content_length.strip() == b"0"


def _not_read(response: Response) -> bool:
    # As in the fetch layer: bodies are read for HTML that is not a redirect.
    return not response.is_html or response.location is not None
