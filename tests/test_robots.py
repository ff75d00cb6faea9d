"""RobotsCache and RobotsPolicy: RFC 9309 rules through a fake fetch callable and a fake clock.

Matching rules are Protego's job, but they are asserted here through ``RobotsPolicy.allows``
so that a regression in the library shows up in our suite."""

from __future__ import annotations

import asyncio
import itertools
import logging

import anyio
import pytest
from protego import Protego

from crawler.errors import ConnectFailed
from crawler.frontier.robots import (
    RobotsCache,
    RobotsFetch,
    RobotsPolicy,
    origin_of,
    product_token,
    robots_token,
)

pytestmark = pytest.mark.anyio

ORIGIN = "http://example.com"
ROBOTS = ORIGIN + "/robots.txt"
TOKEN = "crawler"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeFetch:
    """Answers from a dict (a missing URL fails the test loudly); counts calls; optionally holds
    every call on ``gate`` until the test sets it."""

    def __init__(self, responses: dict[str, RobotsFetch | Exception]) -> None:
        self.responses = responses
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.cancelled = 0

    async def __call__(self, url: str) -> RobotsFetch:
        self.calls.append(url)
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        result = self.responses[url]
        if isinstance(result, Exception):
            raise result
        return result


def ok(text: str) -> RobotsFetch:
    return RobotsFetch(200, text.encode())


def redirect(location: str | None, status: int = 301) -> RobotsFetch:
    return RobotsFetch(status, location=location)


def make(
    responses: dict[str, RobotsFetch | Exception], *, clock: FakeClock | None = None, **kw: int
) -> tuple[RobotsCache, FakeFetch]:
    fetch = FakeFetch(responses)
    return RobotsCache(fetch, TOKEN, clock=clock or FakeClock(), **kw), fetch


async def policy_for(text: str, user_agent: str = "crawler/0.1 (+x)") -> RobotsPolicy:
    """The policy for ``text`` as a crawl sending ``user_agent`` gets it."""
    cache = RobotsCache(FakeFetch({ROBOTS: ok(text)}), robots_token(user_agent), clock=FakeClock())
    return await cache.policy(ORIGIN)


def allowed(policy: RobotsPolicy, *paths: str) -> list[bool]:
    return [policy.allows(ORIGIN + p) for p in paths]


