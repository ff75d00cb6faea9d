"""What the commands do to files that are not (or no longer) a crawl database: `crawl run`
takes over no other program's SQLite file, `--fresh` deletes only a crawl database, a database
deleted mid-crawl ends the crawl, and a copy on read-only storage can still be read."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from crawler.cli.app import app
from crawler.demo import SiteServer, SiteSpec, expected_statuses
from crawler.store.schema import SCHEMA_VERSION
from crawler.urls import host_key
from tests.crawl_dbs import make_synthetic_db, old_schema, synthetic_page
from tests.helpers import crawl_process, database, wait_until, write_config, write_seeds

runner = CliRunner()
MakeFile = Callable[[Path], None]
SITE = SiteSpec(pages=3)
SITE_PAGES = expected_statuses(SITE)


def _foreign_db(path: Path) -> None:
    """Another program's SQLite database, in rollback-journal mode."""
    with database(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('keep me')")


def _foreign_db_with_pages(path: Path) -> None:
    """Another program's database that happens to have a `pages` table of its own shape."""
    with database(path) as conn:
        conn.execute("CREATE TABLE pages (slug TEXT PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO pages VALUES ('home', 'hello')")


def _crawl_db_with_version(version: str) -> MakeFile:
    def make(path: Path) -> None:
        make_synthetic_db(path, pages=3)
        with database(path) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))

    return make


def _run(tmp_path: Path, site: SiteServer, db: Path, *flags: str) -> Result:
    seeds = write_seeds(tmp_path, f"{site.base_url}/")
    config = write_config(tmp_path)
    return runner.invoke(app, ["run", str(seeds), "--db", str(db), "-c", str(config), *flags])


# -- item 10: `crawl run` refuses a database that is not ours, before any request ------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_foreign_db, "error: {db} is not a crawl database (no frontier, meta, pages table)"),
        (_foreign_db_with_pages, "error: {db} is not a crawl database (no frontier, meta table)"),
        (
            _crawl_db_with_version("abc"),
            "error: database {db} has schema version 'abc', this crawler knows "
            f"{SCHEMA_VERSION}; use another --db or --fresh",
        ),
    ],
    ids=["other-program", "own-pages-table", "version-abc"],
)
def test_run_refuses_a_database_that_is_not_ours(
    tmp_path: Path, make: MakeFile, message: str
) -> None:
    db = tmp_path / "other.db"
    make(db)
    before = db.read_bytes()
    with SiteServer(SITE) as site:
        result = _run(tmp_path, site, db)
        assert site.total_requests == 0
    assert result.exit_code == 1
    assert result.stderr == message.format(db=db) + "\n"
    assert db.read_bytes() == before  # no tables added, still not in WAL mode
    assert not Path(f"{db}-wal").exists()


def test_run_still_starts_on_an_empty_sqlite_file(tmp_path: Path) -> None:
    # Positive control: a zero-byte file (`touch crawl.db`) holds nothing to take over.
    db = tmp_path / "empty.db"
    db.touch()
    with SiteServer(SITE) as site:
        result = _run(tmp_path, site, db)
    assert result.exit_code == 0, result.output
    with database(db) as conn:
        assert conn.execute("SELECT count(*) FROM pages").fetchone()[0] == len(SITE_PAGES)


# -- item 6: --fresh deletes a crawl database and nothing else -------------------------------


def _text_file(path: Path) -> None:
    path.write_text("my notes, not a database\n")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_text_file, "cannot read {db} as a crawl database: file is not a database"),
        (_foreign_db, "{db} is not a crawl database (no frontier, meta, pages table)"),
    ],
    ids=["text-file", "other-program"],
)
def test_fresh_refuses_to_delete_what_is_not_a_crawl_database(
    tmp_path: Path, make: MakeFile, reason: str
) -> None:
    db = tmp_path / "precious"
    make(db)
    before = db.read_bytes()
    with SiteServer(SITE) as site:
        result = _run(tmp_path, site, db, "--fresh")
        assert site.total_requests == 0
    assert result.exit_code == 1
    expected = f"error: --fresh: not deleting {db}: {reason.format(db=db)}\n"
    assert result.stderr == expected
    assert db.read_bytes() == before


def test_fresh_refuses_to_delete_the_seeds_file(tmp_path: Path) -> None:
    with SiteServer(SITE) as site:
        seeds = write_seeds(tmp_path, f"{site.base_url}/")
        before = seeds.read_bytes()
        result = _run(tmp_path, site, seeds, "--fresh")
        assert site.total_requests == 0
    assert result.exit_code == 1
    expected = f"error: --fresh: --db {seeds} is the seeds file; not deleting it\n"
    assert result.stderr == expected
    assert seeds.read_bytes() == before


def test_fresh_deletes_a_crawl_database_of_another_schema_version(tmp_path: Path) -> None:
    # What --fresh is for: the message for a database of another version points to it.
    db = tmp_path / "old.db"
    _crawl_db_with_version("7")(db)
    with SiteServer(SITE) as site:
        assert _run(tmp_path, site, db).exit_code == 1
        result = _run(tmp_path, site, db, "--fresh")
    assert result.exit_code == 0, result.output
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
        assert conn.execute("SELECT count(*) FROM pages").fetchone()[0] == len(SITE_PAGES)


