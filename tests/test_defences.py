"""Each politeness rule and hostile-web defence, proved by a real crawl of the hostile test site
on 127.0.0.1, counting requests on the server side. Where a defence could be missing without
any test noticing, the test runs a negative control: the same crawl with the defence off must
show the hostile behaviour."""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
import tracemalloc
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from crawler.abort import AbortController, AbortReason
from crawler.config_load import load_config
from crawler.demo import SiteServer, SiteSpec, expected_statuses
from crawler.engine import Crawl, CrawlReport
from crawler.models import Lease, Response
from crawler.store.summary import format_text, read_summary
from tests.helpers import database, min_gap
from tests.hostile_site import CORNER_BROKEN_EVERY, CORNER_PAGES, HostileSite

pytestmark = pytest.mark.anyio

_numbers = itertools.count()
BASE_CONFIG: dict[str, Any] = {
    "crawl.concurrency": 4,
    "politeness.per_host_concurrency": 4,
    "politeness.per_host_delay": 0.0,
    "politeness.robots_unreachable_retry": 0.05,
    "politeness.cooldown": 0.05,
    "runtime.stats_interval": 0.0,
    "fetch.connect_timeout": 2.0,
    "fetch.read_timeout": 1.0,
    "fetch.total_timeout": 2.0,
    "fetch.max_retries": 0,
    "fetch.retry_backoff": 0.01,
    "fetch.max_body_bytes": 1_000_000,
}


@dataclass
class Result:
    report: CrawlReport
    rows: dict[str, dict[str, Any]]
    """Path (and query) of each stored page -> its row."""
    requested: dict[str, int]
    db: Path

    def notes(self, path: str) -> set[str]:
        return set((self.rows[path]["notes"] or "").split(",")) - {""}


@pytest.fixture
def site() -> Any:
    with HostileSite() as s:
        yield s


