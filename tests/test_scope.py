"""The crawl's scope (crawler.scope): hosts, registrable domains or any host, and the include /
exclude patterns; unit tests of each rule, then real crawls of several 127.0.0.x hosts, then
``crawl check-url``."""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crawler import scope as scope_module
from crawler.abort import AbortController
from crawler.cli.app import app
from crawler.config_load import load_config
from crawler.engine import Crawl
from crawler.errors import ConfigError
from crawler.frontier.traps import path_pattern
from crawler.models import Lease, Outcome
from crawler.models import Response as FetchedResponse
from crawler.parse.outcome import build_outcome
from crawler.scope import Decision, Scope, registrable_domain
from crawler.store.database import Store
from tests.helpers import (
    crawl_config,
    database,
    link_rules,
    min_gap,
    write_config,
    write_seeds,
)
from tests.servers import Request, Response, TestServer, html

runner = CliRunner()


def test_scope_seed_host_allowed_exactly() -> None:
    scope = Scope(["example.com"])
    assert scope.allows("http://example.com/")
    assert scope.allows("https://example.com/deep/path?x=1")
    assert not scope.allows("http://other.com/")


def test_scope_seed_host_subdomain_not_allowed() -> None:
    scope = Scope(["example.com"])
    assert not scope.allows("http://www.example.com/")
    assert not scope.allows("http://a.b.example.com/")


def test_scope_allow_domain_and_its_subdomains_allowed() -> None:
    scope = Scope([], ["example.com"])
    assert scope.allows("http://example.com/")
    assert scope.allows("http://www.example.com/")
    assert scope.allows("https://a.b.example.com/x")
    assert not scope.allows("http://example.org/")
    assert not scope.allows("http://com/")


def test_scope_lookalike_domain_rejected() -> None:
    scope = Scope(["example.com"], ["example.com"])
    assert not scope.allows("http://badexample.com/")
    assert not scope.allows("http://example.com.evil.net/")
    assert not scope.allows("http://www.badexample.com/")


def test_scope_port_does_not_matter() -> None:
    scope = Scope(["seed.com"], ["example.com"])
    assert scope.allows("http://seed.com:8080/")
    assert scope.allows("https://seed.com:80/")
    assert scope.allows("http://sub.example.com:8443/")


def test_scope_allow_domains_normalized() -> None:
    scope = Scope([], [".Example.COM.", "Bücher.de", " spaced.org "])
    assert scope.allows("http://www.example.com/")
    assert scope.allows("http://example.com/")
    assert scope.allows("http://shop.xn--bcher-kva.de/")
    assert scope.allows("http://spaced.org/")
    assert repr(scope) == (
        "Scope(mode='hosts', seed_hosts=[], "
        "domains=['example.com', 'spaced.org', 'xn--bcher-kva.de'], include=[], exclude=[], "
        "max_offsite_hops=0)"
    )


def test_scope_seed_hosts_normalized() -> None:
    scope = Scope(["EXAMPLE.com.", "Bücher.de", "[::1]"])
    assert scope.allows("http://example.com/")
    assert scope.allows("http://xn--bcher-kva.de/")
    assert scope.allows("http://[::1]:8080/")


@pytest.mark.parametrize("bad", ["", ".", "exa mple.com", "example.com:8080", "a/b"])
def test_scope_rejects_invalid_names(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        Scope([], [bad])
    with pytest.raises(ValueError, match="invalid"):
        Scope([bad])


def test_scope_from_seeds() -> None:
    scope = Scope.from_seeds(["HTTP://Example.com:8080/start", "https://b.org/"], ["c.net"])
    assert repr(scope) == (
        "Scope(mode='hosts', seed_hosts=['b.org', 'example.com'], domains=['c.net'], "
        "include=[], exclude=[], max_offsite_hops=0)"
    )
    assert scope.allows("http://example.com/other")
    assert not scope.allows("http://www.example.com/")
    assert scope.allows("http://x.c.net/")
    with pytest.raises(ValueError, match="mailto"):
        Scope.from_seeds(["mailto:x@example.com"])


def test_scope_rejects_bare_string() -> None:
    with pytest.raises(TypeError, match="not str"):
        Scope("example.com")
    with pytest.raises(TypeError, match="not str"):
        Scope([], "example.com")


# --- scope modes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.example.co.uk", "example.co.uk"),
        ("a.b.example.com", "example.com"),
        ("example.com", "example.com"),
        ("a.github.io", "a.github.io"),  # the list's private section counts
        ("x.y.a.github.io", "a.github.io"),
        ("co.uk", None),  # a public suffix itself
        ("localhost", None),
        ("127.0.0.2", None),  # an IP address has no domain: the list would say "0.2"
        ("[::1]", None),
    ],
)
def test_registrable_domain(host: str, expected: str | None) -> None:
    assert registrable_domain(host) == expected


