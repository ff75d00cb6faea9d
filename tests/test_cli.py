"""The ``crawl`` command as users run it: real processes, a real site on 127.0.0.1, signals."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crawler import __version__
from crawler.cli.app import app
from crawler.demo import SiteServer, SiteSpec, expected_statuses
from tests.crawl_dbs import make_synthetic_db
from tests.helpers import (
    assert_consistent,
    crawl_process,
    database,
    pages,
    wait_until,
    write_config,
    write_seeds,
)
from tests.hostile_site import HostileSite

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"crawl {__version__}"


def test_help_explains_every_option() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in [
        "--db", "--config", "--concurrency", "--max-pages", "--max-depth", "--allow-domain",
        "--user-agent", "--fresh", "--debug", "--no-uvloop", "--grace-period",
    ]:  # fmt: skip
        assert option in result.output


def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["run", str(write_seeds(tmp_path, "http://a.test/")), "--concurrency", "0"]
    )
    assert result.exit_code == 2


def test_bad_seed_lines_are_reported_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    with SiteServer(SiteSpec(pages=3)) as site:
        seeds = write_seeds(
            tmp_path, "# comment", "", "not a url", f"{site.base_url}/", "ftp://x.test/", "http://"
        )
        proc = crawl_process(
            "run", seeds, "--db", tmp_path / "c.db", "--config", write_config(tmp_path)
        )
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert f"{seeds}:3: not an http(s) URL: 'not a url'" in err
    assert f"{seeds}:5:" in err
    assert f"{seeds}:6:" in err
    assert f"{seeds}:4" not in err
    assert "/" in pages(tmp_path / "c.db")


def test_a_seed_with_user_info_is_crawled_without_it_and_warned_about(tmp_path: Path) -> None:
    with HostileSite() as site:
        seed = f"http://user:secret@127.0.0.1:{site.port}/links/userinfo"
        seeds = write_seeds(tmp_path, "# credentials are never sent", seed)
        result = runner.invoke(
            app,
            [
                "run",
                str(seeds),
                "--db",
                str(tmp_path / "c.db"),
                "--config",
                str(write_config(tmp_path)),
            ],
        )
    assert result.exit_code == 0, result.output
    assert f"{seeds}:2: user info removed" in result.output
    assert "secret" not in result.output
    assert pages(tmp_path / "c.db") == {
        "/links/userinfo": (200, "userinfo"),
        "/links/from-userinfo": (200, "from userinfo"),
    }


@pytest.mark.parametrize(
    ("seeds_lines", "message"),
    [
        (["# only a comment", "", "mailto:x@y.test"], "error: no valid seed URL in"),
    ],
)
def test_no_valid_seed_exits_1_with_one_line(
    tmp_path: Path, seeds_lines: list[str], message: str
) -> None:
    seeds = write_seeds(tmp_path, *seeds_lines)
    result = runner.invoke(app, ["run", str(seeds), "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_seeds_file_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "nope.txt")])
    assert result.exit_code == 1
    assert "error: cannot read seeds file" in result.output


def test_bad_config_exits_1_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[fetch]\nmax_retrys = 3\n")
    seeds = write_seeds(tmp_path, "http://a.test/")
    result = runner.invoke(app, ["run", str(seeds), "--config", str(config)])
    assert result.exit_code == 1
    assert "unknown key `fetch.max_retrys`" in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_db_as_user(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(stat.S_IRUSR | stat.S_IXUSR)
    result = runner.invoke(
        app, ["run", str(write_seeds(tmp_path, "http://a.test/")), "--db", str(readonly / "c.db")]
    )
    assert result.exit_code == 1


@pytest.mark.parametrize("db_name", ["missing-dir/c.db", "a-directory"])
def test_unusable_db_exits_1(tmp_path: Path, db_name: str) -> None:
    (tmp_path / "a-directory").mkdir()
    seeds = write_seeds(tmp_path, "http://a.test/")
    result = runner.invoke(app, ["run", str(seeds), "--db", str(tmp_path / db_name)])
    assert result.exit_code == 1
    assert "error: cannot open database" in result.output
    assert "Traceback" not in result.output


def test_a_file_that_is_not_a_database_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    db.write_bytes(b"this is not sqlite" * 100)
    result = runner.invoke(
        app, ["run", str(write_seeds(tmp_path, "http://a.test/")), "--db", str(db)]
    )
    assert result.exit_code == 1
    assert "error: cannot open database" in result.output


def test_fresh_starts_over(tmp_path: Path) -> None:
    with SiteServer(SiteSpec(pages=5)) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        args = [
            "run",
            str(seeds),
            "--db",
            str(tmp_path / "c.db"),
            "--config",
            str(write_config(tmp_path)),
        ]
        assert runner.invoke(app, args).exit_code == 0
        first = site.total_requests
        assert runner.invoke(app, args).exit_code == 0
        assert site.total_requests == first  # resumed a finished crawl: nothing to do
        assert runner.invoke(app, [*args, "--fresh"]).exit_code == 0
        assert site.total_requests == 2 * first


# -- interruptions: real processes, real signals ---------------------------------------------

SLOW_SITE = SiteSpec(pages=300, latency=0.01)
SIGNALS = [
    pytest.param(signal.SIGINT, [], id="SIGINT-uvloop"),
    pytest.param(signal.SIGTERM, [], id="SIGTERM-uvloop"),
    pytest.param(signal.SIGTERM, ["--no-uvloop"], id="SIGTERM-asyncio"),
]


@pytest.mark.parametrize(("signum", "loop_flags"), SIGNALS)
def test_signal_mid_crawl_saves_state_and_a_second_run_resumes(
    tmp_path: Path, signum: signal.Signals, loop_flags: list[str]
) -> None:
    db = tmp_path / "c.db"
    with SiteServer(SLOW_SITE) as site:
        args = ["run", write_seeds(tmp_path, f"{site.base_url}/"), "--db", db,
                "--config", write_config(tmp_path), *loop_flags]  # fmt: skip
        first = crawl_process(*args)
        wait_until(lambda: site.total_requests >= 40)
        first.send_signal(signum)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 128 + signum, err
        assert f"crawl interrupted (received {signum.name})" in out
        assert_consistent(db)
        fetched_first = set(site.request_counts()) - {"/robots.txt"}
        recorded_first = set(pages(db))
        site.reset_counts()

        second = crawl_process(*args)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        fetched_second = site.request_counts()
        del fetched_second["/robots.txt"]  # asked once per run

    assert_consistent(db)
    expected = expected_statuses(SLOW_SITE)
    assert {path: status for path, (status, _) in pages(db).items()} == expected
    assert len(recorded_first) < len(expected)  # the signal really came mid-crawl
    # Nothing recorded by the first run is fetched again; only what was in flight may be.
    assert not recorded_first & set(fetched_second)
    in_flight = fetched_first - recorded_first
    assert set(fetched_second) & fetched_first <= in_flight
    assert len(in_flight) <= 4  # the concurrency
    assert all(n == 1 for n in fetched_second.values())


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_reaches_the_whole_process_group_and_the_crawl_still_stops_cleanly(
    tmp_path: Path,
) -> None:
    # A terminal's Ctrl-C signals every process in the foreground group, the parse worker
    # process too: it must leave the stopping to the crawl and keep parsing until then.
    db = tmp_path / "c.db"
    with SiteServer(SLOW_SITE) as site:
        args = ["run", write_seeds(tmp_path, f"{site.base_url}/"), "--db", db,
                "--config", write_config(tmp_path)]  # fmt: skip
        first = crawl_process(*args, start_new_session=True)
        wait_until(lambda: site.total_requests >= 40)
        os.killpg(first.pid, signal.SIGINT)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 130, err
        assert not group_alive(first.pid)
    assert_consistent(db)
    with database(db) as conn:
        notes = {n for (n,) in conn.execute("SELECT DISTINCT notes FROM pages")}
    assert not any("parse_crashed" in (n or "") for n in notes), notes
    assert "parse_crashed" not in err


def test_kill_9_mid_crawl_then_resume_gives_the_same_pages(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with SiteServer(SLOW_SITE) as site:
        args = ["run", write_seeds(tmp_path, f"{site.base_url}/"), "--db", db,
                "--config", write_config(tmp_path)]  # fmt: skip
        first = crawl_process(*args, start_new_session=True)
        wait_until(lambda: site.total_requests >= 60)
        first.kill()
        first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL
        # Its parse worker process saw its input close and left too.
        wait_until(lambda: not group_alive(first.pid))
        assert_consistent(db)
        recorded_first = set(pages(db))
        site.reset_counts()
        second = crawl_process(*args)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        fetched_second = site.request_counts()
    assert_consistent(db)
    assert {p: s for p, (s, _) in pages(db).items()} == expected_statuses(SLOW_SITE)
    assert 0 < len(recorded_first) < len(expected_statuses(SLOW_SITE))
    assert not recorded_first & set(fetched_second)


def test_second_signal_stops_at_once_and_leaves_a_consistent_database(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    log = tmp_path / "stderr.log"
    # Every response takes 30 s: the first signal's grace period (60 s) would wait for them.
    with SiteServer(SiteSpec(pages=50, latency=30.0)) as site, log.open("w") as stderr:
        first = crawl_process(
            "run", write_seeds(tmp_path, f"{site.base_url}/"), "--db", db,
            "--config", write_config(tmp_path), "--grace-period", "60", stderr=stderr,
        )  # fmt: skip
        wait_until(lambda: site.total_requests >= 1)
        first.send_signal(signal.SIGINT)
        wait_until(lambda: "finishing in-flight fetches" in log.read_text())
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=20)
    err = log.read_text()
    assert first.returncode == 130, err
    assert "stopped at once" in err
    assert_consistent(db)
    with database(db) as conn:
        assert conn.execute("SELECT count(*) FROM pages").fetchone() == (0,)


def test_storage_failure_mid_crawl_exits_1_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crawler.errors import StorageError
    from crawler.store.database import Store

    async def disk_full(*args: object, **kwargs: object) -> None:
        raise StorageError("cannot write to database c.db: database or disk is full")

    monkeypatch.setattr(Store, "write_batch", disk_full)
    with SiteServer(SiteSpec(pages=5)) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        args = [
            "run",
            str(seeds),
            "--db",
            str(tmp_path / "c.db"),
            "--config",
            str(write_config(tmp_path)),
        ]
        result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "error: cannot write to database c.db: database or disk is full" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--allow-domain", "http://example.com/"], "`crawl.allow_domains` must list domain"),
        (["--allow-domain", ""], "`crawl.allow_domains` must list domain"),
        (["--user-agent", ""], "`crawl.user_agent` must be printable ASCII"),
        (["--user-agent", "crawlér/1"], "`crawl.user_agent` must be printable ASCII"),
        (["--user-agent", "crawler/1\r\nX-Injected: 1"], "`crawl.user_agent` must be"),
    ],
)
def test_a_bad_flag_value_is_one_line_naming_the_key_before_any_request(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    db = tmp_path / "c.db"
    with SiteServer(SiteSpec(pages=3)) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        result = runner.invoke(
            app,
            ["run", str(seeds), "--db", str(db), "--config", str(write_config(tmp_path)), *flags],
        )
        assert site.total_requests == 0
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: invalid config from the command line: {message}")
    assert not db.exists()


def test_a_bad_environment_value_exits_1_naming_the_variable(tmp_path: Path) -> None:
    seeds = write_seeds(tmp_path, "http://a.test/")
    result = runner.invoke(
        app,
        ["run", str(seeds), "--config", str(write_config(tmp_path))],
        env={"CRAWL_CRAWL__CONCURRENCY": "many"},
    )
    assert result.exit_code == 1
    assert result.output == (
        "error: invalid config from environment variable CRAWL_CRAWL__CONCURRENCY: "
        "Expected `int`, got `str` - at `crawl.concurrency`\n"
    )


# -- standard streams closed, full or gone: real processes -------------------------------------


def crawl_shell(redirect: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``crawl ARGS`` started as a job scheduler may start it: through ``sh -c 'exec ...'``
    with ``redirect`` (``<&-`` closes stdin; ``subprocess.DEVNULL`` would not be closed)."""
    command = [sys.executable, "-m", "crawler", *map(str, args)]
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


