"""The cookie jars across a crawl's runs: saved in the crawl database when a run ends, loaded
when the crawl resumes, gone with ``--fresh``; a real local site that sets a session cookie."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.api import crawl
from crawler.config_load import load_config
from crawler.fetch.cookies import HostCookies
from crawler.models import SavedCookie
from tests.helpers import database
from tests.servers import Request, Response, TestServer

pytestmark = pytest.mark.anyio

SESSION = "sid=from-the-site"


def sets_a_session_cookie(request: Request) -> Response:
    """``/`` sets a session cookie (no expiry) and links to ``/a`` and ``/b``."""
    if request.path == "/robots.txt":
        return 404, {}, b""
    if request.path == "/":
        body = b'<a href="/a">a</a><a href="/b">b</a>'
        return 200, {"Content-Type": "text/html", "Set-Cookie": f"{SESSION}; Path=/"}, body
    return 200, {"Content-Type": "text/html"}, b"<title>page</title>"


def cookies_sent(site: TestServer) -> dict[str, str | None]:
    """Page path -> the Cookie header its request carried."""
    return {r.path: r.headers.get("cookie") for r in site.requests() if r.path != "/robots.txt"}


async def test_a_resumed_crawl_sends_the_cookies_of_its_earlier_run_and_fresh_drops_them(
    tmp_path: Path,
) -> None:
    db = tmp_path / "c.db"
    config = load_config(
        overrides={"politeness.per_host_delay": 0.0, "runtime.stats_interval": 0.0}, environ={}
    )
    with TestServer(sets_a_session_cookie, host="127.0.0.2") as site:
        seeds = [site.url("/")]
        await crawl(seeds, db=db, config=config, max_pages=1)  # stops after / set the cookie
        assert cookies_sent(site) == {"/": None}
        with database(db) as conn:
            assert conn.execute("SELECT host, name, expires FROM cookies").fetchall() == [
                ("127.0.0.2", "sid", None)
            ]
        site.reset()
        await crawl(seeds, db=db, config=config)  # resumes: / is done, /a and /b are left
        assert cookies_sent(site) == {"/a": SESSION, "/b": SESSION}
        site.reset()
        await crawl(seeds, db=db, config=config, fresh=True, max_pages=1)
        assert cookies_sent(site) == {"/": None}  # the earlier runs' cookie is gone


def test_loaded_jars_keep_the_bounds_and_the_newer_value() -> None:
    def saved(host: str, name: str, value: str) -> SavedCookie:
        return SavedCookie(host, host, "/", name, value, False, None, False)

    cookies = HostCookies(max_per_host=2, max_total=3)
    cookies.store("http://a.test/", "a.test", [b"x=old; Path=/"])
    cookies.load(
        [
            saved("a.test", "x", "saved-value"),
            saved("a.test", "y", "1"),
            saved("a.test", "z", "1"),
        ]
    )
    # The saved x replaces the one the site set; z is over the host's limit.
    assert cookies.header("http://a.test/", "a.test") == b"x=saved-value; y=1"
    cookies.load([saved("b.test", "x", "1"), saved("b.test", "y", "1")])
    assert len(cookies) == 2  # over the total: the least recently used host's jar went
    assert cookies.header("http://a.test/", "a.test") is None
    assert cookies.header("http://b.test/", "b.test") == b"x=1; y=1"
    assert "saved-value" not in repr(cookies.saved())  # a value is in no repr