# --- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://Host:80/x", "http://host"),
        ("HTTPS://Example.COM:443/a?b", "https://example.com"),
        ("https://a.example:8443/p?q=1#f", "https://a.example:8443"),
        ("http://example.com:443/", "http://example.com:443"),
        ("http://user:pw@host.test/x", "http://host.test"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("http://example.com", "http://example.com"),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize("url", ["ftp://example.com/", "/relative", "http://exa mple.com/"])
def test_origin_of_rejects_uncrawlable_urls(url: str) -> None:
    with pytest.raises(ValueError, match="not a crawlable"):
        origin_of(url)


@pytest.mark.parametrize(
    ("user_agent", "token"),
    [
        ("crawler/0.1", "crawler"),
        ("crawler/0.1 (+respects robots.txt)", "crawler"),
        ("MyBot/1.0 (+https://x)", "MyBot"),
        ("Mozilla/5.0 (compatible; MyBot/1.0; +https://x)", "MyBot"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot"),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
            "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
            "bingbot",
        ),
        ("Googlebot-Image/1.0", "Googlebot-Image"),
        ("my_bot", "my_bot"),
        ("  spaced bot/1", "spaced"),
    ],
)
def test_product_token(user_agent: str, token: str) -> None:
    assert product_token(user_agent) == token


@pytest.mark.parametrize(
    "user_agent",
    ["", "   ", "/1.0", "2bot", "bot2/1.0", CHROME, "Mozilla/5.0 (X11; Linux x86_64)"],
)
def test_product_token_is_none_without_a_clear_one(user_agent: str) -> None:
    assert product_token(user_agent) is None


def test_robots_token_is_the_derived_one_or_the_configured_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert robots_token("Mozilla/5.0 (compatible; MyBot/1.0; +https://x)") == "MyBot"
    assert robots_token("Mozilla/5.0 (compatible; MyBot/1.0)", "OurBot") == "OurBot"
    assert robots_token(CHROME, "OurBot") == "OurBot"
    assert caplog.records == []


def test_robots_token_without_a_clear_one_warns_and_obeys_only_star_groups(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="crawler"):
        assert robots_token(CHROME) == "*"
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "set crawl.robots_token" in record.getMessage()
    assert record.event == "robots_token_unclear"  # type: ignore[attr-defined]


@pytest.mark.parametrize("token", ["", "1.0", "Foo Bar", "crawler/0.1", "MJ12bot"])
def test_cache_rejects_what_is_not_a_product_token(token: str) -> None:
    with pytest.raises(ValueError, match="product token"):
        RobotsCache(FakeFetch({}), token)


# --- matching (Protego's job, pinned here) ----------------------------------------------------


async def test_allow_and_disallow_basics() -> None:
    policy = await policy_for("User-agent: *\nDisallow: /private/\n")
    assert allowed(policy, "/private/x", "/private/", "/private", "/public", "/") == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert policy.status == 200
    assert (policy.allow_all, policy.disallow_all) == (False, False)


async def test_empty_robots_allows_everything() -> None:
    policy = await policy_for("")
    assert allowed(policy, "/", "/anything?q=1") == [True, True]


async def test_robots_txt_itself_is_always_allowed() -> None:
    policy = await policy_for("User-agent: *\nDisallow: /\n")
    assert allowed(policy, "/robots.txt", "/") == [True, False]


GROUPS = (
    "User-agent: otherbot\nDisallow: /\n\n"
    "User-agent: crawler\nDisallow: /mine/\n\n"
    "User-agent: *\nDisallow: /all/\n"
)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        # Our group applies, not '*' and not otherbot's.
        ("crawler/0.1 (+x)", [False, True, True]),
        ("CRAWLER/2", [False, True, True]),
        ("otherbot/2.0", [False, False, False]),
        ("somebot/1.0", [True, False, True]),
        # No clear token: only the '*' group, even for a browser-like name of ours.
        (CHROME, [True, False, True]),
    ],
)
async def test_group_is_chosen_by_product_token(user_agent: str, expected: list[bool]) -> None:
    policy = await policy_for(GROUPS, user_agent)
    assert allowed(policy, "/mine/a", "/all/a", "/other") == expected


async def test_group_names_inside_the_full_user_agent_do_not_apply() -> None:
    text = "User-agent: respects\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    full_ua = "crawler/0.1 (+respects robots.txt)"
    policy = await policy_for(text, full_ua)
    assert allowed(policy, "/page") == [True]
    # Negative control: handing Protego the full User-Agent would obey the 'respects' group.
    assert Protego.parse(text).can_fetch(ORIGIN + "/page", full_ua) is False


async def test_group_names_are_case_insensitive() -> None:
    policy = await policy_for("User-agent: CraWLer\nDisallow: /x\n")
    assert allowed(policy, "/x", "/y") == [False, True]


