"""Checks of config values that have the right type but cannot work (a header no request
could send, a regex that does not compile, credentials without a colon): found when the config
loads, before any request, instead of by the first request that sends them."""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from crawler.config import OWNED_HEADERS, Config, ExtractSection, FetchHost
from crawler.fetch.downloads import media_range_problem
from crawler.parse.hook import HookUnusable, load_hook
from crawler.parse.html import selector_problem
from crawler.scope import Scope
from crawler.urls import canonicalize, host_key

# RFC 9110 5.5 field-value without obs-text (bytes past ASCII, which HTTP clients refuse to
# send) and without the leading or trailing whitespace a header value cannot carry.
_HEADER_VALUE = re.compile(r"[!-~](?:[ !-~]*[!-~])?")


def unusable_value(config: Config) -> tuple[str, str] | None:
    """``(key, problem)`` for the first value of the right type that cannot work: found here,
    before any request, instead of by the first request that sends it."""
    agent = config.crawl.user_agent
    if not _HEADER_VALUE.fullmatch(agent):
        return "crawl.user_agent", (
            "must be printable ASCII (an HTTP header value), not empty, without leading or "
            f"trailing spaces: {agent!r}"
        )
    try:
        Scope((), config.crawl.allow_domains)
    except ValueError as exc:
        return "crawl.allow_domains", f"must list domain names such as example.com: {exc}"
    for key in ("include", "exclude"):
        for pattern in getattr(config.crawl, key):
            try:
                re.compile(pattern)
            except re.error as exc:
                return f"crawl.{key}", f"has an invalid regular expression {pattern!r}: {exc}"
    fetch = config.fetch
    if fetch.cookies_file and fetch.cookies == "off":
        return "fetch.cookies_file", 'needs fetch.cookies = "per-host" (off keeps no cookies)'
    every_host = {"authorization": "it would go to every host; set it in fetch.hosts"}
    if (bad := _unusable_headers("fetch.headers", fetch.headers, every_host)) is not None:
        return bad
    hosts: dict[str | None, str] = {}
    for host, override in fetch.hosts.items():
        key = f'fetch.hosts."{host}"'
        if (bad := _unusable_host(key, host, override)) is not None:
            return bad
        if (same := hosts.setdefault(host_table_key(host), host)) != host:
            return key, f'is the host of fetch.hosts."{same}" too: merge the two tables'
    if (bad := _unusable_resolve(fetch.resolve, fetch.transport)) is not None:
        return bad
    if fetch.ca_file and (problem := _unusable_ca_file(fetch.ca_file)) is not None:
        return "fetch.ca_file", problem
    for entry in fetch.download_types:
        if (problem := media_range_problem(entry)) is not None:
            return "fetch.download_types", f"lists {entry!r}, which {problem}"
    if (bad := _unusable_proxies(config)) is not None:
        return bad
    return _unusable_extract(config.extract)


# A field's name is a column of `crawl export --format csv` (data.NAME): a plain word.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _unusable_extract(extract: ExtractSection) -> tuple[str, str] | None:
    """The first extraction rule that cannot run, or a hook that cannot be called: found
    before any request, not on every page."""
    for name, rule in extract.fields.items():
        key = f"extract.fields.{name}"
        if not _FIELD_NAME.fullmatch(name):
            return key, "must be named by letters, digits, _ and - (starting with a letter or _)"
        if (problem := selector_problem(rule.css)) is not None:
            return f"{key}.css", f"is not a CSS selector selectolax can use {rule.css!r}: {problem}"
        try:
            re.compile(rule.urls)
        except re.error as exc:
            return f"{key}.urls", f"has an invalid regular expression {rule.urls!r}: {exc}"
    if extract.hook:
        try:
            load_hook(extract.hook)
        except HookUnusable as exc:
            return "extract.hook", str(exc)
    return None