def test_the_public_suffix_list_is_read_without_any_network_access(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Public Suffix List opened a socket")

    scope_module._public_suffix_list.cache_clear()
    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert registrable_domain("news.bbc.co.uk") == "bbc.co.uk"
    scope_module._public_suffix_list.cache_clear()


def test_scope_domains_admits_the_seeds_registrable_domains_and_their_subdomains() -> None:
    scope = Scope.from_seeds(["https://www.example.co.uk/", "http://a.github.io/"], mode="domains")
    assert scope.allows("http://shop.example.co.uk/")
    assert scope.allows("http://example.co.uk/")
    assert scope.allows("http://x.a.github.io/")
    assert not scope.allows("http://other.co.uk/")  # the same public suffix is not enough
    assert not scope.allows("http://b.github.io/")
    assert not scope.allows("http://badexample.co.uk/")


def test_scope_hosts_is_the_negative_control_of_domains() -> None:
    scope = Scope.from_seeds(["https://www.example.co.uk/"], mode="hosts")
    assert scope.allows("http://www.example.co.uk/a")
    assert not scope.allows("http://shop.example.co.uk/")
    assert not scope.allows("http://example.co.uk/")


def test_scope_domains_of_a_seed_without_a_domain_is_its_host() -> None:
    scope = Scope.from_seeds(["http://127.0.0.2:8080/", "http://localhost/"], mode="domains")
    assert scope.allows("http://127.0.0.2/x")
    assert scope.allows("http://localhost:9/")
    assert not scope.allows("http://127.0.0.3/")
    assert not scope.allows("http://a.localhost/")
    assert not scope.allows("http://0.2/")  # what the list would take for 127.0.0.2's domain


def test_scope_any_admits_every_host() -> None:
    scope = Scope.from_seeds(["http://a.test/"], mode="any")
    assert scope.allows("http://b.test/")
    assert scope.allows("https://anything.example.org:8443/x")


# --- include / exclude ------------------------------------------------------------------------


def test_exclude_searches_anywhere_in_the_canonical_url() -> None:
    scope = Scope(["a.test"], exclude=[r"/private/", r"\?session="])
    assert not scope.allows("http://a.test/x/private/y")
    assert not scope.allows("http://a.test/list?session=1")
    assert scope.allows("http://a.test/public/")


def test_exclude_wins_over_include_and_scope() -> None:
    scope = Scope([], mode="any", include=[r"/docs/"], exclude=[r"/docs/old/"])
    assert scope.allows("http://a.test/docs/new")
    assert not scope.allows("http://a.test/docs/old/page")
    assert scope.decide("http://a.test/docs/old/page") == Decision(
        False, "crawl.exclude", "matches '/docs/old/'"
    )


def test_include_narrows_the_scope_it_does_not_widen_it() -> None:
    scope = Scope(["a.test"], include=[r"/docs/", r"/blog/"])
    assert scope.allows("http://a.test/docs/x")
    assert scope.allows("http://a.test/blog/")
    assert not scope.allows("http://a.test/shop/")
    assert not scope.allows("http://b.test/docs/x")  # off scope: include does not add hosts
    # Negative control: without include every page of the seed's host is in.
    assert Scope(["a.test"]).allows("http://a.test/shop/")


def test_patterns_are_case_sensitive_unless_they_say_otherwise() -> None:
    assert not Scope(["a.test"], exclude=["/Private/"]).allows("http://a.test/Private/")
    assert Scope(["a.test"], exclude=["/private/"]).allows("http://a.test/Private/")
    assert not Scope(["a.test"], exclude=["(?i)/private/"]).allows("http://a.test/Private/")


def test_patterns_see_the_canonical_form_so_the_host_is_lower_case() -> None:
    # The crawl only asks about canonical URLs: an upper-case host never reaches a pattern.
    scope = Scope([], mode="any", exclude=[r"^https?://ads\."])
    assert not scope.allows("http://ads.example.com/")
    assert scope.allows("http://www.example.com/ads.html")  # anchored: only the host's start


def test_decide_names_the_rule_and_why() -> None:
    scope = Scope(["www.a.test"], ["b.test"], include=[r"/docs/"])
    assert scope.decide("http://www.a.test/docs/") == Decision(
        True, "crawl.include", "matches '/docs/'"
    )
    assert scope.decide("http://www.a.test/shop/") == Decision(
        False, "crawl.include", "matches none of '/docs/'"
    )
    assert scope.decide("http://c.test/docs/") == Decision(
        False,
        "crawl.scope",
        'c.test is not a seed\'s host (crawl.scope = "hosts"), nor in crawl.allow_domains',
    )
    plain = Scope(["www.a.test"], ["b.test"], mode="domains")
    assert plain.decide("http://x.a.test/") == Decision(
        True, "crawl.scope", "x.a.test is in a.test, a seed's registrable domain"
    )
    assert plain.decide("http://x.b.test/") == Decision(
        True, "crawl.allow_domains", "x.b.test is in b.test, an allowed domain"
    )
    assert plain.decide("http://www.a.test/") == Decision(
        True, "crawl.scope", "www.a.test is a seed's host"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://www.a.test/docs/",
        "http://www.a.test/docs/old/",
        "http://www.a.test/shop/",
        "http://x.a.test/docs/",
        "http://x.b.test/docs/",
        "http://c.test/docs/",
    ],
)
@pytest.mark.parametrize("mode", ["hosts", "domains", "any"])
def test_allows_and_decide_agree(url: str, mode: scope_module.ScopeMode) -> None:
    scope = Scope(["www.a.test"], ["b.test"], mode=mode, include=["/docs/"], exclude=["/old/"])
    assert scope.allows(url) == scope.decide(url).allowed