async def test_protego_prefix_leniency_is_pinned() -> None:
    """Documented deviation: Protego applies a group named by a prefix of our token."""
    policy = await policy_for("User-agent: crawl\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    assert allowed(policy, "/page") == [False]
    longer = await policy_for("User-agent: crawlerx\nDisallow: /\n")
    assert allowed(longer, "/page") == [True]


# --- grouping (RFC 9309 2.1, 2.2.4; Protego ends a group too early) -------------------------


async def test_an_other_record_between_user_agent_lines_does_not_end_the_group() -> None:
    """The issue's file: Protego ended crawler's group at Crawl-delay, so /private/ was open."""
    text = "User-agent: crawler\nCrawl-delay: 5\nUser-agent: *\nDisallow: /private/\n"
    for user_agent in ("crawler/0.1 (+x)", "otherbot/1"):
        policy = await policy_for(text, user_agent)
        assert allowed(policy, "/private/a", "/public") == [False, True]
        # The Crawl-delay is the group's, so it holds for all its user agents.
        assert policy.crawl_delay == 5.0
    # Negative control: a rule ends crawler's group, so the next one is '*' alone.
    ended = "User-agent: crawler\nAllow: /\nUser-agent: *\nDisallow: /private/\n"
    assert allowed(await policy_for(ended), "/private/a") == [True]
    assert allowed(await policy_for(ended, "otherbot/1"), "/private/a") == [False]


@pytest.mark.parametrize(
    "record",
    [
        "Request-rate: 1/5",
        "Content-Signal: search=yes, ai-train=no",
        "Invalid-Unknown-Line: unknown",
        "Visit-time: 0400-0845",
        "Host: example.com",
        "# a comment",
        "",
    ],
)
async def test_no_other_record_ends_a_group(record: str) -> None:
    text = f"User-agent: crawler\n{record}\nUser-agent: otherbot\nDisallow: /\n"
    assert allowed(await policy_for(text), "/a") == [False]


async def test_records_held_among_user_agent_lines_keep_their_order_and_their_group() -> None:
    text = (
        "Sitemap: https://example.com/1.xml\n"
        "User-agent: crawler\nSitemap: https://example.com/2.xml\nCrawl-delay: 3\n"
        "User-agent: otherbot\nDisallow: /x\n"
        "Sitemap: https://example.com/3.xml\n"
        "User-agent: *\nCrawl-delay: 9\nDisallow: /y\n"
    )
    ours = await policy_for(text)
    assert ours.sitemaps == tuple(f"https://example.com/{n}.xml" for n in (1, 2, 3))
    assert (ours.crawl_delay, allowed(ours, "/x", "/y")) == (3.0, [False, True])
    other = await policy_for(text, "somebot/1")
    assert (other.crawl_delay, allowed(other, "/x", "/y")) == (9.0, [True, False])


async def test_a_group_without_rules_runs_on_into_the_next() -> None:
    """RFC 9309 2.1 (and Google): only a rule ends a group's user-agent lines, blank lines do
    not. So '*' here shares otherbot's rules, and otherbot the Crawl-delay: both stricter."""
    text = "User-agent: *\nCrawl-delay: 10\n\nUser-agent: otherbot\nDisallow: /x\n"
    for user_agent in ("crawler/0.1", "otherbot/1"):
        policy = await policy_for(text, user_agent)
        assert (policy.crawl_delay, allowed(policy, "/x", "/y")) == (10.0, [False, True])


@pytest.mark.parametrize("name", ["crawler/1.0", "CRAWLER bot", "crawler # ours"])
async def test_a_group_name_is_cut_at_a_space_or_slash(name: str) -> None:
    text = f"User-agent: *\nDisallow: /\n\nUser-agent: {name}\nAllow: /x/\nDisallow: /\n"
    assert allowed(await policy_for(text), "/x/y", "/z") == [True, False]


async def test_lines_end_at_cr_lf_or_crlf_only() -> None:
    # U+2028 (LINE SEPARATOR) is a character of the path here; str.splitlines would cut
    # 'Disallow: /a\u2028b' to 'Disallow: /a', which disallows /abc as well.
    policy = await policy_for("User-agent: *\rDisallow: /a\u2028b\r\nDisallow: /c\n")
    assert allowed(policy, "/abc", "/a%E2%80%A8b", "/c") == [True, False, False]


@pytest.mark.parametrize(
    "text",
    [
        "User-agent: *\nAllow: /a/b/\nDisallow: /a/\n",
        "User-agent: *\nDisallow: /a/\nAllow: /a/b/\n",
    ],
)
async def test_longest_match_wins_whatever_the_order(text: str) -> None:
    policy = await policy_for(text)
    assert allowed(policy, "/a/b/c", "/a/c", "/a/", "/b") == [True, False, False, True]


async def test_longest_disallow_beats_shorter_allow() -> None:
    policy = await policy_for("User-agent: *\nAllow: /a/\nDisallow: /a/secret\n")
    assert allowed(policy, "/a/secret/1", "/a/public") == [False, True]


@pytest.mark.parametrize(
    "text",
    [
        "User-agent: *\nDisallow: /page\nAllow: /page\n",
        "User-agent: *\nAllow: /page\nDisallow: /page\n",
        "User-agent: *\nDisallow: /p*e\nAllow: /pa*\n",
    ],
)
async def test_allow_wins_a_tie(text: str) -> None:
    policy = await policy_for(text)
    assert allowed(policy, "/page") == [True]


async def test_star_matches_any_sequence() -> None:
    policy = await policy_for("User-agent: *\nDisallow: /*.pdf\nDisallow: /*/edit\n")
    assert allowed(
        policy, "/a/b.pdf", "/x.pdf?dl=1", "/a/b.html", "/post/1/edit", "/post/edit", "/edit"
    ) == [False, False, True, False, False, True]


async def test_dollar_anchors_the_end() -> None:
    policy = await policy_for("User-agent: *\nDisallow: /*.pdf$\nDisallow: /$\n")
    assert allowed(policy, "/a.pdf", "/a.pdf?x=1", "/a.pdfx", "/", "/a") == [
        False,
        True,
        True,
        False,
        True,
    ]


async def test_allows_refuses_a_url_on_another_origin() -> None:
    policy = await policy_for("")
    assert policy.allows("http://example.com/x") is True
    for url in ("http://other.com/", "https://example.com/", "http://example.com:8080/"):
        with pytest.raises(ValueError, match="not on origin"):
            policy.allows(url)


async def test_crawl_delay_and_sitemaps() -> None:
    text = (
        "Sitemap: https://example.com/s1.xml\n"
        "User-agent: *\nCrawl-delay: 2.5\nDisallow: /x\n\n"
        "User-agent: crawler\nCrawl-delay: 7\nSitemap: https://cdn.example.net/s2.xml\n"
    )
    ours = await policy_for(text)
    assert ours.crawl_delay == 7.0
    assert ours.sitemaps == ("https://example.com/s1.xml", "https://cdn.example.net/s2.xml")
    other = await policy_for(text, "otherbot/1")
    assert other.crawl_delay == 2.5
    none = await policy_for("User-agent: *\nDisallow: /x\n")
    assert (none.crawl_delay, none.sitemaps) == (None, ())


# --- body handling ----------------------------------------------------------------------------


async def test_only_the_first_max_bytes_are_parsed() -> None:
    head = b"User-agent: *\nDisallow: /a\n"
    body = head + b"# " + b"x" * 100 + b"\n" + b"Disallow: /b\n"
    cache, _ = make({ROBOTS: RobotsFetch(200, body)}, max_bytes=len(head) + 50)
    policy = await cache.policy(ORIGIN)
    assert allowed(policy, "/a", "/b") == [False, True]
    # Negative control: with a large enough cap the later rule counts.
    cache, _ = make({ROBOTS: RobotsFetch(200, body)}, max_bytes=len(body))
    assert allowed(await cache.policy(ORIGIN), "/a", "/b") == [False, False]


async def test_a_line_cut_by_the_cap_is_dropped() -> None:
    head = b"User-agent: *\nDisallow: /\n"
    body = head + b"Allow: /public/page\n"
    # The cap cuts 'Allow: /p': kept, it would allow /private as well.
    cache, _ = make({ROBOTS: RobotsFetch(200, body)}, max_bytes=len(head) + len(b"Allow: /p"))
    policy = await cache.policy(ORIGIN)
    assert allowed(policy, "/private", "/public/page") == [False, False]


async def test_non_utf8_bytes_and_a_bom_do_not_raise() -> None:
    body = b"\xef\xbb\xbfUser-agent: *\nDisallow: /caf\xe9\nDisallow: /x\xff\xfe\nDisallow: /y\n"
    cache, _ = make({ROBOTS: RobotsFetch(200, body)})
    policy = await cache.policy(ORIGIN)
    # The BOM is dropped, so the first line still opens the group (else nothing is disallowed).
    assert allowed(policy, "/y", "/z") == [False, True]


# --- statuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
async def test_4xx_allows_all(status: int) -> None:
    cache, _ = make({ROBOTS: RobotsFetch(status, b"User-agent: *\nDisallow: /\n")})
    policy = await cache.policy(ORIGIN)
    assert (policy.status, policy.allow_all, policy.disallow_all) == (status, True, False)
    assert allowed(policy, "/", "/x") == [True, True]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 599, None, 100, 600])
