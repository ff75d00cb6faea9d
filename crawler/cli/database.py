"""The commands that read a crawl database, finished or still being written, and never write
it: ``crawl stats`` (a summary) and ``crawl export`` (one record per page)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from crawler.abort import Aborted, AbortReason
from crawler.cli.output import fail, stdout_failed
from crawler.errors import FatalError
from crawler.store.export import ExportFormat, export_to_file, export_to_stream
from crawler.store.summary import DEFAULT_TOP_HOSTS, format_json, format_text, read_summary


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
        _require_stdout(ctx, "the summary")
        summary = read_summary(db, top=top)
    except Exception as exc:
        fail(exc, debug)
    try:
        typer.echo(format_json(summary) if as_json else format_text(summary))
    except OSError as exc:
        typer.echo(f"error: cannot write the summary to stdout: {stdout_failed(exc)}", err=True)
        raise typer.Exit(1) from None


def export_command(
    ctx: typer.Context,
    db: Annotated[Path, typer.Argument(help="Crawl database, finished or still being written.")],
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="jsonl: a JSON object per line; csv: with a header; parquet: typed columns "
            "(needs pip install 'crawler[parquet]').",
        ),
    ] = ExportFormat.JSONL,
    fields: Annotated[
        str | None,
        typer.Option(
            "--fields",
            help="Columns to write, in this order, comma-separated: url,status,data.price "
            "(default: every column; data.NAME: a field of the page's data).",
        ),
    ] = None,
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
    chosen = None if fields is None else [name.strip() for name in fields.split(",")]
    try:
        with _signals_raise_aborted():
            if out == "-":
                _require_stdout(ctx, "the export")
                export_to_stream(db, fmt, typer.get_binary_stream("stdout"), chosen)
            elif Path(out).is_dir():  # refused before the export, not after it
                raise FatalError(f"cannot write {out}: it is a directory")
            else:
                count = export_to_file(db, fmt, Path(out), chosen)
                typer.echo(f"exported {count:,} pages to {out}", err=True)
    except Aborted as stop:
        kept = "" if out == "-" else f"; {out} was not written"
        typer.echo(f"interrupted ({stop}): the export is incomplete{kept}", err=True)
        raise typer.Exit(stop.reason.exit_code) from None
    except BrokenPipeError as exc:
        # The reader left early (`crawl export db | head`): the output is incomplete.
        stdout_failed(exc)
        typer.echo("error: the output pipe closed before the export finished", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:  # from stdout: export_to_file's own are FatalErrors
        why = stdout_failed(exc)
        typer.echo(f"error: cannot write the export to stdout: {why}; it is incomplete", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        fail(exc, debug)


def _require_stdout(ctx: typer.Context, what: str) -> None:
    """Fail with one line if stdout was closed when the command started (see :func:`main`):
    ``what`` would go to ``/dev/null``, with exit code 0."""
    if "stdout" in (ctx.obj or ()):
        raise FatalError(f"stdout is closed: {what} has nowhere to go")


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