def test_patterns_see_a_link_after_its_session_parameters_are_removed() -> None:
    lease = Lease(id=1, url="http://a.test/", host="a.test", depth=0)
    body = b'<a href="/list?sid=42&page=2">n</a><a href="/list?page=3">n</a>'
    response = FetchedResponse(lease.url, 200, "text/html", body)
    no_sid = outcome_in(Scope(["a.test"], exclude=["sid="]), lease, response)
    assert no_sid.follow == ["http://a.test/list?page=2", "http://a.test/list?page=3"]
    # Negative control: a pattern on what is left of the URL does decide.
    page_2 = outcome_in(Scope(["a.test"], exclude=["page=2"]), lease, response)
    assert page_2.follow == ["http://a.test/list?page=3"]


# --- offsite hops -----------------------------------------------------------------------------


def test_reach_counts_links_out_of_the_scope_up_to_max_offsite_hops() -> None:
    scope = Scope(["a.test"], max_offsite_hops=2, exclude=["/private/"])
    assert scope.reach("http://a.test/x", 0) == 0
    assert scope.reach("http://a.test/x", 2) == 0  # back into the scope: distance 0 again
    assert scope.reach("http://b.test/", 0) == 1
    assert scope.reach("http://c.test/", 1) == 2
    assert scope.reach("http://d.test/", 2) is None  # past N: not followed
    assert scope.reach("http://b.test/private/", 0) is None  # exclude still wins
    # Negative control: without offsite hops nothing outside the scope is reached.
    assert Scope(["a.test"]).reach("http://b.test/", 0) is None


def test_reach_obeys_include_outside_the_scope_too() -> None:
    scope = Scope(["a.test"], include=["/docs/"], max_offsite_hops=1)
    assert scope.reach("http://b.test/docs/", 0) == 1
    assert scope.reach("http://b.test/shop/", 0) is None


def offsite_outcome(lease: Lease, response: FetchedResponse, max_offsite_hops: int) -> Outcome:
    return outcome_in(Scope(["a.test"], max_offsite_hops=max_offsite_hops), lease, response)


def outcome_in(scope: Scope, lease: Lease, response: FetchedResponse) -> Outcome:
    return build_outcome(lease, response, link_rules(scope), "t")


def test_an_offsite_page_offers_its_links_with_their_distances() -> None:
    body = b'<a href="http://a.test/back">a</a><a href="http://c.test/">c</a>'
    lease = Lease(id=1, url="http://b.test/", host="b.test", depth=1, offsite=1)
    response = FetchedResponse(lease.url, 200, "text/html", body)
    two = offsite_outcome(lease, response, 2)
    assert (two.follow, two.follow_offsite) == (
        ["http://a.test/back", "http://c.test/"],
        [0, 1 + 1],
    )
    # The last page out: only the link back into the scope is followed.
    one = offsite_outcome(lease, response, 1)
    assert (one.follow, one.follow_offsite) == (["http://a.test/back"], [])


