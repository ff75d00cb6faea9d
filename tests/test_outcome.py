"""A response's outcome (crawler.parse.outcome): redirects, robots directives, nofollow."""

from __future__ import annotations

import json

import pytest

from crawler.models import Lease, Response
from crawler.parse.offered import RecentlyOffered
from crawler.parse.outcome import _directives, build_outcome
from crawler.store.rows import json_array
from tests.helpers import link_rules

RULES = link_rules()
LEASE = Lease(id=1, url="http://a.test/p", host="a.test", depth=2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("noindex", {"noindex"}),
        ("NoIndex, NOFOLLOW", {"noindex", "nofollow"}),
        ("none", {"noindex", "nofollow"}),
        ("otherbot: noindex, nofollow", set()),
        ("crawler: nofollow", {"nofollow"}),
        ("otherbot: noindex, crawler: nofollow", {"nofollow"}),
        ("*: noindex", {"noindex"}),
        (
            "unavailable_after: 25 Jun 2010 15:00:00 PST",
            {"unavailable_after: 25 jun 2010 15:00:00 pst"},
        ),
        ("", set()),
    ],
)
def test_robots_directives(value: str, expected: set[str]) -> None:
    assert _directives(value, "crawler") == expected


def redirect(location: str | None, hops: int = 0) -> tuple[list[str], str | None]:
    lease = Lease(id=1, url="http://a.test/p", host="a.test", depth=2, hops=hops)
    outcome = build_outcome(lease, Response(lease.url, 301, None, b"", location), RULES, "t")
    return outcome.follow, outcome.page.notes


def test_redirect_target_is_followed_with_one_more_hop() -> None:
    lease = Lease(id=1, url="http://a.test/p", host="a.test", depth=2, hops=1)
    outcome = build_outcome(lease, Response(lease.url, 302, None, b"", "/q#x"), RULES, "t")
    assert (outcome.follow, outcome.follow_hops) == (["http://a.test/q"], 2)
    assert outcome.follow_depth == 2  # a redirect is not a hop away from the seed
    assert outcome.page.final_url == "http://a.test/q"


@pytest.mark.parametrize(
    ("location", "hops", "note"),
    [
        ("http://other.test/", 0, "redirect_off_scope"),
        ("/p", 0, "redirect_loop"),
        ("/q", 3, "too_many_redirects"),
        ("ftp://a.test/f", 0, "redirect_invalid"),
        # Locations httpx could not parse, which the fetch layer now returns raw (issue 23).
        ("javascript:void(0)", 0, "redirect_invalid"),
        ("about:blank", 0, "redirect_invalid"),
        ("http://[::1", 0, "redirect_invalid"),
        ("/a\x01b", 0, "redirect_invalid"),
        (None, 0, "redirect_without_location"),
    ],
)
def test_redirects_not_followed_leave_a_note(location: str | None, hops: int, note: str) -> None:
    assert redirect(location, hops) == ([], note)


def page(
    html: bytes, robots_tag: str | None = None
) -> tuple[list[str], list[str], str | None, str | None]:
    response = Response(LEASE.url, 200, "text/html", html, robots_tag=robots_tag)
    outcome = build_outcome(LEASE, response, RULES, "t")
    return outcome.links, outcome.follow, outcome.page.title, outcome.page.notes


def test_rel_nofollow_links_are_recorded_not_followed() -> None:
    links, follow, _, _ = page(b'<a rel="nofollow" href="/x">x</a><a href="/y">y</a>')
    assert links == ["http://a.test/x", "http://a.test/y"]
    assert follow == ["http://a.test/y"]


def test_meta_noindex_nofollow() -> None:
    links, follow, title, notes = page(
        b'<title>T</title><meta name="robots" content="noindex,nofollow"><a href="/y">y</a>'
    )
    assert (links, follow, title, notes) == (["http://a.test/y"], [], None, "nofollow,noindex")


def test_x_robots_tag_for_another_agent_is_ignored() -> None:
    _, follow, title, notes = page(b"<title>T</title><a href='/y'>", "otherbot: noindex, nofollow")
    assert (follow, title, notes) == (["http://a.test/y"], "T", None)


def test_session_ids_and_repeated_segments_in_links() -> None:
    links, follow, _, _ = page(b'<a href="/s?sid=123">s</a><a href="/a/b/a/b/a/b/a/b">t</a>')
    assert links == ["http://a.test/s", "http://a.test/a/b/a/b/a/b/a/b"]
    assert follow == ["http://a.test/s"]


def test_depth_limit_stops_following() -> None:
    deep = Lease(id=1, url="http://a.test/p", host="a.test", depth=5)
    response = Response(deep.url, 200, "text/html", b'<a href="/y">y</a>')
    assert build_outcome(deep, response, RULES, "t").follow == []


def test_links_offered_lately_are_recorded_but_not_offered_again() -> None:
    offered = RecentlyOffered()
    first = Response("http://a.test/p", 200, "text/html", b'<a href="/x">x</a><a href="/y">y</a>')
    second = Response("http://a.test/q", 200, "text/html", b'<a href="/y">y</a><a href="/z">z</a>')
    build_outcome(LEASE, first, RULES, "t", offered)
    lease = Lease(id=2, url="http://a.test/q", host="a.test", depth=2)
    outcome = build_outcome(lease, second, RULES, "t", offered)
    assert outcome.links == ["http://a.test/y", "http://a.test/z"]  # the links table: both
    assert outcome.follow == ["http://a.test/z"]
    assert outcome.rows is not None
    offers = json.loads(json_array([outcome.rows.discovered]))
    assert [row[0] for row in offers] == ["http://a.test/z"]
    assert [row[1] for row in json.loads(json_array([outcome.rows.links]))] == outcome.links


def test_links_not_followed_are_not_remembered_as_offered() -> None:
    offered = RecentlyOffered()
    deep = Lease(id=1, url="http://a.test/p", host="a.test", depth=5)
    response = Response(deep.url, 200, "text/html", b'<a href="/y">y</a>')
    assert build_outcome(deep, response, RULES, "t", offered).follow == []  # depth limit
    assert build_outcome(LEASE, response, RULES, "t", offered).follow == ["http://a.test/y"]
