"""``fetch.download_types``: files that are not HTML read, digested, kept and archived.

Real crawls of a small local site of PDFs and images (tests/download_site.py), some gzipped,
one over the size cap: each page row's size and SHA-256 against hashlib of the bytes served,
the WARC read back with warcio (every payload byte for byte, its digest verified), the bodies
kept by ``--store-bodies``; a type left out of the list (and the default, HTML only) still not
read; malformed entries refused at load.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pytest_httpx import HTTPXMock

from crawler.abort import AbortController
from crawler.archive.bodies import bodies_path
from crawler.archive.warc import WarcArchive
from crawler.config import FetchSection
from crawler.config_load import load_config
from crawler.engine import Crawl
from crawler.errors import ConfigError
from crawler.fetch.client import Fetcher
from crawler.fetch.downloads import DownloadTypes
from crawler.models import Lease, Response
from tests.download_site import BIG, CAP, DISALLOWED, FILES, NEVER, ZIP, files_site
from tests.helpers import crawl_config, crawl_process, database, write_seeds
from tests.servers import TestServer, two_pages
from tests.test_warc import read_warc

URL = "http://files.test/file"
"""The fetch layer's unit tests' URL (pytest-httpx answers it)."""
DOWNLOADS = {path: file for path, file in FILES.items() if path not in (ZIP, DISALLOWED)}
"""The files a crawl with ``download_types = ["application/pdf", "image/*"]`` reads."""


def kept(path: str) -> bytes:
    """What the crawler keeps of a file: its bytes as served, decoded, up to the cap."""
    return FILES[path].data[:CAP]


def page_rows(db: Path) -> dict[str, tuple[object, ...]]:
    """Path -> (size, sha256, truncated, error) of each page row."""
    with database(db) as conn:
        rows = conn.execute("SELECT url, size, sha256, truncated, error FROM pages").fetchall()
    return {urlsplit(url).path: tuple(rest) for url, *rest in rows}


async def crawl_files(tmp_path: Path, **overrides: object) -> tuple[Path, TestServer]:
    db = tmp_path / "crawl.db"
    config = crawl_config(**{"fetch.max_body_bytes": CAP, **overrides})
    async with TestServer(files_site) as server:
        await Crawl(config, [server.url("/")], db, AbortController().signal).run()
    return db, server


@pytest.mark.anyio
async def test_downloads_are_read_digested_kept_and_archived(tmp_path: Path) -> None:
    warc_dir = tmp_path / "warc"
    db, server = await crawl_files(
        tmp_path,
        **{
            "fetch.download_types": ["application/pdf", "image/*"],
            "output.warc_dir": str(warc_dir),
            "output.store_bodies": True,
        },
    )

    rows = page_rows(db)
    for path in DOWNLOADS:
        body = kept(path)
        truncated = int(path == BIG)
        assert rows[path] == (len(body), hashlib.sha256(body).hexdigest(), truncated, None), path
    assert rows[BIG][0] == CAP  # the digest above is of the bytes kept, not of the whole file
    assert rows[ZIP] == (0, None, 0, None)  # not in download_types: not read
    assert rows[DISALLOWED][3] == "robots_disallowed"
    assert rows["/"][1] is None  # HTML is not digested (see crawler.fetch.body)
    counts = server.request_counts()
    assert {path: counts[path] for path in FILES if path != DISALLOWED} == dict.fromkeys(
        set(FILES) - {DISALLOWED}, 1
    )
    assert not NEVER & set(counts)  # no link read out of a PDF or an SVG; robots.txt obeyed
    with database(db) as conn:
        linking = {urlsplit(src).path for (src,) in conn.execute("SELECT src_url FROM links")}
    assert linking == {"/"}

    (warc,) = warc_dir.glob("*.warc.gz")
    records = {
        urlsplit(r["url"]).path: r for r in read_warc(warc) if r["type"] == "response"
    }  # read_warc checks every block and payload digest
    for path in DOWNLOADS:
        record, body = records[path], kept(path)
        assert record["payload"] == body, path
        sha1 = base64.b32encode(hashlib.sha1(body).digest()).decode()
        assert record["warc"]["WARC-Payload-Digest"] == f"sha1:{sha1}"
        assert record["http"].get_header("Content-Length") == str(len(body))
        assert record["warc"].get("WARC-Truncated") == ("length" if path == BIG else None)
        if FILES[path].gzip:
            assert record["http"].get_header("X-Crawler-Orig-Content-Encoding") == "gzip"
    assert records[ZIP]["payload"] == b""
    assert records[ZIP]["warc"]["WARC-Truncated"] == "unspecified"

    with database(bodies_path(db)) as conn:
        stored = {
            urlsplit(url).path: (zlib.decompress(body), size, truncated)
            for url, body, size, truncated in conn.execute(
                "SELECT url, body, size, truncated FROM bodies"
            )
        }
    assert set(stored) == {"/", *DOWNLOADS}
    for path in DOWNLOADS:
        assert stored[path] == (kept(path), len(kept(path)), int(path == BIG)), path


@pytest.mark.anyio
async def test_by_default_only_html_is_read(tmp_path: Path) -> None:
    db, server = await crawl_files(tmp_path)
    rows = page_rows(db)
    assert {path: rows[path] for path in DOWNLOADS} == dict.fromkeys(DOWNLOADS, (0, None, 0, None))
    assert rows["/"][0] > 0
    assert set(server.request_counts()) >= set(DOWNLOADS)  # fetched, their bodies left unread


@pytest.mark.anyio
async def test_an_empty_download_is_archived_as_read_not_as_truncated(tmp_path: Path) -> None:
    # A download's empty body was read: unlike an unread one, no WARC-Truncated.
    lease = Lease(1, "http://a.test/empty.pdf", "a.test", 0)
    headers = ((b"Content-Type", b"application/pdf"),)
    empty = hashlib.sha256(b"").hexdigest()
    read = Response(lease.url, 200, "application/pdf", b"", headers=headers, sha256=empty)
    unread = Response(lease.url, 200, "application/pdf", b"", headers=headers)
    async with WarcArchive(tmp_path, max_bytes=10**9, user_agent="t") as archive:
        archive.add(lease, read)
        archive.add(lease, unread)
        archive.finish()
        async with asyncio.timeout(10):
            await archive.run()
    (path,) = archive.files
    first, second = (r for r in read_warc(path) if r["type"] == "response")
    assert (first["payload"], first["warc"].get("WARC-Truncated")) == (b"", None)
    assert second["warc"]["WARC-Truncated"] == "unspecified"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content_type", "status", "any_type", "expected"),
    [
        ("text/csv", 200, False, (b"a,b\n" * 8, hashlib.sha256(b"a,b\n" * 8).hexdigest())),
        ("text/csv", 404, False, (b"a,b\n" * 8, hashlib.sha256(b"a,b\n" * 8).hexdigest())),
        ("text/csv", 302, False, (b"", None)),  # a redirect's body is never read
        ("text/plain", 200, True, (b"a,b\n" * 8, None)),  # robots.txt, a sitemap: no download
        ("application/zip", 200, False, (b"", None)),
        ("text/html", 200, False, (b"a,b\n" * 8, None)),  # a page: read, not digested
    ],
)
async def test_the_fetcher_reads_and_digests_downloads_only(
    httpx_mock: HTTPXMock, content_type: str, status: int, any_type: bool, expected: object
) -> None:
    headers = {"content-type": content_type, "location": "/elsewhere"}
    httpx_mock.add_response(url=URL, status_code=status, headers=headers, content=b"a,b\n" * 8)
    section = FetchSection(transport="httpcore", download_types=("text/*",))
    async with Fetcher(section, user_agent="t", concurrency=1) as fetcher:
        response = await fetcher.fetch(URL, any_type=any_type)
    assert (response.body, response.sha256) == expected


def test_download_types_match_media_types_and_wildcards() -> None:
    types = DownloadTypes(["application/PDF", "image/*"])
    assert types.match("application/pdf")
    assert types.match("Application/Pdf ; name=x.pdf")  # parameters play no part
    assert types.match("image/png")
    assert types.match("image/svg+xml")
    assert not types.match("application/zip")
    assert not types.match("imagex/png")
    assert not types.match(None)  # no Content-Type: HTML, a page
    assert not DownloadTypes(["text/*"]).match("text/html; charset=utf-8")  # HTML stays a page
    assert DownloadTypes(["text/*"]).match("text/csv")
    assert DownloadTypes(["*/*"]).match("application/octet-stream")
    assert not DownloadTypes([])
    assert DownloadTypes(["image/*"])


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("pdf", "is not a media type"),
        ("application/", "is not a media type"),
        ("image/p*", "is not a media type"),
        ("*/pdf", "is not a media type"),
        ("", "is not a media type"),
        ("application/pdf ", "is not a media type"),
        ("text/csv; header=present", "has parameters: they are not matched, write 'text/csv'"),
        ("text/html", "is HTML"),
    ],
)
def test_a_malformed_download_type_names_itself(entry: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(overrides={"fetch.download_types": ["image/*", entry]}, environ={})
    assert f"`fetch.download_types` lists {entry!r}, which {problem}" in str(raised.value)


def test_the_cli_refuses_a_malformed_download_type_before_any_request(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[fetch]\ndownload_types = ["image/*", "pdf"]\n')
    with TestServer(two_pages) as server:
        seeds = write_seeds(tmp_path, server.url("/"))
        process = crawl_process("run", seeds, "--db", tmp_path / "c.db", "--config", config)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    (line,) = err.splitlines()
    assert "`fetch.download_types` lists 'pdf', which is not a media type" in line
    assert server.requests() == []