@pytest.mark.parametrize(
    ("page_offsite", "max_offsite_hops", "expected"),
    [(0, 1, ["http://b.test/"]), (1, 1, ["http://b.test/"]), (0, 0, [])],
)
def test_a_redirect_out_of_the_scope_is_one_link_out_and_keeps_an_offsite_pages_distance(
    page_offsite: int, max_offsite_hops: int, expected: list[str]
) -> None:
    host = "b.test" if page_offsite else "a.test"
    lease = Lease(id=1, url=f"http://{host}/old", host=host, depth=1, offsite=page_offsite)
    response = FetchedResponse(lease.url, 301, None, b"", "http://b.test/")
    outcome = offsite_outcome(lease, response, max_offsite_hops)
    assert outcome.follow == expected
    assert outcome.follow_offsite == ([1] if expected else [])


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["include", "exclude"])
def test_a_bad_pattern_is_refused_at_config_load_naming_its_key(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"`crawl\.{key}` has an invalid regular expression"):
        load_config(overrides={f"crawl.{key}": ["ok", "a("]}, environ={})
    # Negative control: valid patterns load.
    assert getattr(load_config(overrides={f"crawl.{key}": ["a\\("]}, environ={}).crawl, key)


def test_an_unknown_scope_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"crawl\.scope"):
        load_config(overrides={"crawl.scope": "everything"}, environ={})


# --- real crawls of several hosts -------------------------------------------------------------


def linking_site(links: dict[str, str]) -> TestServer:
    """Each path in ``links`` answers a page linking to the URLs its value lists (space
    separated); any other path answers a page without links."""

    def answer(request: Request) -> Response:
        hrefs = links.get(request.path, "").split()
        return html(request.path, "".join(f'<a href="{href}">l</a>' for href in hrefs))

    return TestServer(answer, host="127.0.0.2")


def crawled(db: Path) -> set[str]:
    with database(db) as conn:
        return {url for (url,) in conn.execute("SELECT url FROM pages")}


async def crawl_of(tmp_path: Path, seed: str, name: str = "crawl", **overrides: object) -> set[str]:
    cfg = crawl_config(
        4,
        **{
            "politeness.robots": False,
            # The sites are on loopback addresses; the guard is tested in test_addresses.
            "security.allow_addresses": ["127.0.0.0/8"],
            **overrides,
        },
    )
    db = tmp_path / f"{name}.db"
    await Crawl(cfg, [seed], db, AbortController().signal).run()
    return crawled(db)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "other_fetched"), [("hosts", False), ("domains", False), ("any", True)]
)
async def test_a_crawl_follows_links_to_another_host_only_with_scope_any(
    tmp_path: Path, scope: str, other_fetched: bool
) -> None:
    with TestServer(lambda r: html(r.path), host="127.0.0.3") as other:
        offsite = other.url("/elsewhere")
        with linking_site({"/": f"/local {offsite}"}) as site:
            fetched = await crawl_of(tmp_path, site.url("/"), **{"crawl.scope": scope})
        assert (offsite in fetched) is other_fetched
        assert (other.request_counts()["/elsewhere"] == 1) is other_fetched
    assert site.url("/local") in fetched


@pytest.mark.anyio
@pytest.mark.parametrize(("scope", "blog_fetched"), [("domains", True), ("hosts", False)])
async def test_a_crawl_by_name_follows_the_seeds_registrable_domain_with_scope_domains(
    tmp_path: Path, scope: str, blog_fetched: bool
) -> None:
    """Real servers reached by name through ``fetch.resolve``: www.a-site.test (the seed) links
    to blog.a-site.test (same registrable domain, a-site.test: .test is no public suffix) and
    to other.test. "domains" follows the first only; "hosts" (the control) neither."""
    home_links: list[str] = []  # known once the servers have their ports
    www = TestServer(lambda r: html(r.path, "".join(f'<a href="{u}">l</a>' for u in home_links)))
    blog, other = (TestServer(lambda r: html(r.path), host=f"127.0.0.{n}") for n in (3, 4))
    with www, blog, other:
        names = {"www.a-site.test": www, "blog.a-site.test": blog, "other.test": other}
        blog_post = blog.url("/post", host="blog.a-site.test")
        elsewhere = other.url("/elsewhere", host="other.test")
        home_links += [blog_post, elsewhere]
        fetched = await crawl_of(
            tmp_path,
            www.url("/", host="www.a-site.test"),
            **{
                "crawl.scope": scope,
                "fetch.resolve": {name: server.host for name, server in names.items()},
            },
        )
        assert (blog_post in fetched) is blog_fetched
        assert elsewhere not in fetched
        assert blog.request_counts()["/post"] == (1 if blog_fetched else 0)
        assert other.requests() == []
        assert www.request_counts()["/"] == 1  # the seed, reached by its name