CLOSED = {"stdin": "<&-", "stdout": ">&-", "stderr": "2>&-"}


@pytest.mark.parametrize("redirect", CLOSED.values(), ids=CLOSED.keys())
def test_a_crawl_started_with_a_standard_stream_closed_completes(
    tmp_path: Path, redirect: str
) -> None:
    spec = SiteSpec(pages=20)
    db = tmp_path / "c.db"
    with SiteServer(spec) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        done = crawl_shell(redirect, "run", seeds, "--db", db, "--config", write_config(tmp_path))
    assert done.returncode == 0, done.stderr
    assert {path: status for path, (status, _) in pages(db).items()} == expected_statuses(spec)
    assert_consistent(db)


@pytest.mark.parametrize(("command", "what"), [("stats", "the summary"), ("export", "the export")])
def test_stats_and_export_with_stdout_closed_say_so_in_one_line(
    tmp_path: Path, command: str, what: str
) -> None:
    db = tmp_path / "c.db"
    make_synthetic_db(db, pages=20)
    done = crawl_shell(">&-", command, db)
    assert (done.returncode, done.stderr) == (
        1,
        f"error: stdout is closed: {what} has nowhere to go\n",
    )


WHY = {"full": "No space left on device", "gone": "the output pipe closed"}


@contextlib.contextmanager
def unwritable(kind: str) -> Iterator[int]:
    """A descriptor for a child's stdout on which every write fails: ``/dev/full`` (ENOSPC),
    or a pipe whose reader has gone (EPIPE: ``crawl run | head -0``, without its race)."""
    if kind == "full":
        if not Path("/dev/full").exists():  # pragma: no cover - Linux has it
            pytest.skip("no /dev/full here")
        fd = os.open("/dev/full", os.O_WRONLY)
    else:
        reader, fd = os.pipe()
        os.close(reader)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", WHY)
