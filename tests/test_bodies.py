"""``--store-bodies``: the bodies of a real crawl, compressed beside the database, read back."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from crawler.abort import AbortController
from crawler.archive.bodies import bodies_path
from crawler.config_load import load_config
from crawler.demo import SiteServer, SiteSpec, render
from crawler.engine import Crawl
from tests.helpers import crawl_process, database, write_config, write_seeds


def test_bodies_path_is_beside_the_database() -> None:
    assert bodies_path(Path("/data/crawl.db")) == Path("/data/crawl-bodies.db")
    assert bodies_path(Path("out/x")) == Path("out/x-bodies.db")


@pytest.mark.anyio
async def test_every_body_read_is_stored_compressed(tmp_path: Path) -> None:
    spec = SiteSpec(pages=30)
    db = tmp_path / "crawl.db"
    cfg = load_config(
        overrides={
            "crawl.concurrency": 4,
            "politeness.per_host_delay": 0.0,
            "runtime.stats_interval": 0.0,
            "output.store_bodies": True,
        },
        environ={},
    )
    with SiteServer(spec) as site:
        base = site.base_url
        await Crawl(cfg, [f"{base}/"], db, AbortController().signal).run()
    with database(db) as conn:
        pages = dict(conn.execute("SELECT url, size FROM pages WHERE size > 0").fetchall())
    conn.close()
    with database(bodies_path(db)) as conn:
        rows = conn.execute(
            "SELECT url, status, content_type, encoding, size, truncated, body FROM bodies"
        ).fetchall()
    conn.close()
    assert {row[0] for row in rows} == set(pages)  # redirects have no body read: no row
    for url, status, content_type, encoding, size, truncated, body in rows:
        expected_status, _, expected = render(spec, url.removeprefix(base), base)
        assert zlib.decompress(body) == expected
        assert (status, encoding, size, truncated) == (expected_status, "zlib", pages[url], 0)
        assert content_type == "text/html; charset=utf-8"
        assert len(body) < size


def test_fresh_deletes_the_bodies_too(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with SiteServer(SiteSpec(pages=5)) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        args = ("run", seeds, "--db", db, "--config", write_config(tmp_path), "--store-bodies")
        first = crawl_process(*args)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        with database(bodies_path(db)) as conn:
            conn.execute("INSERT INTO bodies VALUES ('x', 'x', 200, NULL, 'zlib', 0, 0, x'')")
        conn.close()
        second = crawl_process(*args, "--fresh")
        _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    with database(bodies_path(db)) as conn:
        assert conn.execute("SELECT count(*) FROM bodies WHERE url = 'x'").fetchone() == (0,)
    conn.close()