async def test_unreachable_disallows_all(status: int | None) -> None:
    got = RobotsFetch(
        status,
        b"User-agent: *\nAllow: /\n",
        error=ConnectFailed("boom") if status is None else None,
    )
    cache, _ = make({ROBOTS: got})
    policy = await cache.policy(ORIGIN)
    assert (policy.status, policy.allow_all, policy.disallow_all) == (status, False, True)
    assert allowed(policy, "/", "/x") == [False, False]
    assert (policy.crawl_delay, policy.sitemaps) == (None, ())


@pytest.mark.parametrize("status", [503, 429, None])
async def test_unreachable_is_refetched_after_unreachable_retry_only(status: int | None) -> None:
    clock = FakeClock(1000.0)
    cache, fetch = make({ROBOTS: RobotsFetch(status)}, clock=clock, unreachable_retry=600)
    first = await cache.policy(ORIGIN)
    assert first.fetched_at == 1000.0
    clock.now = 1599.0
    assert cache.cached(ORIGIN) is first
    assert await cache.policy(ORIGIN) is first
    assert len(fetch.calls) == 1
    clock.now = 1600.0
    assert cache.cached(ORIGIN) is None
    fetch.responses[ROBOTS] = ok("User-agent: *\nDisallow: /x\n")
    second = await cache.policy(ORIGIN)
    assert len(fetch.calls) == 2
    assert (second.status, second.disallow_all, second.fetched_at) == (200, False, 1600.0)
    assert allowed(second, "/x", "/y") == [False, True]