def test_a_finished_crawl_whose_summary_cannot_be_written_exits_0_with_a_warning(
    tmp_path: Path, kind: str
) -> None:
    spec = SiteSpec(pages=20)
    db = tmp_path / "c.db"
    with SiteServer(spec) as site, unwritable(kind) as stdout:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        proc = crawl_process(
            "run", seeds, "--db", db, "--config", write_config(tmp_path), stdout=stdout
        )
        _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (
        0,
        f"warning: cannot write the summary to stdout: {WHY[kind]}; the crawl itself finished\n",
    )
    assert {path: status for path, (status, _) in pages(db).items()} == expected_statuses(spec)


@pytest.mark.parametrize("kind", WHY)
@pytest.mark.parametrize("command", ["stats", "export"])
def test_stats_and_export_onto_a_full_disk_or_a_gone_reader_exit_1_with_one_line(
    tmp_path: Path, command: str, kind: str
) -> None:
    db = tmp_path / "c.db"
    make_synthetic_db(db, pages=20)
    with unwritable(kind) as stdout:
        proc = crawl_process(command, db, stdout=stdout)
        _, err = proc.communicate(timeout=60)
    expected = {
        ("stats", "full"): "error: cannot write the summary to stdout: No space left on device",
        ("stats", "gone"): "error: cannot write the summary to stdout: the output pipe closed",
        ("export", "full"): "error: cannot write the export to stdout: No space left on device; "
        "it is incomplete",
        ("export", "gone"): "error: the output pipe closed before the export finished",
    }
    assert (proc.returncode, err) == (1, expected[command, kind] + "\n")


def test_export_out_must_name_a_file(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    make_synthetic_db(db, pages=5)
    empty = runner.invoke(app, ["export", str(db), "--out", ""])
    assert empty.exit_code == 2
    assert "must be a file name, or - for stdout" in empty.output
    for directory in (".", str(tmp_path)):
        result = runner.invoke(app, ["export", str(db), "--out", directory])
        assert (result.exit_code, result.output) == (
            1,
            f"error: cannot write {directory}: it is a directory\n",
        )
    # Nothing written beside the database: no export, no temporary file.
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("c.db")] == []
