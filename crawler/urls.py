"""URL canonicalization: pure functions, no I/O (which URLs a crawl fetches: :mod:`crawler.scope`).

Two links are the same page exactly when their canonical forms are equal strings, so the
frontier, the seen-set and the politeness slots all key on :func:`canonicalize`'s result.
Canonicalization rules, applied in one pass:

1.  Leading/trailing ASCII whitespace (space, tab, LF, FF, CR) is stripped; tab, CR and LF
    inside the URL are removed, as browsers do. Any other control character (C0, DEL, C1)
    makes the URL invalid (``None``).
2.  A relative reference is resolved against ``base`` per RFC 3986 section 5: ``//host/p``
    network-path references, ``?q`` (base path, new query), ``#frag`` (the base itself),
    and ``..`` above the root stays at the root. As in browsers and ``urljoin``, ``http:p``
    without ``//`` is relative when ``base`` has the same scheme. A backslash is a plain
    character (RFC 3986), not a ``/`` as in browsers: it is percent-encoded by rule 9.
3.  Only ``http`` and ``https`` (any case) are crawlable; every other scheme, and a relative
    reference without ``base``, gives ``None``.
4.  Scheme and host are lower-cased; trailing dots of the host are removed; a non-ASCII (IDN)
    host becomes punycode with the stdlib ``idna`` codec (IDNA 2003; ``None`` if it fails).
    A host that is empty or holds anything but ASCII letters, digits, ``-``, ``_`` and ``.``
    gives ``None``, as does one with an empty label (``a..b``, ``.a``), a label over 63
    characters or a name over 253 (RFC 1035 2.3.4; DNS and IDNA encoders refuse them). IPv6
    literals stay in brackets, lower-cased, and must be valid addresses (zone identifiers are
    refused).
5.  The default port (80 for http, 443 for https) and an empty port are dropped; a port is
    written without leading zeros; a non-numeric port or one outside 1-65535 gives ``None``.
6.  User info (``user:pass@``) is removed: ``http://u:p@host/x`` becomes ``http://host/x``.
    Credentials found on a web page are never sent (httpx would turn them into an
    ``Authorization`` header for anyone who can publish a link); a seed with user info is
    crawled without it, with a warning (:mod:`crawler.frontier.seeds`).
7.  An empty path becomes ``/``.
8.  Dot segments (``.`` and ``..``) are removed per RFC 3986 5.2.4, in absolute URLs too,
    after rule 9 (so ``%2E%2E`` counts as ``..``).
9.  Percent-encoding in path and query is normalized: hex digits upper-cased (``%2f`` ->
    ``%2F``); escapes of unreserved characters (ALPHA, DIGIT, ``-._~``) decoded (``%7E`` ->
    ``~``); characters not allowed there (space, controls, non-ASCII, ``"<>\\^`{|}``)
    percent-encoded as UTF-8; a ``%`` not followed by two hex digits becomes ``%25``.
    Reserved characters (``/?&=+:@`` etc.) are never decoded or encoded: that could change
    the meaning of the URL.
10. Path case is kept: only scheme and host are case-insensitive.
11. The fragment is dropped: it never reaches the server.
12. An empty query (a bare ``?``) is dropped. A non-empty query is kept as is, in its order:
    parameters are NOT sorted, because servers may give their order a meaning.
13. A result longer than ``max_length`` characters gives ``None``.

The result is idempotent: ``canonicalize(canonicalize(x)) == canonicalize(x)``.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "DEFAULT_MAX_URL_LENGTH",
    "BaseURL",
    "canonicalize",
    "has_userinfo",
    "host_key",
    "hostname",
    "normalize_host",
]

DEFAULT_MAX_URL_LENGTH = 2048

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WHITESPACE = " \t\n\x0c\r"
_DROP_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# RFC 3986 appendix B (the fragment is left unread), with the scheme held to its grammar so
# 'a b:c' is a path. Unlike urlsplit it tells an absent query or authority (None) from an empty
# one (''), which rule 2 needs ('?' is not ''), and it costs a fifth of an uncached urlsplit.
# Optional parts are written ``(?:X|)``, not ``(?:X)?``: the same match (X is tried first),
# compiled to a cheap branch instead of a general repeat (1.6 against 2.5 thousand instructions
# a split). Not possessive quantifiers (``?+``, ``*+``): Debian 12's Python 3.11.2 mishandles
# them ('download.html' split as 'ownload.html'; fixed in later 3.11 releases).
_SPLIT = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.\-]*):|)(?://([^/?#]*)|)([^?#]*)(?:\?([^#]*)|)")
# A host name: at most 253 characters, in labels of 1-63. Also the test for an authority already
# in canonical form (the usual case, and always for a canonical base).
_HOST = re.compile(r"(?!.{254})(?:[a-z0-9_\-]{1,63}\.)*[a-z0-9_\-]{1,63}")
_IPV6 = re.compile(r"[0-9a-f:.]+")
_ALLOWED = r"!$&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~"
_NEEDS_PCT = re.compile(f"[^{_ALLOWED}]")
_PCT_FIX = re.compile(f"%[0-9A-Fa-f]{{2}}|%|[^{_ALLOWED}%]+")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = "0123456789ABCDEFabcdef"
_PCT_TABLE = {
    f"%{a}{b}": chr(int(a + b, 16)) if chr(int(a + b, 16)) in _UNRESERVED else f"%{a}{b}".upper()
    for a in _HEX
    for b in _HEX
}
_BYTE_ESCAPES = tuple(f"%{i:02X}" for i in range(256))


def canonicalize(
    href: str, base: str | None = None, *, max_length: int = DEFAULT_MAX_URL_LENGTH
) -> str | None:
    """Resolve ``href`` against ``base`` (when given; ``href`` may be relative, ``base`` is an
    absolute URL) and return the canonical absolute URL, or None when the result is not a
    crawlable http(s) URL."""
    return (_NO_BASE if base is None else BaseURL(base)).resolve(href, max_length=max_length)


class BaseURL:
    """A base URL split and normalized once, to resolve many references against it (all the
    links of a page): ``BaseURL(base).resolve(href)`` is ``canonicalize(href, base)``.

    Splitting the base and normalizing its authority again for every link was a third of the
    cost of canonicalizing a page's links (the authority of a host with a port never takes
    the plain-host shortcut)."""

    __slots__ = ("_dir", "_netloc", "_path", "_query", "_scheme")

    def __init__(self, base: str | None) -> None:
        self._scheme: str | None = None
        self._netloc: str | None = None
        self._path = self._dir = ""
        self._query: str | None = None
        if base is None or (cleaned := _clean(base)) is None:
            return
        parts = _SPLIT.match(cleaned)
        assert parts is not None  # every part of the pattern is optional
        scheme, auth, path, query = parts.groups()
        if scheme is None or auth is None:
            return
        scheme = scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            return
        self._scheme = scheme
        self._netloc = auth if _HOST.fullmatch(auth) else _normalize_authority(auth, scheme)
        self._path, self._query = path, query
        # path is '' or starts with '/', since the base has an authority.
        self._dir = path[: path.rfind("/") + 1] if path else "/"

    def resolve(self, href: str, *, max_length: int = DEFAULT_MAX_URL_LENGTH) -> str | None:
        """The canonical absolute URL of ``href`` resolved against this base (see the module's
        rules), or None when the result is not a crawlable http(s) URL."""
        ref = _clean(href)
        if ref is None:
            return None
        parts = _SPLIT.match(ref)
        assert parts is not None
        scheme, auth, path, query = parts.groups()
        if scheme is not None:
            scheme = scheme.lower()
            if scheme not in _DEFAULT_PORTS:
                return None
        if auth is not None and scheme is not None:
            netloc = auth if _HOST.fullmatch(auth) else _normalize_authority(auth, scheme)
        else:
            if self._scheme is None or scheme not in (None, self._scheme):
                return None
            scheme = self._scheme
            if auth is not None:
                netloc = auth if _HOST.fullmatch(auth) else _normalize_authority(auth, scheme)
            else:
                netloc = self._netloc
                if not path:
                    path = self._path
                    if query is None:
                        query = self._query
                elif path[0] != "/":
                    path = self._dir + path
        if netloc is None:
            return None
        try:
            if _NEEDS_PCT.search(path):
                path = _PCT_FIX.sub(_fix_percent, path)
            if query and _NEEDS_PCT.search(query):
                query = _PCT_FIX.sub(_fix_percent, query)
        except UnicodeEncodeError:  # lone surrogates have no UTF-8 form
            return None
        if "/." in path:
            path = _remove_dot_segments(path)
        elif not path:
            path = "/"
        url = f"{scheme}://{netloc}{path}?{query}" if query else f"{scheme}://{netloc}{path}"
        return url if len(url) <= max_length else None


_NO_BASE = BaseURL(None)


def has_userinfo(href: str) -> bool:
    """Whether ``href`` (as written, before :func:`canonicalize`) has user info in its
    authority, which canonicalization removes (rule 6)."""
    cleaned = _clean(href)
    parts = _SPLIT.match(cleaned) if cleaned is not None else None
    authority = parts[2] if parts is not None else None
    return authority is not None and "@" in authority


def host_key(url: str) -> str:
    """The politeness/slot key of a canonical URL: its lower-case host plus ``:port`` when the
    port is not the scheme default (``'http://example.com:8080/a'`` -> ``'example.com:8080'``).

    The URL is not normalized again; pass canonical URLs (which have no user info, rule 6)."""
    return url.partition("//")[2].partition("/")[0]


def hostname(url: str) -> str:
    """The host of a canonical URL without the port. IPv6 literals keep their brackets
    (``'[::1]'``), as in :func:`host_key`."""
    key = host_key(url)
    if key.startswith("["):
        return key[: key.find("]") + 1]
    return key.partition(":")[0]


def _clean(url: str) -> str | None:
    url = url.strip(_WHITESPACE)
    # isprintable() is a C-level scan that is True for almost every real href.
    if not url.isprintable():
        url = url.translate(_DROP_TAB_NEWLINE)
        if _CONTROL.search(url):
            return None
    return url


def _normalize_authority(auth: str, scheme: str) -> str | None:
    hostport = auth.rpartition("@")[2]  # user info is dropped (rule 6)
    if hostport.startswith("["):
        end = hostport.find("]") + 1
        host, port = hostport[:end], hostport[end:]
        if not end or (port and port[0] != ":"):
            return None
        port = port[1:]
    else:
        host, _, port = hostport.partition(":")
    normalized = normalize_host(host)
    if normalized is None:
        return None
    if port:
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
            return None
        if int(port) != _DEFAULT_PORTS[scheme]:
            normalized = f"{normalized}:{int(port)}"
    return normalized


def normalize_host(host: str) -> str | None:
    """A host name or IP literal as rule 4 writes it, or None when it is not a valid one."""
    if host.startswith("["):
        address = host[1:-1].lower()
        if not host.endswith("]") or not _IPV6.fullmatch(address):
            return None
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return None
        return f"[{address}]"
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    host = host.lower().rstrip(".")
    return host if _HOST.fullmatch(host) else None


def _fix_percent(match: re.Match[str]) -> str:
    text = match[0]
    fixed = _PCT_TABLE.get(text)
    if fixed is not None:
        return fixed
    if text == "%":
        return "%25"
    return "".join([_BYTE_ESCAPES[byte] for byte in text.encode()])


def _remove_dot_segments(path: str) -> str:
    # path starts with '/', so segments[0] is ''; a final '.' or '..' leaves a directory.
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")
    return "/" + "/".join(kept)
