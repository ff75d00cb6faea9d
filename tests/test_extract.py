"""The user's own data (issue 21, sections 1 and 2): ``[extract.fields]`` rules and the
``extract.hook``, run in the parse worker (both pool kinds) during real crawls of local sites.

The rules' results are compared field by field with an independent reading of the same pages:
lxml's parser, XPath instead of CSS, urllib's urljoin instead of the crawler's URL code."""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import lxml.html
import pytest

import crawler
from crawler.abort import AbortController
from crawler.config import Config
from crawler.engine import Crawl, CrawlReport
from crawler.errors import ConfigError
from crawler.models import Lease, Response
from crawler.parse.extract import URL_ATTRIBUTES, ExtractRules, FieldRule
from crawler.parse.hook import hook_name
from crawler.parse.outcome import build_outcome
from crawler.parse.pool import ParsePoolFailed
from tests import extract_hooks
from tests.helpers import (
    crawl_config,
    crawl_process,
    database,
    link_rules,
    write_config,
    write_seeds,
)
from tests.hostile_site import HostileSite
from tests.servers import Request, TestServer

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]

HTML_TYPE = "text/html; charset=utf-8"

RULES: dict[str, dict[str, Any]] = {
    "headline": {"css": "h1"},
    "price": {"css": "span.price", "urls": r"/shop/item/\d+$"},
    "links_out": {"css": "a.out", "attr": "href", "all": True},
    "images": {"css": "img", "attr": "src", "all": True},
    "tags": {"css": "ul.tags li", "all": True},
    "lang": {"css": "html", "attr": "lang"},
    "nothing": {"css": "table.none"},
}
"""The rules of the crawls, and (below) the same questions asked in XPath."""


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


XPATHS: dict[str, tuple[str, str, bool]] = {
    # name: (XPath of the elements, attribute or "" for the text, every match)
    "headline": ("//h1", "", False),
    "price": (f"//span[{_has_class('price')}]", "", False),
    "links_out": (f"//a[{_has_class('out')}]", "href", True),
    "images": ("//img", "src", True),
    "tags": (f"//ul[{_has_class('tags')}]//li", "", True),
    "lang": ("/html", "lang", False),
    "nothing": (f"//table[{_has_class('none')}]", "", False),
}


def shop_item(number: int) -> str:
    return f"""<!doctype html><html lang="en-GB"><head><title>Item {number}</title></head>
<body><h1>  Widget
   number <em>{number}</em> </h1>
<span class="price special"> ${number}.50 </span><span class="price">ignored</span>
<img src="img/{number}.png"><img src="/static/logo.png"><img alt="no src">
<img src="//127.0.0.1/cdn/x.png"><img src="data:image/png;base64,AAAA">
<a class="out reference" href="../../news/1">news</a>
<a class="out" href="./{number + 1}#top">next</a>
<a class="out" href="?page=2">page two</a>
<a class="out" href="mailto:shop@example.com">mail</a>
<a class="out" href="   ">blank</a>
<a class="out" href="http://elsewhere.example/x?y=1">elsewhere</a>
<a href="/shop/item/{number + 1}">plain</a>
<table><tr><td class="cell">a</td><td class="cell"> b </td></tr></table>
</body></html>"""


