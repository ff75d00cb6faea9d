"""The ``crawl`` command line (typer). ``crawl run`` is a thin layer over the Python API
(:mod:`crawler.api`): flags in, the summary and the exit code out.

Exit codes (a contract, see the README): 0 the crawl finished; 1 a fatal error (bad config or seeds,
unusable database), one line on stderr, a traceback only with ``--debug``; 2 a usage error;
130 / 143 interrupted by SIGINT / SIGTERM, state saved, running again resumes.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer

from crawler import api, runtime
from crawler.abort import Aborted, AbortReason
from crawler.config import MAX_CONCURRENCY
from crawler.engine import CrawlReport
from crawler.errors import FatalError, find_fatal
from crawler.export import ExportFormat, export_to_file, export_to_stream
from crawler.logs import LogFormat, setup_logging
from crawler.summary import DEFAULT_TOP_HOSTS, format_json, format_text, read_summary
from crawler.version import __version__

log = logging.getLogger("crawler")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A fast, polite, durable web crawler.",
    pretty_exceptions_enable=False,
)


class LogFormatChoice(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


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


@app.command()
def run(
    seeds: Annotated[
        Path,
        typer.Argument(help="Seeds file: one URL per line; blank lines and # comments skipped."),
    ],
    db: Annotated[
        Path, typer.Option(help="SQLite database to write; an existing one is resumed.")
    ] = Path("crawl.db"),
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file (see configs/default.toml)."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_CONCURRENCY, help="Requests in flight at once, all hosts together."
        ),
    ] = None,
    max_pages: Annotated[
        int | None,
        typer.Option(min=0, help="Stop after this many pages in the database; 0: no limit."),
    ] = None,
    max_depth: Annotated[
        int | None, typer.Option(min=0, help="Links to follow from a seed; 0: the seeds only.")
    ] = None,
    allow_domain: Annotated[
        list[str] | None,
        typer.Option(help="Also crawl this domain and its subdomains (repeatable)."),
    ] = None,
    user_agent: Annotated[str | None, typer.Option(help="User-Agent header to send.")] = None,
    no_robots: Annotated[
        bool,
        typer.Option("--no-robots", help="Ignore robots.txt (impolite: only for your own sites)."),
    ] = False,
    grace_period: Annotated[
        float | None,
        typer.Option(min=0, help="Seconds in-flight fetches get after SIGINT/SIGTERM."),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete the database first instead of resuming it.")
    ] = False,
    uvloop: Annotated[
        bool | None, typer.Option("--uvloop/--no-uvloop", help="Use uvloop (default: yes).")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log every page, and show tracebacks of errors.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress display and no progress lines."),
    ] = False,
    log_format: Annotated[
        LogFormatChoice | None,
        typer.Option(help="Log lines as text, or as one JSON object per line (for shippers)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Serve Prometheus /metrics and /healthz on PORT (0: off)."
        ),
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option(help="Address for --metrics-port (default 127.0.0.1).")
    ] = None,
    warc: Annotated[
        Path | None,
        typer.Option(
            "--warc",
            metavar="DIR",
            help="Write responses and requests as WARC 1.1 files, with CDXJ indexes, to DIR.",
        ),
    ] = None,
    store_bodies: Annotated[
        bool,
        typer.Option(
            "--store-bodies",
            help="Keep HTML bodies, zlib-compressed, in DB-bodies.db beside the database.",
        ),
    ] = False,
    sitemaps: Annotated[
        bool,
        typer.Option(
            "--sitemaps",
            help="Seed the frontier from robots.txt Sitemap: lines or /sitemap.xml.",
        ),
    ] = False,
) -> None:
    """Crawl from the URLs in SEEDS into a SQLite database."""
    _setup_logging(debug, log_format.value if log_format else "text")
    if no_robots:
        log.warning("--no-robots: robots.txt will be ignored; crawl only sites you may")
    try:
        cfg = api.configure(
            config,
            {
                "concurrency": concurrency,
                "max_pages": max_pages,
                "max_depth": max_depth,
                "allow_domains": allow_domain or None,
                "user_agent": user_agent,
                "robots": False if no_robots else None,
                "grace_period": grace_period,
                "uvloop": uvloop,
                "progress": "off" if quiet else None,
                "log_format": log_format.value if log_format else None,
                "metrics_port": metrics_port,
                "metrics_host": metrics_host,
                "warc_dir": warc,
                "store_bodies": True if store_bodies else None,
                "sitemaps": True if sitemaps else None,
            },
            overrides_from="the command line",
        )
        if cfg.output.log_format != (log_format.value if log_format else "text"):
            _setup_logging(debug, cfg.output.log_format)  # set by the config file or env
        report = api.run(seeds, db=db, config=cfg, fresh=fresh)
    except runtime.ForcedStop as stop:
        log.error("stopped at once (%s); the database is consistent, run again to resume", stop)
        raise typer.Exit(stop.reason.exit_code) from None
    except Exception as exc:  # the one place that turns errors into exit codes
        _fail(exc, debug)
    try:
        _print_summary(report, db)
    except OSError as exc:
        # The crawl's work is in the database; that it could not be told is only a warning.
        state = f"was interrupted ({report.aborted.message})" if report.aborted else "finished"
        with contextlib.suppress(OSError):  # stderr may be as broken as stdout
            typer.echo(
                f"warning: cannot write the summary to stdout: {_stdout_failed(exc)}; "
                f"the crawl itself {state}",
                err=True,
            )
    raise typer.Exit(report.aborted.exit_code if report.aborted else 0)


@app.command("stats")
def stats_command(
    ctx: typer.Context,
    db: Annotated[Path, typer.Argument(help="Crawl database, finished or still being written.")],
    top: Annotated[
        int, typer.Option(min=1, help="Hosts to list, those with the most pages first.")
    ] = DEFAULT_TOP_HOSTS,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object on one line (keys: docs/database.md)."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Summarize a crawl database (read-only, safe while a crawl runs): frontier states,
    statuses, errors, depths, top hosts, throughput per minute."""
    try:
        _require_stdout(ctx, "the report")
        summary = read_summary(db, top=top)
    except Exception as exc:
        _fail(exc, debug)
    try:
        typer.echo(format_json(summary) if as_json else format_text(summary))
    except OSError as exc:
        typer.echo(f"error: cannot write the report to stdout: {_stdout_failed(exc)}", err=True)
        raise typer.Exit(1) from None