async def crawl(
    site: HostileSite,
    tmp_path: Path,
    *paths: str,
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> Result:
    db = tmp_path / f"crawl-{next(_numbers)}.db"
    config = load_config(overrides={**BASE_CONFIG, **overrides}, environ={})
    seeds = [site.base_url + path for path in paths]
    site.reset()
    report = await Crawl(config, seeds, db, AbortController().signal, transport=transport).run()
    with database(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = {
            row["url"].removeprefix(site.base_url): dict(row)
            for row in conn.execute("SELECT * FROM pages")
        }
    return Result(report, rows, dict(site.request_counts()), db)


# -- robots.txt -------------------------------------------------------------------------------


async def test_robots_disallowed_urls_are_never_requested(
    site: HostileSite, tmp_path: Path
) -> None:
    # Depth 1: the index's cases, not the traps behind /traps/.
    result = await crawl(site, tmp_path, "/", **{"crawl.max_depth": 1})
    assert "/private/secret" not in result.requested
    assert result.rows["/private/secret"]["error"] == "robots_disallowed"
    assert result.requested["/robots.txt"] == 1  # once per origin
    assert result.report.stats.skipped["robots_disallowed"] == 1
    # Negative control: without robots.txt the page is fetched.
    control = await crawl(site, tmp_path, "/", **{"crawl.max_depth": 1, "politeness.robots": False})
    assert control.requested["/private/secret"] == 1
    assert "/robots.txt" not in control.requested


async def test_a_crawl_delay_among_user_agent_lines_does_not_end_our_group(
    site: HostileSite, tmp_path: Path
) -> None:
    site.robots_txt = b"User-agent: crawler\nCrawl-delay: 0\nUser-agent: *\nDisallow: /private/\n"
    result = await crawl(site, tmp_path, "/private/secret")
    assert result.requested == {"/robots.txt": 1}
    assert result.rows["/private/secret"]["error"] == "robots_disallowed"
    # Negative control: a rule ends our group, so '*' alone is disallowed.
    site.robots_txt = b"User-agent: crawler\nAllow: /\nUser-agent: *\nDisallow: /private/\n"
    control = await crawl(site, tmp_path, "/private/secret")
    assert control.requested == {"/robots.txt": 1, "/private/secret": 1}


async def test_the_group_named_in_a_compatible_user_agent_applies(
    site: HostileSite, tmp_path: Path
) -> None:
    site.robots_txt = b"User-agent: MyBot\nDisallow: /private/\n\nUser-agent: *\nAllow: /\n"
    user_agent = {"crawl.user_agent": "Mozilla/5.0 (compatible; MyBot/1.0; +https://x)"}
    result = await crawl(site, tmp_path, "/private/secret", **user_agent)
    assert result.requested == {"/robots.txt": 1}
    # crawl.robots_token overrides the derived token: MyBot's group no longer applies.
    control = await crawl(
        site, tmp_path, "/private/secret", **user_agent, **{"crawl.robots_token": "OtherBot"}
    )
    assert control.requested == {"/robots.txt": 1, "/private/secret": 1}


async def test_a_user_agent_without_a_clear_token_warns_once_and_obeys_star_groups(
    site: HostileSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0 Safari/537.36"
    site.robots_txt = b"User-agent: Mozilla\nAllow: /\n\nUser-agent: *\nDisallow: /private/\n"
    with caplog.at_level(logging.WARNING, logger="crawler"):
        result = await crawl(site, tmp_path, "/private/secret", **{"crawl.user_agent": browser})
    assert "/private/secret" not in result.requested
    unclear = [r for r in caplog.records if getattr(r, "event", None) == "robots_token_unclear"]
    assert len(unclear) == 1
    # Negative control: naming the token makes the Mozilla group apply.
    control = await crawl(
        site,
        tmp_path,
        "/private/secret",
        **{"crawl.user_agent": browser, "crawl.robots_token": "Mozilla"},
    )
    assert control.requested["/private/secret"] == 1


async def test_robots_5xx_disallows_then_asks_again(site: HostileSite, tmp_path: Path) -> None:
    site.robots_status = 503
    result = await crawl(site, tmp_path, "/links/target", **{"fetch.max_retries": 2})
    assert "/links/target" not in result.requested  # never fetched while robots.txt fails
    assert result.requested["/robots.txt"] == 3  # asked again at each retry
    assert result.rows["/links/target"]["error"] == "robots_unavailable: robots.txt HTTP 503"


async def test_robots_404_allows_everything(site: HostileSite, tmp_path: Path) -> None:
    site.robots_txt = None
    result = await crawl(site, tmp_path, "/private/secret")
    assert result.requested == {"/robots.txt": 1, "/private/secret": 1}
    assert result.rows["/private/secret"]["status"] == 200


async def test_robots_sitemaps_and_crawl_delay_are_recorded(
    site: HostileSite, tmp_path: Path
) -> None:
    site.robots_txt = b"User-agent: *\nCrawl-delay: 0.01\nSitemap: http://x.test/sitemap.xml\n"
    result = await crawl(site, tmp_path, "/links/target")
    with database(result.db) as conn:
        row = conn.execute("SELECT origin, status, crawl_delay, sitemaps FROM robots").fetchone()
    assert row == (site.base_url, 200, 0.01, "http://x.test/sitemap.xml")


async def test_crawl_delay_is_respected_on_the_wire(site: HostileSite, tmp_path: Path) -> None:
    pages = [f"/rate/flaky/{n}" for n in range(100, 104)]  # flaky/N: 500 twice, then 200
    site.robots_txt = b"User-agent: *\nCrawl-delay: 0.5\n"
    await crawl(site, tmp_path, *pages)
    # Starts are 0.5 s apart; arrivals may bunch up a little on a loaded machine.
    assert min_gap(site.request_times("/rate/")) >= 0.4
    # Negative control: no Crawl-delay, the same requests arrive together.
    site.robots_txt = b"User-agent: *\nAllow: /\n"
    await crawl(site, tmp_path, *pages)
    assert min_gap(site.request_times("/rate/")) < 0.2


async def test_no_robots_flag_warns(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crawler.cli.app import app

    seeds = tmp_path / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/\n")
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(seeds),
            "--no-robots",
            "--max-pages",
            "0",
            "--db",
            str(tmp_path / "c.db"),
            "--config",
            "/nonexistent",
        ],
    )
    assert "robots.txt will be ignored" in result.output


# -- per-host politeness on the wire ----------------------------------------------------------


async def test_per_host_concurrency_cap_on_the_wire(tmp_path: Path) -> None:
    from crawler.demo import SiteServer, SiteSpec

    with SiteServer(SiteSpec(pages=40, latency=0.02)) as demo:
        config = {**BASE_CONFIG, "crawl.concurrency": 8, "politeness.per_host_concurrency": 2}
        cfg = load_config(overrides=config, environ={})
        await Crawl(cfg, [demo.base_url + "/"], tmp_path / "a.db", AbortController().signal).run()
        capped = demo.max_concurrent
        demo.reset_counts()
        control = load_config(
            overrides={**config, "politeness.per_host_concurrency": 8}, environ={}
        )
        await Crawl(
            control, [demo.base_url + "/"], tmp_path / "b.db", AbortController().signal
        ).run()
        uncapped = demo.max_concurrent
    assert capped <= 2
    assert uncapped > 2  # the control shows the cap was what held it


# -- Retry-After, backoff, circuit breaker ----------------------------------------------------


async def test_retry_after_is_respected_on_the_wire(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/rate/retry-after-seconds", **{"fetch.max_retries": 3})
    assert result.rows["/rate/retry-after-seconds"]["status"] == 200
    assert result.rows["/rate/retry-after-seconds"]["title"] == "finally"
    assert min_gap(site.request_times("/rate/")) >= 1.8  # Retry-After: 2 (arrivals may bunch)
    assert result.report.stats.throttled == 2
    # Negative control: a 500 (no Retry-After) is retried after the short backoff.
    await crawl(site, tmp_path, "/rate/flaky/400", **{"fetch.max_retries": 3})
    assert min_gap(site.request_times("/rate/")) < 1.0


async def test_a_retry_after_above_the_cap_leaves_the_host_to_a_later_run(
    site: HostileSite, tmp_path: Path
) -> None:
    db = tmp_path / "deferred.db"
    config = load_config(overrides={**BASE_CONFIG, "politeness.per_host_concurrency": 1,
                                    "fetch.max_retries": 3}, environ={})  # fmt: skip
    with SiteServer(SiteSpec(pages=20)) as other:
        # One at a time, in seed order: the 429 (Retry-After: 86400) comes first.
        seeds = [site.base_url + "/rate/retry-after-day", site.base_url + "/links/target"]
        seeds.append(other.base_url + "/")

        async def run() -> CrawlReport:
            site.reset()
            return await Crawl(config, seeds, db, AbortController().signal).run()

        before = time.time()
        report = await run()  # ends at once: nothing else is due
        assert site.request_counts() == {"/robots.txt": 1, "/rate/retry-after-day": 1}
        assert report.stats.hosts_deferred == 1
        assert report.database["done"] == len(expected_statuses(SiteSpec(pages=20)))  # the rest
        assert (report.deferred.urls, report.deferred.hosts) == (2, 1)
        assert report.deferred.until is not None
        assert before + 86400 <= report.deferred.until <= time.time() + 86400
        summary = read_summary(db)
        assert (summary.frontier["pending"], summary.frontier["leased"]) == (2, 0)
        assert summary.deferred == report.deferred
        assert "2 URLs of 1 hosts deferred until" in format_text(summary)
        assert read_summary(db, now=report.deferred.until).deferred.urls == 0  # then: due

        again = await run()  # a later run, before the stored time: not one request
        assert site.request_counts() == {}
        assert again.deferred == report.deferred

        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("UPDATE host_deferrals SET not_before = ?", (time.time() - 1,))
        after = await run()  # the stored time has passed: asked again (and deferred again)
    assert site.request_counts()["/rate/retry-after-day"] == 1
    assert after.deferred.urls == 2
    assert after.deferred.until is not None
    assert after.deferred.until > report.deferred.until


async def test_retry_after_http_date(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/rate/retry-after-date", **{"fetch.max_retries": 1})
    assert result.rows["/rate/retry-after-date"]["status"] == 200
    assert min_gap(site.request_times("/rate/")) >= 1.0  # the date was 2-3 s ahead
    # Negative control: a 500 (no Retry-After) is retried after the short backoff.
    await crawl(site, tmp_path, "/rate/flaky/401", **{"fetch.max_retries": 1})
    assert min_gap(site.request_times("/rate/")) < 1.0


async def test_transient_5xx_is_retried_with_backoff(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/rate/flaky/7", **{"fetch.max_retries": 2})
    assert result.requested["/rate/flaky/7"] == 3
    assert result.rows["/rate/flaky/7"]["status"] == 200
    assert result.report.stats.retries == 2


async def test_retry_budget_per_url_then_the_last_answer_is_recorded(
    site: HostileSite, tmp_path: Path
) -> None:
    result = await crawl(site, tmp_path, "/rate/always-503", **{"fetch.max_retries": 2})
    assert result.requested["/rate/always-503"] == 3
    assert result.rows["/rate/always-503"]["status"] == 503


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
@pytest.mark.parametrize("path", ["/time/reset-before-response", "/time/empty-reply"])
async def test_a_connection_that_ends_before_any_response_uses_only_our_retries(
    site: HostileSite, tmp_path: Path, path: str, transport: str
) -> None:
    # aiohttp used to send each attempt twice (its own resend on a dropped connection).
    overrides = {"fetch.max_retries": 2, "fetch.transport": transport}
    result = await crawl(site, tmp_path, path, **overrides)
    assert result.requested[path] == 3
    assert result.rows[path]["error"].startswith("connection_dropped")
    assert result.report.stats.retries == 2


async def test_circuit_breaker_pauses_a_host_failing_on_distinct_paths(
    site: HostileSite, tmp_path: Path
) -> None:
    overrides = {"fetch.max_retries": 3, "politeness.circuit_breaker": 2,
                 "politeness.circuit_breaker_pause": 0.05}  # fmt: skip
    paths = [f"/rate/flaky/{n}" for n in range(300, 304)]  # 500 twice each, then 200
    result = await crawl(site, tmp_path, *paths, **overrides)
    assert result.report.stats.hosts_paused >= 1
    assert all(result.rows[path]["status"] == 200 for path in paths)
    control = await crawl(site, tmp_path, *paths, **{**overrides, "politeness.circuit_breaker": 0})
    assert control.report.stats.hosts_paused == 0


async def test_one_urls_retries_do_not_trip_the_circuit_breaker(
    site: HostileSite, tmp_path: Path
) -> None:
    overrides = {"fetch.max_retries": 3, "politeness.circuit_breaker": 2,
                 "politeness.circuit_breaker_pause": 0.05}  # fmt: skip
    result = await crawl(site, tmp_path, "/rate/always-503", **overrides)
    assert result.requested["/rate/always-503"] == 4  # its own budget, spent
    assert result.report.stats.hosts_paused == 0


async def test_a_broken_corner_does_not_hold_the_whole_host(
    site: HostileSite, tmp_path: Path
) -> None:
    # 200 good pages; 20 of them link an always-503 (Retry-After: 1) URL of their own, two
    # others a connection that ends before any response. Defaults but for smaller pauses.
    # The host is never held for them: no circuit-breaker pause, no host-wide cooldown (each
    # used to hold all 200 pages), so the crawl takes the good site's time plus the broken
    # URLs' own retries. (Before, with these settings: 60 host-wide cooldowns, ~20 pauses.)
    overrides = {"fetch.max_retries": 2, "politeness.circuit_breaker_pause": 2.0,
                 "politeness.cooldown": 2.0}  # fmt: skip
    result = await crawl(site, tmp_path, "/corner/0", **overrides)
    good = {f"/corner/{n}" for n in range(CORNER_PAGES)}
    broken = {f"/corner/broken/{n}" for n in range(0, CORNER_PAGES // 2, CORNER_BROKEN_EVERY)}
    assert len(broken) == 20
    dropped = {"/time/reset-before-response", "/time/empty-reply"}
    assert set(result.rows) == good | broken | dropped
    assert {path: result.rows[path]["status"] for path in good} == dict.fromkeys(good, 200)
    assert {path: result.rows[path]["status"] for path in broken} == dict.fromkeys(broken, 503)
    assert {result.rows[path]["error"].split(":")[0] for path in dropped} == {"connection_dropped"}
    assert all(result.requested[path] == 3 for path in broken | dropped)
    assert (result.report.stats.hosts_paused, result.report.stats.throttled) == (0, 0)
    # The same site without its broken corner: the same pages, the same (zero) host holds.
    site.corner_broken = False
    control = await crawl(site, tmp_path, "/corner/0", **overrides)
    assert set(control.rows) == good
    assert (control.report.stats.hosts_paused, control.report.stats.throttled) == (0, 0)


# -- meta robots, X-Robots-Tag, rel=nofollow, canonical ---------------------------------------


async def test_noindex_keeps_content_out_but_records_the_page(
    site: HostileSite, tmp_path: Path
) -> None:
    result = await crawl(site, tmp_path, "/meta/noindex")
    row = result.rows["/meta/noindex"]
    assert (row["status"], row["title"], row["description"]) == (200, None, None)
    assert "noindex" in result.notes("/meta/noindex")
    assert result.requested.get("/meta/from-noindex") == 1  # noindex alone still follows


async def test_meta_nofollow_follows_no_link(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/meta/nofollow")
    assert "/meta/not-followed" not in result.requested
    assert "nofollow" in result.notes("/meta/nofollow")


async def test_x_robots_tag_header(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/meta/x-robots-tag")
    assert "/meta/not-followed-header" not in result.requested
    assert result.rows["/meta/x-robots-tag"]["title"] is None
    assert {"noindex", "nofollow"} <= result.notes("/meta/x-robots-tag")


async def test_rel_nofollow_is_configurable(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/meta/rel-nofollow")
    assert "/meta/rel-target" not in result.requested
    control = await crawl(
        site, tmp_path, "/meta/rel-nofollow", **{"politeness.respect_nofollow": False}
    )
    assert control.requested["/meta/rel-target"] == 1


async def test_rel_canonical_is_recorded(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/meta/canonical")
    assert result.rows["/meta/canonical"]["canonical"] == site.base_url + "/links/target"


# -- redirects --------------------------------------------------------------------------------


async def test_redirect_chain_stops_at_the_hop_limit(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/redirect/chain/20", **{"fetch.max_redirects": 5})
    chain = sorted(p for p in result.requested if p.startswith("/redirect/chain/"))
    assert chain == [f"/redirect/chain/{n}" for n in range(15, 21)]
    assert "too_many_redirects" in result.notes("/redirect/chain/15")
    control = await crawl(site, tmp_path, "/redirect/chain/20", **{"fetch.max_redirects": 25})
    assert control.rows["/redirect/chain/0"]["title"] == "chain end"


async def test_redirect_loops_end(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/redirect/loop/a", "/redirect/self")
    assert result.requested["/redirect/loop/a"] == result.requested["/redirect/loop/b"] == 1
    assert result.requested["/redirect/self"] == 1
    assert "redirect_loop" in result.notes("/redirect/self")


@pytest.mark.parametrize(
    ("path", "note"),
    [
        ("/redirect/offsite", "redirect_off_scope"),
        ("/redirect/private", "redirect_off_scope"),
        ("/redirect/scheme", "redirect_invalid"),
        ("/redirect/nolocation", "redirect_without_location"),
    ],
)
async def test_redirects_that_are_not_followed(
    site: HostileSite, tmp_path: Path, path: str, note: str
) -> None:
    result = await crawl(site, tmp_path, path)
    assert result.rows[path]["status"] == 302
    assert note in result.notes(path)
    assert set(result.requested) == {"/robots.txt", path}


async def test_address_guard_blocks_private_targets(site: HostileSite, tmp_path: Path) -> None:
    # localhost is in scope here, but it is not a seed's host and it is a loopback address.
    overrides = {"crawl.allow_domains": ["localhost"]}
    result = await crawl(site, tmp_path, "/redirect/loopback", **overrides)
    assert "/links/target" not in result.requested
    local = [r for u, r in result.rows.items() if u.startswith("http://localhost")]
    assert len(local) == 1
    assert local[0]["error"].startswith("address_blocked: localhost resolves to non-public")
    assert result.report.stats.skipped["address_blocked"] == 1
    # Negative control: with the guard off, the request reaches this (loopback) server.
    control = await crawl(site, tmp_path, "/redirect/loopback",
                          **{**overrides, "security.ssrf_guard": False})  # fmt: skip
    assert control.requested["/links/target"] == 1


# -- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/body/gzip-bomb", "/body/deflate-bomb"])
async def test_compression_bombs_stop_at_the_cap(
    site: HostileSite, tmp_path: Path, path: str
) -> None:
    tracemalloc.start()
    try:
        result = await crawl(site, tmp_path, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    row = result.rows[path]
    assert (row["status"], row["size"], row["truncated"]) == (200, 1_000_000, 1)
    # A 1 GiB bomb, a 1 MB cap: decoding whole network chunks (what a plain client does) would
    # hold tens of MB at once; ours holds about the cap.
    assert peak < 40_000_000


@pytest.mark.parametrize("path", ["/body/br-bomb", "/body/zstd-bomb"])
async def test_encodings_we_did_not_ask_for_are_refused(
    site: HostileSite, tmp_path: Path, path: str
) -> None:
    result = await crawl(site, tmp_path, path)
    assert result.rows[path]["error"].startswith("unsupported_encoding")


async def test_an_endless_body_is_cut_at_the_cap(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/body/endless")
    row = result.rows["/body/endless"]
    assert (row["status"], row["size"], row["truncated"]) == (200, 1_000_000, 1)
    assert site.in_flight("/body/endless") == 0  # we hung up


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/body/wrong-length-short", "connection_dropped"),
        ("/body/broken-chunked", "invalid_response"),
        # 50 bytes declared, 5,000 sent: the surplus is read as a (bad) next response.
        ("/body/wrong-length-long", "invalid_response"),
        ("/time/reset-mid-body", "connection_dropped"),
        ("/time/slow-headers", "timeout"),
        ("/time/slow-body", "timeout"),
        ("/time/stall", "timeout"),
    ],
)
async def test_broken_and_slow_responses_are_errors_not_crashes(
    site: HostileSite, tmp_path: Path, path: str, error: str
) -> None:
    result = await crawl(site, tmp_path, path, "/links/target")
    assert result.rows[path]["status"] is None
    assert result.rows[path]["error"].startswith(error)
    assert result.rows["/links/target"]["status"] == 200  # the crawl went on
    assert result.report.stats.errors[error] == 1


async def test_the_per_response_deadline_cuts_a_slow_drip(
    site: HostileSite, tmp_path: Path
) -> None:
    # The body drips a byte every 0.2 s: no read timeout ever fires, only the total deadline.
    result = await crawl(site, tmp_path, "/time/slow-body",
                         **{"fetch.read_timeout": 5.0, "fetch.total_timeout": 1.0})  # fmt: skip
    assert result.rows["/time/slow-body"]["error"] == "timeout: no complete response within 1s"


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        ("/body/no-length", {"status": 200}),
        ("/body/binary-as-html", {"status": 200, "truncated": 0}),
    ],
)
async def test_odd_bodies_are_recorded(
    site: HostileSite, tmp_path: Path, path: str, expect: dict[str, Any]
) -> None:
    result = await crawl(site, tmp_path, path)
    assert {k: result.rows[path][k] for k in expect} == expect


async def test_a_page_too_slow_to_parse_is_kept_without_its_links(
    site: HostileSite, tmp_path: Path
) -> None:
    # 150,000 nested elements: ~40 s of parsing. The parse worker process is replaced at the
    # deadline; the page stays, with a note, and the crawl goes on.
    result = await crawl(site, tmp_path, "/body/deep-nesting", "/links/target",
                         **{"runtime.parse_timeout": 0.5})  # fmt: skip
    row = result.rows["/body/deep-nesting"]
    assert (row["status"], row["notes"], row["title"]) == (200, "parse_timeout", None)
    assert result.rows["/links/target"]["title"] == "target"
    assert result.report.complete


async def test_truncated_gzip_keeps_the_page_with_a_note(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/body/truncated-gzip")
    assert result.rows["/body/truncated-gzip"]["status"] == 200
    assert "truncated_encoding" in result.notes("/body/truncated-gzip")


# -- charsets ---------------------------------------------------------------------------------


async def test_charset_disagreements(site: HostileSite, tmp_path: Path) -> None:
    paths = [
        "/charset/header-vs-meta",
        "/charset/unknown",
        "/charset/invalid-bytes",
        "/charset/bom",
    ]
    result = await crawl(site, tmp_path, *paths)
    titles = {p: result.rows[p]["title"] for p in paths}
    assert titles["/charset/header-vs-meta"] == "Привет"  # the header wins over <meta>
    assert titles["/charset/unknown"] == "unknown ok"  # unknown label: utf-8 fallback
    assert "\ufffd" in titles["/charset/invalid-bytes"]  # replaced, not raised
    assert titles["/charset/bom"] == "bom wins"


# -- links ------------------------------------------------------------------------------------


async def test_link_schemes_idn_long_base_and_duplicates(site: HostileSite, tmp_path: Path) -> None:
    paths = ["/links/schemes", "/links/idn", "/links/long", "/links/base", "/links/dups"]
    result = await crawl(site, tmp_path, *paths)
    assert result.requested["/links/target"] == 1  # six spellings, one fetch
    assert result.requested["/links/sub/rel"] == 1  # through <base href>
    assert all(p in (*paths, "/robots.txt", "/links/target", "/links/sub/rel")
               for p in result.requested)  # fmt: skip
    with database(result.db) as conn:
        targets = {dst for (dst,) in conn.execute("SELECT dst_url FROM links")}
    assert "http://xn--bcher-kva.example/x" in targets  # IDN as punycode
    assert not any(
        t.startswith(("javascript:", "mailto:", "data:", "tel:", "file:")) for t in targets
    )
    assert not any(len(t) > 2048 for t in targets)


async def test_a_link_with_user_info_is_followed_without_it(
    site: HostileSite, tmp_path: Path
) -> None:
    # httpx turned the link's user info into an Authorization header that aiohttp refused,
    # and the ValueError ended the whole crawl.
    result = await crawl(site, tmp_path, "/links/userinfo")
    assert result.report.complete
    assert result.requested == {"/robots.txt": 1, "/links/userinfo": 1, "/links/from-userinfo": 1}
    assert result.rows["/links/from-userinfo"]["status"] == 200
    assert result.rows["/links/from-userinfo"]["title"] == "from userinfo"
    with closing(sqlite3.connect(result.db)) as conn:
        stored = "\n".join(conn.iterdump())
    assert "user:pw" not in stored  # not in pages, links or the frontier


# -- traps ------------------------------------------------------------------------------------


async def test_calendar_trap_stops_at_the_pattern_budget(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/traps/calendar?date=2024-01-01",
                         **{"traps.max_urls_per_pattern": 5, "crawl.max_pages": 200})  # fmt: skip
    fetched = [p for p in result.requested if p.startswith("/traps/calendar")]
    assert len(fetched) == 5
    assert result.report.complete
    control = await crawl(site, tmp_path, "/traps/calendar?date=2024-01-01",
                          **{"traps.max_urls_per_pattern": 0, "crawl.max_pages": 30})  # fmt: skip
    assert len([p for p in control.requested if p.startswith("/traps/calendar")]) == 30


@pytest.mark.parametrize("path", ["/traps/session/home", "/traps/jsession/home"])
async def test_session_ids_are_stripped(site: HostileSite, tmp_path: Path, path: str) -> None:
    result = await crawl(site, tmp_path, path, **{"crawl.max_pages": 100})
    trap = [p for p in result.requested if p.startswith(path.rsplit("/", 1)[0])]
    assert len(trap) <= 4  # the entry page and its 3 pages, each once
    assert result.report.complete
    assert result.report.stats.pages < 100
    control = await crawl(
        site, tmp_path, path, **{"crawl.max_pages": 40, "traps.session_params": []}
    )
    assert control.report.stats.pages == 40  # without stripping it never ends


async def test_repeated_segments_are_not_followed(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/traps/repeat/x",
                         **{"traps.max_repeated_segments": 2, "crawl.max_pages": 500})  # fmt: skip
    assert result.report.stats.pages < 500
    assert all(p.count("/x") <= 2 and p.count("/y") <= 2 for p in result.requested)
    control = await crawl(site, tmp_path, "/traps/repeat/x",
                          **{"traps.max_repeated_segments": 0, "crawl.max_pages": 60})  # fmt: skip
    assert control.report.stats.pages == 60


async def test_ever_deeper_paths_stop_at_the_depth_limit(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/traps/deep/a", **{"crawl.max_depth": 4})
    deep = [p for p in result.requested if p.startswith("/traps/deep")]
    assert len(deep) == 5
    assert max(p.count("/") for p in deep) == 3 + 4


async def test_exploding_query_strings_stop_at_the_pattern_budget(
    site: HostileSite, tmp_path: Path
) -> None:
    result = await crawl(site, tmp_path, "/traps/query?a=1",
                         **{"traps.max_urls_per_pattern": 10, "crawl.max_pages": 500})  # fmt: skip
    assert len([p for p in result.requested if p.startswith("/traps/query")]) == 10


async def test_per_host_page_budget(site: HostileSite, tmp_path: Path) -> None:
    result = await crawl(site, tmp_path, "/traps/numbered/0",
                         **{"traps.max_pages_per_host": 7, "crawl.max_pages": 500})  # fmt: skip
    assert len([p for p in result.requested if p.startswith("/traps/numbered")]) == 7
    assert result.report.complete


async def test_urls_found_once_the_host_budget_is_spent_are_not_offered(
    site: HostileSite, tmp_path: Path
) -> None:
    result = await crawl(site, tmp_path, "/traps/numbered/0",
                         **{"traps.max_pages_per_host": 7, "crawl.max_pages": 500})  # fmt: skip
    # /traps/numbered/N links N+1 and N+2; pages 0-6 are fetched. The last of them spends the
    # budget, so its links are not offered to the frontier at all, not even to be skipped
    # later: 8, linked only from 6 and 7, is never known (7 may be, from 5).
    with database(result.db) as conn:
        known = {url for (url,) in conn.execute("SELECT url FROM frontier")}
    numbered = {f"{site.base_url}/traps/numbered/{n}" for n in range(8)}
    assert numbered - known <= {f"{site.base_url}/traps/numbered/7"}
    assert known <= numbered


@pytest.mark.parametrize(
    ("seed", "budget"),
    [
        ("/traps/numbered/0", {"traps.max_pages_per_host": 7}),
        ("/traps/calendar?date=2024-01-01", {"traps.max_urls_per_pattern": 5}),
    ],
    ids=["host", "pattern"],
)
async def test_trap_budgets_count_across_resumed_runs(
    site: HostileSite, tmp_path: Path, seed: str, budget: dict[str, int]
) -> None:
    (limit,) = budget.values()
    prefix = seed.rsplit("/", 1)[0].partition("?")[0]
    config = load_config(overrides={**BASE_CONFIG, **budget, "crawl.max_pages": 200}, environ={})
    db = tmp_path / "resumed.db"
    fetched = 0
    for run in range(3):  # interrupted, resumed and interrupted, resumed to the end
        controller = AbortController()
        site.reset()
        report = await Crawl(
            config,
            [site.base_url + seed],
            db,
            controller.signal,
            on_response=_abort_after(2, controller) if run < 2 else None,
        ).run()
        fetched += sum(n for p, n in site.request_counts().items() if p.startswith(prefix))
        assert report.complete == (run == 2)
    assert fetched == limit  # over all runs together, not `limit` more per run


def _abort_after(responses: int, controller: AbortController) -> Callable[[Lease, Response], None]:
    """An ``on_response`` hook that interrupts the crawl (as SIGINT would) at a response."""
    answered = 0

    def count(lease: Lease, response: Response) -> None:
        nonlocal answered
        answered += 1
        if answered == responses:
            controller.abort(AbortReason("interrupted by the test", 130))

    return count
