"""A real PostgreSQL server for the tests (issue 20: one crawl on PostgreSQL).

:class:`PostgresServer` runs ``initdb`` into a temporary directory and ``postgres`` on a free
127.0.0.1 port with a private socket directory, and stops it with ``pg_ctl stop -m immediate``:
nothing of it outlives the test session, and it never listens beyond loopback.

The server's binaries come from ``$CRAWL_PG_BINDIR``, else ``pg_config --bindir``, else the
newest ``/usr/lib/postgresql/*/bin`` (Debian installs them there, off ``PATH``). initdb and
postgres refuse to run as root, so as root they run as the ``postgres`` user that Debian's
package creates, in a directory that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

BINDIR_ENV = "CRAWL_PG_BINDIR"
REQUIRE_ENV = "CRAWL_REQUIRE_POSTGRES"
"""Set (CI sets it): a machine without PostgreSQL fails the PostgreSQL tests instead of
skipping them."""
MISSING = (
    "PostgreSQL's server is not installed (apt-get install postgresql, or set $CRAWL_PG_BINDIR "
    "to its bin directory): the PostgreSQL tests need it"
)
STARTUP_TIMEOUT = 30
"""Seconds a new server has to accept connections."""
PORT_ATTEMPTS = 3
SERVER_USER = "postgres"
"""Who runs the server when the tests run as root (the user Debian's package creates)."""


def find_bindir() -> Path | None:
    """The directory of ``initdb``, ``postgres`` and ``pg_ctl``; None when there is none."""
    candidates: list[Path] = []
    if configured := os.environ.get(BINDIR_ENV):
        candidates.append(Path(configured))
    elif pg_config := shutil.which("pg_config"):
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found:
            candidates.append(Path(found))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "postgres", "pg_ctl")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL server in its own temporary directory; a context manager."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = 0
        self._root: Path | None = None
        self._running = False
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]
        self._databases = 0

    @property
    def root(self) -> Path:
        assert self._root is not None, "the server is not started"
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``database`` on this server, over TCP on loopback."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        # Not under pytest's tmp_path: as root its directories are closed to the server's user.
        self._root = Path(tempfile.mkdtemp(prefix="crawler-pg-"))
        (self.root / "socket").mkdir()
        if self._as_user:
            entry = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.root / "socket"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        # pg_ctl -w returns once the server accepts connections (or fails with its log).
        # fsync off: the tests stop and kill crawler processes, never the machine, and the
        # operating system keeps what a killed server wrote.
        for attempt in range(PORT_ATTEMPTS):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.root / 'socket'} -c fsync=off "
                "-c full_page_writes=off"
            )
            try:
                self._run(
                    "pg_ctl", "start", "-w", "-t", str(STARTUP_TIMEOUT), "-s",
                    "-D", str(self.data_dir), "-l", str(self.log), "-o", options,
                )  # fmt: skip
                break
            except RuntimeError:  # most likely the port, taken since _free_port let it go
                if attempt == PORT_ATTEMPTS - 1:
                    raise
        self._running = True

    def create_database(self) -> str:
        """A new, empty database on this server; its URL."""
        self._databases += 1
        name = f"test_{self._databases}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def psql(self, database: str, sql: str) -> str:
        """``sql`` run by psql in ``database``; its output, unaligned, tuples only."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                "-c", sql,
            ],
            capture_output=True,
            text=True,
            check=True,
        )  # fmt: skip
        return result.stdout

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``) and delete its directory."""
        if self._running:
            self._run("pg_ctl", "stop", "-w", "-s", "-D", str(self.data_dir), "-m", "immediate")
            self._running = False
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [*self._as_user, str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            cwd=self.root,  # a directory the server's user may enter
            check=False,
        )
        if result.returncode:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {args[0]} failed: {result.stderr.strip()}\n{log}")

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
