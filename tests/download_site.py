"""A small local site of files that are not HTML, for ``fetch.download_types``.

``/`` links to a real (minimal, hand-written) PDF, PNG images built with zlib and struct, a
GIF, an SVG image that links to a page, a zip file (a type the tests leave out of
``download_types``) and a PDF that robots.txt disallows. Some are sent with
``Content-Encoding: gzip``; one PNG is larger than :data:`CAP`, the ``fetch.max_body_bytes``
the tests crawl with. :data:`FILES` holds each file's bytes as served before compression: what
the crawler must read, digest and archive.
"""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from dataclasses import dataclass

from tests.servers import Request, Response, html

CAP = 40_000
"""The ``fetch.max_body_bytes`` to crawl this site with: :data:`BIG` is over it."""


def pdf(text: str) -> bytes:
    """A minimal valid PDF 1.4 document: one page showing ``text``, with a link annotation
    to ``/from-pdf`` (a URL no crawl may follow: a download is not parsed for links), and the
    cross-reference table at the byte offsets of its objects."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> /Annots [6 0 R] >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Annot /Subtype /Link /Rect [72 700 300 740]"
        b" /A << /S /URI /URI (/from-pdf) >> >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def png(width: int, height: int, seed: int) -> bytes:
    """A valid 8-bit RGB PNG of ``width`` x ``height`` random pixels (``seed``): random, so
    that its size is about 3 bytes a pixel whatever the compression."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    rows = b"".join(
        b"\x00" + pixels[y * width * 3 : (y + 1) * width * 3]  # filter type 0 per scanline
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # depth 8, RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"  # 1x1, a 2-colour table
    b"!\xf9\x04\x01\x00\x00\x00\x00"  # graphic control: colour 0 transparent
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"  # the image, LZW, trailer
)
"""The classic 1x1 transparent GIF89a (43 bytes)."""

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
    b' width="10" height="10"><a href="/from-svg" xlink:href="/from-svg">'
    b'<rect width="10" height="10"/></a></svg>'
)
"""An image with a link in it, which a parser of HTML would find: never followed."""


@dataclass(frozen=True, slots=True)
class File:
    content_type: str
    data: bytes
    """The bytes as served, before any Content-Encoding."""
    gzip: bool = False
    """Sent with ``Content-Encoding: gzip``."""


BIG = "/big.png"
ZIP = "/archive.zip"
DISALLOWED = "/private.pdf"
FILES = {
    "/doc.pdf": File("application/pdf", pdf("Hello, PDF")),
    "/doc-gz.pdf": File("application/pdf", pdf("Hello, gzip"), gzip=True),
    "/small.png": File("image/png", png(8, 8, seed=1)),
    "/small-gz.png": File("image/png; charset=binary", png(16, 4, seed=2), gzip=True),
    "/pixel.gif": File("image/gif", GIF, gzip=True),
    "/links.svg": File("image/svg+xml", SVG),
    BIG: File("image/png", png(200, 100, seed=3), gzip=True),  # ~60 KB, over CAP
    ZIP: File("application/zip", b"PK\x05\x06" + bytes(18)),  # an empty zip archive
    DISALLOWED: File("application/pdf", pdf("Private")),
}
"""Path -> what is served there; every one is linked from ``/``."""
NEVER = frozenset({"/from-pdf", "/from-svg", DISALLOWED})
"""Paths no crawl of the site may request."""
assert len(FILES[BIG].data) > CAP


def files_site(request: Request) -> Response:
    """The handler of a :class:`~tests.servers.TestServer` serving the site."""
    if request.path == "/robots.txt":
        return (
            200,
            {"Content-Type": "text/plain"},
            f"User-agent: *\nDisallow: {DISALLOWED}\n".encode(),
        )
    if request.path == "/":
        return html("files", "".join(f'<a href="{path}">{path}</a>' for path in FILES))
    file = FILES.get(request.path)
    if file is None:
        return 404, {"Content-Type": "text/html"}, b"<title>not found</title>"
    if file.gzip:
        return (
            200,
            {"Content-Type": file.content_type, "Content-Encoding": "gzip"},
            gzip.compress(file.data),
        )
    return 200, {"Content-Type": file.content_type}, file.data