@app.command("export")
def export_command(
    ctx: typer.Context,
    db: Annotated[Path, typer.Argument(help="Crawl database, finished or still being written.")],
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", help="jsonl: a JSON object per line; csv: with a header."),
    ] = ExportFormat.JSONL,
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="File to write (replaced once complete; a device or FIFO: in place); - stdout.",
        ),
    ] = "-",
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Write one record per stored page, in storage order (read-only, safe while a crawl
    runs; fields: docs/database.md)."""
    if not out:
        raise typer.BadParameter("must be a file name, or - for stdout", param_hint="'--out'")
    try:
        with _signals_raise_aborted():
            if out == "-":
                _require_stdout(ctx, "the export")
                export_to_stream(db, fmt, typer.get_binary_stream("stdout"))
            elif Path(out).is_dir():  # refused before the export, not after it
                raise FatalError(f"cannot write {out}: it is a directory")
            else:
                count = export_to_file(db, fmt, Path(out))
                typer.echo(f"exported {count:,} pages to {out}", err=True)
    except Aborted as stop:
        kept = "" if out == "-" else f"; {out} was not written"
        typer.echo(f"interrupted ({stop}): the export is incomplete{kept}", err=True)
        raise typer.Exit(stop.reason.exit_code) from None
    except BrokenPipeError as exc:
        # The reader left early (`crawl export db | head`): the output is incomplete.
        _stdout_failed(exc)
        typer.echo("error: the output pipe closed before the export finished", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:  # from stdout: export_to_file's own are FatalErrors
        why = _stdout_failed(exc)
        typer.echo(f"error: cannot write the export to stdout: {why}; it is incomplete", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        _fail(exc, debug)


def _require_stdout(ctx: typer.Context, what: str) -> None:
    """Fail with one line if stdout was closed when the command started (see :func:`main`):
    ``what`` would go to ``/dev/null``, with exit code 0."""
    if "stdout" in (ctx.obj or ()):
        raise FatalError(f"stdout is closed: {what} has nowhere to go")


def _stdout_failed(exc: OSError) -> str:
    """Why a write to stdout failed, in words. Points stdout at ``/dev/null`` first, so that
    the interpreter's own flush at exit cannot fail again (a second message, exit code 120)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    return (
        "the output pipe closed" if isinstance(exc, BrokenPipeError) else exc.strerror or str(exc)
    )