@pytest.mark.parametrize("got", [ok("User-agent: *\nDisallow: /x\n"), RobotsFetch(404)])
async def test_entries_expire_after_max_age(got: RobotsFetch) -> None:
    clock = FakeClock(0.0)
    cache, fetch = make({ROBOTS: got}, clock=clock)
    first = await cache.policy(ORIGIN)
    clock.now = 86399.0
    assert cache.cached(ORIGIN) is first
    assert await cache.policy(ORIGIN) is first
    assert len(fetch.calls) == 1
    clock.now = 86400.0
    assert cache.cached(ORIGIN) is None
    second = await cache.policy(ORIGIN)
    assert second is not first
    assert (len(fetch.calls), second.fetched_at) == (2, 86400.0)


async def test_cached_is_none_for_an_unknown_origin() -> None:
    cache, fetch = make({})
    assert cache.cached(ORIGIN) is None
    assert fetch.calls == []


# --- redirects --------------------------------------------------------------------------------


async def test_redirect_on_the_same_host_is_followed() -> None:
    cache, fetch = make(
        {
            ROBOTS: redirect("/real/robots.txt"),
            ORIGIN + "/real/robots.txt": ok("User-agent: *\nDisallow: /x\n"),
        }
    )
    policy = await cache.policy(ORIGIN)
    assert fetch.calls == [ROBOTS, ORIGIN + "/real/robots.txt"]
    assert (policy.origin, policy.status) == (ORIGIN, 200)
    assert allowed(policy, "/x", "/y") == [False, True]


async def test_redirect_to_another_host_applies_to_the_original_origin() -> None:
    target = "https://cdn.example.net/robots.txt"
    cache, fetch = make(
        {
            ROBOTS: redirect("HTTPS://CDN.example.net:443/robots.txt", 302),
            target: ok("User-agent: *\nDisallow: /x\n"),
        }
    )
    policy = await cache.policy(ORIGIN)
    assert fetch.calls == [ROBOTS, target]
    assert policy.origin == ORIGIN
    assert allowed(policy, "/x", "/y") == [False, True]
    assert cache.cached("https://cdn.example.net") is None


def chain(hops: int) -> dict[str, RobotsFetch | Exception]:
    """ROBOTS redirects ``hops`` times, then the last URL answers with rules."""
    urls = [ROBOTS] + [f"{ORIGIN}/r{i}" for i in range(1, hops + 1)]
    responses: dict[str, RobotsFetch | Exception] = {
        a: redirect(b, 307) for a, b in itertools.pairwise(urls)
    }
    responses[urls[-1]] = ok("User-agent: *\nDisallow: /x\n")
    return responses


async def test_five_redirects_are_followed() -> None:
    cache, fetch = make(chain(5))
    policy = await cache.policy(ORIGIN)
    assert len(fetch.calls) == 6
    assert (policy.status, policy.allow_all) == (200, False)
    assert allowed(policy, "/x") == [False]


