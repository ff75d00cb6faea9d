"""The public Python API (crawler.run, crawler.crawl): crawls of the demo site on 127.0.0.1 from
code, from inside a running event loop, stopped by a signal or a cancellation and resumed; the
errors it raises, the samples of README.md and docs/python-api.md, and what `import crawler`
costs."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

import crawler
from crawler import api
from crawler.cli.app import app
from crawler.config import CrawlSection, OutputSection, PolitenessSection, RuntimeSection
from crawler.demo import SiteServer, SiteSpec, expected_statuses
from crawler.errors import StorageError
from crawler.store.database import Store
from tests.helpers import assert_consistent, database, pages, wait_until, write_seeds

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_URL = "https://example.com/"
"""The URL the samples crawl; the tests put the local site's address in its place."""


def fast_config(**crawl: Any) -> crawler.Config:
    """A config built in code, as a user would: no per-host delay (the site is ours)."""
    return crawler.Config(
        crawl=CrawlSection(concurrency=4, **crawl),
        politeness=PolitenessSection(per_host_concurrency=4, per_host_delay=0.0),
        runtime=RuntimeSection(stats_interval=0.0, grace_period=0.0),
        output=OutputSection(progress="off"),
    )


def stored_statuses(db: Path) -> dict[str, int | None]:
    return {path: status for path, (status, _) in pages(db).items()}


# -- the samples ---------------------------------------------------------------------------


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def readme_python_api_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Python API\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


DOCS_SAMPLES = python_blocks((ROOT / "docs" / "python-api.md").read_text())


def run_sample(source: str, site: SiteServer) -> None:
    """Run one sample as a notebook cell would: a top-level ``await`` is awaited on a running
    event loop (the Jupyter case); the rest runs as a script (``crawler.run`` makes its own)."""
    code = compile(
        source.replace(SAMPLE_URL, f"{site.base_url}/"),
        "<sample>",
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    )
    namespace: dict[str, Any] = {"__name__": "__sample__"}
    if code.co_flags & inspect.CO_COROUTINE:

        async def cell() -> None:
            await eval(code, namespace)

        asyncio.run(cell())
    else:
        exec(code, namespace)


