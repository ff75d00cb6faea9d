"""WARC output: real crawls of the demo site read back record by record with warcio, the CDXJ
index checked against the records, rotation, header rewriting, and the spool's backpressure."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator  # type: ignore[import-untyped]

from crawler.abort import AbortController
from crawler.archive.warc import WarcArchive
from crawler.archive.warc_records import surt
from crawler.config import Config, FetchSection
from crawler.config_load import load_config
from crawler.demo import SiteServer, SiteSpec, render
from crawler.engine import Crawl
from crawler.fetch.client import Fetcher
from crawler.fetch.headers import ACCEPT, ACCEPT_ENCODING
from crawler.models import Lease
from crawler.models import Response as FetchedResponse
from crawler.store.spool import Spool
from tests.helpers import crawl_process, database, write_config, write_seeds
from tests.servers import Request, Response, TestServer

USER_AGENT = "crawler/0.1 (+warc test)"


def config(warc_dir: Path, **overrides: object) -> Config:
    base = {
        "crawl.concurrency": 4,
        "crawl.user_agent": USER_AGENT,
        "politeness.per_host_concurrency": 4,
        "politeness.per_host_delay": 0.0,
        "runtime.stats_interval": 0.0,
        "output.warc_dir": str(warc_dir),
    }
    return load_config(overrides={**base, **overrides}, environ={})


def read_warc(path: Path) -> list[dict[str, Any]]:
    """Every record of one WARC file, with its offset and length, digests checked."""
    records = []
    with path.open("rb") as f:
        iterator = ArchiveIterator(f, check_digests=True)
        for record in iterator:
            payload = record.content_stream().read()
            records.append(
                {
                    "type": record.rec_type,
                    "warc": dict(record.rec_headers.headers),
                    "url": record.rec_headers.get_header("WARC-Target-URI"),
                    "http": record.http_headers,
                    "payload": payload,
                    "offset": iterator.get_record_offset(),
                    "length": iterator.get_record_length(),
                }
            )
    return records


def stored_pages(db: Path) -> dict[str, int | None]:
    with database(db) as conn:
        rows = conn.execute("SELECT url, status FROM pages").fetchall()
    conn.close()
    return dict(rows)


@pytest.mark.anyio
async def test_every_response_is_archived_with_its_request_and_indexed(tmp_path: Path) -> None:
    spec = SiteSpec(pages=40)
    warc_dir = tmp_path / "warc"
    with SiteServer(spec) as site:
        base = site.base_url
        await Crawl(
            config(warc_dir), [f"{base}/"], tmp_path / "c.db", AbortController().signal
        ).run()
    pages = stored_pages(tmp_path / "c.db")
    (warc_file,) = sorted(warc_dir.glob("*.warc.gz"))
    (index_file,) = sorted(warc_dir.glob("*.cdxj"))
    assert not list(warc_dir.glob("*.open"))
    assert index_file.name == warc_file.name.removesuffix(".warc.gz") + ".cdxj"
    records = read_warc(warc_file)

    info = records[0]
    assert info["type"] == "warcinfo"
    assert info["warc"]["WARC-Filename"] == warc_file.name
    assert b"http-header-user-agent: " + USER_AGENT.encode() in info["payload"]
    assert all(r["warc"]["WARC-Type"] != "warcinfo" for r in records[1:])
    # Then request/response pairs: the response first, its request concurrent to it.
    pairs = list(zip(records[1::2], records[2::2], strict=True))
    assert {(a["type"], b["type"]) for a, b in pairs} == {("response", "request")}
    assert len(pairs) == len(pages)  # the demo site never makes the crawl retry
    assert {response["url"] for response, _ in pairs} == set(pages)
    for response, request in pairs:
        url = response["url"]
        assert request["url"] == url
        assert request["warc"]["WARC-Concurrent-To"] == response["warc"]["WARC-Record-ID"]
        assert request["warc"]["WARC-Date"] == response["warc"]["WARC-Date"]
        assert int(response["http"].get_statuscode()) == pages[url]
        path = url.removeprefix(base)
        status, _, body = render(spec, path, base)
        assert request["http"].protocol == "GET"
        assert request["http"].statusline == f"{path} HTTP/1.1"
        assert dict(request["http"].headers) == {
            "Host": base.removeprefix("http://"),
            "User-Agent": USER_AGENT,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
            "Connection": "keep-alive",
        }
        http = response["http"]
        if status == 301:  # the fetch layer does not read redirect bodies
            assert response["payload"] == b""
            assert response["warc"]["WARC-Truncated"] == "unspecified"
            assert http.get_header("X-Crawler-Orig-Content-Length") == str(len(body))
            assert http.get_header("Location")
        else:
            assert response["payload"] == body  # exactly what the server sent
            assert "WARC-Truncated" not in response["warc"]
            assert http.get_header("Content-Type") == "text/html; charset=utf-8"
        assert http.get_header("Content-Length") == str(len(response["payload"]))

    index = [line.split(" ", 2) for line in index_file.read_text().splitlines()]
    assert len(index) == len(pairs)
    for (key, timestamp, fields), (response, _) in zip(index, pairs, strict=True):
        entry = json.loads(fields)
        assert entry == {
            "url": response["url"],
            "mime": "text/html",
            "status": response["http"].get_statuscode(),
            "digest": response["warc"]["WARC-Payload-Digest"],
            "length": str(response["length"]),
            "offset": str(response["offset"]),
            "filename": warc_file.name,
        }
        assert key == surt(response["url"])
        date = response["warc"]["WARC-Date"]  # 2026-11-25T01:28:55.389123Z
        assert timestamp == date[:19].replace("-", "").replace(":", "").replace("T", "")


@pytest.mark.anyio
async def test_files_rotate_at_the_size_limit_and_each_is_complete(tmp_path: Path) -> None:
    warc_dir = tmp_path / "warc"
    with SiteServer(SiteSpec(pages=60)) as site:
        cfg = config(warc_dir, **{"output.warc_max_bytes": 8_000})
        await Crawl(cfg, [f"{site.base_url}/"], tmp_path / "c.db", AbortController().signal).run()
    files = sorted(warc_dir.glob("*.warc.gz"))
    assert len(files) > 3
    assert [f.name[-14:] for f in files] == [f"-{i:05d}.warc.gz" for i in range(len(files))]
    responses: list[str] = []
    for path in files:
        records = read_warc(path)
        assert records[0]["type"] == "warcinfo"
        assert path.stat().st_size < 8_000 + 4_000  # rotated right after the record that filled it
        responses += [r["url"] for r in records if r["type"] == "response"]
        index = path.with_name(path.name.removesuffix(".warc.gz") + ".cdxj").read_text()
        assert len(index.splitlines()) == sum(r["type"] == "response" for r in records)
    assert sorted(responses) == sorted(stored_pages(tmp_path / "c.db"))


@pytest.mark.anyio
async def test_decoded_bodies_get_consistent_headers(tmp_path: Path) -> None:
    lease = Lease(1, "http://a.test/x?q=1", "a.test", 0)
    headers = (
        (b"Content-Type", b"text/html"),
        (b"Content-Encoding", b"gzip"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    )
    gzipped = FetchedResponse(lease.url, 200, "text/html", b"<p>hi</p>", headers=headers)
    cut = FetchedResponse(lease.url, 200, "text/html", b"x" * 100, truncated=True)
    image = FetchedResponse(
        lease.url, 200, "image/png", b"", headers=((b"Content-Type", b"image/png"),)
    )
    async with WarcArchive(tmp_path, max_bytes=10**9, user_agent="t") as archive:
        for response in (gzipped, cut, image):
            archive.add(lease, response)
        archive.finish()
        async with asyncio.timeout(10):
            await archive.run()
    (path,) = archive.files
    first, second, third = (r for r in read_warc(path) if r["type"] == "response")
    http = first["http"]
    assert first["payload"] == b"<p>hi</p>"
    assert http.get_header("Content-Encoding") is None
    assert http.get_header("X-Crawler-Orig-Content-Encoding") == "gzip"
    assert http.get_header("X-Crawler-Orig-Transfer-Encoding") == "chunked"
    assert http.get_header("Content-Length") == "9"
    assert [v for k, v in http.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert second["warc"]["WARC-Truncated"] == "length"
    assert third["payload"] == b""
    assert third["warc"]["WARC-Truncated"] == "unspecified"
    assert archive.records == 3


RECEIVED_HEAD = b"HTTP/1.0 200 Fine\r\nX-Latin: caf\xe9\r\ncontent-TYPE: text/html\r\n"
RECEIVED_BODY = b"<p>fine</p>"


async def answer_as_received(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One HTTP/1.0 answer, byte for byte; its body ends when the server closes."""
    writer.write(RECEIVED_HEAD + b"\r\n" + RECEIVED_BODY)
    await writer.drain()


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
async def test_the_status_line_and_headers_are_archived_as_received(
    tmp_path: Path, transport: str
) -> None:
    # They were archived as "HTTP/1.1 200 OK", "x-latin: caf%C3%A9", names lower-cased.
    section = FetchSection(transport=transport)  # type: ignore[arg-type]
    async with TestServer(lambda request: answer_as_received) as server:
        url = server.url("/fine")
        async with Fetcher(section, user_agent="t", concurrency=1) as fetcher:
            response = await fetcher.fetch(url)
    async with WarcArchive(tmp_path, max_bytes=10**9, user_agent="t") as archive:
        archive.add(Lease(1, url, "127.0.0.1", 0), response)
        archive.finish()
        async with asyncio.timeout(10):
            await archive.run()
    (path,) = archive.files
    record = b"\r\n\r\n" + RECEIVED_HEAD + b"Content-Length: 11\r\n\r\n" + RECEIVED_BODY
    assert record in gzip.decompress(path.read_bytes())
    (archived,) = (r for r in read_warc(path) if r["type"] == "response")  # digests checked
    assert (archived["http"].protocol, archived["http"].statusline) == ("HTTP/1.0", "200 Fine")
    assert archived["payload"] == RECEIVED_BODY


