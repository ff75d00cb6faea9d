"""``crawl run``: flags in, :func:`crawler.api.run` on them, the summary and the exit code out."""

from __future__ import annotations

import contextlib
import enum
import logging
from pathlib import Path
from typing import Annotated

import typer

from crawler import api, runtime
from crawler.cli.output import fail, setup_command_logging, stdout_failed
from crawler.config import MAX_CONCURRENCY, MAX_PORT, Config
from crawler.engine import CrawlReport

log = logging.getLogger("crawler")

_DEFAULTS = Config()
"""Named in help texts whose option defaults to the config's value (None: not given)."""


class ScopeChoice(enum.StrEnum):
    HOSTS = "hosts"
    DOMAINS = "domains"
    ANY = "any"


class LogFormatChoice(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def run(
    seeds: Annotated[
        Path,
        typer.Argument(help="Seeds file: one URL per line; blank lines and # comments skipped."),
    ],
    db: Annotated[
        Path, typer.Option(help="SQLite database to write; an existing one is resumed.")
    ] = api.DEFAULT_DB,
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
    scope: Annotated[
        ScopeChoice | None,
        typer.Option(
            help="Follow links to the seeds' hosts, their registrable domains, or any host "
            f"(default: {_DEFAULTS.crawl.scope})."
        ),
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
            min=0, max=MAX_PORT, help="Serve Prometheus /metrics and /healthz on PORT (0: off)."
        ),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option(help=f"Address for --metrics-port (default {_DEFAULTS.output.metrics_host})."),
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
            help="Keep the bodies read (HTML, fetch.download_types'), zlib-compressed, in "
            "DB-bodies.db beside the database.",
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
    setup_command_logging(debug, log_format.value if log_format else "text")
    if no_robots:
        log.warning("--no-robots: robots.txt will be ignored; crawl only sites you may")
    try:
        cfg = api.configure(
            config,
            {
                "concurrency": concurrency,
                "max_pages": max_pages,
                "max_depth": max_depth,
                "scope": scope.value if scope else None,
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
            setup_command_logging(debug, cfg.output.log_format)  # set by the config file or env
        report = api.run(seeds, db=db, config=cfg, fresh=fresh)
    except runtime.ForcedStop as stop:
        log.error("stopped at once (%s); the database is consistent, run again to resume", stop)
        raise typer.Exit(stop.reason.exit_code) from None
    except Exception as exc:  # the one place that turns errors into exit codes
        fail(exc, debug)
    try:
        _print_summary(report, db)
    except OSError as exc:
        # The crawl's work is in the database; that it could not be told is only a warning.
        state = f"was interrupted ({report.aborted.message})" if report.aborted else "finished"
        with contextlib.suppress(OSError):  # stderr may be as broken as stdout
            typer.echo(
                f"warning: cannot write the summary to stdout: {stdout_failed(exc)}; "
                f"the crawl itself {state}",
                err=True,
            )
    raise typer.Exit(report.aborted.exit_code if report.aborted else 0)


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
    if report.hosts_over_budget:
        typer.echo(
            f"  {report.hosts_over_budget} host(s) reached crawl.max_pages_per_host or "
            "max_pages_per_domain: their further URLs stay pending"
        )