async def test_more_than_five_redirects_allow_all() -> None:
    cache, fetch = make(chain(6))
    policy = await cache.policy(ORIGIN)
    assert len(fetch.calls) == 6  # the sixth redirect is not followed
    assert (policy.status, policy.allow_all, policy.disallow_all) == (307, True, False)
    assert allowed(policy, "/x") == [True]


async def test_max_redirects_is_configurable() -> None:
    cache, fetch = make(chain(2), max_redirects=1)
    policy = await cache.policy(ORIGIN)
    assert (len(fetch.calls), policy.allow_all) == (2, True)


async def test_redirect_loop_terminates_and_allows_all() -> None:
    cache, fetch = make({ROBOTS: redirect("/b"), ORIGIN + "/b": redirect("/robots.txt")})
    policy = await cache.policy(ORIGIN)
    assert fetch.calls == [ROBOTS, ORIGIN + "/b"]
    assert (policy.status, policy.allow_all) == (301, True)


@pytest.mark.parametrize("location", [None, "", "mailto:robots@example.com", "http://bad host/"])
async def test_redirect_without_usable_location_allows_all(location: str | None) -> None:
    cache, fetch = make({ROBOTS: redirect(location, 302)})
    policy = await cache.policy(ORIGIN)
    assert fetch.calls == [ROBOTS]
    assert (policy.status, policy.allow_all, policy.disallow_all) == (302, True, False)


async def test_redirect_to_an_unreachable_file_disallows_all() -> None:
    cache, _ = make({ROBOTS: redirect("/b"), ORIGIN + "/b": RobotsFetch(503)})
    policy = await cache.policy(ORIGIN)
    assert (policy.status, policy.disallow_all) == (503, True)


# --- sharing, failures, lifecycle -------------------------------------------------------------


async def test_concurrent_callers_share_one_fetch() -> None:
    cache, fetch = make({ROBOTS: ok("User-agent: *\nDisallow: /x\n")})
    fetch.gate = asyncio.Event()
    results: list[RobotsPolicy] = []

    async def ask() -> None:
        results.append(await cache.policy(ORIGIN))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        assert repr(cache) == "<RobotsCache origins=0 fetching=1 state=new>"
        fetch.gate.set()
    assert fetch.calls == [ROBOTS]
    assert len(results) == 10
    assert all(r is results[0] for r in results)
    assert repr(cache) == "<RobotsCache origins=1 fetching=0 state=new>"


async def test_each_origin_is_fetched_once() -> None:
    other = "http://other.test:8080"
    cache, fetch = make({ROBOTS: ok(""), other + "/robots.txt": RobotsFetch(404)})
    for _ in range(3):
        await cache.policy(ORIGIN)
        await cache.policy(other)
    assert fetch.calls == [ROBOTS, other + "/robots.txt"]
    assert repr(cache) == "<RobotsCache origins=2 fetching=0 state=new>"


async def test_policy_rejects_a_non_origin() -> None:
    cache, fetch = make({})
    for bad in ("http://Example.com", "http://example.com/", "http://example.com/x", "example.com"):
        with pytest.raises(ValueError, match=r"not an origin|not a crawlable"):
            await cache.policy(bad)
    assert fetch.calls == []


async def test_cancelling_one_waiter_does_not_cancel_the_fetch() -> None:
    cache, fetch = make({ROBOTS: ok("User-agent: *\nDisallow: /x\n")})
    fetch.gate = asyncio.Event()
    waiters = [asyncio.create_task(cache.policy(ORIGIN)) for _ in range(3)]
    await anyio.wait_all_tasks_blocked()
    waiters[0].cancel()  # the one that started the fetch
    with pytest.raises(asyncio.CancelledError):
        await waiters[0]
    fetch.gate.set()
    first, second = await waiters[1], await waiters[2]
    assert first is second
    assert allowed(first, "/x") == [False]
    assert (fetch.calls, fetch.cancelled) == ([ROBOTS], 0)


async def test_a_fetch_finishes_and_is_cached_even_if_every_waiter_is_cancelled() -> None:
    cache, fetch = make({ROBOTS: ok("")})
    fetch.gate = asyncio.Event()
    waiter = asyncio.create_task(cache.policy(ORIGIN))
    await anyio.wait_all_tasks_blocked()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    fetch.gate.set()
    await anyio.wait_all_tasks_blocked()
    assert cache.cached(ORIGIN) is not None
    assert fetch.cancelled == 0