@pytest.mark.anyio
async def test_a_broad_crawl_past_the_host_cap_fetches_the_same_pages_politely(
    tmp_path: Path,
) -> None:
    # Six hosts in a chain (each / links to its /a, which links to the next host's /), two
    # kept in memory: forgotten hosts must not lose a page, and each keeps its delay.
    delay = 0.25
    servers: list[TestServer] = []

    def chained(n: int) -> Callable[[Request], Response]:
        def answer(request: Request) -> Response:
            if request.path == "/":
                return html("/", '<a href="/a">l</a>')
            nxt = servers[n + 1].url("/") if n + 1 < len(servers) else "/"
            return html(request.path, f'<a href="{nxt}">l</a>')

        return answer

    with ExitStack() as stack:
        servers += [
            stack.enter_context(TestServer(chained(n), host=f"127.0.0.{10 + n}")) for n in range(6)
        ]
        results = {}
        for name, cap in (("capped", 2), ("control", 0)):
            cfg = crawl_config(
                4,
                **{
                    "politeness.robots": False,
                    "politeness.per_host_delay": delay,
                    "security.allow_addresses": ["127.0.0.0/8"],
                    "crawl.scope": "any",
                    "crawl.max_hosts_in_memory": cap,
                },
            )
            db = tmp_path / f"{name}.db"
            crawl = Crawl(cfg, [servers[0].url("/")], db, AbortController().signal)
            await crawl.run()
            assert crawl.frontier is not None
            results[name] = (crawled(db), crawl.frontier.counts().hosts)
            for server in servers:  # each host's requests came the delay apart: a connection
                # made for the first request delays its arrival, not the next one's, so arrivals
                # may bunch by a few tens of ms on a loaded machine; a lost delay is ~0 s
                assert min_gap(server.request_times("/")) >= 0.6 * delay
                server.reset()
    assert results["capped"][0] == results["control"][0]
    assert len(results["control"][0]) == 12
    assert results["capped"][1] <= 2
    assert results["control"][1] == 6  # the control keeps every host


@pytest.mark.anyio
async def test_past_the_host_cap_robots_txt_is_forgotten_too_and_its_crawl_delay_holds(
    tmp_path: Path,
) -> None:
    # Six hosts in a chain, each with a robots.txt Crawl-delay; the last links back to the first
    # host's /b, so a host whose slot and robots.txt were forgotten comes back. Two kept in memory:
    # the same pages, at most two robots.txt policies and host slots, and every host's requests
    # (robots.txt included, fetched again after it was forgotten) a Crawl-delay apart.
    crawl_delay = 0.2
    servers: list[TestServer] = []

    def chained(n: int) -> Callable[[Request], Response]:
        def answer(request: Request) -> Response:
            if request.path == "/robots.txt":
                return (
                    200,
                    {"Content-Type": "text/plain"},
                    f"User-agent: *\nCrawl-delay: {crawl_delay}\n".encode(),
                )
            if request.path == "/":
                return html("/", '<a href="/a">l</a>')
            if request.path == "/b":
                return html("/b")
            nxt = servers[n + 1].url("/") if n + 1 < len(servers) else servers[0].url("/b")
            return html(request.path, f'<a href="{nxt}">l</a>')

        return answer

    with ExitStack() as stack:
        servers += [
            stack.enter_context(TestServer(chained(n), host=f"127.0.0.{20 + n}")) for n in range(6)
        ]
        results = {}
        for name, cap in (("capped", 2), ("control", 0)):
            cfg = crawl_config(
                4,
                **{
                    "politeness.per_host_delay": 0.0,
                    "security.allow_addresses": ["127.0.0.0/8"],
                    "crawl.scope": "any",
                    "crawl.max_hosts_in_memory": cap,
                },
            )
            db = tmp_path / f"{name}.db"
            crawl = Crawl(cfg, [servers[0].url("/")], db, AbortController().signal)
            await crawl.run()
            assert crawl.frontier is not None
            assert crawl.robots is not None
            robots_fetches = sum(s.request_counts()["/robots.txt"] for s in servers)
            results[name] = (
                crawled(db),
                crawl.frontier.counts().hosts,
                len(crawl.robots),
                robots_fetches,
            )
            for server in servers:  # arrivals may bunch a little: 0.8 of the delay
                assert min_gap(server.request_times("/")) >= 0.6 * crawl_delay
                server.reset()
    assert results["capped"][0] == results["control"][0]
    assert len(results["control"][0]) == 13
    assert max(results["capped"][1:3]) <= 2
    assert results["control"][1:3] == (6, 6)  # the control keeps every host and policy
    # The first host's robots.txt was forgotten and fetched again, once; the control's was not.
    assert (results["capped"][3], results["control"][3]) == (7, 6)