PAGES: dict[str, str] = {
    "/": """<!doctype html><title>Index</title>
<a href="/shop/item/1">1</a> <a href="/news/1">n1</a> <a href="/news/2">n2</a>
<a href="/base/page">base</a> <a href="/data.json">json</a> <a href="/broken/1">b</a>
<a href="/nothing">nothing</a>""",
    "/shop/item/1": shop_item(1),
    "/shop/item/2": shop_item(2),
    "/news/1": """<!doctype html><html><title>News</title>
<h1>Breaking: <b>big</b>
 news</h1><h1>second headline</h1><span class="price">not a shop page</span>
<ul class="tags"><li>alpha</li><li>  beta   gamma </li><li> </li><li><a href="x">delta</a></li></ul>
<a class="out" href="../shop/item/2">item 2</a></html>""",
    "/news/2": """<!doctype html><meta name="robots" content="noindex"><title>Hidden</title>
<h1>Not for search engines</h1><ul class="tags"><li>secret</li></ul>""",
    "/base/page": """<!doctype html><base href="/shop/"><title>Based</title>
<a class="out" href="item/2">item</a><a class="out" href="/news/1">news</a><img src="x.png">""",
    "/broken/1": "<!doctype html><title>Broken</title><h1>Still a headline</h1>",
    "/nothing": "<!doctype html><title>Nothing</title><p>plain</p>",
    "/hidden/1": "<!doctype html><title>Hidden 1</title><h1>found by the hook</h1>",
    "/hidden/2": "<!doctype html><title>Hidden 2</title><h1>found by the hook too</h1>",
    "/slow": "<!doctype html><title>Slow</title><h1>slow</h1>",
}


def answer(request: Request) -> tuple[int, dict[str, str], bytes]:
    if request.path == "/data.json":
        return 200, {"Content-Type": "application/json"}, b'{"h1": "not html"}'
    page = PAGES.get(request.path)
    if page is None:
        return 404, {"Content-Type": "text/plain"}, b"not found"
    return 200, {"Content-Type": HTML_TYPE}, page.encode()


@pytest.fixture
def site() -> Iterator[TestServer]:
    with TestServer(answer) as server:
        yield server


def lxml_fields(url: str, body: str) -> dict[str, Any] | None:
    """What RULES should find on ``body``, read with lxml and urllib alone."""
    document = lxml.html.fromstring(body)
    bases = document.xpath("//base/@href")
    base = urljoin(url, bases[0].strip()) if bases else url

    def value(element: Any, attribute: str) -> str | None:
        if not attribute:
            return " ".join(element.text_content().split()) or None
        raw = element.get(attribute)
        if raw is None:
            return None
        if attribute in URL_ATTRIBUTES:  # an empty one is the base itself, as in browsers
            absolute = urldefrag(urljoin(base, raw.strip()))[0]
            if urlsplit(absolute).scheme in ("http", "https"):
                return absolute
        return " ".join(raw.split())

    found: dict[str, Any] = {}
    for name, (xpath, attribute, every) in XPATHS.items():
        pattern = RULES[name].get("urls")
        if pattern is not None and not re.search(pattern, url):
            continue
        elements = document.xpath(xpath)
        if every:
            values = [v for e in elements if (v := value(e, attribute)) is not None]
            if values:
                found[name] = values
        elif elements and (v := value(elements[0], attribute)) is not None:
            found[name] = v
    return found or None


def config(parse_processes: int = 0, **overrides: object) -> Config:
    return crawl_config(
        4,
        **{
            "runtime.parse_processes": parse_processes,
            "extract.fields": RULES,
            "politeness.robots": False,
            **overrides,
        },
    )


async def run_crawl(site: TestServer, db: Path, cfg: Config, *paths: str) -> CrawlReport:
    seeds = [site.url(path) for path in paths or ("/",)]
    return await Crawl(cfg, seeds, db, AbortController().signal).run()


