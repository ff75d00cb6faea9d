"""One ``crawl bench`` run: for each scenario, start its synthetic web, optionally measure the
web's ceiling, then run every crawler against it in turn, each in a child process, and collect
what the crawler measured (:class:`~crawler.bench.measure.RunResult`) with what the server saw
(:class:`~crawler.bench.server.ServerStats`).

Everything is bounded: each crawler stops itself at the scenario's time limit and is killed
:data:`KILL_GRACE` seconds later; the servers and any child still running are stopped when a
scenario ends, also on errors and Ctrl-C.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler.bench import peers, transports
from crawler.bench.measure import RunResult
from crawler.bench.profile import summarize_profile
from crawler.bench.runner import PARSE_MODES
from crawler.bench.scenarios import SPACING_TOLERANCE, Scenario, reference_name
from crawler.bench.server import ServerStats, SyntheticWeb
from crawler.bench.web import EXTRACT_RULES

KILL_GRACE = 60.0
CEILING_SECONDS = 3.0
CEILING_CONNECTIONS = 100
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "bench.toml"


EXTRACT_MODES = ("off", "on")
"""``crawl bench --extract``: our crawler without or with the three rules."""


@dataclass(frozen=True, slots=True)
class Contender:
    """One crawler in the comparison: ours in some variant, or a peer."""

    kind: str
    """``ours`` or a peer's name."""
    transport: str = "default"
    parse: str = "default"
    extract: bool = False
    """With the three :data:`~crawler.bench.web.EXTRACT_RULES` (``--extract on``)."""

    @property
    def name(self) -> str:
        if self.kind != "ours":
            return self.kind
        variant = [v for v in (self.transport, self.parse) if v != "default"]
        variant += ["extract"] if self.extract else []
        return f"ours[{','.join(variant)}]" if variant else "ours"


@dataclass(slots=True)
class CrawlerRun:
    contender: str
    repeat: int
    result: RunResult
    server: ServerStats
    load: tuple[float, float, float]
    """The machine's load average (1, 5, 15 min) when the run ended."""


@dataclass(slots=True)
class ScenarioRun:
    scenario: Scenario
    runs: list[CrawlerRun] = field(default_factory=list)
    ceiling: dict[str, float] | None = None
    server_realtime: bool = False
    """Whether the servers read requests under real-time scheduling (crawler.bench.server)."""
    profile: dict[str, Any] | None = None


@dataclass(slots=True)
class BenchOptions:
    scenarios: list[Scenario]
    contenders: list[Contender]
    out: Path
    config: Path = DEFAULT_CONFIG
    repeat: int | None = None
    """Runs of each crawler; None: each scenario's own (:attr:`Scenario.repeat`)."""
    ceiling: bool = True
    profile: bool = False
    """Record our crawler with py-spy, in one more run per scenario left out of the figures."""
    workers: int | None = None
    """Server processes (default: one per core, at most one per host)."""
    echo: Callable[[str], None] = print


def contenders(
    vs: list[str],
    transport_names: list[str],
    parse_modes: list[str],
    extract_modes: Sequence[str] = (),
) -> list[Contender]:
    """Ours in every transport x parse x extract combination asked for, then the peers."""
    for name in transport_names:
        if name not in transports.TRANSPORTS:
            known = ", ".join(transports.TRANSPORTS)
            raise ValueError(f"unknown transport {name!r} (known: {known})")
    for mode in parse_modes:
        if mode not in PARSE_MODES:
            raise ValueError(f"unknown parse mode {mode!r} (known: {', '.join(PARSE_MODES)})")
    for mode in extract_modes:
        if mode not in EXTRACT_MODES:
            raise ValueError(f"unknown extract mode {mode!r} (known: {', '.join(EXTRACT_MODES)})")
    for peer in vs:
        if peer not in peers.PEERS:
            raise ValueError(f"unknown peer {peer!r} (known: {', '.join(peers.PEERS)})")
    ours = [
        Contender("ours", t, p, e == "on")
        for t in transport_names or ["default"]
        for p in parse_modes or ["default"]
        for e in dict.fromkeys(extract_modes or ["off"])
    ]
    return ours + [Contender(peer) for peer in dict.fromkeys(vs)]


