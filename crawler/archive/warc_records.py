"""The WARC 1.1 records and CDXJ index lines of one archived response (:mod:`crawler.archive.warc`
writes them into files).

Records. Per response (every response, retried ones too, in the order they arrived):

- ``response``: ``WARC-Target-URI`` the URL, ``WARC-Date`` when the response was complete
  (microseconds), the status line and headers as received (their bytes: :class:`_AsReceived`),
  and the body as the crawler has it.
  The fetch layer decodes ``Content-Encoding`` and removes chunking, so ``Content-Encoding`` and
  ``Transfer-Encoding`` are kept as ``X-Crawler-Orig-Content-Encoding`` /
  ``X-Crawler-Orig-Transfer-Encoding``, and ``Content-Length`` is set to the payload's length
  (a different original is kept as ``X-Crawler-Orig-Content-Length``): the record replays as
  it is. Only HTML bodies and those of ``fetch.download_types`` (PDFs, images: their bytes as
  decoded, so the record's ``WARC-Payload-Digest`` is of them) are read; other types and
  redirects are not downloaded: those records carry the headers with an empty payload and
  ``WARC-Truncated: unspecified`` (unless the server announced an empty body); a body cut at
  ``fetch.max_body_bytes`` has ``WARC-Truncated: length``.
- ``request``: ``GET`` with the headers the crawler sends to that host (``Host``, ``User-Agent``,
  ``Accept``, ``Accept-Encoding``, ``fetch.headers`` and the host's ``[fetch.hosts]`` headers,
  ``Connection``), ``WARC-Concurrent-To`` the response's record id. Credentials are left out:
  ``Authorization`` (a host's basic auth) and ``Cookie`` are sent but not archived, because
  WARC files are made to be shared and replayed, and a login must not travel with them.

robots.txt and sitemap fetches are not archived. CDXJ lines (pywb's format, in crawl order;
``LC_ALL=C sort`` them for a binary-searchable index)::

    1,0,0,127:8000)/page/0 20261125012855 {"url": "http://127.0.0.1:8000/page/0", "mime":
    "text/html", "status": "200", "digest": "sha1:...", "length": "612", "offset": "1043",
    "filename": "crawler-20261125012855123-00000.warc.gz"}

(one line each) where ``offset`` and ``length`` locate the gzip member of the response record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders  # type: ignore[import-untyped]
from warcio.warcwriter import WARCWriter  # type: ignore[import-untyped]

from crawler.fetch.headers import RequestHeaders
from crawler.models import Response
from crawler.urls import host_key

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


def response_record(writer: WARCWriter, capture: Capture) -> WarcRecord:
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


_NOT_ARCHIVED = frozenset((b"authorization", b"cookie"))
"""Request headers that carry credentials: sent, never written into a WARC file."""


def request_record(writer: WARCWriter, capture: Capture, sent: RequestHeaders) -> WarcRecord:
    parts = urlsplit(capture.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = host_key(capture.url)
    headers = [
        ("Host", host),
        *(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in sent.for_url(parts.scheme, host.encode())
            if name.lower() not in _NOT_ARCHIVED
        ),
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


def cdxj_line(capture: Capture, record: WarcRecord, filename: str, offset: int, length: int) -> str:
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
    # As in the fetch layer: bodies are read for HTML and downloads (those have a digest, an
    # empty one's too), never for a redirect.
    readable = response.is_html or response.sha256 is not None
    return not readable or response.location is not None
