"""Loading the config: TOML file (or a config built in code) < ``CRAWL_*`` environment <
command-line flags, with every bad value reported by its dotted key and where it came from."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from crawler.config import Config
from crawler.config_checks import unusable_value
from crawler.errors import ConfigError

ENV_PREFIX = "CRAWL_"


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    base: Config | None = None,
    overrides_from: str = "the command line",
) -> Config:
    """Build the config: file (or ``base``), then ``CRAWL_SECTION__KEY`` env vars, then
    ``overrides``.

    ``overrides`` maps dotted keys (``"crawl.concurrency"``) to values; ``None`` values are
    skipped so a CLI can pass every flag and only the given ones count. A bad value raises
    :class:`ConfigError` naming the key and where its value came from: the file, the
    environment variable, or ``overrides_from`` (the CLI's flags, the API's arguments).
    ``base``, a config built in code, is checked here like a file: a struct's constructor
    does not check its values' bounds.
    """
    raw: dict[str, Any] = {}
    if base is not None:
        raw = msgspec.to_builtins(base)
    elif path is not None:
        raw = _read_toml(path)
    sources: dict[str, str] = {}
    for key, (name, text) in _env_overrides(os.environ if environ is None else environ).items():
        _set_dotted(raw, key, _parse_env_value(key, text))
        sources[key] = f"from environment variable {name}"
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value)
            sources[key] = f"from {overrides_from}"
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        key, problem = _readable(str(exc))
        raise ConfigError(f"invalid config{_source(key, sources, path)}: {problem}") from None
    if (bad := unusable_value(config)) is not None:
        key, problem = bad
        raise ConfigError(f"invalid config{_source(key, sources, path)}: `{key}` {problem}")
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        # Not the exception's own words: its repr quotes the whole file.
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"config file {path} is not UTF-8 (TOML must be): byte {data[exc.start]:#04x} "
            f"on line {line}"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Dotted key -> (variable name, value) of every ``CRAWL_SECTION__KEY`` variable."""
    # CRAWL_FETCH__MAX_RETRIES=3 -> fetch.max_retries; the double underscore separates the
    # section because keys themselves contain single underscores.
    out = {}
    for name, text in environ.items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
            out[f"{section}.{key}"] = (name, text)
    return out


def _parse_env_value(key: str, text: str) -> Any:
    # Environment values are TOML values ("3", "true", '["a.com"]'); a bare word is a string.
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    section, _, name = key.partition(".")
    table = raw.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"invalid config: `{section}` must be a table")
    table[name] = value


def _source(key: str, sources: Mapping[str, str], path: Path | None) -> str:
    """Where the value at ``key`` came from: an override of it, of a table it is in
    (``politeness.hosts[...].delay``) or of a key in it (a whole unknown section); else the
    file."""
    for given, source in sources.items():
        if (
            given == key
            or key.startswith((f"{given}.", f"{given}["))
            or given.startswith(f"{key}.")
        ):
            return f" {source}"
    return f" in {path}" if path is not None else ""


_AT = re.compile(r"(.*) - at `\$\.?([^`]*)`")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]*)`")


def _readable(message: str) -> tuple[str, str]:
    """``(dotted key, message)`` from msgspec's message: it says "... - at
    `$.fetch.max_retries`"; users know the key as fetch.max_retries."""
    at = _AT.fullmatch(message)
    problem, key = at.groups() if at else (message, "")
    unknown = _UNKNOWN_FIELD.fullmatch(problem)
    if unknown:
        key = f"{key}.{unknown[1]}" if key else unknown[1]
        return key, f"unknown key `{key}`"
    return key, f"{problem} - at `{key}`" if key else problem
