#!/usr/bin/env python3
"""End-to-end test of the container job, for real: build the image offline with podman, run
it against a local demo site, stop it with SIGTERM mid-crawl, resume it.

`make docker-test` runs this; `make docker` runs it with `--build-only`. Needs root, podman
and runc (Debian packages `podman runc`), and `debootstrap` the first time. Steps:

1. The base image: `localhost/crawler-base:bookworm`, Debian bookworm's Python 3.11 made with
   `debootstrap --variant=minbase` and `podman import`; reused when present (`--rebuild-base`).
2. The wheelhouse: `build/wheelhouse`, every file in requirements.lock for that base, checked
   against the lock's hashes; downloaded again only when the lock changes.
3. The image: `podman build --network none` from the Dockerfile, pip pointed at the wheelhouse.
4. The job, with the demo site served on 127.0.0.1 from this process (so the site counts every
   request), a mounted seeds file and a named volume on /data:
   run 1 (the image's default command) completes; run 2 (a fresh volume, a mounted TOML config)
   gets `podman stop` (SIGTERM) mid-crawl and exits 143; run 3 (same volume) resumes and
   completes. The database must hold exactly the site's pages, and run 3 must not fetch again
   anything run 2 stored (only what was in flight at the stop may be fetched twice).

Every wait has a deadline. Exit code 0 when every check passed, 1 otherwise, 2 when the machine
cannot run it (not root, no podman). Containers and volumes it made are removed (`--keep` keeps
the volumes for a look at the databases).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: the crawler package is the repo's own

from crawler.demo import SiteServer, SiteSpec, expected_statuses  # noqa: E402

BUILD = REPO / "build"
WHEELHOUSE = BUILD / "wheelhouse"
WORK = BUILD / "docker-test"
LOCK = REPO / "requirements.lock"

SUITE = "bookworm"  # Debian 12: Python 3.11, glibc 2.36
BASE_PYTHON = "3.11"
BASE_GLIBC_MINOR = 36
BASE_IMAGE = f"localhost/crawler-base:{SUITE}"
IMAGE = "localhost/crawler:latest"
CRAWLER_UID = 10001

SPEC = SiteSpec(pages=400, latency=0.05)  # about 480 requests; 6 s a run at 80 requests/s
STOP_AFTER_REQUESTS = 60  # run 2 is stopped once the site has answered this many
GRACE_PERIOD = 5
CONCURRENCY = 8
# Both ways of configuring the job. Every run: environment variables.
JOB_ENV = {
    "CRAWL_POLITENESS__PER_HOST_DELAY": "0",
    "CRAWL_RUNTIME__GRACE_PERIOD": str(GRACE_PERIOD),
    "CRAWL_RUNTIME__STATS_INTERVAL": "2",
}
# Run 1 runs the image's default command, so the rest comes from the environment too.
RUN1_ENV = {
    "CRAWL_CRAWL__CONCURRENCY": str(CONCURRENCY),
    "CRAWL_POLITENESS__PER_HOST_CONCURRENCY": "4",
}
# Runs 2 and 3 get the rest from a mounted TOML file, passed with --config.
JOB_CONFIG = f"""\
[crawl]
concurrency = {CONCURRENCY}
[politeness]
per_host_concurrency = 4
"""

DEBOOTSTRAP_TIMEOUT = 900.0
BUILD_TIMEOUT = 900.0
RUN_TIMEOUT = 180.0
PODMAN_TIMEOUT = 120.0
STOP_TIMEOUT = 30  # podman stop: SIGTERM, then SIGKILL after this many seconds


class Failure(Exception):
    """A step that later steps depend on failed: stop here."""


class Unavailable(Exception):
    """This machine cannot run the test (not root, no podman)."""


@dataclass
class Outcome:
    """How one container run ended."""

    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def summary(self) -> str:
        """crawl's summary line (stdout), else the last line on stderr, shortened."""
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        lines = lines[:1] or [line.strip() for line in self.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        return last if len(last) <= 150 else last[:147] + "..."


@dataclass
class Report:
    started: float = field(default_factory=time.monotonic)
    passed: int = 0
    failed: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.log(f"{'PASS' if ok else 'FAIL'}  {name}{f': {detail}' if detail else ''}")
        if ok:
            self.passed += 1
        else:
            self.failed.append(name)
        return ok


class Podman:
    """podman as it works here: the runc runtime, and rlimits at or below the current ones."""

    def __init__(self) -> None:
        if shutil.which("podman") is None or shutil.which("runc") is None:
            raise Unavailable("podman and runc are not installed (apt-get install podman runc)")
        limits = []
        for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
            soft, _ = resource.getrlimit(which)
            n = 1024 if soft == resource.RLIM_INFINITY else min(1024, soft)
            limits.append(f"--ulimit={name}={n}:{n}")
        self.limits = limits

    def __call__(
        self, *args: str, timeout: float = PODMAN_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = ["podman", "--runtime", "runc", *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"timed out after {timeout:.0f}s: podman {' '.join(args)}") from None
        if check and done.returncode != 0:
            raise Failure(f"podman {args[0]} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def image_id(self, image: str) -> str | None:
        done = self("image", "inspect", "--format", "{{.Id}}", image, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def image_size(self, image: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", image).stdout)


# --- 1. the base image ---------------------------------------------------------------------


def ensure_base(podman: Podman, report: Report, rebuild: bool) -> None:
    if podman.image_id(BASE_IMAGE) and not rebuild:
        report.log(f"base image {BASE_IMAGE}: present, reused")
        return
    if shutil.which("debootstrap") is None:
        raise Unavailable("debootstrap is not installed (apt-get install debootstrap)")
    rootfs = BUILD / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    report.log(f"base image {BASE_IMAGE}: debootstrap {SUITE} (about a minute)")
    include = "--include=python3,python3-venv,ca-certificates"
    command = ["debootstrap", "--variant=minbase", include, SUITE, str(rootfs)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT, check=False
        )
        if done.returncode != 0:
            tail = "\n".join(done.stdout.splitlines()[-15:])
            raise Failure(f"debootstrap failed ({done.returncode}):\n{tail}\n{done.stderr}")
        # What a container never uses: package caches and lists, docs, man pages, locales.
        for pattern in (
            "var/cache/apt/archives/*.deb",
            "var/cache/apt/*.bin",
            "var/lib/apt/lists/*",
            "usr/share/doc/*",
            "usr/share/man/*",
            "usr/share/info/*",
            "usr/share/locale/*",
            "var/log/*",
        ):
            for path in rootfs.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                ["podman", "import", "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                timeout=PODMAN_TIMEOUT,
                check=False,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait(timeout=PODMAN_TIMEOUT)
        if imported.returncode != 0 or tar.returncode != 0:
            raise Failure(f"podman import failed: {imported.stderr.strip()}")
    except subprocess.TimeoutExpired as exc:
        raise Failure(f"timed out: {exc.cmd}") from None
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)  # 130 MB that the image now holds
    report.log(f"base image {BASE_IMAGE}: built, {podman.image_size(BASE_IMAGE) / 1e6:.1f} MB")


# --- 2. the wheelhouse ---------------------------------------------------------------------


def _wheel_platforms() -> list[str]:
    # The base's interpreter decides which wheels fit, not this one: glibc 2.36 and older.
    arch = platform.machine()
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(BASE_GLIBC_MINOR, 4, -1)]
    aliases = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
    return tags + [f"{alias}_{arch}" for alias in aliases]


def ensure_wheelhouse(report: Report) -> None:
    platforms = _wheel_platforms()
    stamp = WHEELHOUSE / ".stamp"
    digest = hashlib.sha256(LOCK.read_bytes() + "\n".join(platforms).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        report.log(f"wheelhouse {WHEELHOUSE.relative_to(REPO)}: matches requirements.lock")
        return
    shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    WHEELHOUSE.mkdir(parents=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--require-hashes", "--only-binary=:all:", "--dest", str(WHEELHOUSE)]
    command += ["--python-version", BASE_PYTHON, "--implementation", "cp"]
    command += [f"--platform={tag}" for tag in platforms]
    command += ["--requirement", str(LOCK)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise Failure("pip download timed out") from None
    if done.returncode != 0:
        raise Failure(f"pip download failed:\n{done.stderr.strip()}")
    stamp.write_text(digest)
    wheels = list(WHEELHOUSE.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 1e6
    report.log(f"wheelhouse: {len(wheels)} wheels, {size:.1f} MB, hashes checked")


# --- 3. the image --------------------------------------------------------------------------


def build_image(podman: Podman, report: Report) -> None:
    log_path = BUILD / "docker-build.log"
    previous = _built_ids(log_path.read_text()) if log_path.exists() else []
    report.log(f"podman build --network none -t {IMAGE} (log: {log_path.relative_to(REPO)})")
    done = podman(
        "build",
        "--pull=never",
        "--network=none",
        *podman.limits,
        f"--build-arg=PYTHON_IMAGE={BASE_IMAGE}",
        f"--build-arg=WHEELS={WHEELHOUSE.relative_to(REPO)}",
        "--build-arg=PIP_NO_INDEX=1",
        f"--build-arg=VERSION={_project_version()}",
        f"--tag={IMAGE}",
        str(REPO),
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    log_path.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        tail = "\n".join(output.splitlines()[-25:])
        hint = ""
        if "which is not installed" in output:  # `pip check` in the Dockerfile
            hint = "\nrequirements.lock lacks a dependency of pyproject.toml: run `make lock`"
        raise Failure(f"podman build failed ({done.returncode}):\n{tail}{hint}")
    # The previous build's layers that this one no longer uses (its image, and the cache of
    # steps whose input changed) are untagged now: remove them, children first, so repeated
    # builds don't fill the disk. One still in use (a container, another tag) stays.
    current = {image_id[:11] for image_id in _built_ids(done.stdout)}
    for image_id in reversed(previous):
        if image_id[:11] not in current:
            podman("rmi", image_id, check=False)
    image, base = podman.image_size(IMAGE), podman.image_size(BASE_IMAGE)
    report.log(
        f"image {IMAGE}: {image / 1e6:.1f} MB = base {base / 1e6:.1f} MB"
        f" + {(image - base) / 1e6:.1f} MB"
    )


def _built_ids(log: str) -> list[str]:
    """The IDs of the images (layers) a `podman build` log names, in build order."""
    return re.findall(r"^--> ([0-9a-f]{11,64})$", log, flags=re.MULTILINE)


def _project_version() -> str:
    import tomllib

    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def check_image(podman: Podman, report: Report) -> None:
    image, base = podman.image_size(IMAGE), podman.image_size(BASE_IMAGE)
    report.check(
        "the final stage adds under 80 MB", image - base < 80e6, f"{(image - base) / 1e6:.1f} MB"
    )
    info = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    config = info.get("Config", {})
    labels = config.get("Labels") or info.get("Labels") or {}
    report.check(
        "OCI labels, exec-form entrypoint behind dumb-init, non-root user",
        labels.get("org.opencontainers.image.title") == "crawler"
        and config.get("Entrypoint", [])[:2] == ["dumb-init", "--"]
        and config.get("User") == f"{CRAWLER_UID}:{CRAWLER_UID}",
        f"entrypoint {config.get('Entrypoint')}, user {config.get('User')}",
    )
    # One shell in the image: what must and must not be in it.
    script = r"""
        set -u
        test "$(id -u)" = 10001 || echo "runs as uid $(id -u)"
        for p in /opt/venv/bin/pip /opt/venv/lib/python3*/site-packages/setuptools /src \
                 /root/.cache /wheels; do test ! -e "$p" || echo "present: $p"; done
        for c in gcc cc make; do ! command -v "$c" >/dev/null || echo "compiler: $c"; done
        find /opt/venv -name tests -path '*crawler*' | sed 's/^/tests: /'
        python -c 'import crawler.cli.app, crawler.fetch.client, crawler.parse.html, uvloop, msgspec, selectolax'
    """
    done = podman(
        "run", "--rm", *podman.limits, "--entrypoint", "/bin/sh", IMAGE, "-c", script, check=False
    )
    problems = (done.stdout + done.stderr).strip()
    report.check(
        "image: uid 10001; no pip, setuptools, sources, caches, compilers or tests; imports work",
        done.returncode == 0 and not problems,
        problems.replace("\n", "; "),
    )


# --- 3b. the URL and parse unit tests, on the image's own Python ----------------------------

# The layers a Python build's quirks reach first (a `re` bug in Debian's 3.11.2 once split every
# relative link wrongly), tested against the crawler as installed in the image.
IMAGE_TESTS = ("tests/test_urls.py", "tests/test_parse.py", "tests/test_outcome.py")
TEST_TOOLS = BUILD / "test-tools"


def stage_test_tools() -> None:
    """pytest and what it needs on the image's Python, copied file by file from this
    environment (all pure Python), for a read-only mount on PYTHONPATH: the image has neither
    pip nor a network, and must not carry test tools itself."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    shutil.rmtree(TEST_TOOLS, ignore_errors=True)
    image_env = {"python_version": BASE_PYTHON, "sys_platform": "linux", "extra": ""}
    todo, done = ["pytest"], set()
    while todo:
        dist = distribution(todo.pop())
        name = dist.metadata["Name"].lower()
        if name in done:
            continue
        done.add(name)
        for file in dist.files or ():
            source = Path(str(dist.locate_file(file)))
            if source.is_file() and "__pycache__" not in file.parts:
                target = TEST_TOOLS / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(image_env):
                todo.append(requirement.name)


def test_in_image(podman: Podman, report: Report) -> None:
    stage_test_tools()
    script = 'python -c "import platform; print(platform.python_version())"; python -m pytest "$@"'
    done = podman(
        "run", "--rm", "--network=none", *podman.limits,
        f"--volume={REPO / 'tests'}:/src/tests:ro", f"--volume={TEST_TOOLS}:/test-tools:ro",
        "--env=PYTHONPATH=/test-tools", "--workdir=/src", "--entrypoint=/bin/sh", IMAGE,
        "-c", script, "sh", "-q", "-p", "no:cacheprovider", "-W", "error", "-c", "/dev/null",
        *IMAGE_TESTS,
        timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    version, summary = (lines[0], lines[-1]) if len(lines) > 1 else ("?", done.stderr.strip())
    report.check(
        f"the URL and parse unit tests pass inside the image (Python {version})",
        done.returncode == 0,
        summary if done.returncode == 0 else "\n".join(lines[-30:]) + done.stderr[-2000:],
    )


# --- 4. the job ----------------------------------------------------------------------------


@dataclass
class Job:
    """Runs the image against the site with a seeds file, a config file and a named volume."""

    podman: Podman
    seeds: Path
    config: Path
    names: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def volume(self, label: str) -> str:
        name = f"crawler-test-{os.getpid()}-{label}"
        self.podman("volume", "create", name)
        self.volumes.append(name)
        return name

    def run_args(
        self, name: str, volume: str, command: Sequence[str], *, detach: bool, env: dict[str, str]
    ) -> list[str]:
        self.names.append(name)
        args = ["run", "--name", name, "--network=host", *self.podman.limits]
        args += ["--detach"] if detach else []
        args += [f"--volume={self.seeds}:/seeds.txt:ro", f"--volume={volume}:/data"]
        args += [f"--volume={self.config}:/etc/crawler/crawl.toml:ro"]
        for key, value in {**JOB_ENV, **env}.items():
            args += ["--env", f"{key}={value}"]
        return [*args, IMAGE, *command]

    def run(
        self,
        label: str,
        volume: str,
        command: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> Outcome:
        """Run to the end in the foreground."""
        name = f"crawler-test-{os.getpid()}-{label}"
        args = self.run_args(name, volume, command, detach=False, env=env or {})
        start = time.monotonic()
        try:
            done = self.podman(*args, timeout=RUN_TIMEOUT, check=False)
        finally:
            self.podman("rm", "--force", "--volumes", "--ignore", name, check=False)
        return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - start)

    def start(self, label: str, volume: str, command: Sequence[str] = ()) -> str:
        """Start in the background; returns the container's name."""
        name = f"crawler-test-{os.getpid()}-{label}"
        self.podman(*self.run_args(name, volume, command, detach=True, env={}))
        return name

    def stop(self, name: str) -> Outcome:
        """`podman stop`: SIGTERM, and SIGKILL after STOP_TIMEOUT. Seconds: the stop's own."""
        start = time.monotonic()
        self.podman("stop", f"--time={STOP_TIMEOUT}", name, timeout=STOP_TIMEOUT + 60)
        seconds = time.monotonic() - start
        code = int(self.podman("wait", name, timeout=60).stdout.strip())
        logs = self.podman("logs", name)
        self.podman("rm", "--force", "--volumes", name)
        return Outcome(code, logs.stdout, logs.stderr, seconds)

    def cleanup(self, keep_volumes: bool) -> None:
        for name in self.names:
            self.podman("rm", "--force", "--volumes", "--ignore", name, check=False)
        if not keep_volumes:
            for volume in self.volumes:
                self.podman("volume", "rm", "--force", volume, check=False)

    def database(self, volume: str) -> Database:
        mountpoint = Path(
            self.podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip()
        )
        return Database.read(mountpoint / "crawl.db")


@dataclass
class Database:
    statuses: dict[str, int | None]  # URL path -> HTTP status
    states: dict[str, int]  # frontier state -> count
    owner_uid: int

    @classmethod
    def read(cls, path: Path) -> Database:
        # A copy: opening the live file as root could leave root-owned -wal/-shm files behind,
        # which the crawler user could not open on the next run.
        if not path.exists():
            raise Failure(f"no database in the volume: {path}")
        with tempfile.TemporaryDirectory() as tmp:
            for suffix in ("", "-wal"):
                if Path(f"{path}{suffix}").exists():
                    shutil.copy(f"{path}{suffix}", f"{tmp}/crawl.db{suffix}")
            conn = sqlite3.connect(f"{tmp}/crawl.db")
            try:
                pages = conn.execute("SELECT url, status FROM pages").fetchall()
                states = dict(conn.execute("SELECT state, count(*) FROM frontier GROUP BY state"))
            finally:
                conn.close()
        statuses = {_path(url): status for url, status in pages}
        return cls(statuses, states, path.stat().st_uid)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _site_paths(counts: Counter[str]) -> Counter[str]:
    return Counter({p: n for p, n in counts.items() if p != "/robots.txt"})


def test_job(podman: Podman, report: Report, keep: bool) -> None:
    expected = expected_statuses(SPEC)
    WORK.mkdir(parents=True, exist_ok=True)
    with SiteServer(SPEC) as site:
        report.log(f"demo site: {SPEC.pages} pages, {len(expected)} URLs at {site.base_url}")
        seeds, config = WORK / "seeds.txt", WORK / "crawl.toml"
        seeds.write_text(f"# the demo site, served by scripts/docker-test.py\n{site.base_url}/\n")
        config.write_text(JOB_CONFIG)
        for path in (seeds, config):
            path.chmod(0o644)
        job = Job(podman, seeds, config)
        try:
            _exit_codes(job, report)
            _run_once(job, site, expected, report)
            _stop_and_resume(job, site, expected, report)
            _stop_at_startup(job, report)
        finally:
            job.cleanup(keep_volumes=keep)
            if keep:
                report.log(f"volumes kept: {' '.join(job.volumes)}")


def _exit_codes(job: Job, report: Report) -> None:
    volume = job.volume("codes")
    out = job.run("version", volume, ["--version"])
    report.check("crawl --version in the image", out.code == 0, f"exit {out.code}: {out.summary}")
    out = job.run("noseeds", volume, ["run", "/no/such/seeds.txt"])
    report.check(
        "exit 1 with one line on stderr for a missing seeds file",
        out.code == 1 and len(out.stderr.strip().splitlines()) == 1,
        f"exit {out.code}: {out.stderr.strip()}",
    )
    out = job.run("usage", volume, ["run", "--no-such-option"])
    report.check("exit 2 for a usage error", out.code == 2, f"exit {out.code}")


def _run_once(job: Job, site: SiteServer, expected: dict[str, int], report: Report) -> None:
    volume = job.volume("run1")
    site.reset_counts()
    # The image's default command, configured by the environment alone.
    out = job.run("run1", volume, env=RUN1_ENV)
    counts = _site_paths(site.request_counts())
    report.check(
        "run 1 (default command, named volume) exits 0",
        out.code == 0,
        f"exit {out.code} in {out.seconds:.1f}s; {out.summary}",
    )
    db = job.database(volume)
    report.check(
        "run 1: the database holds every page of the site with its status, nothing else",
        db.statuses == expected,
        _diff(db.statuses, expected),
    )
    twice = sorted(p for p, n in counts.items() if n > 1)
    report.check(
        "run 1: the site saw each page requested exactly once",
        not twice and set(counts) == set(expected),
        f"{sum(counts.values())} requests for {len(expected)} pages; twice: {twice[:5]}",
    )
    report.check(
        "run 1: the database belongs to the crawler user (uid 10001)",
        db.owner_uid == CRAWLER_UID,
        f"uid {db.owner_uid}",
    )


def _stop_and_resume(job: Job, site: SiteServer, expected: dict[str, int], report: Report) -> None:
    volume = job.volume("run2")
    command = ["run", "/seeds.txt", "--db", "/data/crawl.db", "--config", "/etc/crawler/crawl.toml"]
    site.reset_counts()
    name = job.start("run2", volume, command)
    _check_processes(job, name, report)
    deadline = time.monotonic() + 60
    while site.total_requests < STOP_AFTER_REQUESTS and time.monotonic() < deadline:
        time.sleep(0.02)
    at_stop = site.total_requests
    out = job.stop(name)
    counts2 = _site_paths(site.request_counts())
    report.check(
        f"run 2: SIGTERM (podman stop) after {at_stop} requests: exit 143, drained in time",
        out.code == 143 and out.seconds < GRACE_PERIOD + 5,
        f"exit {out.code}, stopped in {out.seconds:.1f}s; {out.summary}",
    )
    db2 = job.database(volume)
    stored2 = set(db2.statuses)
    report.check(
        "run 2: stopped mid-crawl; what it fetched is stored",
        0 < len(stored2) < len(expected) and stored2 <= set(expected),
        f"{len(stored2)} of {len(expected)} pages stored, {sum(counts2.values())} requested;"
        f" frontier {db2.states}",
    )

    site.reset_counts()
    out = job.run("run3", volume, command)
    counts3 = _site_paths(site.request_counts())
    report.check(
        "run 3 (same volume) resumes and exits 0",
        out.code == 0,
        f"exit {out.code} in {out.seconds:.1f}s; {out.summary}",
    )
    db3 = job.database(volume)
    report.check(
        "run 3: the database holds every page of the site with its status, nothing else",
        db3.statuses == expected,
        _diff(db3.statuses, expected),
    )
    unfinished = {s: n for s, n in db3.states.items() if s in ("pending", "leased")}
    report.check("run 3: the frontier is finished", not unfinished, f"frontier {db3.states}")
    refetched = sorted(set(counts3) & stored2)
    in_flight = set(counts2) - stored2  # requested by run 2, not stored: in flight at the stop
    repeated = sorted(p for p in expected if counts2[p] + counts3[p] > 1)
    twice_in_a_run = sorted(p for p in expected if counts2[p] > 1 or counts3[p] > 1)
    missing = sorted(p for p in expected if counts2[p] + counts3[p] == 0)
    report.check(
        "run 3 fetched nothing run 2 stored; only pages in flight at the stop were fetched twice",
        not refetched
        and set(repeated) <= in_flight
        and len(repeated) <= CONCURRENCY
        and not twice_in_a_run
        and not missing
        and set(counts3) <= set(expected),
        f"run 2: {sum(counts2.values())} requests, {len(stored2)} stored, {len(in_flight)} in"
        f" flight; run 3: {sum(counts3.values())} requests; fetched twice: {len(repeated)}"
        f" {repeated[:5]}; refetched stored: {refetched[:5]}; missing: {missing[:5]}",
    )


def _check_processes(job: Job, name: str, report: Report) -> None:
    # Until crawl has been exec'd (dumb-init forks first), the child still looks like PID 1.
    deadline = time.monotonic() + 10
    rows: list[list[str]] = []
    while time.monotonic() < deadline:
        top = job.podman("top", name, "pid", "user", "args", check=False).stdout
        rows = [line.split(None, 2) for line in top.strip().splitlines()[1:]]
        if any(len(r) == 3 and r[0] != "1" and "/crawl " in r[2] for r in rows):
            break
        time.sleep(0.1)
    pid1 = next((r[2] for r in rows if len(r) == 3 and r[0] == "1"), "")
    crawl = [r for r in rows if len(r) == 3 and r[0] != "1" and "/crawl " in r[2]]
    report.check(
        "PID 1 is dumb-init; crawl runs under it as the crawler user",
        pid1.startswith("dumb-init") and len(crawl) == 1 and crawl[0][1] == "crawler",
        f"processes: {[' '.join(r) for r in rows]}",
    )


def _stop_at_startup(job: Job, report: Report) -> None:
    # The moment a plain PID 1 would ignore SIGTERM: before the interpreter has its handlers.
    volume = job.volume("startup")
    out = job.stop(job.start("startup", volume))
    report.check(
        "SIGTERM right after start: exit 143 at once (not ignored until SIGKILL)",
        out.code == 143 and out.seconds < 10,
        f"exit {out.code}, stopped in {out.seconds:.1f}s; {out.summary or '(no output)'}",
    )


def _diff(got: dict[str, int | None], want: dict[str, int]) -> str:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(p for p in set(got) & set(want) if got[p] != want[p])
    if not (missing or extra or wrong):
        return f"{len(got)} pages"
    return f"{len(got)} pages; missing {missing[:5]}, extra {extra[:5]}, wrong status {wrong[:5]}"


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-only", action="store_true", help="build the image; no test")
    parser.add_argument("--rebuild-base", action="store_true", help="debootstrap the base anew")
    parser.add_argument("--keep", action="store_true", help="keep the test's volumes")
    args = parser.parse_args(argv)
    report = Report()
    try:
        if os.geteuid() != 0:
            raise Unavailable("needs root (podman with the runc runtime, debootstrap)")
        podman = Podman()
        report.log(f"{podman('--version').stdout.strip()}, runc; {platform.machine()}")
        ensure_base(podman, report, rebuild=args.rebuild_base)
        ensure_wheelhouse(report)
        build_image(podman, report)
        if args.build_only:
            return 0
        check_image(podman, report)
        test_in_image(podman, report)
        test_job(podman, report, keep=args.keep)
    except Unavailable as exc:
        print(f"docker-test: cannot run here: {exc}", file=sys.stderr)
        return 2
    except Failure as exc:
        report.failed.append(str(exc).splitlines()[0])
        report.log(f"FAIL  {exc}")
    if report.failed:
        report.log(f"failed: {'; '.join(report.failed)}")
    report.log("done")
    print(f"docker-test: {report.passed} passed, {len(report.failed)} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
