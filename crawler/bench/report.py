"""Figures from raw runs, and the three ways they are shown: a table on the terminal, one JSON
document, and a PNG of pages/s over time per crawler (matplotlib, when installed).

Pages are counted by the server (every request but robots.txt), so every crawler is counted
the same way; time is the crawler's own, from the start of its crawl to its end (imports and
start-up excluded). With repeats, a contender's figures are medians and pages/s also has its
range.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crawler.bench.harness import CrawlerRun, ScenarioRun
from crawler.bench.measure import RunResult
from crawler.bench.server import BUCKET
from crawler.bench.targets import check_scenario

MB = 1_000_000
PLOT_FILE = "pages-per-second.png"
JSON_FILE = "results.json"


def run_figures(run: CrawlerRun) -> dict[str, Any]:
    """One run's figures."""
    r, server = run.result, run.server
    figures: dict[str, Any] = {
        "crawler": run.contender,
        "repeat": run.repeat,
        "status": r.status,
        "detail": r.detail,
    }
    if r.status != "ok":
        return figures
    pages = server.pages
    discovered = r.discovered or None
    figures.update(
        {
            "pages": pages,
            "crawler_pages": r.pages,
            "elapsed": round(r.elapsed, 3),
            "pages_per_second": round(pages / r.elapsed, 1) if r.elapsed else 0.0,
            "latency_ms": r.latency_ms,
            "cpu_seconds": round(r.cpu_seconds, 2),
            "cpu_per_1000_pages": round(r.cpu_seconds / pages * 1000, 3) if pages else None,
            "peak_rss_mb": round(r.peak_rss / MB, 1),
            "rss_growth_mb": round((r.rss_end - r.rss_start) / MB, 1),
            "discovered": discovered,
            "rss_per_discovered_url": (
                round((r.rss_end - r.rss_start) / discovered, 1) if discovered else None
            ),
            # A broad crawl's figure: what each host the server saw costs the crawler.
            "rss_per_host": (
                round((r.rss_end - r.rss_start) / server.hosts_seen, 1)
                if server.hosts_seen
                else None
            ),
            "loop_lag_ms": r.loop_lag_ms,
            "machine_busy": r.machine_busy,
            "politeness": {
                "max_concurrent_per_host": server.max_active_per_host,
                "min_spacing_per_host_ms": (
                    round(server.min_gap_per_host * 1000, 1)
                    if server.min_gap_per_host is not None
                    else None
                ),
                "min_spacing_between": list(server.min_gap_paths),
                "short_gaps": server.short_gaps,
                "robots_requests": server.robots,
                "disallowed_requests": server.private,
                "hosts": server.hosts_seen,
            },
            "server": {
                "cpu_seconds": round(server.cpu_seconds, 2),
                "cpu_per_1000_pages": (
                    round(server.cpu_seconds / pages * 1000, 3) if pages else None
                ),
                "statuses": server.statuses,
            },
            "load_1min": round(run.load[0], 2),
            "memory": memory_figures(r),
            "timeline": timeline(r, server.timeline),
            "extra": r.extra,
        }
    )
    return figures


def memory_figures(result: RunResult) -> dict[str, Any] | None:
    """RSS against discovered URLs while the frontier grows (least-squares slope), and RSS
    while it drains (after the last new URL); None without frontier samples."""
    samples = [s for s in result.samples if s[3] > 0]
    if len(samples) < 3:
        return None
    final = samples[-1][3]
    growing = [s for s in samples if s[3] < final]
    draining = [s for s in samples if s[3] >= final]
    out: dict[str, Any] = {"discovered": final}
    if len(growing) >= 2:
        xs = [float(s[3]) for s in growing]
        ys = [float(s[2]) for s in growing]
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        if spread > 0:
            slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
            out["bytes_per_discovered_url"] = round(slope, 1)
            out["growth_rss_mb"] = [round(ys[0] / MB, 1), round(ys[-1] / MB, 1)]
    if len(draining) >= 2:
        first, last = draining[0], draining[-1]
        out["drain_pages"] = last[1] - first[1]
        out["drain_seconds"] = round(last[0] - first[0], 1)
        out["drain_rss_mb"] = [round(first[2] / MB, 1), round(last[2] / MB, 1)]
        out["drain_growth_share"] = round((last[2] - first[2]) / first[2], 4)
    return out


