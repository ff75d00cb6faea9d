"""Importing a Netscape cookies.txt (``fetch.cookies_file``): a logged-in crawl of a real local
site, the file's rules (HttpOnly lines, session and expired cookies, domain-wide lines), and
bad files, which end the run with one line naming the file and line and never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.abort import AbortController
from crawler.config_load import load_config
from crawler.engine import Crawl
from crawler.errors import ConfigError
from crawler.fetch.cookies import HostCookies
from crawler.fetch.cookies_file import read_cookies_file
from tests.helpers import crawl_process, database, pages, write_seeds
from tests.servers import Request, Response, TestServer

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-session"
HEADER = "# Netscape HTTP Cookie File\n"


def members_only(request: Request) -> Response:
    """A site whose every page needs the login cookie ``sid``: 403 without it. ``/`` links to
    ``/members``."""
    if request.path == "/robots.txt":
        return 404, {}, b""
    if f"sid={SECRET}" not in (request.headers.get("cookie") or ""):
        return 403, {"Content-Type": "text/html"}, b"<title>login first</title>"
    return 200, {"Content-Type": "text/html"}, b'<title>in</title><a href="/members">m</a>'


def cookies_txt(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "cookies.txt"
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return path


def line(
    domain: str, name: str, value: str, *, expires: str = "0", subdomains: str = "FALSE"
) -> str:
    return "\t".join((domain, subdomains, "/", "FALSE", expires, name, value))


async def crawl(
    site: TestServer, tmp_path: Path, db: str, **overrides: object
) -> dict[str, int | None]:
    config = load_config(
        overrides={"politeness.per_host_delay": 0.0, "runtime.stats_interval": 0.0, **overrides},
        environ={},
    )
    await Crawl(config, [site.url("/")], tmp_path / db, AbortController().signal).run()
    return {path: status for path, (status, _) in pages(tmp_path / db).items()}


async def test_a_site_that_needs_a_login_cookie_is_crawled_with_the_exported_one(
    tmp_path: Path,
) -> None:
    with TestServer(members_only, host="127.0.0.2") as site:
        # A curl export: the login is HttpOnly and a session cookie (expiry 0), beside an
        # expired cookie and one of another host, neither of which may be sent.
        cookies = cookies_txt(
            tmp_path,
            "# a comment",
            "#HttpOnly_" + line("127.0.0.2", "sid", SECRET),
            line("127.0.0.2", "old", "gone", expires="1"),
            line("127.0.0.3", "other", "elsewhere"),
        )
        statuses = await crawl(site, tmp_path, "in.db", **{"fetch.cookies_file": str(cookies)})
        assert statuses == {"/": 200, "/members": 200}
        assert {r.headers.get("cookie") for r in site.requests() if r.path != "/robots.txt"} == {
            f"sid={SECRET}"
        }
        # Negative control: without the file, the same crawl is refused at the door.
        assert await crawl(site, tmp_path, "out.db") == {"/": 403}


def test_a_domain_wide_line_goes_to_its_domain_and_the_hosts_under_it_only(tmp_path: Path) -> None:
    path = cookies_txt(
        tmp_path,
        line(".example.com", "wide", "1", subdomains="TRUE"),
        line("example.com", "exact", "1"),
    )
    cookies = HostCookies(read_cookies_file(str(path)))
    assert cookies.header("http://www.example.com/", "www.example.com") == b"wide=1"
    assert cookies.header("https://example.com/", "example.com") in (
        b"exact=1; wide=1",
        b"wide=1; exact=1",
    )
    assert cookies.header("http://example.org/", "example.org") is None
    assert cookies.header("http://badexample.com/", "badexample.com") is None


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("127.0.0.2\tFALSE\t/\tFALSE\t0\tsid", "has 6 tab-separated fields, not 7"),
        (line("127.0.0.2", "sid", SECRET, expires="soon"), "the expiry field must be Unix seconds"),
        (line("127.0.0.2", "sid", SECRET, subdomains="yes"), "must be TRUE or FALSE"),
        (line(".127.0.0.2", "sid", SECRET), "needs include-subdomains TRUE"),
        (line(".co.uk", "sid", SECRET, subdomains="TRUE"), "co.uk is a public suffix"),
        (line("127.0.0.2", "", SECRET), "the name field is empty"),
    ],
)
def test_a_bad_line_is_named_by_file_and_number_without_its_value(
    tmp_path: Path, bad: str, problem: str
) -> None:
    path = cookies_txt(tmp_path, line("127.0.0.2", "ok", "1"), bad)
    with pytest.raises(ConfigError) as raised:
        read_cookies_file(str(path))
    message = str(raised.value)
    assert message.startswith(f"cookies file {path}, line 3: ")
    assert problem in message
    assert SECRET not in message


def test_a_file_with_cookies_off_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fetch\.cookies_file.*needs fetch\.cookies"):
        load_config(
            overrides={"fetch.cookies_file": "cookies.txt", "fetch.cookies": "off"}, environ={}
        )


@pytest.mark.parametrize("kind", ["missing", "bad line"])
def test_a_run_with_a_bad_cookies_file_exits_1_with_one_line(tmp_path: Path, kind: str) -> None:
    cookies = tmp_path / "cookies.txt"
    if kind == "bad line":
        cookies_txt(tmp_path, line("127.0.0.2", "sid", SECRET, expires="never"))
    config = tmp_path / "c.toml"
    config.write_text(f'[fetch]\ncookies_file = "{cookies}"\n')
    seeds = write_seeds(tmp_path, "http://127.0.0.2:9/")
    process = crawl_process("run", seeds, "--db", tmp_path / "c.db", "--config", config)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    expected = "cannot read cookies file" if kind == "missing" else "line 2: the expiry field"
    assert str(cookies) in lines[0]
    assert expected in lines[0]
    assert SECRET not in out + err


def test_a_bad_cookies_file_stops_fresh_before_it_deletes_the_crawl(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    page: Response = (200, {"Content-Type": "text/html"}, b"<title>p</title>")
    with TestServer(lambda request: page, host="127.0.0.2") as site:
        seeds = write_seeds(tmp_path, f"http://127.0.0.2:{site.port}/")
        first = crawl_process("run", seeds, "--db", db)
        first.communicate(timeout=60)
    assert first.returncode == 0
    with database(db) as conn:
        before = conn.execute("SELECT url, status FROM pages").fetchall()
    assert before
    cookies_txt(tmp_path, line("127.0.0.2", "sid", SECRET, expires="never"))
    config = tmp_path / "c.toml"
    config.write_text(f'[fetch]\ncookies_file = "{tmp_path / "cookies.txt"}"\n')
    again = crawl_process("run", seeds, "--db", db, "--config", config, "--fresh")
    _, err = again.communicate(timeout=60)
    assert again.returncode == 1
    assert "line 2: the expiry field" in err
    with database(db) as conn:
        assert conn.execute("SELECT url, status FROM pages").fetchall() == before
