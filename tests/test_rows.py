"""A page's rows for the sink, encoded off the loop: what the database gets from them."""

from __future__ import annotations

import json
from pathlib import Path

from crawler.abort import AbortController
from crawler.config_load import load_config
from crawler.engine import Crawl
from crawler.models import Lease, PageRecord, Response
from crawler.parse.outcome import build_outcome
from crawler.store.rows import json_array, page_rows, rows_of


def test_rows_are_the_links_and_the_offered_urls_with_their_hosts() -> None:
    rows = page_rows(
        PageRecord("http://a.test/é", depth=2, fetched_at="t", status=200),
        ['http://a.test/q?x="1"', "http://b.test:8080/"],
        ["http://b.test:8080/", "http://c.test/", "http://b.test:8080/x"],
        depth=3,
        hops=1,
    )
    assert json.loads(json_array([rows.links])) == [
        ["http://a.test/é", 'http://a.test/q?x="1"'],
        ["http://a.test/é", "http://b.test:8080/"],
    ]
    assert json.loads(json_array([rows.discovered])) == [
        ["http://b.test:8080/", "b.test:8080", 3, 1, 0],
        ["http://c.test/", "c.test", 3, 1, 0],
        ["http://b.test:8080/x", "b.test:8080", 3, 1, 0],
    ]
    assert rows.hosts == ("b.test:8080", "c.test")  # each once, in order


def test_rows_carry_each_offered_urls_offsite_distance() -> None:
    page = PageRecord("http://a.test/", depth=0, fetched_at="t", status=200)
    rows = page_rows(page, [], ["http://a.test/x", "http://b.test/"], 1, 0, [0, 1])
    assert json.loads(json_array([rows.discovered])) == [
        ["http://a.test/x", "a.test", 1, 0, 0],
        ["http://b.test/", "b.test", 1, 0, 1],
    ]


def test_pages_without_rows_join_into_valid_arrays() -> None:
    page = PageRecord("http://a.test/", depth=0, fetched_at="t", status=200)
    empty = page_rows(page, [], [], 1, 0)
    full = page_rows(page, ["http://a.test/1"], [], 1, 0)
    assert (empty.links, empty.discovered, empty.hosts) == ("", "", ())
    assert json.loads(json_array([empty.links, full.links, empty.links])) == [
        ["http://a.test/", "http://a.test/1"]
    ]
    assert json_array([]) == "[]"


def test_the_parse_worker_encodes_what_the_sink_would() -> None:
    # build_outcome (in the parse worker) attaches rows; an outcome without them is encoded
    # by the sink from its lists. Both must give the database the same rows.
    url = "http://a.test/dir/page"
    config = load_config(overrides={"crawl.max_depth": 5}, environ={})
    rules = Crawl(config, [url], Path("unused.db"), AbortController().signal)._rules
    body = (
        b"<a href='/1'>x</a><a href='2#f'>y</a><a href='http://a.test/1'>dup</a>"
        b"<a href='http://elsewhere.test/'>off scope</a><a href='mailto:x@y'>no</a>"
    )
    lease = Lease(id=1, url=url, host="a.test", depth=2)
    outcome = build_outcome(lease, Response(url, 200, "text/html", body), rules, "t")
    assert outcome.rows is not None
    assert outcome.follow == ["http://a.test/1", "http://a.test/dir/2"]
    assert "http://elsewhere.test/" in outcome.links
    assert outcome.rows == rows_of(
        outcome.__class__(lease, outcome.page, outcome.links, outcome.follow, 3)
    )