async def test_fetch_exception_reaches_every_waiter_and_is_not_cached() -> None:
    cache, fetch = make({ROBOTS: RuntimeError("fetch layer bug")})
    fetch.gate = asyncio.Event()
    waiters = [asyncio.create_task(cache.policy(ORIGIN)) for _ in range(2)]
    await anyio.wait_all_tasks_blocked()
    fetch.gate.set()
    for waiter in waiters:
        with pytest.raises(RuntimeError, match="fetch layer bug"):
            await waiter
    assert cache.cached(ORIGIN) is None
    fetch.gate = None
    fetch.responses[ROBOTS] = RobotsFetch(404)
    assert (await cache.policy(ORIGIN)).allow_all is True
    assert len(fetch.calls) == 2


async def test_aclose_cancels_fetches_in_flight() -> None:
    cache, fetch = make({ROBOTS: ok(""), "http://b.test/robots.txt": RobotsFetch(404)})
    await cache.policy("http://b.test")
    fetch.gate = asyncio.Event()
    waiter = asyncio.create_task(cache.policy(ORIGIN))
    await anyio.wait_all_tasks_blocked()
    assert repr(cache) == "<RobotsCache origins=1 fetching=1 state=new>"
    await cache.aclose()
    assert fetch.cancelled == 1
    assert repr(cache) == "<RobotsCache origins=1 fetching=0 state=closed>"
    with pytest.raises(RuntimeError, match="closed while fetching"):
        await waiter
    with pytest.raises(RuntimeError, match="closed"):
        await cache.policy(ORIGIN)
    # Cached policies stay readable; closing again is a no-op.
    assert (await cache.policy("http://b.test")).allow_all is True
    await cache.aclose()
    assert fetch.calls == ["http://b.test/robots.txt", ROBOTS]


async def test_async_with_closes_the_cache() -> None:
    fetch = FakeFetch({ROBOTS: ok("")})
    fetch.gate = asyncio.Event()
    async with RobotsCache(fetch, TOKEN) as cache:
        task = asyncio.create_task(cache.policy(ORIGIN))
        await anyio.wait_all_tasks_blocked()
    assert fetch.cancelled == 1
    assert repr(cache) == "<RobotsCache origins=0 fetching=0 state=closed>"
    with pytest.raises(RuntimeError):
        await task


@pytest.mark.parametrize(("max_origins", "kept"), [(2, 2), (0, 3)])
async def test_the_cache_forgets_the_least_recently_used_origin_past_its_bound(
    max_origins: int, kept: int
) -> None:
    origins = [f"http://{name}.test" for name in "abc"]
    cache, fetch = make(
        {f"{o}/robots.txt": ok("User-agent: *\nDisallow: /x\n") for o in origins},
        max_origins=max_origins,
    )
    await cache.policy(origins[0])
    await cache.policy(origins[1])
    assert cache.cached(origins[0]) is not None  # used: b is now the least recently used
    await cache.policy(origins[2])
    assert len(cache) == kept  # the control (no bound) keeps all three
    await cache.policy(origins[0])
    await cache.policy(origins[1])  # forgotten with the bound: fetched again, once
    assert len(fetch.calls) == 3 + (kept < 3)


@pytest.mark.parametrize(
    ("held", "kept"), [({"a.test"}, {"a.test", "c.test"}), (set(), {"b.test", "c.test"})]
)
async def test_past_its_bound_the_cache_keeps_the_policies_of_hosts_in_use(
    held: set[str], kept: set[str]
) -> None:
    # a.test is the least recently used, but its host is still crawled (the frontier holds it):
    # b.test goes instead. The control (nothing held) forgets a.test.
    origins = [f"http://{name}.test" for name in "abc"]
    fetch = FakeFetch({f"{o}/robots.txt": ok("User-agent: *\nDisallow: /x\n") for o in origins})
    cache = RobotsCache(fetch, TOKEN, clock=FakeClock(), max_origins=2, in_use=held.__contains__)
    for origin in origins:
        await cache.policy(origin)
    assert {o for o in origins if cache.cached(o) is not None} == {f"http://{h}" for h in kept}
    assert len(cache) == 2
