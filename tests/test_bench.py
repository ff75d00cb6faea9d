"""The benchmark harness (`crawl bench`): it runs on a tiny web and reports every field.

No timing is asserted anywhere here: figures depend on the machine. What is checked is that
the harness runs, reports what the issue asks for, writes its files, and that the synthetic web
is deterministic.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from typer.testing import CliRunner

from crawler.bench import harness, peers, server
from crawler.bench.harness import BenchOptions, Contender, contenders, run_bench
from crawler.bench.measure import RunResult, busy_share, machine_ticks, percentiles
from crawler.bench.report import build_report, memory_figures, write_json, write_plot
from crawler.bench.scenarios import SCENARIOS, Scenario, reference_name, scenario
from crawler.bench.server import SyntheticWeb
from crawler.bench.targets import check_scenario
from crawler.bench.web import EXTRACT_RULES, ROBOTS_TXT, Web, WebSpec
from crawler.cli.app import app
from crawler.config_load import load_config
from crawler.models import Lease, Response
from crawler.parse.extract import ExtractRules
from crawler.parse.outcome import build_outcome
from tests.helpers import link_rules

ROOT = Path(__file__).resolve().parents[1]
TINY = Scenario(
    name="tiny",
    description="3 hosts, a little of everything",
    web=WebSpec(
        hosts=3,
        pages=30,
        page_bytes=2_000,
        links_per_page=5,
        cross_host=0.1,
        latency_ms=2.0,
        latency="exponential",
        error_rate=0.1,
        redirect_rate=0.1,
        disallowed_rate=0.1,
    ),
    budget=50,
    concurrency=4,
    overrides={"politeness.per_host_concurrency": 1, "politeness.per_host_delay": 0.02},
    time_limit=30.0,
    compare_peers=True,
)


def test_every_synthetic_page_matches_the_three_extraction_rules() -> None:
    # `crawl bench --extract on` measures the rules' cost only if they find something.
    rules = ExtractRules.of(load_config(overrides={"extract.fields": EXTRACT_RULES}).extract)
    with_rules = dataclasses.replace(link_rules(), extract=rules)
    web = Web(WebSpec(hosts=2, pages=20), [1001, 1002])
    for host in range(2):
        for index in range(1, 20):
            url = f"http://127.0.0.1:{1001 + host}/p/{index}"
            lease = Lease(1, url, f"127.0.0.1:{1001 + host}", 0)
            response = Response(url, 200, "text/html", web.page(host, index))
            page = build_outcome(lease, response, with_rules, "").page
            assert page.data is not None
            assert set(page.data) == set(EXTRACT_RULES)
            assert page.data["links"] == [urljoin(url, href) for href in web.hrefs(host, index)]
    names = [c.name for c in contenders([], [], ["process"], ["off", "on"])]
    assert names == ["ours[process]", "ours[process,extract]"]
    with pytest.raises(ValueError, match="unknown extract mode"):
        contenders([], [], [], ["yes"])


def test_same_seed_same_web() -> None:
    spec = WebSpec(hosts=3, pages=50, cross_host=0.2, redirect_rate=0.1, disallowed_rate=0.1)
    ports = [1001, 1002, 1003]
    one, two = Web(spec, ports), Web(spec, ports)
    for host in range(3):
        for index in range(50):
            assert one.page(host, index) == two.page(host, index)
            assert one.hrefs(host, index) == two.hrefs(host, index)
            path = f"/p/{index}"
            assert one.delay(host, path) == two.delay(host, path)
            assert one.fails_first(host, path) == two.fails_first(host, path)
    other = Web(WebSpec(hosts=3, pages=50, cross_host=0.2, seed=1), ports)
    assert any(other.hrefs(0, i) != one.hrefs(0, i) for i in range(50))


def test_a_web_seeded_on_its_first_hosts_links_to_the_others() -> None:
    ports = list(range(1001, 1011))
    web = Web(WebSpec(hosts=10, pages=20, cross_host=0.5, seed_hosts=1), ports)
    assert web.seeds() == ["http://127.0.0.1:1001/"]
    linked = {href.split("/")[2] for i in range(20) for href in web.hrefs(0, i) if "//" in href}
    assert len(linked) > 1  # other hosts are met through links
    assert len(Web(WebSpec(hosts=10, pages=20), ports).seeds()) == 10  # the control: 0 = all
    with pytest.raises(ValueError, match="seed_hosts"):
        WebSpec(hosts=2, seed_hosts=3)


def test_web_answers() -> None:
    web = Web(WebSpec(pages=10, page_bytes=3_000, links_per_page=4), [8000])
    status, _, body = web.answer(0, "/")
    assert status == 200
    assert abs(len(body) - 3_000) < 100  # padded to about page_bytes
    assert web.answer(0, "/robots.txt")[2] == ROBOTS_TXT
    assert web.answer(0, "/r/3")[:2] == (301, b"Location: /p/3\r\n")
    assert web.answer(0, "/p/10")[0] == 404  # pages are 0 (/) to 9
    assert web.answer(0, "/p/03")[0] == 404  # one spelling per page
    tree = Web(WebSpec(pages=1_000, links_per_page=100, links="tree"), [8000])
    assert tree.hrefs(0, 0) == [f"/p/{j}" for j in range(1, 101)]
    assert tree.hrefs(0, 50) == []  # pages past the parents are leaves


def test_server_serves_the_model_and_counts() -> None:
    spec = WebSpec(hosts=2, pages=20, page_bytes=1_000, error_rate=0.5)
    with SyntheticWeb(spec, workers=2) as web, httpx.Client(trust_env=False) as client:
        assert web.web is not None
        first = client.get(web.seeds[0])
        assert first.content == web.web.page(0, 0)
        statuses = [client.get(f"{web.seeds[1]}p/{i}").status_code for i in range(1, 20)]
        assert 500 in statuses  # error_rate 0.5: some pages fail their first request...
        again = [client.get(f"{web.seeds[1]}p/{i}").status_code for i in range(1, 20)]
        assert set(again) == {200}  # ...and only the first
        client.get(f"{web.seeds[1]}robots.txt")
        stats = web.stats()
        assert (stats.pages, stats.robots, stats.hosts_seen) == (39, 1, 2)
        assert stats.max_active_per_host == 1
        web.reset()
        assert web.stats().pages == 0
    assert all(proc.poll() is not None for proc in web._procs) or not web._procs


def test_server_latency_can_be_turned_off_and_on() -> None:
    spec = WebSpec(hosts=1, pages=10, page_bytes=500, latency_ms=1.0, latency="constant")
    with SyntheticWeb(spec, workers=1) as web, httpx.Client(trust_env=False) as client:
        seed = web.seeds[0]
        web.reset(latency=False)
        for i in range(1, 4):
            assert client.get(f"{seed}p/{i}").status_code == 200
        assert (web.stats().pages, web.stats().delayed) == (3, 0)
        web.reset()  # on again by default
        for i in range(1, 4):
            client.get(f"{seed}p/{i}")
        assert web.stats().delayed == 3


def _exchange(url: str, data: bytes) -> bytes:
    """Send raw ``data`` to the host at ``url`` and read until the server closes."""
    host, _, port = url.split("/")[2].partition(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


def test_server_speaks_keep_alive_http_and_refuses_the_rest() -> None:
    spec = WebSpec(hosts=1, pages=5, page_bytes=200)
    with SyntheticWeb(spec, workers=1) as web:
        assert web.web is not None
        # Two requests in one packet, the second asking to close: two answers, then the end.
        both = _exchange(
            web.seeds[0], b"GET /p/1 HTTP/1.1\r\n\r\nGET /p/2 HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        assert both.count(b"HTTP/1.1 200 OK") == 2
        assert both.endswith(web.web.page(0, 2))
        assert _exchange(web.seeds[0], b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert _exchange(web.seeds[0], b"GET /" + b"x" * 20_000).startswith(b"HTTP/1.1 431 ")
        assert web.stats().pages == 2


@pytest.mark.skipif(sys.platform != "linux", reason="SO_TIMESTAMPNS is Linux's")
def test_arrival_is_when_the_kernel_received_the_request_not_when_it_was_read() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname()) as client:
        conn, _ = listener.accept()
        with conn:
            assert server._SO_TIMESTAMPNS is not None
            conn.setsockopt(socket.SOL_SOCKET, server._SO_TIMESTAMPNS, 1)
            # The kernel turns timestamping on asynchronously: wait (bounded) until a packet
            # comes stamped, as the server's listening sockets do by asking at start.
            deadline = time.monotonic() + 5
            while True:
                client.sendall(b"x")
                _, stamped, _, _ = conn.recvmsg(16, server._ANCILLARY_SIZE)
                if stamped or time.monotonic() > deadline:
                    break
            assert stamped, "the kernel never stamped a packet"
            before = time.time()
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")
            sent = time.time()
            time.sleep(0.05)  # the server is late to read: not synchronisation, the lateness
            _, ancillary, _, _ = conn.recvmsg(1024, server._ANCILLARY_SIZE)
            read = time.time()
    arrived = server._arrival(ancillary)
    assert before - 0.01 <= arrived <= sent + 0.01
    assert read - arrived >= 0.04  # a read-time stamp (the fallback) would fail this


def _check_summary(summary: dict[str, object]) -> None:
    assert summary["status"] == "ok", summary
    for key in (
        "pages_per_second",
        "cpu_per_1000_pages",
        "peak_rss_mb",
        "rss_per_discovered_url",
        "discovered",
    ):
        assert isinstance(summary[key], int | float), key
    latency = summary["latency_ms"]
    assert isinstance(latency, dict)
    assert set(latency) == {"p50", "p95", "p99"}
    lag = summary["loop_lag_ms"]
    assert isinstance(lag, dict)
    assert {"p50", "p99", "max"} <= set(lag)
    politeness = summary["politeness"]
    assert isinstance(politeness, dict)
    assert isinstance(politeness["max_concurrent_per_host"], int)
    assert isinstance(politeness["min_spacing_per_host_ms"], float)
    assert politeness["disallowed_requests"] == 0  # robots.txt obeyed (not a timing)
    assert summary["timeline"]
    busy = summary["machine_busy"]
    assert isinstance(busy, float)
    assert 0 < busy <= 1


def test_harness_runs_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A peer that is not installed is reported, and the run goes on.
    real_missing = peers.missing
    monkeypatch.setattr(
        peers,
        "missing",
        lambda name: "scrapy is not installed" if name == "scrapy" else real_missing(name),
    )
    options = BenchOptions(
        scenarios=[TINY],
        contenders=[Contender("ours"), Contender("ours", parse="hybrid"), Contender("scrapy")],
        out=tmp_path,
        echo=lambda line: None,
    )
    outcomes = run_bench(options)
    report = build_report(outcomes, harness.machine())
    path = write_json(report, tmp_path)
    loaded = json.loads(path.read_text())
    (tiny,) = loaded["scenarios"]
    assert tiny["server_ceiling"]["per_second"] > 0
    # Real-time scheduling for the servers: used where this machine allows it, said otherwise.
    ask = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    allowed = subprocess.run([sys.executable, "-c", ask], check=False, capture_output=True)
    assert tiny["server_realtime"] is (allowed.returncode == 0)
    summaries = tiny["summaries"]
    assert set(summaries) == {"ours", "ours[hybrid]", "scrapy"}
    _check_summary(summaries["ours"])
    _check_summary(summaries["ours[hybrid]"])
    # The budget counts URLs started (robots.txt skips included); a retry still pending when
    # it is spent is not fetched.
    assert 0 < summaries["ours"]["extra"]["outcomes"] <= TINY.budget
    assert summaries["scrapy"]["status"] == "unavailable"
    targets = {check["target"] for check in tiny["checks"]}
    assert "max in flight per host (server)" in targets
    assert "min spacing per host, ms (server)" in targets
    assert "share of the politeness bound (150/s)" in targets
    if importlib.util.find_spec("matplotlib") is None:
        assert write_plot(report, tmp_path) is None
        pytest.skip("matplotlib is not installed (the bench extra): no PNG to check")
    plot = write_plot(report, tmp_path)
    assert plot is not None
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_latency_is_judged_against_the_same_crawl_without_latency(tmp_path: Path) -> None:
    latency = scenario("latency", 0.001)  # the shipped scenario, 20 pages of a 50-page site
    assert latency.latency_reference
    options = BenchOptions(
        scenarios=[latency],
        contenders=[Contender("ours"), Contender("scrapy")],  # peers: not in this scenario
        out=tmp_path,
        ceiling=False,
        echo=lambda line: None,
    )
    (outcome,) = run_bench(options)
    reference = reference_name("ours")
    # Side by side: the reference runs just before each run it judges, on the same web; three
    # pairs unless --repeat says otherwise.
    assert [run.contender for run in outcome.runs] == [reference, "ours"] * 3
    (once,) = run_bench(dataclasses.replace(options, repeat=1, out=tmp_path / "once"))
    assert [run.contender for run in once.runs] == [reference, "ours"]
    for run in outcome.runs:
        assert run.result.status == "ok", run.result.detail
        assert run.server.pages > 0
        assert (run.server.delayed > 0) is (run.contender == "ours")
    report = build_report([outcome], harness.machine())
    (judged, *_) = [c for c in report["scenarios"][0]["checks"] if c["target"].startswith("share")]
    rates = {name: s["pages_per_second"] for name, s in report["scenarios"][0]["summaries"].items()}
    assert "CPU-bound from this crawl without latency" in judged["target"]
    overlap = latency.concurrency / (latency.web.latency_ms / 1000)
    assert judged["value"] == round(rates["ours"] / min(overlap, rates[reference]), 3)


def test_latency_target_sources_of_the_cpu_bound_rate() -> None:
    latency = SCENARIOS["latency"]
    ok = {"status": "ok", "politeness": {"max_concurrent_per_host": 1, "disallowed_requests": 0}}
    ours = {**ok, "pages_per_second": 900.0, "cpu_per_1000_pages": 2.0}
    single_host = {"ours": {**ok, "pages_per_second": 1_200.0}}

    def shares(
        summaries: dict[str, dict[str, Any]], single: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, tuple[float, bool | None]]:
        checks = check_scenario(latency, summaries, single)
        return {c["target"]: (c["value"], c["met"]) for c in checks if "share" in c["target"]}

    reference = {**ok, "pages_per_second": 960.0}
    both = shares({"ours": ours, reference_name("ours"): reference}, single_host)
    assert both == {
        "share of min(5,000/s overlap, 960/s CPU-bound from this crawl without latency)": (
            0.938,
            True,
        ),
        "share of min(5,000/s, 1,200/s single-host, run earlier)": (0.75, None),
    }
    assert shares({"ours": ours}, single_host) == {
        "share of min(5,000/s overlap, 1,200/s CPU-bound from single-host)": (0.75, False)
    }
    assert shares({"ours": ours}) == {
        "share of min(5,000/s overlap, 500/s CPU-bound from CPU time per page)": (1.8, True)
    }


def test_crawl_bench_command(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "crawler",
            "bench",
            "--scenario",
            "single-host",
            "--scale",
            "0.005",
            "--no-ceiling",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "single-host" in done.stdout
    assert "pages/s" in done.stdout
    report = json.loads((out / "results.json").read_text())
    _check_summary(report["scenarios"][0]["summaries"]["ours"])


def test_scenarios_and_options() -> None:
    assert list(SCENARIOS) == [
        "single-host", "fan-out", "latency", "big-frontier", "broad", "discovery"
    ]  # fmt: skip
    assert SCENARIOS["broad"].overrides["crawl.scope"] == "any"
    assert SCENARIOS["broad"].web.hosts >= 1_000
    discovery = SCENARIOS["discovery"]
    assert discovery.overrides["crawl.scope"] == "any"
    assert discovery.web.hosts >= 5_000  # far beyond the capped runs' max_hosts_in_memory
    assert discovery.web.seed_hosts == 1  # the rest are met through links
    assert SCENARIOS["fan-out"].web.hosts >= 1_000
    assert SCENARIOS["fan-out"].per_host_delay == 1.0
    big = SCENARIOS["big-frontier"]
    assert big.web.pages // big.web.links_per_page * big.web.links_per_page == 1_000_000
    small = scenario("fan-out", 0.01)
    assert (small.web.hosts, small.budget) == (10, 900)
    assert small.description == SCENARIOS["fan-out"].description + " [scaled x0.01]"
    assert scenario("fan-out", 1).description == SCENARIOS["fan-out"].description
    names = [c.name for c in contenders(["scrapy"], ["default", "httpcore"], ["inline"])]
    assert names == ["ours[inline]", "ours[httpcore,inline]", "scrapy"]
    with pytest.raises(ValueError, match="unknown peer"):
        contenders(["wget"], [], [])
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("nope")


def test_figures() -> None:
    assert percentiles([], 50) is None
    assert percentiles([float(v) for v in range(1, 101)], 50, 99) == {"p50": 50.0, "p99": 99.0}
    result = RunResult(crawler="ours")
    # RSS grows 40 bytes per URL while URLs are found, then stays flat while draining.
    result.samples = [(t, t * 10, 1_000_000 + 40 * t * 1000, t * 1000) for t in range(1, 11)]
    result.samples += [(t, t * 10, 1_000_000 + 40 * 10_000, 10_000) for t in range(11, 15)]
    memory = memory_figures(result)
    assert memory is not None
    assert memory["bytes_per_discovered_url"] == pytest.approx(40, abs=1)
    assert memory["drain_growth_share"] == 0


def test_machine_busy_share_from_proc_stat() -> None:
    stat = "cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 3 0\nintr 1\n"
    # Busy: user, nice, system, irq, softirq, steal; not idle or I/O wait; guest is in user.
    assert machine_ticks(stat) == (170, 990)
    assert machine_ticks("intr 1\n") is None
    assert busy_share((170, 990), (245, 1090)) == 0.75
    assert busy_share((170, 990), (170, 990)) is None  # no time passed
    assert busy_share(None, (245, 1090)) is None
    now = machine_ticks()  # this machine's own /proc/stat
    assert now is not None
    assert 0 <= now[0] <= now[1]


def test_fan_out_says_when_the_machine_not_the_scheduling_held_it_back() -> None:
    fan_out = SCENARIOS["fan-out"]
    politeness = {
        "max_concurrent_per_host": 1,
        "min_spacing_per_host_ms": 1000.3,
        "short_gaps": 0,
        "disallowed_requests": 0,
    }

    def busy_row(rate: float, busy: float | None) -> tuple[str, float] | None:
        ours = {"status": "ok", "pages_per_second": rate, "politeness": politeness}
        checks = check_scenario(fan_out, {"ours": {**ours, "machine_busy": busy}})
        (share,) = [c for c in checks if c["target"].startswith("share of the politeness")]
        assert share["met"] is (rate >= 950)  # the target itself is judged as before
        rows = [c for c in checks if c["target"].startswith("machine's cores busy")]
        for row in rows:
            assert row["goal"] is None
            assert row["met"] is None
        return (rows[0]["target"], rows[0]["value"]) if rows else None

    saturated = "machine's cores busy during the crawl (CPU-bound: the machine, not the "
    saturated += "scheduling, held the share back)"
    assert busy_row(870.0, 0.97) == (saturated, 0.97)
    assert busy_row(870.0, 0.6) == ("machine's cores busy during the crawl", 0.6)
    assert busy_row(970.0, 0.97) == ("machine's cores busy during the crawl", 0.97)
    assert busy_row(870.0, None) is None


def test_stages_report_each_stage() -> None:
    from crawler.bench.stages import run_stages

    lines: list[str] = []
    run_stages(20, lines.append)
    labels = " | ".join(lines)
    for stage in ("parse_html", "build_outcome", "to_thread", "sink", "our Fetcher.fetch"):
        assert stage in labels
    assert all(line.endswith("ms CPU/page") for line in lines)


# The smallest benchmark there is, in case a check below failed to stop it from starting.
TINY_FLAGS = ["--scenario", "single-host", "--scale", "0.0001", "--no-ceiling"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--scenario", "nope", "unknown scenario 'nope' (known: single-host, fan-out"),
        ("--vs", "wget", "unknown peer 'wget' (known: scrapy"),
        ("--transport", "pigeon", "unknown transport 'pigeon' (known: default, httpcore"),
        ("--parse", "telepathy", "unknown parse mode 'telepathy' (known: default, process"),
    ],
)
def test_bench_unknown_names_are_usage_errors(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["bench", *TINY_FLAGS, option, value, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "internal error" not in result.output
    assert not out.exists()  # nothing ran


def test_bench_out_onto_a_file_is_one_line_and_the_file_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.write_text("mine\n")
    result = CliRunner().invoke(app, ["bench", *TINY_FLAGS, "--out", str(out)])
    assert (result.exit_code, result.output) == (
        1,
        f"error: --out {out} is a file: it must be a directory for the results\n",
    )
    assert out.read_text() == "mine\n"


def test_bench_with_a_config_that_does_not_load_fails_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "nonexistent.toml"
    result = CliRunner().invoke(
        app, ["bench", *TINY_FLAGS, "--out", str(out), "--config", str(missing)]
    )
    assert (result.exit_code, result.output) == (
        1,
        f"error: cannot read config file {missing}: No such file or directory\n",
    )
    assert not out.exists()  # nothing ran
