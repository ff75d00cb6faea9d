"""Per-host and per-domain page budgets (``crawl.max_pages_per_host``/``max_pages_per_domain``):
the counts with plain calls, then real crawls of several hosts on 127.0.0.x, counting requests
on the server side, and a resumed crawl that starts from the database's counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from crawler.abort import AbortController
from crawler.engine import Crawl, CrawlReport
from crawler.frontier.host_budget import HostBudgets, domain_of
from tests.helpers import crawl_config, database, write_config, write_seeds
from tests.servers import Request, Response, TestServer, html

LINKS = 10
"""Pages each site's front page links to."""


def test_a_host_is_spent_once_charged_its_budget() -> None:
    budgets = HostBudgets(max_per_host=2)
    budgets.charge("a.test")
    assert not budgets.spent("a.test")
    budgets.charge("a.test")
    assert (budgets.spent("a.test"), budgets.spent("b.test")) == (True, False)
    assert budgets.hosts_spent == 1


def test_the_hosts_of_one_registrable_domain_share_its_budget() -> None:
    budgets = HostBudgets(max_per_domain=2)
    budgets.charge("www.example.co.uk")
    budgets.charge("shop.example.co.uk:8080")
    assert budgets.spent("example.co.uk")
    assert not budgets.spent("example.com")


def test_a_resume_starts_from_the_recorded_counts() -> None:
    budgets = HostBudgets(max_per_host=5)
    budgets.resume([("a.test", 5), ("b.test", 4)])
    assert (budgets.spent("a.test"), budgets.spent("b.test")) == (True, False)


def test_no_budget_is_never_spent() -> None:
    budgets = HostBudgets()
    for _ in range(100):
        budgets.charge("a.test")
    assert not budgets.enabled
    assert not budgets.spent("a.test")


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("www.example.co.uk", "example.co.uk"),
        ("a.github.io:8443", "a.github.io"),  # a private-section suffix: one site
        ("127.0.0.2:8080", "127.0.0.2"),  # an address is a domain of its own, without the port
        ("[::1]:8080", "[::1]"),
    ],
)
def test_domain_of(host: str, domain: str) -> None:
    assert domain_of(host) == domain


# -- real crawls ------------------------------------------------------------------------------


def linking_site(address: str) -> TestServer:
    """``/`` links to ``/p0`` .. ``/p9``, which link nowhere."""

    def answer(request: Request) -> Response:
        if request.path == "/":
            return html("front", "".join(f'<a href="/p{n}">{n}</a>' for n in range(LINKS)))
        return html(request.path)

    return TestServer(answer, host=address)


@contextmanager
def sites(*addresses: str) -> Iterator[list[TestServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(linking_site(address)) for address in addresses]


async def crawl(db: Path, servers: list[TestServer], **budgets: int) -> CrawlReport:
    cfg = crawl_config(4, **{"politeness.robots": False, **budgets})
    seeds = [server.url("/") for server in servers]
    return await Crawl(cfg, seeds, db, AbortController().signal).run()


def fetched(server: TestServer) -> int:
    return sum(server.request_counts().values())


def pending(db: Path) -> int:
    with database(db) as conn:
        row = conn.execute("SELECT count(*) FROM frontier WHERE state IN ('pending', 'leased')")
        return int(row.fetchone()[0])


@pytest.mark.anyio
async def test_each_host_stops_at_its_budget_and_keeps_the_rest_pending(tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    with sites("127.0.0.2", "127.0.0.3") as servers:
        report = await crawl(db, servers, **{"crawl.max_pages_per_host": 4})
    assert [fetched(server) for server in servers] == [4, 4]
    assert report.complete
    assert report.hosts_over_budget == 2
    assert pending(db) == 2 * (1 + LINKS - 4)


@pytest.mark.anyio
async def test_a_resumed_crawl_counts_what_earlier_runs_recorded(tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    with sites("127.0.0.2", "127.0.0.3") as servers:
        await crawl(db, servers, **{"crawl.max_pages_per_host": 3})
        for server in servers:
            server.reset()
        report = await crawl(db, servers, **{"crawl.max_pages_per_host": 5})
        assert [fetched(server) for server in servers] == [2, 2]  # 5 over both runs
        for server in servers:
            server.reset()
        await crawl(db, servers, **{"crawl.max_pages_per_host": 5})
        assert [fetched(server) for server in servers] == [0, 0]
    assert report.hosts_over_budget == 2
    assert pending(db) == 2 * (1 + LINKS - 5)


@pytest.mark.anyio
async def test_hosts_of_one_domain_share_its_budget(tmp_path: Path) -> None:
    # Two ports of one address: two hosts (two politeness slots), one domain.
    db = tmp_path / "crawl.db"
    with sites("127.0.0.4", "127.0.0.4") as servers:
        report = await crawl(db, servers, **{"crawl.max_pages_per_domain": 5})
    assert sum(fetched(server) for server in servers) == 5
    assert report.complete
    assert pending(db) == 2 * (1 + LINKS) - 5


def test_the_run_summary_says_how_many_hosts_reached_their_budget(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crawler.cli.app import app

    with sites("127.0.0.2") as servers:
        seeds = write_seeds(tmp_path, servers[0].url("/"))
        config = write_config(tmp_path)
        result = CliRunner().invoke(
            app,
            ["run", str(seeds), "--db", str(tmp_path / "crawl.db"), "--config", str(config)],
            env={"CRAWL_CRAWL__MAX_PAGES_PER_HOST": "3", "CRAWL_POLITENESS__ROBOTS": "false"},
        )
    assert result.exit_code == 0, result.output
    assert fetched(servers[0]) == 3
    assert (
        "1 host(s) reached crawl.max_pages_per_host or max_pages_per_domain: "
        "their further URLs stay pending" in result.output
    )
