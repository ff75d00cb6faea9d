"""A parse worker's memory of the URLs it offered (crawler.parse.offered): exact repeats are
dropped, the memory stays bounded, and what it forgets is offered again rather than lost."""

from __future__ import annotations

import pytest

from crawler.parse.offered import RecentlyOffered


def test_only_urls_not_offered_before_come_back_in_their_order() -> None:
    offered = RecentlyOffered()
    assert offered.new(["http://a/1", "http://a/2"]) == ["http://a/1", "http://a/2"]
    assert offered.new(["http://a/3", "http://a/2", "http://a/1", "http://a/4"]) == [
        "http://a/3",
        "http://a/4",
    ]
    assert offered.new(["http://a/4", "http://a/1"]) == []


def test_urls_that_differ_at_all_are_different_urls() -> None:
    offered = RecentlyOffered()
    offered.new(["http://a/p"])
    variants = ["http://a/p/", "http://a/P", "http://a/p?x", "https://a/p", "http://a:81/p"]
    assert offered.new(variants) == variants


def test_memory_is_bounded_and_a_forgotten_url_is_offered_again() -> None:
    offered = RecentlyOffered(capacity=4)
    first = [f"u{i}" for i in range(100)]
    assert offered.new(first) == first
    assert len(offered) <= 4
    assert offered.new(["u99"]) == []  # the last one is still remembered
    assert offered.new(["u0"]) == ["u0"]  # long forgotten, so it goes out again


def test_a_url_is_remembered_while_fewer_than_half_the_capacity_came_after_it() -> None:
    offered = RecentlyOffered(capacity=6)
    offered.new(["keep", "a", "b"])
    for url in ("c", "d", "e", "f", "g", "h"):
        offered.new(["keep"])  # seen again on every page: never forgotten
        offered.new([url])
    assert offered.new(["keep"]) == []
    assert offered.new(["a"]) == ["a"]  # not seen since: forgotten


def test_capacity_must_hold_something() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        RecentlyOffered(capacity=1)