def run_bench(options: BenchOptions) -> list[ScenarioRun]:
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "logs").mkdir(exist_ok=True)
    return [_run_scenario(scenario, options) for scenario in options.scenarios]


def _run_scenario(scenario: Scenario, options: BenchOptions) -> ScenarioRun:
    echo = options.echo
    outcome = ScenarioRun(scenario)
    spec = scenario.web
    echo(
        f"== {scenario.name}: {scenario.description}\n"
        f"   {spec.hosts} host(s) x {spec.pages:,} pages, budget {scenario.budget:,} pages, "
        f"{scenario.concurrency} in flight, limit {scenario.time_limit:g}s"
    )
    with (
        tempfile.TemporaryDirectory(prefix="crawl-bench-") as tmp,
        SyntheticWeb(spec, options.workers) as web,
    ):
        work = Path(tmp)
        outcome.server_realtime = web.realtime
        echo(
            f"   synthetic web: {web.workers} server process(es), pids {web.pids}, "
            f"real-time scheduling {'on' if web.realtime else 'off (not allowed here)'}"
        )
        if options.ceiling:
            outcome.ceiling = _ceiling(web, work, scenario.concurrency)
            echo(
                f"   server ceiling: {outcome.ceiling['per_second']:,.0f} requests/s with a bare "
                f"client; {outcome.ceiling['per_core']:,.0f}/s per server core"
            )
        # The server counts gaps shorter than the delay (less the network's jitter).
        spacing = max(0.0, scenario.per_host_delay - SPACING_TOLERANCE)
        # Repeats go round the contenders (ABAB, not AABB), so that a burst of load from
        # elsewhere on the machine does not land on one contender only.
        for repeat in range(options.repeat or scenario.repeat):
            for contender in options.contenders:
                if contender.kind != "ours" and not scenario.compare_peers:
                    continue  # see Scenario.compare_peers
                runs = [(contender.name, True)]
                if contender.kind == "ours" and scenario.latency_reference:
                    runs.insert(0, (reference_name(contender.name), False))
                for name, latency in runs:
                    web.reset(spacing, latency)
                    result = _run_contender(
                        contender, scenario, web.seeds, work, options, repeat, label=name
                    )
                    run = CrawlerRun(name, repeat, result, web.stats(), os.getloadavg())
                    outcome.runs.append(run)
                    echo("   " + _one_line(run))
        if options.profile:
            # A run of its own, left out of the figures: the sampler slows what it watches.
            profile_to = options.out / f"profile-{scenario.name}.txt"
            web.reset()
            _run_contender(
                options.contenders[0], scenario, web.seeds, work, options, -1, profile_to
            )
            if profile_to.exists():
                outcome.profile = summarize_profile(profile_to)
                outcome.profile["file"] = str(profile_to)
                echo(f"   profile of {options.contenders[0].name}: {profile_to}")
    return outcome


def _one_line(run: CrawlerRun) -> str:
    r = run.result
    if r.status != "ok":
        return f"{run.contender}: {r.status}: {r.detail}"
    rate = run.server.pages / r.elapsed if r.elapsed else 0.0
    busy = "" if r.machine_busy is None else f", machine busy {r.machine_busy:.0%}"
    return (
        f"{run.contender}: {run.server.pages:,} pages in {r.elapsed:.1f}s = {rate:,.0f} pages/s, "
        f"CPU {r.cpu_seconds:.1f}s (load {run.load[0]:.2f}{busy})"
    )


