"""How the ``crawl`` commands talk to the terminal: logging set up, an error turned into one
line on stderr and exit code 1 (a traceback only with ``--debug``), and a stdout that failed
mid-write.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import NoReturn

import typer

from crawler.errors import find_fatal
from crawler.observe.logs import LogFormat, setup_logging


def setup_command_logging(debug: bool, log_format: LogFormat = "text") -> None:
    """Log to stderr: INFO and up, or with ``debug`` (``--debug``) every record of ours."""
    setup_logging(logging.DEBUG if debug else logging.INFO, log_format)
    # httpx logs every request at INFO; our own progress line says enough. Its debug records,
    # like every library's, are left out even with --debug (crawler.observe.logs).
    logging.getLogger("httpx").setLevel(logging.INFO if debug else logging.WARNING)


def fail(exc: Exception, debug: bool) -> NoReturn:
    """End the command with exit code 1 and one line on stderr: the message of the
    :class:`~crawler.errors.FatalError` that ``exc`` is or wraps, else "internal error";
    the traceback too with ``debug``."""
    fatal = find_fatal(exc)
    if debug:
        traceback.print_exception(exc)
    if fatal is not None:
        typer.echo(f"error: {fatal}", err=True)
    else:
        typer.echo(f"internal error: {exc!r} (run with --debug for the traceback)", err=True)
    raise typer.Exit(1)


def stdout_failed(exc: OSError) -> str:
    """Why a write to stdout failed, in words. Points stdout at ``/dev/null`` first, so that
    the interpreter's own flush at exit cannot fail again (a second message, exit code 120)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    return (
        "the output pipe closed" if isinstance(exc, BrokenPipeError) else exc.strerror or str(exc)
    )
