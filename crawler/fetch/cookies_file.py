"""Reading a Netscape ``cookies.txt`` (``fetch.cookies_file``): what curl, wget and browser
extensions export, for crawls that need a login.

One cookie a line, seven tab-separated fields: domain, include-subdomains (``TRUE``/``FALSE``),
path, secure (``TRUE``/``FALSE``), expiry (Unix seconds), name, value. ``#`` starts a comment,
except ``#HttpOnly_`` before a domain, which curl and browsers write for an HttpOnly cookie (the
cookie is kept; a crawler has no scripts to hide it from).

The standard library's :class:`http.cookiejar.MozillaCookieJar` reads this format, but not
well enough to hand it a user's login: its error for a bad line quotes the whole line, cookie
value included, without the line's number, after warning with a traceback (an error in the
test suite); it checks the domain against the subdomain flag with ``assert`` (gone under
``python -O``); and it drops curl's session cookies, whose expiry curl writes as ``0``, as
expired. The format is seven fields; this module reads them and builds the standard library's
:class:`~http.cookiejar.Cookie`, which the jars of :mod:`crawler.fetch.cookies` then apply.

- A session cookie (expiry ``0`` or empty) is kept: the crawl is the session.
- An expired cookie is skipped, as a browser would; not an error (exports hold old ones).
- A line with include-subdomains ``TRUE`` (curl writes its domain with a leading dot) is the
  user's explicit ask for a domain-wide cookie: it goes to the domain and every host under it
  (a login set on ``.example.com`` is what ``www.example.com`` needs). A public suffix
  (``.co.uk``, ``.github.io``) is refused: no site owns it, so no login is valid on it.
- Anything else wrong is a :class:`~crawler.errors.ConfigError` naming the file and the line,
  never quoting the line (it holds the cookie's value).

The file is read as Latin-1, which maps each byte to one character and back, so a value goes
out as the bytes the file holds (as for Set-Cookie values in :mod:`crawler.fetch.cookies`).
"""

from __future__ import annotations

import time
from http.cookiejar import Cookie
from pathlib import Path

from crawler.errors import ConfigError
from crawler.fetch.cookies import MAX_COOKIE_BYTES, MAX_COOKIES, make_cookie
from crawler.scope import registrable_domain

_HTTPONLY = "#HttpOnly_"
_FLAGS = {"TRUE": True, "FALSE": False}


def read_cookies_file(path: str) -> list[Cookie]:
    """The unexpired cookies of the cookies.txt at ``path``; raises :class:`ConfigError`
    naming the file (and the line) if it cannot be read or a line is not a cookie."""
    try:
        text = Path(path).read_bytes().decode("latin-1")
    except OSError as exc:
        raise ConfigError(f"cannot read cookies file {path}: {exc.strerror}") from None
    now = int(time.time())
    cookies: list[Cookie] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        http_only = line.startswith(_HTTPONLY)
        if http_only:
            line = line[len(_HTTPONLY) :]
        elif line.startswith("#") or not line.strip():
            continue
        try:
            cookie = _cookie(line, http_only)
        except ValueError as exc:
            raise ConfigError(f"cookies file {path}, line {number}: {exc}") from None
        if cookie.is_expired(now):
            continue
        cookies.append(cookie)
        if len(cookies) > MAX_COOKIES:
            raise ConfigError(
                f"cookies file {path}, line {number}: more than {MAX_COOKIES} cookies, the "
                "most the crawl keeps"
            )
    return cookies


def _cookie(line: str, http_only: bool) -> Cookie:
    """One line's cookie; a ValueError says what is wrong without quoting the line."""
    fields = line.split("\t")
    if len(fields) != 7:
        raise ValueError(f"has {len(fields)} tab-separated fields, not 7")
    domain, subdomains, path, secure, expires, name, value = fields
    if subdomains not in _FLAGS or secure not in _FLAGS:
        raise ValueError("the include-subdomains and secure fields must be TRUE or FALSE")
    host = domain.removeprefix(".").lower()
    if not host or any(c in host for c in "/:@ "):
        raise ValueError("the domain field is not a host name")
    if domain.startswith(".") and not _FLAGS[subdomains]:
        raise ValueError("a domain with a leading dot needs include-subdomains TRUE")
    domain_wide = _FLAGS[subdomains]
    if domain_wide and registrable_domain(host) is None:
        raise ValueError(f"{host} is a public suffix or an address, not a site's domain")
    if not path.startswith("/"):
        raise ValueError("the path field must start with /")
    if not expires.isdigit() and expires != "":
        raise ValueError("the expiry field must be Unix seconds (0: a session cookie)")
    if not name:
        raise ValueError("the name field is empty")
    if len(name) + len(value) > MAX_COOKIE_BYTES:
        raise ValueError(f"the cookie is larger than {MAX_COOKIE_BYTES} bytes")
    domain_name = f".{host}" if domain_wide else host
    expiry = int(expires or 0) or None
    return make_cookie(domain_name, path, name, value, _FLAGS[secure], expiry, http_only)