def _run_contender(
    contender: Contender,
    scenario: Scenario,
    seeds: list[str],
    work: Path,
    options: BenchOptions,
    repeat: int,
    profile_to: Path | None = None,
    label: str | None = None,
) -> RunResult:
    """One run of ``contender``, named ``label`` (default: its name) in its result and files."""
    name = label or contender.name
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{scenario.name}-{name}")
    stem = f"{safe.strip('-')}-{repeat}"
    job_path = work / f"{stem}.job.json"
    result_path = work / f"{stem}.result.json"
    if contender.kind == "ours":
        problem = transports.missing(contender.transport)
        if problem is not None:
            return RunResult(name, status="unavailable", detail=problem)
        db = work / f"{stem}.db"
        job: dict[str, Any] = {
            "name": name,
            "config": str(options.config),
            "overrides": {
                **scenario.overrides,
                "crawl.concurrency": scenario.concurrency,
                "crawl.max_pages": scenario.budget,
                "runtime.stats_interval": 0.0,
                **({"extract.fields": EXTRACT_RULES} if contender.extract else {}),
            },
            "seeds": seeds,
            "db": str(db),
            "time_limit": scenario.time_limit,
            "transport": contender.transport,
            "parse": contender.parse,
            "track_frontier": scenario.track_frontier,
        }
        argv = [sys.executable, "-m", "crawler.bench.runner", str(job_path), str(result_path)]
    else:
        problem = peers.missing(contender.kind)
        if problem is not None:
            return RunResult(name, status="unavailable", detail=problem)
        job = {
            "seeds": seeds,
            "max_pages": scenario.budget,
            "concurrency": scenario.concurrency,
            "time_limit": scenario.time_limit,
        }
        argv = [
            sys.executable,
            "-m",
            "crawler.bench.peers",
            contender.kind,
            str(job_path),
            str(result_path),
        ]
    if profile_to is not None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if Path(spy).exists():
            argv = [
                spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "100",
                "-o",
                str(profile_to),
                "--",
                *argv,
            ]
        else:
            options.echo("   py-spy is not installed (pip install 'crawler[bench]'): no profile")
    job_path.write_text(json.dumps(job))
    log = options.out / "logs" / f"{stem}.log"
    with log.open("w") as log_file:
        code = _run_child(argv, scenario.time_limit + KILL_GRACE, log_file)
    if code != 0 or not result_path.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        detail = f"exit code {code}; log {log}: " + " | ".join(tail)
        return RunResult(name, status="failed", detail=detail)
    return RunResult.read(result_path)


def _run_child(argv: list[str], timeout: float, log: Any) -> int | None:
    """Run ``argv`` with stdout and stderr to ``log``; killed after ``timeout`` seconds
    (and on any exception here, Ctrl-C included). Returns the exit code, None if killed."""
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _ceiling(web: SyntheticWeb, work: Path, connections: int) -> dict[str, float]:
    """Requests per second the servers answer to a bare client, and per server core."""
    assert web.web is not None
    sample = [
        f"{web.web.origin(h)}/p/{p}"
        for h in range(min(web.spec.hosts, 100))
        for p in range(1, min(web.spec.pages, 200))
    ]
    urls = work / "ceiling-urls.json"
    urls.write_text(json.dumps(sample))
    web.reset()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "crawler.bench.loadgen",
            str(urls),
            str(CEILING_SECONDS),
            str(max(CEILING_CONNECTIONS, connections)),
        ],
        capture_output=True,
        text=True,
        timeout=CEILING_SECONDS + 60,
        check=True,
    )
    load = json.loads(out.stdout)
    server = web.stats()
    per_core = load["requests"] / server.cpu_seconds if server.cpu_seconds else 0.0
    return {
        "requests": load["requests"],
        "per_second": load["per_second"],
        "server_cpu_seconds": server.cpu_seconds,
        "per_core": per_core,
    }


def machine() -> dict[str, Any]:
    """Where and when: for the JSON report, since every number depends on it."""
    versions: dict[str, str | None] = {}
    for package in ("httpx", "httpcore", "aiohttp", "httpx-aiohttp", "scrapy", "crawlee", "uvloop"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # not installed
            versions[package] = None
    # The crawler's own sources, hashed: figures belong to one version of the code.
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).resolve().parents[1].glob("*.py")):
        digest.update(source.read_bytes())
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "crawler_sources_sha256": digest.hexdigest()[:16],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_at_start": os.getloadavg(),
        "versions": versions,
        "started": time.time(),
    }