@contextlib.contextmanager
def _signals_raise_aborted() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Aborted` (exit 130 / 143) instead of killing the process
    (SIGTERM) or raising KeyboardInterrupt, so clean-up runs: the export's temporary file."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Aborted(AbortReason.from_signal(signum))

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@app.command()
def bench(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            "-s",
            help="single-host, fan-out, latency or big-frontier (repeatable; default: all).",
        ),
    ] = None,
    vs: Annotated[
        list[str] | None,
        typer.Option(
            help="Also run this crawler on the same web: scrapy, crawlee, or the bare "
            "aiohttp / httpx loops (repeatable; peers need the bench extra)."
        ),
    ] = None,
    transport: Annotated[
        list[str] | None,
        typer.Option(
            help=(
                "Our HTTP transport: default (as configured), httpcore or httpx-aiohttp"
                " (repeatable)."
            )
        ),
    ] = None,
    parse: Annotated[
        list[str] | None,
        typer.Option(
            help="Where we parse: default (as configured), process, thread, inline or hybrid "
            "(repeatable)."
        ),
    ] = None,
    scale: Annotated[
        float, typer.Option(min=0.0001, help="Shrink sites and page budgets (0.1: a quick look).")
    ] = 1.0,
    repeat: Annotated[
        int | None,
        typer.Option(min=1, help="Runs of each crawler (medians; default: 1, latency's pairs: 3)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for results.json, the PNG, logs and profiles (default: build/bench)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Our config (default: configs/bench.toml)."),
    ] = None,
    ceiling: Annotated[
        bool, typer.Option(help="Measure the synthetic web's own ceiling first.")
    ] = True,
    profile: Annotated[
        bool, typer.Option("--profile", help="Record our crawler with py-spy (top costs).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Benchmark the crawler on a synthetic web on loopback (started and stopped here):
    pages/s, latency, CPU, memory, event-loop lag, politeness; JSON, table and PNG."""
    _setup_logging(debug)
    # Here, not at the top: every other command starts without loading the harness.
    from crawler.bench import DEFAULT_OUT
    from crawler.bench.command import bench as run_benchmark
    from crawler.bench.command import prepare as prepare_benchmark

    try:
        options = prepare_benchmark(
            scenario or [],
            vs or [],
            transport or [],
            parse or [],
            scale=scale,
            repeat=repeat,
            out=DEFAULT_OUT if out is None else out,
            config=config,
            ceiling=ceiling,
            profile=profile,
            echo=typer.echo,
        )
    except ValueError as exc:  # an unknown name: the message says which and lists the known
        raise typer.BadParameter(str(exc)) from None
    except Exception as exc:
        _fail(exc, debug)
    try:
        run_benchmark(options, scale=scale)
    except Exception as exc:
        _fail(exc, debug)


def _setup_logging(debug: bool, log_format: LogFormat = "text") -> None:
    setup_logging(logging.DEBUG if debug else logging.INFO, log_format)
    # httpx logs every request at INFO; our own progress line says enough. Its debug records,
    # like every library's, are left out even with --debug (crawler.logs).
    logging.getLogger("httpx").setLevel(logging.INFO if debug else logging.WARNING)


def _fail(exc: Exception, debug: bool) -> NoReturn:
    fatal = find_fatal(exc)
    if debug:
        traceback.print_exception(exc)
    if fatal is not None:
        typer.echo(f"error: {fatal}", err=True)
    else:
        typer.echo(f"internal error: {exc!r} (run with --debug for the traceback)", err=True)
    raise typer.Exit(1)


def _print_summary(report: CrawlReport, db: Path) -> None:
    stats = report.stats
    state = f"interrupted ({report.aborted.message})" if report.aborted else "finished"
    typer.echo(
        f"crawl {state}: {stats.pages} pages in {stats.elapsed:.1f}s "
        f"({stats.pages_per_second:.1f} pages/s), {stats.failed} failed, "
        f"{stats.retries} retries, {stats.bytes} bytes"
    )
    if stats.statuses:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(stats.statuses.items()))
        typer.echo(f"  statuses: {statuses}")
    if stats.errors:
        errors = ", ".join(f"{reason}: {n}" for reason, n in stats.errors.most_common())
        typer.echo(f"  errors: {errors}")
    counts = report.database
    typer.echo(
        f"  database {db}: {counts['done']} done, {counts['failed']} failed, "
        f"{counts['pending'] + counts['leased']} pending"
    )
    if report.deferred.urls:
        typer.echo(f"  {report.deferred.describe()} (Retry-After; `crawl run` then fetches them)")


def main() -> None:
    # First: until the closed ones of fds 0-2 are reopened, any file could take their place.
    closed = runtime.reopen_closed_standard_streams()
    app(obj=closed)