def timeline(result: RunResult, buckets: dict[int, int]) -> list[tuple[float, float]]:
    """Pages/s in whole seconds since the crawler's start, from the server's 0.1 s buckets."""
    per_second: dict[int, int] = {}
    for bucket, count in buckets.items():
        second = int(bucket * BUCKET - result.started)
        if second >= 0:
            per_second[second] = per_second.get(second, 0) + count
    if not per_second:
        return []
    last = max(per_second)
    return [(float(t), float(per_second.get(t, 0))) for t in range(last + 1)]


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One contender's figures over its repeats: the first run's, with medians of the main
    numbers and the range of pages/s."""
    ok = [r for r in runs if r["status"] == "ok"]
    if not ok:
        return dict(runs[0])
    summary = dict(ok[0])
    for key in ("pages_per_second", "cpu_per_1000_pages", "peak_rss_mb", "elapsed", "machine_busy"):
        summary[key] = _median([r[key] for r in ok])
    rates = [r["pages_per_second"] for r in ok]
    summary["pages_per_second_range"] = [min(rates), max(rates)]
    summary["repeats"] = len(ok)
    for key in ("latency_ms", "loop_lag_ms"):
        parts = [r[key] for r in ok if r[key]]
        if parts:
            summary[key] = {k: _median([p[k] for p in parts]) for k in parts[0]}
    return summary


def scenario_report(
    outcome: ScenarioRun, single_host: dict[str, Any] | None = None
) -> dict[str, Any]:
    figures = [run_figures(run) for run in outcome.runs]
    names = list(dict.fromkeys(f["crawler"] for f in figures))
    summaries = {name: summarize([f for f in figures if f["crawler"] == name]) for name in names}
    scenario = outcome.scenario
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "web": {
            "hosts": scenario.web.hosts,
            "pages_per_host": scenario.web.pages,
            "page_bytes": scenario.web.page_bytes,
            "links_per_page": scenario.web.links_per_page,
            "links": scenario.web.links,
            "latency_ms": scenario.web.latency_ms,
            "latency": scenario.web.latency,
            "error_rate": scenario.web.error_rate,
            "redirect_rate": scenario.web.redirect_rate,
            "disallowed_rate": scenario.web.disallowed_rate,
            "cross_host": scenario.web.cross_host,
            "seed": scenario.web.seed,
        },
        "budget": scenario.budget,
        "concurrency": scenario.concurrency,
        "per_host_concurrency": scenario.per_host_concurrency,
        "per_host_delay": scenario.per_host_delay,
        "overrides": scenario.overrides,
        "server_ceiling": outcome.ceiling,
        "server_realtime": outcome.server_realtime,
        "summaries": summaries,
        "checks": check_scenario(scenario, summaries, single_host),
        "profile": outcome.profile,
        "runs": figures,
    }


def build_report(outcomes: Sequence[ScenarioRun], machine: dict[str, Any]) -> dict[str, Any]:
    scenarios: list[dict[str, Any]] = []
    single_host = None
    for outcome in outcomes:
        report = scenario_report(outcome, single_host)
        if outcome.scenario.name == "single-host":
            single_host = report["summaries"]
        scenarios.append(report)
    return {"machine": machine, "scenarios": scenarios}


def write_json(report: dict[str, Any], out: Path) -> Path:
    path = out / JSON_FILE
    path.write_text(json.dumps(report, indent=1))
    return path


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: dict[str, Any]) -> str:
    """The terminal view: one table per scenario, then its checks. ``ours÷it`` is our
    pages/s over that crawler's; ``host max`` and ``gap ms`` are the most requests in flight
    to one host and the shortest gap between two requests to one host, as the server saw
    them (without latency an answer leaves at once, so in flight stays at 1); ``busy`` is the
    share of all the machine's core time that was busy during the crawl."""
    lines: list[str] = []
    head = (
        f"{'crawler':<22}{'pages':>8}{'pages/s':>9}{'range':>13}{'ours÷it':>8}"
        f"{'lat p50/p95/p99 ms':>22}{'CPU s/1k':>9}{'RSS MB':>8}{'B/URL':>9}"
        f"{'lag p99':>8}{'host max':>9}{'gap ms':>8}{'disallow':>9}{'busy':>6}"
    )
    for scenario in report["scenarios"]:
        lines.append(f"\n{scenario['scenario']}: {scenario['description']}")
        ceiling = scenario["server_ceiling"]
        if ceiling:
            lines.append(
                f"  server ceiling: {ceiling['per_second']:,.0f} req/s (bare client), "
                f"{ceiling['per_core']:,.0f} req/s per server core"
            )
        lines.append(head)
        ours = scenario["summaries"].get("ours", {}).get("pages_per_second")
        for name, s in scenario["summaries"].items():
            if s["status"] != "ok":
                lines.append(f"{name:<22}{s['status']}: {s['detail']}")
                continue
            rate = s["pages_per_second"]
            low, high = s["pages_per_second_range"]
            lat = s["latency_ms"] or {}
            lag = s["loop_lag_ms"] or {}
            pol = s["politeness"]
            latency = "/".join(_fmt(lat.get(k), ".0f") for k in ("p50", "p95", "p99"))
            lines.append(
                f"{name:<22}{s['pages']:>8,}{rate:>9,.0f}{f'{low:,.0f}-{high:,.0f}':>13}"
                f"{_fmt(ours / rate if ours and rate else None, '.2f'):>8}"
                f"{latency:>22}{_fmt(s['cpu_per_1000_pages'], '.2f'):>9}"
                f"{s['peak_rss_mb']:>8.0f}{_fmt(s['rss_per_discovered_url'], ',.0f'):>9}"
                f"{_fmt(lag.get('p99'), '.1f'):>8}{pol['max_concurrent_per_host']:>9}"
                f"{_fmt(pol['min_spacing_per_host_ms'], '.0f'):>8}"
                f"{pol['disallowed_requests']:>9}"
                f"{_fmt(s.get('machine_busy'), '.0%'):>6}"
            )
            if pol["hosts"] > 1:
                lines.append(
                    f"{'':<22}{pol['hosts']:,} hosts, "
                    f"{_fmt(s.get('rss_per_host'), ',.0f')} bytes of RSS growth per host"
                )
        for check in scenario["checks"]:
            if check["goal"] is None:
                lines.append(f"  for comparison, {check['target']}: {_fmt(check['value'], 'g')}")
                continue
            met = {True: "met", False: "NOT MET", None: "n/a"}[check["met"]]
            lines.append(
                f"  target {check['target']}: {_fmt(check['value'], 'g')} "
                f"(goal {check['goal']}): {met}"
            )
        ours_pol = scenario["summaries"].get("ours", {}).get("politeness")
        if ours_pol and scenario["per_host_delay"] > 0:
            earlier, later = ours_pol["min_spacing_between"]
            lines.append(
                f"  spacing: shortest gap {_fmt(ours_pol['min_spacing_per_host_ms'], '.1f')} ms, "
                f"between {earlier} and {later}; {ours_pol['short_gaps']:,} gaps shorter "
                "than the delay"
            )
        memory = scenario["summaries"].get("ours", {}).get("memory")
        if memory:
            lines.append(f"  memory: {json.dumps(memory)}")
    return "\n".join(lines)


def write_plot(report: dict[str, Any], out: Path) -> Path | None:
    """Pages/s over time, one panel per scenario, one line per crawler run; None (and no
    file) when matplotlib is not installed."""
    try:
        import matplotlib

        # It reports building its font cache at INFO, into our log.
        logging.getLogger("matplotlib").setLevel(logging.WARNING)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    scenarios = report["scenarios"]
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(10, 3.2 * len(scenarios)), squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios, strict=True):
        for run in scenario["runs"]:
            if run["status"] != "ok" or not run["timeline"]:
                continue
            xs = [t for t, _ in run["timeline"]]
            ys = [rate for _, rate in run["timeline"]]
            label = run["crawler"] + (f" #{run['repeat'] + 1}" if run["repeat"] else "")
            ax.plot(xs, ys, label=label, linewidth=1.2)
        title = f"{scenario['scenario']}: {scenario['description']}"
        ax.set_title(title if len(title) <= 110 else title[:107] + "...", fontsize=9)
        ax.set_xlabel("seconds since the crawler started")
        ax.set_ylabel("pages/s (server)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = out / PLOT_FILE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
