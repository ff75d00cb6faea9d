"""The public Python API: ``crawler.run`` blocks like ``crawl run``; ``await crawler.crawl``
runs inside an event loop that is already running (an async program, Jupyter).

Both take the seeds (URLs, one URL, or the ``Path`` of a seeds file), the database, the config
(a :class:`~crawler.config.Config`, the path of a TOML file, or None for the defaults) and the
keyword overrides of :class:`Overrides`, the CLI's flags by their config names. They check all of
it before any request, as the CLI does, and raise a :class:`~crawler.errors.FatalError` subclass
with the CLI's message: :class:`ConfigError`, :class:`SeedsError`, :class:`StorageError`. What
goes wrong with one URL is never raised: it is recorded, and counted in the returned report.
``crawl run`` (:mod:`crawler.cli.run`) is a thin layer over this module: flags in, summary
and exit code out.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal, TypedDict, Unpack

from crawler import runtime
from crawler.abort import AbortController, AbortSignal
from crawler.archive.bodies import bodies_path
from crawler.config import Config
from crawler.config_load import load_config
from crawler.engine import Crawl, CrawlReport
from crawler.errors import ConfigError, FatalError, SeedsError, StorageError, find_fatal
from crawler.fetch.cookies_file import read_cookies_file
from crawler.frontier.seeds import Seeds, parse_seeds, read_seeds
from crawler.parse.hook import Hook, HookUnusable, hook_name
from crawler.store.snapshot import crawl_database_version
from crawler.store.writer_lock import WriterLock

log = logging.getLogger("crawler")

DEFAULT_DB = Path("crawl.db")
"""The crawl database when none is given (``crawl run`` without ``--db``, :func:`run` and
:func:`crawl` without ``db``): relative, so in the working directory."""
SeedsSource = Path | str | Iterable[str]
"""A seeds file (a ``Path``: one URL per line, as for ``crawl run``), one URL (a ``str``), or
URLs (any other iterable of ``str``)."""
ConfigSource = Config | str | os.PathLike[str] | None
"""A config built in code, the path of a TOML file, or None: the defaults. ``CRAWL_*``
environment variables override a file and the defaults, as for ``crawl run``; a ``Config``
is used as given."""


class Overrides(TypedDict, total=False):
    """The keyword overrides of :func:`run` and :func:`crawl`: the ``crawl run`` flags, named
    as their config keys. Each replaces its key of the config (file, environment or code)."""

    concurrency: int
    """``crawl.concurrency`` (``--concurrency``)."""
    max_pages: int
    """``crawl.max_pages`` (``--max-pages``)."""
    max_depth: int
    """``crawl.max_depth`` (``--max-depth``)."""
    scope: Literal["hosts", "domains", "any"]
    """``crawl.scope`` (``--scope``)."""
    allow_domains: Sequence[str]
    """``crawl.allow_domains`` (``--allow-domain``, repeated)."""
    user_agent: str
    """``crawl.user_agent`` (``--user-agent``)."""
    robots: bool
    """``politeness.robots`` (``--no-robots`` is ``robots=False``)."""
    grace_period: float
    """``runtime.grace_period`` (``--grace-period``)."""
    uvloop: bool
    """``runtime.uvloop`` (``--uvloop/--no-uvloop``); :func:`crawl` runs on the caller's loop."""
    progress: Literal["auto", "live", "plain", "off"]
    """``output.progress`` (``--quiet`` is ``progress="off"``)."""
    log_format: Literal["text", "json"]
    """``output.log_format`` (``--log-format``)."""
    metrics_port: int
    """``output.metrics_port`` (``--metrics-port``)."""
    metrics_host: str
    """``output.metrics_host`` (``--metrics-host``)."""
    warc_dir: str | os.PathLike[str]
    """``output.warc_dir`` (``--warc DIR``)."""
    store_bodies: bool
    """``output.store_bodies`` (``--store-bodies``)."""
    sitemaps: bool
    """``sitemaps.enabled`` (``--sitemaps``)."""
    extract: Hook | str
    """``extract.hook``: a module's top-level function (found by its name in the parse worker;
    a lambda or a nested function is refused), or its name, ``"package.module:function"``."""


