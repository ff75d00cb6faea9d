"""``crawl bench``: the benchmark harness (:mod:`crawler.bench`) behind a command, loaded
only when the command runs so that every other command starts without it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crawler.cli.output import fail, setup_command_logging


def bench(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            "-s",
            help=(
                "single-host, fan-out, latency, big-frontier, broad or discovery "
                "(repeatable; default: all)."
            ),
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
    extract: Annotated[
        list[str] | None,
        typer.Option(
            help="Our crawler without (off) or with (on) three extraction rules every synthetic "
            "page matches (repeatable: --extract off --extract on runs both side by side)."
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
    setup_command_logging(debug)
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
            extract or [],
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
        fail(exc, debug)
    try:
        run_benchmark(options, scale=scale)
    except Exception as exc:
        fail(exc, debug)