@pytest.mark.anyio
async def test_past_the_host_cap_the_trap_guard_forgets_hosts_and_their_budget_holds(
    tmp_path: Path,
) -> None:
    # Five hosts in a chain, 3 pages each at most (traps.max_pages_per_host); the last links back
    # to the first host's /b and /c after it was forgotten. Two kept: the guard counts at most two
    # hosts, and the first host's count, derived again from the database, lets /b in but not /c.
    servers: list[TestServer] = []

    def chained(n: int) -> Callable[[Request], Response]:
        def answer(request: Request) -> Response:
            if request.path == "/":
                return html("/", '<a href="/a">l</a>')
            if request.path in ("/b", "/c"):
                return html(request.path)
            if n + 1 < len(servers):
                return html("/a", f'<a href="{servers[n + 1].url("/")}">l</a>')
            first = servers[0]
            return html("/a", f'<a href="{first.url("/b")}">b</a><a href="{first.url("/c")}">c</a>')

        return answer

    with ExitStack() as stack:
        servers += [
            stack.enter_context(TestServer(chained(n), host=f"127.0.0.{30 + n}")) for n in range(5)
        ]
        results = {}
        for name, cap in (("capped", 2), ("control", 0)):
            cfg = crawl_config(
                1,
                **{
                    "politeness.robots": False,
                    "security.allow_addresses": ["127.0.0.0/8"],
                    "crawl.scope": "any",
                    "crawl.max_hosts_in_memory": cap,
                    "traps.max_pages_per_host": 3,
                },
            )
            db = tmp_path / f"{name}.db"
            crawl = Crawl(cfg, [servers[0].url("/")], db, AbortController().signal)
            await crawl.run()
            # What the servers were asked for (the pages table lists skipped URLs too).
            asked = {server.url(target) for server in servers for target in server.request_counts()}
            results[name] = (asked, len(crawl._traps), servers[0].request_counts()["/c"])
            for server in servers:
                server.reset()
    assert results["capped"][0] == results["control"][0]
    assert servers[0].url("/b") in results["control"][0]
    assert servers[0].url("/c") not in results["control"][0]
    assert results["capped"][2] == results["control"][2] == 0  # the budget held for /c
    assert results["capped"][1] <= 2
    assert results["control"][1] == 5  # the control counts every host


@pytest.mark.anyio
async def test_a_forgotten_hosts_trap_charges_are_read_while_other_statements_run(
    tmp_path: Path,
) -> None:
    # During a crawl the database always has statements running (claims, the sink's batches):
    # reading a forgotten host's charges must work then (SQLite refuses to define a function).
    with linking_site({"/": "/item/1 /item/2 /x"}) as site:
        await crawl_of(tmp_path, site.url("/"))
    host = site.url("/").split("/")[2]
    async with Store(tmp_path / "crawl.db") as store:
        await store.budget_charges(path_pattern)  # as a run's start does (TrapGuard.resume)
        busy = await store.conn.execute("SELECT url FROM frontier")
        assert await busy.fetchone() is not None  # a statement still running
        charges = await store.budget_charges_of(host, path_pattern)
        await busy.close()
    base = site.url("")
    expected = {path_pattern(f"{base}/"): 1, path_pattern(f"{base}/item/1"): 2}
    expected[path_pattern(f"{base}/x")] = 1
    assert dict(charges) == expected


@pytest.mark.anyio
async def test_a_crawl_does_not_fetch_excluded_urls_and_the_control_does(tmp_path: Path) -> None:
    links = {"/": "/a /private/b /Private/c", "/a": "/private/d"}
    with linking_site(links) as site:
        excluded = await crawl_of(tmp_path, site.url("/"), **{"crawl.exclude": ["/private/"]})
        control = await crawl_of(tmp_path, site.url("/"), "control")
    base = site.url("")
    assert excluded == {f"{base}/", f"{base}/a", f"{base}/Private/c"}
    assert control == excluded | {f"{base}/private/b", f"{base}/private/d"}