def test_surt_keys() -> None:
    assert surt("http://www.Example.com:8080/A?b=2&a=1") == "com,example:8080)/a?a=1&b=2"
    assert surt("https://example.com/") == "com,example)/"
    assert surt("https://example.com:443/x") == "com,example)/x"
    assert surt("http://127.0.0.1:8000/page/0") == "1,0,0,127:8000)/page/0"


@pytest.mark.anyio
async def test_spool_holds_producers_back_while_full() -> None:
    spool: Spool[int] = Spool(max_bytes=100)
    spool.put(1, 60)
    await spool.room()  # under the limit: no wait
    spool.put(2, 60)
    waiter = asyncio.create_task(spool.room())
    await asyncio.sleep(0)
    assert not waiter.done()  # over the limit: producers wait...
    assert await spool.take() == [1, 2]
    async with asyncio.timeout(5):
        await waiter  # ...until the writer takes the queue
    spool.put(3, 1)
    spool.finish()
    assert await spool.take() == [3]
    assert await spool.take() == []
    with pytest.raises(RuntimeError):
        spool.put(4, 1)


def test_cli_warc_option(tmp_path: Path) -> None:
    with SiteServer(SiteSpec(pages=10)) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        proc = crawl_process(
            "run", seeds, "--db", tmp_path / "c.db", "--config", write_config(tmp_path),
            "--warc", tmp_path / "warc",
        )  # fmt: skip
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    (path,) = (tmp_path / "warc").glob("*.warc.gz")
    urls = {r["url"] for r in read_warc(path) if r["type"] == "response"}
    assert urls == set(stored_pages(tmp_path / "c.db"))