def _unusable_ca_file(path: str) -> str | None:
    """Why ``fetch.ca_file`` cannot be trusted, found by loading it as the fetcher will: else
    every https page would fail, each with the same reason, before anyone saw why."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:  # before OSError: it is one
        return f"is not a PEM file of certificates: {path} ({exc.reason or exc})"
    except OSError as exc:
        return f"cannot be read: {path}: {exc.strerror or exc}"
    return None


def _unusable_resolve(resolve: Mapping[str, str], transport: str) -> tuple[str, str] | None:
    """The first ``fetch.resolve`` entry that cannot answer a lookup."""
    if resolve and transport != "aiohttp":
        # httpcore resolves names itself, out of the crawler's reach.
        return "fetch.resolve", 'needs fetch.transport = "aiohttp"'
    for name, address in resolve.items():
        if not _HOST_KEY.fullmatch(name) or host_table_key(name) is None:
            return "fetch.resolve", f"has a key that is not a name[:port]: {name!r}"
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return "fetch.resolve", f"maps {name!r} to {address!r}, which is not an IP address"
    return None


PROXY_SCHEMES = ("http",)
"""The schemes a proxy URL may have. aiohttp speaks to an HTTP proxy (absolute-form requests for
http targets, CONNECT tunnels for https ones); SOCKS needs a connector per proxy
(aiohttp-socks, not a dependency) and an ``https://`` proxy TLS inside TLS, which aiohttp
documents as limited: refused at load rather than half working."""


def _unusable_proxies(config: Config) -> tuple[str, str] | None:
    """The first proxy setting that cannot work; never quoting a proxy URL (it may hold a
    password)."""
    fetch = config.fetch
    if fetch.proxy and fetch.proxies:
        return "fetch.proxies", "and fetch.proxy are exclusive: set one"
    if "" in fetch.proxies:
        return "fetch.proxies", "lists an empty proxy URL"
    routes = [("fetch.proxy", fetch.proxy)] + [("fetch.proxies", url) for url in fetch.proxies]
    routes += [
        (f'fetch.hosts."{host}".proxy', override.proxy or "")
        for host, override in fetch.hosts.items()
    ]
    for key, url in routes:
        if not url:
            continue
        if fetch.transport != "aiohttp":
            return key, 'needs fetch.transport = "aiohttp" (httpcore is not given proxies)'
        if (problem := _unusable_proxy_url(url)) is not None:
            return key, problem
    for entry in fetch.no_proxy:
        if entry != "*" and not _HOST_KEY.fullmatch(entry.lstrip(".")):
            return "fetch.no_proxy", f"must list *, host:port or host names, not {entry!r}"
    return None


def _unusable_proxy_url(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in PROXY_SCHEMES:
        supported = ", ".join(f"{scheme}://" for scheme in PROXY_SCHEMES)
        return f"has the scheme {parts.scheme or 'none'}: supported are {supported}"
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        return "must be scheme://[user:password@]host[:port], with nothing after the port"
    return None


# RFC 9110 5.6.2: a field name is a token.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# host[:port] as in a URL: a name or an IPv4 address, or a bracketed IPv6 one.
_HOST_KEY = re.compile(r"(?:[^\s/?#@:\[\]]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def _unusable_headers(
    key: str, headers: Mapping[str, str], refused: Mapping[str, str]
) -> tuple[str, str] | None:
    """The first header no request could send, or that the crawler sets itself. The problem
    names the header, never its value (it may be a secret)."""
    seen: set[str] = set()
    for name, value in headers.items():
        lower = name.lower()
        if not _HEADER_NAME.fullmatch(name):
            return key, f"has a header name that is not an HTTP token: {name!r}"
        if lower in OWNED_HEADERS:
            owner = "crawl.user_agent" if lower == "user-agent" else "the crawler"
            return key, f"cannot set {name}: {owner} sets it"
        if lower in refused:
            return key, f"cannot set {name}: {refused[lower]}"
        if lower in seen:
            return key, f"names the header {name} twice (header names are case-insensitive)"
        seen.add(lower)
        if not _HEADER_VALUE.fullmatch(value):
            return key, (
                f"has a value for {name} that is not printable ASCII, is empty, or has leading "
                "or trailing spaces"
            )
    return None


def host_table_key(host: str) -> str | None:
    """A ``[fetch.hosts]`` key as the crawl's URLs write the host (lower-case, IDNA, no default
    port: ``Bücher.de:80`` -> ``xn--bcher-kva.de``), which requests are looked up by; None if
    no URL has such a host."""
    url = canonicalize(f"http://{host}/")
    return None if url is None else host_key(url)


def _unusable_host(key: str, host: str, override: FetchHost) -> tuple[str, str] | None:
    """The first problem of one ``[fetch.hosts]`` table; never quoting a credential."""
    if not _HOST_KEY.fullmatch(host) or host_table_key(host) is None:
        return key, "must be keyed by host[:port] as in URLs, such as example.com:8080"
    if override.auth and override.auth_env:
        return key, "sets both auth and auth_env: choose one"
    refused = {"authorization": "auth sets it"} if override.auth or override.auth_env else {}
    if (bad := _unusable_headers(f"{key}.headers", override.headers, refused)) is not None:
        return bad
    if override.auth_env and override.auth_env not in os.environ:
        return f"{key}.auth_env", f"names {override.auth_env}, which is not set"
    credentials = override.credentials()
    if credentials and ":" not in credentials:
        where = f"{key}.auth_env" if override.auth_env else f"{key}.auth"
        return where, "must hold user:password (it has no colon)"
    return None
