"""The demo site's model: a deterministic synthetic website, pure, knowing nothing of sockets.

`render` answers a request path; `expected_pages` and `expected_statuses` say what a correct
crawler starting from / finds, by walking the model (not hard-coded), so tests and the
benchmark harness can grow it without touching the server (`crawler.demo.server`).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import random
import re
import string
from collections import deque
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

HTML_TYPE = "text/html; charset=utf-8"
HOME_TITLE = "Demo site"
BIG_TITLE = "Big page"
Response = tuple[int, dict[str, str], bytes]
"""(status, headers, body) of one answer."""

# Links are resolved against a placeholder origin because the real port is unknown while rendering.
_ORIGIN = "http://demo.invalid"
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PCT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_PAGE_RE = re.compile(r"/page/(0|[1-9][0-9]*)")  # no leading zeros: one canonical path per page
_REDIRECT_RE = re.compile(r"/redirect/(0|[1-9][0-9]*)")
_HREF_RE = re.compile(r'href="([^"]*)"')
_TITLE_RE = re.compile(r"<title>(.*?)</title>", re.DOTALL)
_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit "

# Equivalent spellings of `/page/j`, so the crawler's URL canonicalisation gets exercised.
_LINK_FORMS: tuple[Callable[[int], str], ...] = (
    lambda j: f"/page/{j}",
    lambda j: f"../page/{j}",
    lambda j: f"/page/{j}#section",
    lambda j: f"/page/./{j}",
    lambda j: f"/%70age/{j}",
    lambda j: str(j),  # relative to /page/i, as "page.html" is to "/docs/index.html"
    lambda j: f"./{j}",
    lambda j: "/page/" + "".join(f"%{ord(c):02x}" for c in str(j)),
)


@dataclasses.dataclass(frozen=True, slots=True)
class SiteSpec:
    pages: int = 200
    links_per_page: int = 8
    seed: int = 0
    latency: float = 0.0
    page_padding: int = 0
    big_page_bytes: int = 0

    def __post_init__(self) -> None:
        if self.pages < 1:
            raise ValueError(f"pages must be >= 1, got {self.pages}")
        sizes = (self.links_per_page, self.page_padding, self.big_page_bytes, self.latency)
        if min(sizes) < 0:
            raise ValueError("links_per_page, page_padding, big_page_bytes, latency must be >= 0")


def _unquote_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else "%" + match[1].upper()


def canonical_path(target: str) -> str:
    """The path (no query, no fragment) that `target` routes to, RFC 3986-normalised."""
    target = _PCT_RE.sub(_unquote_unreserved, target)
    if target.startswith("//"):  # a path of a request target, not an authority as in a link
        target = "/." + target
    path = urlsplit(urljoin(_ORIGIN + "/", target)).path
    return path or "/"


def _page_hrefs(spec: SiteSpec, i: int) -> list[str]:
    rng = random.Random(spec.seed * 1_000_003 + i)
    # The i -> i+1 chain makes every page reachable from / whatever the random links are.
    hrefs = [f"/page/{i + 1}"] if i + 1 < spec.pages else []
    for k in range(spec.links_per_page if spec.pages > 1 else 0):
        j = rng.randrange(spec.pages - 1)
        if j >= i:  # skip self so each link really goes to another page
            j += 1
        hrefs.append(_LINK_FORMS[(i + k) % len(_LINK_FORMS)](j))
    if i % 10 == 0:
        hrefs += [f"/missing/{i}", f"/redirect/{i}"]
        hrefs += ["mailto:someone@example.invalid", "javascript:void(0)"]
    if i == 0 and spec.big_page_bytes > 0:
        hrefs.append("/big")
    return hrefs


def _html(title: str, description: str, hrefs: list[str], extra: str = "") -> bytes:
    items = "".join(f'<li><a href="{html.escape(h)}">{html.escape(h)}</a></li>\n' for h in hrefs)
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
        f'<meta name="description" content="{html.escape(description)}">\n</head>\n'
        f'<body><h1 id="section">{html.escape(title)}</h1>\n<ul>\n{items}</ul>\n{extra}'
        "</body></html>\n"
    ).encode()


def _big_page(spec: SiteSpec) -> bytes:
    description = "A large page with many links."
    size = len(_html(BIG_TITLE, description, []))
    hrefs: list[str] = []
    for k in range(spec.big_page_bytes):  # every link adds bytes, so the size check ends it first
        if size >= spec.big_page_bytes:
            break
        hrefs.append(f"/page/{k % spec.pages}")
        size += len('<li><a href=""></a></li>\n') + 2 * len(hrefs[-1])
    return _html(BIG_TITLE, description, hrefs)


def render(spec: SiteSpec, path: str, base_url: str = _ORIGIN) -> Response:
    """(status, headers, body) for `path`; `base_url` only feeds the absolute Sitemap URLs."""
    p = canonical_path(path)
    if p == "/":
        home = [f"/page/{i}" for i in range(min(spec.pages, 5))]
        return 200, {"Content-Type": HTML_TYPE}, _html(HOME_TITLE, "Synthetic crawl target.", home)
    if p == "/robots.txt":
        robots = f"User-agent: *\nDisallow: /private/\nSitemap: {base_url}/sitemap.xml\n"
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, robots.encode()
    if p == "/sitemap.xml":
        urls = "".join(f"<url><loc>{base_url}/page/{i}</loc></url>\n" for i in range(spec.pages))
        xmlns = "http://www.sitemaps.org/schemas/sitemap/0.9"
        sitemap = f'<?xml version="1.0"?>\n<urlset xmlns="{xmlns}">\n{urls}</urlset>\n'
        return 200, {"Content-Type": "application/xml"}, sitemap.encode()
    if p == "/big" and spec.big_page_bytes > 0:
        return 200, {"Content-Type": HTML_TYPE}, _big_page(spec)
    if (m := _PAGE_RE.fullmatch(p)) and (i := int(m[1])) < spec.pages:
        description = f"Synthetic demo page {i} of {spec.pages}."
        filler = (_FILLER * (spec.page_padding // len(_FILLER) + 1))[: spec.page_padding]
        extra = f"<p>{filler}</p>\n" if filler else ""
        body = _html(f"Page {i}", description, _page_hrefs(spec, i), extra)
        return 200, {"Content-Type": HTML_TYPE}, body
    if (m := _REDIRECT_RE.fullmatch(p)) and (i := int(m[1])) < spec.pages:
        location = f"/page/{(i * 7 + 3) % spec.pages}"
        body = _html("Moved", "Moved permanently.", [location])
        return 301, {"Content-Type": HTML_TYPE, "Location": location}, body
    return 404, {"Content-Type": HTML_TYPE}, _html("Not found", "No such page.", ["/"])


def _resolve(base: str, href: str) -> str | None:
    parts = urlsplit(urljoin(_ORIGIN + base, html.unescape(href)))
    if parts.scheme != "http" or parts.netloc != urlsplit(_ORIGIN).netloc:
        return None  # mailto:, javascript: and off-site links are not crawled
    return canonical_path(parts.path) + (f"?{parts.query}" if parts.query else "")


@functools.lru_cache(maxsize=16)
def _walk(spec: SiteSpec) -> tuple[dict[str, int], dict[str, str]]:
    statuses: dict[str, int] = {}
    titles: dict[str, str] = {}
    queue = deque(["/"])
    # Terminates: each path is queued once and the model only links to finitely many paths.
    while queue:
        path = queue.popleft()
        status, headers, body = render(spec, path)
        statuses[path] = status
        hrefs: list[str] = []
        if "Location" in headers:
            hrefs = [headers["Location"]]
        elif status == 200 and headers["Content-Type"] == HTML_TYPE:
            text = body.decode()
            if title := _TITLE_RE.search(text):
                titles[path] = html.unescape(title[1])
            hrefs = _HREF_RE.findall(text)
        for href in hrefs:
            target = _resolve(path, href)
            if target is not None and target not in statuses:
                statuses[target] = 0  # placeholder marks it queued; overwritten when visited
                queue.append(target)
    return statuses, titles


def expected_statuses(spec: SiteSpec) -> dict[str, int]:
    """Every path a correct crawler starting from / fetches (robots.txt excluded), by status."""
    return dict(_walk(spec)[0])


def expected_pages(spec: SiteSpec) -> dict[str, str]:
    """Every HTML page a correct crawler starting from / stores, mapped to its title."""
    return dict(_walk(spec)[1])