@pytest.mark.anyio
async def test_a_crawl_with_include_follows_only_matching_links_and_the_control_all(
    tmp_path: Path,
) -> None:
    with TestServer(lambda r: html(r.path), host="127.0.0.3") as other:
        links = {"/": f"/docs/a /shop/b {other.url('/docs/c')}", "/docs/a": "/docs/e /f"}
        with linking_site(links) as site:
            included = await crawl_of(tmp_path, site.url("/"), **{"crawl.include": [r"/docs/"]})
            control = await crawl_of(tmp_path, site.url("/"), "control")
    base = site.url("")
    # The seed is fetched although it matches no pattern; the other host's /docs/ is off scope.
    assert included == {f"{base}/", f"{base}/docs/a", f"{base}/docs/e"}
    assert control == included | {f"{base}/shop/b", f"{base}/f"}


@pytest.mark.anyio
async def test_a_redirect_to_an_excluded_url_is_not_followed(tmp_path: Path) -> None:
    def answer(request: Request) -> Response:
        if request.path == "/old":
            return 301, {"Location": "/private/new"}, b""
        return html(request.path, '<a href="/old">o</a>')

    with TestServer(answer, host="127.0.0.2") as site:
        fetched = await crawl_of(tmp_path, site.url("/"), **{"crawl.exclude": ["/private/"]})
        counts = site.request_counts()
    assert fetched == {site.url("/"), site.url("/old")}
    assert counts["/private/new"] == 0


@pytest.mark.parametrize(("flags", "other_fetched"), [(["--scope", "any"], True), ([], False)])
def test_crawl_run_scope_flag_sets_crawl_scope(
    tmp_path: Path, flags: list[str], other_fetched: bool
) -> None:
    config = write_config(tmp_path, '[security]\nallow_addresses = ["127.0.0.0/8"]\n')
    with TestServer(lambda r: html(r.path), host="127.0.0.3") as other:
        with linking_site({"/": other.url("/elsewhere")}) as site:
            seeds = write_seeds(tmp_path, site.url("/"))
            args = ["run", str(seeds), "--db", str(tmp_path / "crawl.db"), "--config", str(config)]
            done = runner.invoke(app, [*args, "--no-robots", "--quiet", *flags])
        assert done.exit_code == 0, done.output
        assert (other.url("/elsewhere") in crawled(tmp_path / "crawl.db")) is other_fetched


def chain_of_sites(count: int, *, local: bool = True) -> list[TestServer]:
    """``count`` sites on 127.0.0.2, .3, ...: each one's ``/`` links to the next one's ``/``
    and, with ``local``, to its own ``/local``."""
    sites: list[TestServer] = []

    def answer_for(index: int) -> Callable[[Request], Response]:
        def answer(request: Request) -> Response:
            if request.path != "/":
                return html(request.path)
            hrefs = [sites[index].url("/local")] if local else []
            if index + 1 < len(sites):
                hrefs.append(sites[index + 1].url("/"))
            return html("/", "".join(f'<a href="{href}">l</a>' for href in hrefs))

        return answer

    sites.extend(TestServer(answer_for(i), host=f"127.0.0.{2 + i}") for i in range(count))
    return sites


@pytest.mark.anyio
@pytest.mark.parametrize(("max_offsite_hops", "sites_reached"), [(0, 1), (1, 2), (2, 3)])
async def test_a_crawl_fetches_offsite_pages_up_to_max_offsite_hops_links_out(
    tmp_path: Path, max_offsite_hops: int, sites_reached: int
) -> None:
    sites = chain_of_sites(4)
    with sites[0], sites[1], sites[2], sites[3]:
        fetched = await crawl_of(
            tmp_path, sites[0].url("/"), **{"crawl.max_offsite_hops": max_offsite_hops}
        )
        counts = [site.request_counts()["/"] for site in sites]
    # The seed's /local is in scope; an offsite site's /local is one more link out.
    expected = {sites[0].url("/"), sites[0].url("/local")}
    expected |= {sites[i].url("/") for i in range(1, sites_reached)}
    expected |= {sites[i].url("/local") for i in range(1, sites_reached - 1)}
    assert fetched == expected
    assert counts == [1] * sites_reached + [0] * (4 - sites_reached)


@pytest.mark.anyio
async def test_an_offsite_pages_link_back_into_the_scope_is_followed(tmp_path: Path) -> None:
    urls: dict[str, str] = {}
    home = TestServer(
        lambda r: html(r.path, f'<a href="{urls["other"]}">o</a>' if r.path == "/" else ""),
        host="127.0.0.2",
    )
    other = TestServer(lambda r: html(r.path, f'<a href="{urls["back"]}">b</a>'), host="127.0.0.3")
    with home, other:
        urls.update(other=other.url("/"), back=home.url("/back"))
        fetched = await crawl_of(tmp_path, home.url("/"), **{"crawl.max_offsite_hops": 1})
    assert fetched == {home.url("/"), other.url("/"), home.url("/back")}


