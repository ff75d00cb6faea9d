"""The ``crawl`` command line (typer): the app, ``--version``, and its commands, each in a
module of its own: ``crawl run`` (:mod:`crawler.cli.run`, a thin layer over the Python API
:mod:`crawler.api`), ``crawl stats`` and ``crawl export`` (:mod:`crawler.cli.database`),
``crawl bench`` (:mod:`crawler.cli.bench`), ``crawl check-url`` (:mod:`crawler.cli.check_url`);
what they share in :mod:`crawler.cli.output`.

Exit codes (a contract, see the README): 0 the crawl finished; 1 a fatal error (bad config or seeds,
unusable database), one line on stderr, a traceback only with ``--debug``; 2 a usage error;
130 / 143 interrupted by SIGINT / SIGTERM, state saved, running again resumes. ``crawl check-url``
exits 0 for a URL in scope, 3 for one out of it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from crawler import runtime
from crawler.cli import bench as cli_bench
from crawler.cli import check_url as cli_check_url
from crawler.cli import database as cli_database
from crawler.cli import run as cli_run
from crawler.version import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A fast, polite, durable web crawler.",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crawl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """A fast, polite, durable web crawler."""


# One module per concept; the order here is the order of `crawl --help`.
app.command("run")(cli_run.run)
app.command("stats")(cli_database.stats_command)
app.command("export")(cli_database.export_command)
app.command("bench")(cli_bench.bench)
app.command("check-url")(cli_check_url.check_url)


def main() -> None:
    """The `crawl` entry point (pyproject `[project.scripts]`)."""
    # First: until the closed ones of fds 0-2 are reopened, any file could take their place.
    closed = runtime.reopen_closed_standard_streams()
    app(obj=closed)