@pytest.mark.anyio
async def test_request_records_show_the_configured_headers_but_no_credentials(
    tmp_path: Path,
) -> None:
    def answer(request: Request) -> Response:
        if request.path == "/":
            return 200, {"Content-Type": "text/html"}, b'<a href="/next">next</a>'
        return 200, {"Content-Type": "text/html"}, b"<title>next</title>"

    warc_dir = tmp_path / "warc"
    with TestServer(answer, host="127.0.0.2") as server:
        host = f"{server.host}:{server.port}"
        overrides = {
            "fetch.headers": {"X-Team": "crawl-team", "Accept": "text/html"},
            "fetch.hosts": {
                host: {"headers": {"X-Host": "one"}, "auth": "alice:pw", "auth_over_http": True}
            },
        }
        await Crawl(
            config(warc_dir, **overrides),
            [f"http://{host}/"],
            tmp_path / "c.db",
            AbortController().signal,
        ).run()
        seen = server.requests()
    assert {r.target for r in seen} >= {"/", "/next"}
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in seen)
    (warc_file,) = sorted(warc_dir.glob("*.warc.gz"))
    requests = [r for r in read_warc(warc_file) if r["type"] == "request"]
    assert {r["url"] for r in requests} == {f"http://{host}/", f"http://{host}/next"}
    for record in requests:
        assert dict(record["http"].headers) == {
            "Host": host,
            "User-Agent": USER_AGENT,
            "Accept": "text/html",  # fetch.headers replaced the crawler's own
            "Accept-Encoding": ACCEPT_ENCODING,
            "X-Team": "crawl-team",
            "X-Host": "one",
            "Connection": "keep-alive",
        }