@pytest.fixture
def sample_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The demo site, the working directory a fresh one (samples write ``crawl.db`` there),
    and every crawl without a per-host delay: the samples keep the polite default."""
    configure = api.configure

    def without_delay(*args: Any, **kwargs: Any) -> crawler.Config:
        config = configure(*args, **kwargs)
        politeness = msgspec.structs.replace(config.politeness, per_host_delay=0.0)
        return msgspec.structs.replace(config, politeness=politeness)

    monkeypatch.setattr(api, "configure", without_delay)
    monkeypatch.chdir(tmp_path)
    with SiteServer(SiteSpec(pages=10)) as site:
        yield site


def test_the_readme_example_crawls_the_site(
    sample_site: SiteServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (sample,) = python_blocks(readme_python_api_section())
    run_sample(sample, sample_site)
    statuses = expected_statuses(SiteSpec(pages=10))
    assert stored_statuses(tmp_path / "crawl.db") == statuses
    assert capsys.readouterr().out == f"{len(statuses)} stored, 0 failed, 0 skipped\ncomplete\n"


@pytest.mark.parametrize(
    "sample", DOCS_SAMPLES, ids=[f"sample-{i}" for i, _ in enumerate(DOCS_SAMPLES)]
)
def test_every_sample_of_the_api_reference_runs(
    sample_site: SiteServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], sample: str
) -> None:
    run_sample(sample, sample_site)
    assert capsys.readouterr().out  # each sample prints what it shows
    if (tmp_path / "crawl.db").exists():
        assert_consistent(tmp_path / "crawl.db")


# -- from inside a running loop ------------------------------------------------------------


@pytest.mark.anyio
async def test_crawl_is_awaited_on_a_running_loop_where_run_is_refused(tmp_path: Path) -> None:
    spec = SiteSpec(pages=20)
    with SiteServer(spec) as site:
        with pytest.raises(RuntimeError, match=r"use `await crawler.crawl\(...\)`"):
            crawler.run([f"{site.base_url}/"], db=tmp_path / "refused.db", config=fast_config())
        report = await crawler.crawl(
            [f"{site.base_url}/"], db=tmp_path / "c.db", config=fast_config()
        )
        requested = site.request_counts()
    statuses = expected_statuses(spec)
    assert not (tmp_path / "refused.db").exists()
    assert requested == Counter(dict.fromkeys([*statuses, "/robots.txt"], 1))
    assert stored_statuses(tmp_path / "c.db") == statuses
    assert report.complete
    assert report.aborted is None
    assert (report.stored, report.failed, report.skipped, report.pending) == (
        len(statuses),
        0,
        0,
        0,
    )


STALLED = "/page/2"


async def crawl_until_stalled(
    site: SiteServer, db: Path, signal: crawler.AbortSignal | None
) -> asyncio.Task[crawler.CrawlReport]:
    """A crawl of ``site`` that cannot finish (one response stalls mid-body), returned once
    the stalled request has reached the server."""
    site.stall(STALLED)
    task = asyncio.create_task(
        crawler.crawl([f"{site.base_url}/"], db=db, config=fast_config(), signal=signal)
    )
    await asyncio.to_thread(wait_until, lambda: site.request_counts()[STALLED] > 0)
    return task


async def resume(site: SiteServer, db: Path, stored_first: set[str]) -> None:
    """Crawl ``db`` again: it completes, and fetches none of the pages stored before."""
    site.unstall(STALLED)
    site.reset_counts()
    report = await crawler.crawl([f"{site.base_url}/"], db=db, config=fast_config())
    fetched = site.request_counts()
    del fetched["/robots.txt"]
    assert report.complete
    assert fetched[STALLED] == 1
    assert not set(fetched) & stored_first
    assert all(n == 1 for n in fetched.values())
    assert stored_statuses(db) == expected_statuses(SiteSpec(pages=30))
    assert_consistent(db)


@pytest.mark.anyio
async def test_a_fired_signal_stops_the_crawl_incomplete_and_the_database_resumes(
    tmp_path: Path,
) -> None:
    db, controller = tmp_path / "c.db", crawler.AbortController()
    reason = crawler.AbortReason("enough for today", exit_code=1)
    with SiteServer(SiteSpec(pages=30)) as site:
        task = await crawl_until_stalled(site, db, controller.signal)
        controller.abort(reason)
        report = await task
        stored_first = set(pages(db))
        assert STALLED not in stored_first
        assert not report.complete
        assert report.aborted == reason
        assert report.pending >= 1  # the stalled page at least, cut off by the grace period
        assert report.stored == len(stored_first)
        await resume(site, db, stored_first)


@pytest.mark.anyio
async def test_a_cancelled_crawl_raises_cancelled_and_the_database_resumes(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with SiteServer(SiteSpec(pages=30)) as site:
        task = await crawl_until_stalled(site, db, None)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert_consistent(db)
        stored_first = set(pages(db))
        assert STALLED not in stored_first
        await resume(site, db, stored_first)


# -- seeds, config and errors --------------------------------------------------------------


def test_a_non_canonical_seed_is_crawled_under_its_canonical_url(tmp_path: Path) -> None:
    spec = SiteSpec(pages=10)
    with SiteServer(spec) as site:
        seed = f"HTTP://{site.host.upper()}:{site.port}"  # no path either
        report = crawler.run([seed], db=tmp_path / "c.db", config=fast_config(), uvloop=False)
        base = site.base_url
    assert (report.stored, report.failed) == (len(expected_statuses(spec)), 0)
    assert stored_statuses(tmp_path / "c.db") == expected_statuses(spec)
    assert all(url.startswith(f"{base}/") for url in _stored_urls(tmp_path / "c.db"))


def _stored_urls(db: Path) -> list[str]:
    with database(db) as conn:
        return [url for (url,) in conn.execute("SELECT url FROM pages")]


@pytest.mark.parametrize(
    ("config_text", "seed_lines", "error"),
    [
        ("[crawl]\nconcurency = 4\n", ["http://a.test/"], crawler.ConfigError),
        ("[crawl]\nconcurrency = 0\n", ["http://a.test/"], crawler.ConfigError),
        ("[crawl\n", ["http://a.test/"], crawler.ConfigError),
        ("", ["# only a comment", "mailto:x@y.test"], crawler.SeedsError),
    ],
    ids=["unknown-key", "bad-value", "not-toml", "no-valid-seed"],
)
def test_bad_config_or_seeds_raise_the_error_the_cli_prints(
    tmp_path: Path, config_text: str, seed_lines: list[str], error: type[crawler.FatalError]
) -> None:
    config, db = tmp_path / "my.toml", tmp_path / "c.db"
    config.write_text(config_text)
    seeds = write_seeds(tmp_path, *seed_lines)
    with pytest.raises(error) as raised:
        crawler.run(seeds, db=db, config=str(config))
    cli = CliRunner().invoke(app, ["run", str(seeds), "--db", str(db), "--config", str(config)])
    assert cli.exit_code == 1
    assert cli.output.splitlines()[-1] == f"error: {raised.value}"
    assert not db.exists()


def test_a_config_built_in_code_is_checked_and_equals_the_same_toml(tmp_path: Path) -> None:
    toml = tmp_path / "my.toml"
    toml.write_text("[crawl]\nmax_pages = 50\nmax_depth = 2\n")
    assert crawler.load_config(toml, environ={}) == crawler.Config(
        crawl=CrawlSection(max_pages=50, max_depth=2)
    )
    built = crawler.Config(crawl=CrawlSection(concurrency=0))  # a struct checks no bounds
    with pytest.raises(crawler.ConfigError) as raised:
        crawler.run(["http://a.test/"], db=tmp_path / "c.db", config=built)
    assert str(raised.value) == "invalid config: Expected `int` >= 1 - at `crawl.concurrency`"
    with pytest.raises(crawler.ConfigError) as raised:
        crawler.run(["http://a.test/"], db=tmp_path / "c.db", concurrency=0)
    assert str(raised.value) == (
        "invalid config from the keyword arguments: Expected `int` >= 1 - at `crawl.concurrency`"
    )
    assert not (tmp_path / "c.db").exists()


def test_keyword_overrides_replace_the_keys_of_a_config_built_in_code() -> None:
    config = api.configure(fast_config(max_pages=7), {"max_depth": 1, "warc_dir": Path("w")})
    assert (config.crawl.max_pages, config.crawl.max_depth) == (7, 1)
    assert config.output.warc_dir == "w"
    assert config.politeness.per_host_delay == 0.0  # the rest as built
    with pytest.raises(TypeError, match="unknown override max_page;"):
        api.configure(None, {"max_page": 1})


def test_a_storage_failure_mid_crawl_raises_storage_error_not_an_exception_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def disk_full(*args: object, **kwargs: object) -> None:
        raise StorageError("cannot write to database c.db: database or disk is full")

    monkeypatch.setattr(Store, "write_batch", disk_full)
    with SiteServer(SiteSpec(pages=5)) as site, pytest.raises(StorageError) as raised:
        crawler.run([f"{site.base_url}/"], db=tmp_path / "c.db", config=fast_config())
    assert str(raised.value) == "cannot write to database c.db: database or disk is full"
    assert isinstance(raised.value.__cause__, ExceptionGroup)  # the task groups' record


# -- the package ---------------------------------------------------------------------------


def test_every_public_name_resolves_and_every_override_names_a_config_key() -> None:
    for name in crawler.__all__:
        assert getattr(crawler, name) is not None, name
    assert set(crawler.__all__) == {"__version__", *crawler._EXPORTS}
    assert set(crawler.Overrides.__annotations__) == set(api.OVERRIDE_KEYS)
    fields = msgspec.to_builtins(crawler.Config())
    for key in api.OVERRIDE_KEYS.values():
        section, name = key.split(".")
        assert name in fields[section], key


def loaded_modules(statement: str) -> list[str]:
    """The modules a fresh interpreter has loaded after ``statement``."""
    script = f"{statement}; import sys, json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_import_crawler_loads_no_crawl_machinery() -> None:
    loaded = loaded_modules("import crawler")
    assert [m for m in loaded if m.startswith("crawler")] == [
        "crawler",
        "crawler.lazy",
        "crawler.version",
    ]
    assert not {"asyncio", "httpx", "aiohttp", "msgspec", "sqlite3"} & set(loaded)


def test_import_crawler_cli_loads_no_benchmark_harness() -> None:
    loaded = loaded_modules("import crawler.cli.app")
    assert [m for m in loaded if m.startswith("crawler.bench.")] == []
    assert "crawler.api" in loaded  # the CLI is a layer over the API


def test_a_parse_worker_loads_no_database_or_http_machinery() -> None:
    """The packages' ``__init__`` name their API lazily (crawler.lazy): the parse worker process
    imports the modules it uses, not the HTTP client and database driver beside them."""
    loaded = set(loaded_modules("import crawler.parse.child"))
    assert not {"httpx", "aiohttp", "aiosqlite", "typer", "crawler.fetch.client"} & loaded
    assert {"crawler.frontier.traps", "crawler.store.rows", "selectolax"} <= loaded
