"""The tests' own PostgreSQL server (tests/postgres.py): on loopback only, a database per test,
and nothing left behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.postgres import PostgresServer


def _running(pid: int) -> bool:
    """The process exists and is no zombie (pg_ctl's server has no parent of ours to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_each_test_gets_an_empty_database_of_its_own(postgres: PostgresServer) -> None:
    first, second = postgres.create_database(), postgres.create_database()
    assert first != second
    name = first.rsplit("/", 1)[1]
    postgres.psql(name, "CREATE TABLE mine (x int); INSERT INTO mine VALUES (7)")
    assert postgres.psql(name, "SELECT x FROM mine") == "7\n"
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert postgres.psql(second.rsplit("/", 1)[1], tables) == "0\n"


def test_the_server_listens_on_loopback_only(postgres: PostgresServer) -> None:
    assert postgres.psql("postgres", "SHOW listen_addresses") == "127.0.0.1\n"
    assert postgres.psql("postgres", "SHOW port") == f"{postgres.port}\n"
    # Its socket is in its own directory, not the system's (/var/run/postgresql).
    socket_dir = postgres.psql("postgres", "SHOW unix_socket_directories").strip()
    assert socket_dir == str(postgres.root / "socket")


def test_a_stopped_server_leaves_nothing_behind(postgres: PostgresServer) -> None:
    with PostgresServer(postgres.bindir) as server:
        root = server.root
        pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        assert _running(pid)
    assert not root.exists()
    assert not _running(pid)
    refused = subprocess.run(
        [str(postgres.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(server.port)],
        check=False,
        capture_output=True,
    )
    assert refused.returncode != 0