@pytest.mark.anyio
async def test_a_resumed_crawl_keeps_each_urls_offsite_distance(tmp_path: Path) -> None:
    # Run 1 stops at its page budget with the third site's page (2 links out) pending; run 2
    # fetches it, and must know it is the last page out: the fourth site is never asked.
    sites = chain_of_sites(4, local=False)
    offsite = {"crawl.max_offsite_hops": 2}
    with sites[0], sites[1], sites[2], sites[3]:
        first = await crawl_of(tmp_path, sites[0].url("/"), **offsite, **{"crawl.max_pages": 2})
        assert first == {sites[0].url("/"), sites[1].url("/")}
        second = await crawl_of(tmp_path, sites[0].url("/"), **offsite)
        counts = [site.request_counts()["/"] for site in sites]
    assert second == first | {sites[2].url("/")}
    assert counts == [1, 1, 1, 0]


# --- crawl check-url --------------------------------------------------------------------------


def check(tmp_path: Path, url: str, config: str, *args: str) -> tuple[int, str]:
    seeds = write_seeds(tmp_path, "https://www.example.co.uk/")
    cfg = tmp_path / "rules.toml"
    cfg.write_text(f"[crawl]\n{config}\n")
    done = runner.invoke(
        app, ["check-url", url, "--seeds", str(seeds), "--config", str(cfg), *args]
    )
    return done.exit_code, done.output


@pytest.mark.parametrize(
    ("url", "config", "code", "says"),
    [
        (
            "https://www.example.co.uk/a",
            "",
            0,
            "decided by crawl.scope: www.example.co.uk is a seed's host",
        ),
        (
            "https://shop.example.co.uk/a",
            "",
            3,
            "decided by crawl.scope: shop.example.co.uk is not a seed's host",
        ),
        ("https://shop.example.co.uk/a", 'scope = "domains"', 0, "a seed's registrable domain"),
        (
            "https://www.example.co.uk/x/",
            'exclude = ["/x/"]',
            3,
            "decided by crawl.exclude: matches '/x/'",
        ),
        (
            "https://www.example.co.uk/y",
            'include = ["/x/"]',
            3,
            "decided by crawl.include: matches none of '/x/'",
        ),
        ("https://www.example.co.uk/", 'exclude = ["/"]', 0, "decided by seeds: a seed"),
        ("mailto:a@b.c", "", 3, "not a crawlable"),
    ],
)
def test_check_url_says_in_or_out_and_which_rule_decides(
    tmp_path: Path, url: str, config: str, code: int, says: str
) -> None:
    exit_code, output = check(tmp_path, url, config)
    assert exit_code == code, output
    assert says in output
    assert output.startswith("in: " if code == 0 else "out: ")


def test_check_url_shows_the_canonical_form_the_rules_see(tmp_path: Path) -> None:
    exit_code, output = check(tmp_path, "HTTPS://WWW.Example.co.uk:443/a#frag", "")
    assert exit_code == 0
    assert output.splitlines()[:2] == [
        "in: https://www.example.co.uk/a",
        "  canonical form of HTTPS://WWW.Example.co.uk:443/a#frag (the form the rules see)",
    ]


def test_check_url_scope_flag_overrides_the_config(tmp_path: Path) -> None:
    exit_code, output = check(tmp_path, "https://other.org/", "", "--scope", "any")
    assert exit_code == 0
    assert 'crawl.scope = "any"' in output


def test_check_url_says_when_an_off_scope_url_may_still_be_fetched_offsite(
    tmp_path: Path,
) -> None:
    exit_code, output = check(tmp_path, "https://other.org/", "max_offsite_hops = 2")
    assert exit_code == 3
    assert "still fetched when it is at most crawl.max_offsite_hops = 2 links from" in output
    # Negative control: without offsite hops it says nothing of the kind.
    assert "still fetched" not in check(tmp_path, "https://other.org/", "")[1]


def test_check_url_with_a_bad_pattern_exits_1_naming_the_key(tmp_path: Path) -> None:
    exit_code, output = check(tmp_path, "https://www.example.co.uk/", 'include = ["a("]')
    assert exit_code == 1
    assert "`crawl.include` has an invalid regular expression 'a('" in output