def _old_db(path: Path, seed: str, version: str) -> None:
    """A database as version 1 (no ``frontier.offsite``, no ``cookies``), 2 (no ``cookies``) or
    3 (no ``pages.data``, ``pages.sha256``, no index ``frontier_pending_host``) wrote it, its
    seed still pending."""
    with database(path) as conn:
        conn.executescript(old_schema(version))
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (version,))
        conn.execute(
            "INSERT INTO frontier (url, host, depth) VALUES (?, ?, 0)", (seed, host_key(seed))
        )


@pytest.mark.parametrize("version", ["1", "2", "3"])
def test_an_older_database_is_read_as_it_is_and_resumed_after_an_upgrade(
    tmp_path: Path, version: str
) -> None:
    db = tmp_path / "old.db"
    with SiteServer(SITE) as site:
        _old_db(db, f"{site.base_url}/", version)
        with database(db) as conn:  # the database really is of the old version
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            page_columns = [row[1] for row in conn.execute("PRAGMA table_info(pages)")]
        assert ("cookies" in tables) == (version == "3")
        assert page_columns[-1] == "notes"
        stats = runner.invoke(app, ["stats", str(db)])
        assert stats.exit_code == 0, stats.output
        result = _run(tmp_path, site, db)
    assert result.exit_code == 0, result.output
    with database(db) as conn:
        assert conn.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
        columns = [row[1] for row in conn.execute("PRAGMA table_info(frontier)")]
        assert "offsite" in columns
        cookie_columns = [row[1] for row in conn.execute("PRAGMA table_info(cookies)")]
        assert cookie_columns[:4] == ["host", "domain", "path", "name"]
        page_columns = [row[1] for row in conn.execute("PRAGMA table_info(pages)")]
        assert page_columns[-3:] == ["notes", "data", "sha256"]
        assert conn.execute("SELECT count(*) FROM pages").fetchone()[0] == len(SITE_PAGES)


# -- item 20: a copy on read-only storage, without its -shm, can still be read ---------------


def _read_only_mount(directory: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``crawl COMMAND`` with ``directory`` bind-mounted read-only over itself, in a mount
    namespace of its own (``unshare``): read-only even for root, whom chmod does not stop, and
    the mount ends with the process."""
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    return subprocess.run(
        [
            "unshare",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            script,
            "sh",
            str(directory),
            sys.executable,
            "-m",
            "crawler",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _can_mount_read_only(directory: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            f'mount --bind -o ro "{directory}" "{directory}" && ! touch "{directory}/probe"',
        ],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture
def read_only_copy(tmp_path: Path) -> Path:
    """A finished crawl database alone in a directory (no -wal, no -shm), as copied to media."""
    media = tmp_path / "media"
    media.mkdir()
    if not _can_mount_read_only(media):
        pytest.skip("needs unshare and mount (user and mount namespaces) to make a read-only mount")
    make_synthetic_db(media / "crawl.db", pages=5)
    (media / "crawl.db.lock").unlink()  # the writer's lock file: no part of a copy
    assert sorted(p.name for p in media.iterdir()) == ["crawl.db"]
    return media / "crawl.db"


def test_stats_and_export_read_a_database_on_read_only_storage(read_only_copy: Path) -> None:
    stats = _read_only_mount(read_only_copy.parent, "stats", str(read_only_copy), "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["pages"] == 5
    export = _read_only_mount(read_only_copy.parent, "export", str(read_only_copy))
    assert export.returncode == 0, export.stderr
    assert [json.loads(line)["url"] for line in export.stdout.splitlines()] == [
        synthetic_page(i)[0] for i in range(5)
    ]


def test_a_read_only_copy_with_commits_in_its_wal_is_refused(read_only_copy: Path) -> None:
    # Immutable mode would ignore the -wal: the commits in it would silently be missing.
    wal = Path(f"{read_only_copy}-wal")
    wal.write_bytes(b"\0" * 4096)
    stats = _read_only_mount(read_only_copy.parent, "stats", str(read_only_copy))
    assert stats.returncode == 1
    assert stats.stderr == (
        f"error: cannot read {read_only_copy}: it is on read-only storage with a crawl.db-wal "
        "but no crawl.db-shm; copy both files to a writable directory\n"
    )


# -- item 13: a database deleted mid-crawl ends the crawl with exit 1 ------------------------


def test_a_database_deleted_mid_crawl_ends_the_crawl_with_exit_1(tmp_path: Path) -> None:
    db = tmp_path / "del.db"
    slow = SiteSpec(pages=300, latency=0.01)
    with SiteServer(slow) as site:
        crawl = crawl_process(
            "run", write_seeds(tmp_path, f"{site.base_url}/"), "--db", db,
            "--config", write_config(tmp_path),
        )  # fmt: skip
        wait_until(lambda: site.total_requests >= 40)
        db.unlink()  # what `rm del.db` does: the -wal and -shm stay
        out, err = crawl.communicate(timeout=60)
        requests = site.total_requests
    assert crawl.returncode == 1, err
    assert err.splitlines()[-1] == (
        f"error: database {db} was deleted or replaced during the crawl; stopping "
        "(what this run wrote since is lost)"
    )
    assert "Traceback" not in err
    assert out == ""  # no summary claiming pages in a database that is gone
    assert requests < len(expected_statuses(slow))  # it stopped, rather than finishing
    assert not db.exists()
