"""``crawl bench``: check and resolve the options, run the harness, write and show the report.

The options are checked before anything starts (:func:`prepare`), so that a typo is one line
at once, not a failure of every crawler, one after the other, after the synthetic web started.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from crawler.bench import DEFAULT_OUT
from crawler.bench.harness import DEFAULT_CONFIG, BenchOptions, contenders, machine, run_bench
from crawler.bench.report import build_report, format_table, write_json, write_plot
from crawler.bench.scenarios import SCENARIOS, scenario
from crawler.config_load import load_config
from crawler.errors import FatalError


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def prepare(
    scenario_names: list[str],
    vs: list[str],
    transport_names: list[str],
    parse_modes: list[str],
    extract_modes: Sequence[str] = (),
    *,
    scale: float = 1.0,
    repeat: int | None = None,
    out: Path = DEFAULT_OUT,
    config: Path | None = None,
    ceiling: bool = True,
    profile: bool = False,
    echo: Callable[[str], None] = print,
) -> BenchOptions:
    """The benchmark's options, checked; creates ``out``. Raises ``ValueError`` for an
    unknown scenario, peer, transport, parse or extract mode (a usage error), and
    :class:`~crawler.errors.FatalError` for a config that does not load or an ``out`` that
    cannot be a directory."""
    options = BenchOptions(
        scenarios=[scenario(name, scale) for name in scenario_names or list(SCENARIOS)],
        contenders=contenders(vs, transport_names, parse_modes, extract_modes),
        out=out,
        config=config or DEFAULT_CONFIG,
        repeat=repeat,
        ceiling=ceiling,
        profile=profile,
        echo=echo,
    )
    load_config(options.config)  # every crawl of the benchmark would fail on it
    if out.exists() and not out.is_dir():
        raise FatalError(f"--out {out} is a file: it must be a directory for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FatalError(f"cannot create the results directory {out}: {exc.strerror}") from None
    return options


def bench(options: BenchOptions, *, scale: float = 1.0) -> dict[str, object]:
    """Run the benchmark (``scale``: what :func:`prepare` scaled the scenarios by); returns
    the report (also written to ``options.out``)."""
    echo, out, chosen = options.echo, options.out, options.scenarios
    started = machine()
    load = os.getloadavg()
    echo(
        f"crawl bench: {len(chosen)} scenario(s), crawlers "
        f"{', '.join(c.name for c in options.contenders)}; scale {scale:g}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; results in {out}/"
    )
    # Stopped by SIGTERM as by Ctrl-C: unwind, so every server and child process is stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcomes = run_bench(options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    report = build_report(outcomes, started)
    report["machine"]["load_at_end"] = os.getloadavg()
    json_path = write_json(report, out)
    echo(format_table(report))
    plot = write_plot(report, out)
    echo(f"\nJSON: {json_path}")
    if plot is None:
        echo("plot: skipped, matplotlib is not installed (pip install 'crawler[bench]')")
    else:
        echo(f"plot: {plot}")
    return report