OVERRIDE_KEYS: Mapping[str, str] = {
    "concurrency": "crawl.concurrency",
    "max_pages": "crawl.max_pages",
    "max_depth": "crawl.max_depth",
    "scope": "crawl.scope",
    "allow_domains": "crawl.allow_domains",
    "user_agent": "crawl.user_agent",
    "robots": "politeness.robots",
    "grace_period": "runtime.grace_period",
    "uvloop": "runtime.uvloop",
    "progress": "output.progress",
    "log_format": "output.log_format",
    "metrics_port": "output.metrics_port",
    "metrics_host": "output.metrics_host",
    "warc_dir": "output.warc_dir",
    "store_bodies": "output.store_bodies",
    "sitemaps": "sitemaps.enabled",
    "extract": "extract.hook",
}
"""The config key of each of :class:`Overrides`."""


def run(
    seeds: SeedsSource,
    *,
    db: str | os.PathLike[str] = DEFAULT_DB,
    config: ConfigSource = None,
    fresh: bool = False,
    **overrides: Unpack[Overrides],
) -> CrawlReport:
    """Crawl from ``seeds`` into the SQLite database ``db`` (an existing one is resumed; with
    ``fresh``, deleted first) and return the report, as ``crawl run`` does: on a new event
    loop (uvloop unless ``uvloop=False``), with the garbage collector tuned for a crawl for
    the rest of the process (``runtime.tune_gc``). The first SIGINT or SIGTERM stops it
    gracefully (the report says why: ``report.aborted``), a second at once: raises
    :class:`~crawler.runtime.ForcedStop`; either way the database resumes.

    Raises :class:`ConfigError`, :class:`SeedsError` or :class:`StorageError` (all
    :class:`~crawler.errors.FatalError`) with the CLI's message, and RuntimeError if called
    from a running event loop: there, ``await`` :func:`crawl` instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # none: as it should be
    else:
        raise RuntimeError(
            "crawler.run() cannot be called from a running event loop (an async function, "
            "Jupyter): use `await crawler.crawl(...)` there"
        )
    cfg, urls, db_path = _prepare(seeds, db, config, fresh, overrides)

    async def main(signal: AbortSignal) -> CrawlReport:
        return await _crawl(cfg, urls, db_path, signal)

    return runtime.run(main, use_uvloop=cfg.runtime.uvloop)


async def crawl(
    seeds: SeedsSource,
    *,
    db: str | os.PathLike[str] = DEFAULT_DB,
    config: ConfigSource = None,
    signal: AbortSignal | None = None,
    fresh: bool = False,
    **overrides: Unpack[Overrides],
) -> CrawlReport:
    """Crawl from ``seeds`` into ``db`` on the running event loop and return the report, as
    :func:`run` does, but installing no signal handlers (the loop is the caller's).

    It stops gracefully when ``signal`` fires (``AbortController().abort(reason)``): fetches in
    flight get ``runtime.grace_period``, and the report says the crawl is not complete. If its
    task is cancelled instead, it stops at once, as after a second Ctrl-C, and the
    ``CancelledError`` propagates (no report). Either way what was stored stays, and a crawl
    on the same database resumes. Raises as :func:`run` does."""
    cfg, urls, db_path = _prepare(seeds, db, config, fresh, overrides)
    return await _crawl(cfg, urls, db_path, signal or AbortController().signal)


def configure(
    config: ConfigSource = None,
    overrides: Mapping[str, object] | None = None,
    *,
    overrides_from: str = "the keyword arguments",
) -> Config:
    """The config for a crawl: ``config`` (see :data:`ConfigSource`) with ``overrides``
    (:class:`Overrides` by name; None values skipped, as the CLI passes every flag), checked.
    A bad value raises :class:`ConfigError` naming its key and ``overrides_from``."""
    given = {name: value for name, value in (overrides or {}).items() if value is not None}
    if unknown := sorted(given.keys() - OVERRIDE_KEYS.keys()):
        raise TypeError(f"unknown override {', '.join(unknown)}; known: {', '.join(OVERRIDE_KEYS)}")
    if callable(hook := given.get("extract")):
        try:
            given["extract"] = hook_name(hook)
        except HookUnusable as exc:
            raise ConfigError(f"invalid config from {overrides_from}: `extract` {exc}") from None
    dotted = {OVERRIDE_KEYS[name]: _config_value(value) for name, value in given.items()}
    if isinstance(config, Config):
        return load_config(None, dotted, environ={}, base=config, overrides_from=overrides_from)
    path = Path(config) if config is not None else None
    return load_config(path, dotted, overrides_from=overrides_from)


def seed_urls(seeds: SeedsSource, *, max_url_length: int) -> list[str]:
    """The canonical URLs of ``seeds`` (``HTTP://Example.com`` is ``http://example.com/``),
    without duplicates. A bad one is logged as a warning and skipped, as a bad line of a seeds
    file is; none valid at all raises :class:`SeedsError`."""
    found: Seeds
    if isinstance(seeds, Path):
        found, source = read_seeds(seeds, max_url_length=max_url_length), str(seeds)
    else:
        lines = [seeds] if isinstance(seeds, str) else list(seeds)
        found, source = parse_seeds(lines, "seed", max_url_length=max_url_length), "the seeds"
    for problem in found.problems:
        log.warning("skipped %s", problem)
    for warning in found.warnings:
        log.warning("%s", warning)
    if not found.urls:
        raise SeedsError(f"no valid seed URL in {source}")
    return found.urls


def delete_crawl_database(db: Path, seeds_file: Path | None = None) -> None:
    """``--fresh``: delete the crawl database ``db`` and the files that go with it. Anything
    else at that path (the seeds file, a text file, another program's database) is refused:
    --fresh deletes a crawl, never what a mistyped --db happens to name."""
    if db.exists():
        if seeds_file is not None and seeds_file.exists() and db.samefile(seeds_file):
            raise FatalError(f"--fresh: --db {db} is the seeds file; not deleting it")
        try:
            crawl_database_version(db)
        except StorageError as exc:
            raise FatalError(f"--fresh: not deleting {db}: {exc}") from None
    bodies = bodies_path(db)
    paths = (db, Path(f"{db}-wal"), Path(f"{db}-shm"))
    # Not from under a crawl that is writing it. The lock file itself stays (store/writer_lock.py).
    with WriterLock(db):
        for path in (*paths, bodies, Path(f"{bodies}-wal"), Path(f"{bodies}-shm")):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise FatalError(f"cannot delete {path} for --fresh: {exc.strerror}") from None


def _prepare(
    seeds: SeedsSource,
    db: str | os.PathLike[str],
    config: ConfigSource,
    fresh: bool,
    overrides: Overrides,
) -> tuple[Config, list[str], Path]:
    """Everything checked before the crawl starts, in the CLI's order: config, seeds, then
    ``fresh`` (nothing is deleted for a crawl that cannot start)."""
    if overrides.get("robots") is False:
        log.warning("robots=False: robots.txt will be ignored; crawl only sites you may")
    cfg = configure(config, overrides)
    urls = seed_urls(seeds, max_url_length=cfg.crawl.max_url_length)
    if cfg.fetch.cookies_file:
        # Read here only to be checked: the Fetcher reads it again when the crawl starts, but
        # a bad file must stop the run before --fresh deletes anything.
        read_cookies_file(cfg.fetch.cookies_file)
    db_path = Path(db)
    if fresh:
        delete_crawl_database(db_path, seeds if isinstance(seeds, Path) else None)
    return cfg, urls, db_path


async def _crawl(config: Config, urls: list[str], db: Path, signal: AbortSignal) -> CrawlReport:
    try:
        return await Crawl(config, urls, db, signal).run()
    except ExceptionGroup as group:
        # The task groups wrap a fatal error (the database failed mid-crawl) in groups: the
        # caller gets the one documented exception, with the groups as its cause.
        if (fatal := find_fatal(group)) is None:
            raise
        raise fatal from group


def _config_value(value: object) -> object:
    """An override's value as the config's TOML-like input holds it."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return value