def stored(db: Path) -> dict[str, sqlite3.Row]:
    """Each stored page's row by path (and query)."""
    with database(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM pages").fetchall()
    return {"/" + row["url"].split("/", 3)[3]: row for row in rows}


def data_of(row: sqlite3.Row) -> dict[str, Any] | None:
    return None if row["data"] is None else json.loads(row["data"])


POOLS = [pytest.param(1, id="processes"), pytest.param(0, id="threads")]


# -- rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("processes", POOLS)
async def test_rules_extract_what_an_independent_parser_reads(
    site: TestServer, tmp_path: Path, processes: int
) -> None:
    db = tmp_path / "crawl.db"
    report = await run_crawl(site, db, config(processes))
    assert report.complete
    rows = stored(db)
    html_pages = [path for path, row in rows.items() if row["content_type"] == HTML_TYPE]
    # Every page linked from the index, the shop items they link to, each with a query too.
    assert set(html_pages) == {
        *("/", "/news/1", "/news/2", "/base/page", "/broken/1", "/nothing"),
        *("/shop/item/1", "/shop/item/1?page=2", "/shop/item/2", "/shop/item/2?page=2"),
    }
    for path in html_pages:
        expected = lxml_fields(site.url(path), PAGES[urlsplit(path).path])
        assert data_of(rows[path]) == expected, path
    # The comparison is not between two empty results: every rule but "nothing" matched.
    matched = {name for path in html_pages for name in data_of(rows[path]) or {}}
    assert matched == set(RULES) - {"nothing"}
    item = data_of(rows["/shop/item/1"])
    assert item is not None
    assert (item["headline"], item["price"], item["lang"]) == ("Widget number 1", "$1.50", "en-GB")
    assert data_of(rows["/news/2"]) == {  # noindex: no title stored, the user's data kept
        "headline": "Not for search engines",
        "tags": ["secret"],
    }
    assert (rows["/news/2"]["title"], rows["/news/2"]["notes"]) == (None, "noindex")
    assert rows["/data.json"]["data"] is None  # not HTML: no rule runs
    assert rows["/"]["data"] is None  # nothing matched: SQL NULL, not {}


async def test_without_rules_no_page_has_data(site: TestServer, tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    await run_crawl(site, db, config(0, **{"extract.fields": {}}))
    assert {path: row["data"] for path, row in stored(db).items() if row["data"] is not None} == {}


# -- the hook ---------------------------------------------------------------------------------


@pytest.mark.parametrize("processes", POOLS)
async def test_a_hook_sees_the_page_and_one_that_raises_only_notes_that_page(
    site: TestServer, tmp_path: Path, processes: int
) -> None:
    db = tmp_path / "crawl.db"
    cfg = config(processes, **{"extract.hook": "tests.extract_hooks:summary"})
    report = await run_crawl(site, db, cfg)
    assert report.complete
    rows = stored(db)
    broken = rows["/broken/1"]
    # The page is stored with the rules' fields; the note has no comma (notes are a list).
    assert broken["status"] == 200
    assert broken["notes"] == "extract_error: ValueError: no summary here; sorry"
    assert data_of(broken) == {"headline": "Still a headline"}
    assert report.stats.notes["extract_error: ValueError: no summary here; sorry"] == 1
    item = data_of(rows["/shop/item/1"])
    rules_found = lxml_fields(site.url("/shop/item/1"), PAGES["/shop/item/1"])
    assert rules_found is not None
    assert item == {
        **rules_found,
        "words": len(PAGES["/shop/item/1"].split()),
        "status": 200,
        "content_type": HTML_TYPE,
        "fields_seen": sorted(rules_found),
        "cells": ["a", " b "],
        "final_url": site.url("/shop/item/1"),
    }
    assert data_of(rows["/nothing"]) is None  # the hook returned None, no rule matched
    noted = [path for path, row in rows.items() if "extract_error" in (row["notes"] or "")]
    assert noted == ["/broken/1"]


@pytest.mark.parametrize("processes", POOLS)
async def test_urls_a_hook_follows_go_through_the_scope(tmp_path: Path, processes: int) -> None:
    offsite_requests: list[str] = []

    def offsite(request: Request) -> tuple[int, dict[str, str], bytes]:
        offsite_requests.append(request.path)
        return 200, {"Content-Type": HTML_TYPE}, b"<title>offsite</title>"

    # The hook offers the site's URL on 127.0.0.2 (same port): another host, out of scope.
    with TestServer(answer) as site, TestServer(offsite, host="127.0.0.2", port=site.port):
        db = tmp_path / "crawl.db"
        cfg = config(processes, **{"extract.hook": "tests.extract_hooks:follow_more"})
        report = await run_crawl(site, db, cfg)
    assert report.complete
    rows = stored(db)
    # No page links to them: only the hook offered them, and they were fetched.
    assert rows["/hidden/1"]["status"] == 200
    assert rows["/hidden/2"]["status"] == 200
    assert data_of(rows["/hidden/1"]) == {"headline": "found by the hook"}
    assert offsite_requests == []
    with database(db) as conn:
        recorded = {dst for (dst,) in conn.execute("SELECT dst_url FROM links")}
        queued = {url for (url,) in conn.execute("SELECT url FROM frontier")}
    offsite_url = site.url("/offsite").replace("127.0.0.1", "127.0.0.2")
    assert offsite_url in recorded  # a link of the page, as the hook said...
    assert offsite_url not in queued  # ...but out of scope: never offered to the frontier


async def test_a_hook_that_hangs_is_stopped_by_the_parse_deadline(
    site: TestServer, tmp_path: Path
) -> None:
    db = tmp_path / "crawl.db"
    cfg = config(1, **{"extract.hook": "tests.extract_hooks:hang", "runtime.parse_timeout": 0.5})
    report = await run_crawl(site, db, cfg, "/slow", "/news/1")
    assert report.complete
    rows = stored(db)
    assert (rows["/slow"]["status"], rows["/slow"]["notes"]) == (200, "parse_timeout")
    assert rows["/slow"]["data"] is None
    assert data_of(rows["/news/1"]) == lxml_fields(site.url("/news/1"), PAGES["/news/1"])


async def test_rules_on_a_page_that_takes_the_parser_to_its_deadline(tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    rules = {"headline": {"css": "title"}, "divs": {"css": "div", "all": True}}
    cfg = config(1, **{"extract.fields": rules, "runtime.parse_timeout": 0.5})
    with HostileSite() as hostile:
        seeds = [hostile.base_url + "/body/deep-nesting", hostile.base_url + "/links/target"]
        report = await Crawl(cfg, seeds, db, AbortController().signal).run()
    assert report.complete
    rows = stored(db)
    deep = rows["/body/deep-nesting"]
    assert (deep["status"], deep["notes"], deep["data"]) == (200, "parse_timeout", None)
    assert data_of(rows["/links/target"]) == {"headline": "target"}


@pytest.mark.parametrize(
    ("hook", "note"),
    [
        (extract_hooks.unencodable, "TypeError: Object of type datetime is not JSON serializable"),
        (extract_hooks.not_a_dict, "TypeError: the hook returned a list; not a dict or None"),
        (extract_hooks.int_keys, "TypeError: the hook returned a dict whose keys are not all"),
        (extract_hooks.not_a_number, "ValueError: Out of range float values are not JSON"),
    ],
)
def test_a_hook_result_that_is_not_json_fields_is_the_page_note(
    hook: Callable[..., object], note: str
) -> None:
    rules = ExtractRules(
        fields=(FieldRule("headline", "h1"),), hook=hook_name(hook), search_path=tuple(sys.path)
    )
    lease = Lease(1, "http://a.test/news/1", "a.test", 0)
    response = Response(lease.url, 200, HTML_TYPE, PAGES["/news/1"].encode())
    outcome = build_outcome(
        lease, response, replace(link_rules(), extract=rules), "2026-01-01T00:00:00.000Z"
    )
    assert (outcome.page.notes or "").startswith(f"extract_error: {note}")
    assert outcome.page.data == {"headline": "Breaking: big news"}  # the rules' fields stay
    assert outcome.follow  # and the page's links are still followed


# -- checked before any request ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ('[extract.fields.price]\ncss = "span["', "extract.fields.price.css", "parse CSS selector"),
        ('[extract.fields.price]\ncss = ""', "extract.fields.price.css", "parse CSS selector"),
        (
            '[extract.fields.price]\ncss = "span"\nurls = "(item"',
            "extract.fields.price.urls",
            "invalid regular expression '(item': missing ), unterminated subpattern",
        ),
        ('[extract.fields."a b"]\ncss = "p"', "extract.fields.a b", "must be named by letters"),
        (
            '[extract]\nhook = "no_such_module:f"',
            "extract.hook",
            "cannot import no_such_module: ModuleNotFoundError",
        ),
        ('[extract]\nhook = "tests.extract_hooks:nope"', "extract.hook", "names nope, which"),
        ('[extract]\nhook = "tests.extract_hooks:NOT_CALLABLE"', "extract.hook", "not callable"),
        ('[extract]\nhook = "tests.extract_hooks"', "extract.hook", "must be package.module:"),
    ],
)
def test_rules_or_a_hook_that_cannot_work_exit_1_with_one_line_before_any_request(
    site: TestServer, tmp_path: Path, table: str, key: str, problem: str
) -> None:
    config_file = write_config(tmp_path, f"\n{table}\n")
    seeds = write_seeds(tmp_path, site.url("/"))
    process = crawl_process("run", seeds, "--config", config_file, "--db", tmp_path / "c.db",
                            cwd=ROOT)  # fmt: skip
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    [line] = stderr.splitlines()
    assert f"`{key}`" in line
    assert problem in line
    assert site.requests() == []


def test_run_takes_the_hook_function_itself(site: TestServer, tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    report = crawler.run(
        site.url("/"), db=db, config=config(1), extract=extract_hooks.summary, progress="off"
    )
    assert report.complete
    item = data_of(stored(db)["/shop/item/1"])
    assert item is not None
    assert (item["headline"], item["status"]) == ("Widget number 1", 200)


class _Hooks:
    def hook(self, page: object) -> None:
        return None


def _closure() -> Callable[[object], None]:
    def inner(page: object) -> None:
        return None

    return inner


@pytest.mark.parametrize(
    ("hook", "problem"),
    [
        (lambda page: None, "<lambda> is not importable by name"),
        (_closure(), "_closure.<locals>.inner is not importable by name"),
        (functools.partial(extract_hooks.summary), "functools.partial("),
        (_Hooks().hook, "_Hooks.hook names another object"),  # bound
    ],
)
def test_a_hook_the_parse_worker_cannot_find_by_name_is_refused_at_start(
    site: TestServer, tmp_path: Path, hook: Callable[..., object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        crawler.run(site.url("/"), db=tmp_path / "c.db", config=config(1), extract=hook)
    assert site.requests() == []


async def test_the_parse_worker_finds_a_hook_where_the_crawl_process_did(
    site: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module beside a script, or on a path added in code: not on the worker's own sys.path.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "shout_hook.py").write_text(
        "def shout(page):\n    return {'shout': page.fields.get('headline', '').upper()}\n"
    )
    monkeypatch.syspath_prepend(str(hooks))
    db = tmp_path / "crawl.db"
    report = await run_crawl(site, db, config(1, **{"extract.hook": "shout_hook:shout"}))
    assert report.complete
    item = data_of(stored(db)["/news/1"])
    assert item is not None
    assert item["shout"] == "BREAKING: BIG NEWS"


async def test_a_hook_the_parse_worker_cannot_import_ends_the_crawl_with_one_clear_line(
    site: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module that exists in the crawl's process only (made in code): the config check finds
    # it, the parse worker process cannot.
    module = types.ModuleType("made_in_code_hooks")
    module.hook = extract_hooks.summary  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "made_in_code_hooks", module)
    cfg = config(1, **{"extract.hook": "made_in_code_hooks:hook"})
    with pytest.raises(ParsePoolFailed) as failed:
        await crawler.crawl(site.url("/"), db=tmp_path / "crawl.db", config=cfg)
    assert str(failed.value) == (
        "the parse worker process cannot start: extract.hook cannot import made_in_code_hooks: "
        "ModuleNotFoundError: No module named 'made_in_code_hooks'"
    )
