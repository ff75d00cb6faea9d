"""A small local site whose sitemaps exercise every rule of :mod:`crawler.frontier.sitemaps`.

``with SitemapSite() as site:`` serves it on 127.0.0.1 from a background thread (the tests'
server core, tests/servers.py). robots.txt
names a sitemap index and a sitemap that redirects; the index lists a gzip file, a plain XML
file, a text file, an entity bomb, a missing file, an off-scope file, a file sent with
``Content-Encoding: gzip`` and a chain of nested indexes one level too deep. Pages are tiny
HTML documents without links, so everything beyond the seed is reached through sitemaps.

``EXPECTED`` is the set of page paths the sitemaps lead to (in scope, allowed, not refused).
Given a :class:`~tests.servers.Gate`, every sitemap response waits until the test opens it: a
crawl whose seed is done while its sitemaps are still held shows whether the frontier waits
for them.
"""

from __future__ import annotations

import gzip

from tests.servers import Gate, Request, Response, TestServer

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'

EXPECTED = frozenset({"/p/a1", "/p/a2", "/p/b1", "/p/b2", "/p/c1", "/p/d1", "/p/e1", "/p/f1"})
"""Pages the sitemaps offer that the crawl must fetch."""
DISALLOWED = "/private/x"
"""Listed in a sitemap, disallowed by robots.txt: recorded as skipped, never requested."""
NEVER = frozenset({"/p/bomb", "/p/n1", "/p/s1"})
"""Listed only where the crawler must not look: an entity bomb, a sitemap under three levels
of indexes, /sitemap.xml (robots.txt names other sitemaps)."""


def _urlset(base: str, *paths: str) -> bytes:
    urls = "".join(f"<url><loc>{base}{path}</loc></url>\n" for path in paths)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>\n{urls}</urlset>\n'.encode()


def _index(base: str, *paths: str) -> bytes:
    maps = "".join(f"<sitemap><loc>{base}{path}</loc></sitemap>\n" for path in paths)
    return f'<?xml version="1.0"?>\n<sitemapindex {NS}>\n{maps}</sitemapindex>\n'.encode()


def _bomb(base: str) -> bytes:
    entities = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    )
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE urlset [{entities}]>\n<urlset {NS}>'
        f"<url><loc>{base}/p/bomb?&i;</loc></url></urlset>\n"
    ).encode()


class SitemapSite(TestServer):
    """``with SitemapSite() as site:`` serves the site; ``robots=False`` answers robots.txt
    with a 404 (no sitemaps named); ``hold`` holds every sitemap response until it opens."""

    def __init__(self, *, robots: bool = True, hold: Gate | None = None) -> None:
        super().__init__(self.respond)
        self.robots = robots
        self._hold = hold

    async def respond(self, request: Request) -> Response:
        path, base = request.target, self.base_url
        if path == "/robots.txt":
            if not self.robots:
                return 404, {"Content-Type": "text/plain"}, b"no robots.txt\n"
            text = (
                "User-agent: *\nDisallow: /private/\n"
                f"Sitemap: {base}/sitemap_index.xml\nSitemap: {base}/moved.xml\n"
            )
            return 200, {"Content-Type": "text/plain"}, text.encode()
        if path == "/":
            return 200, {"Content-Type": "text/html"}, b"<title>home</title>no links"
        if path.startswith("/p/"):
            return 200, {"Content-Type": "text/html"}, f"<title>{path}</title>".encode()
        sitemaps: dict[str, tuple[dict[str, str], bytes]] = {
            "/sitemap.xml": ({}, _urlset(base, "/p/s1")),
            "/sitemap_index.xml": (
                {},
                _index(
                    base,
                    "/sitemaps/a.xml.gz",
                    "/sitemaps/b.xml",
                    "/sitemaps/c.txt",
                    "/sitemaps/bomb.xml",
                    "/sitemaps/missing.xml",
                    "/sitemaps/f.xml",
                    "/sitemaps/nested-1.xml",
                    "http://elsewhere.invalid/sitemap.xml",
                ),
            ),
            "/sitemaps/a.xml.gz": (
                {"Content-Type": "application/gzip"},
                gzip.compress(
                    _urlset(base, "/p/a1", "/p/a2", "/p/a1").replace(
                        b"</urlset>", b"<url><loc>http://elsewhere.invalid/p</loc></url></urlset>"
                    )
                ),
            ),
            "/sitemaps/b.xml": (
                {},
                _urlset(base, "/p/b1", "/p/b1#top", "/p/%62%32", DISALLOWED),
            ),
            "/sitemaps/c.txt": (
                {"Content-Type": "text/plain"},
                f"{base}/p/c1\nnot a url\n\n".encode(),
            ),
            "/sitemaps/bomb.xml": ({}, _bomb(base)),
            "/sitemaps/f.xml": (
                {"Content-Encoding": "gzip"},
                gzip.compress(_urlset(base, "/p/f1")),
            ),
            "/sitemaps/nested-1.xml": (
                {},
                _index(base, "/sitemaps/nested-2.xml", "/sitemaps/d.xml"),
            ),
            "/sitemaps/nested-2.xml": ({}, _index(base, "/sitemaps/n.xml")),
            "/sitemaps/d.xml": ({}, _urlset(base, "/p/d1", "http://elsewhere.invalid/p/d")),
            "/sitemaps/n.xml": ({}, _urlset(base, "/p/n1")),
            "/sitemaps/e.xml": ({}, _urlset(base, "/p/e1")),
        }
        if self._hold is not None and (path == "/moved.xml" or path in sitemaps):
            await self._hold.wait()
        if path == "/moved.xml":
            return 301, {"Location": "/sitemaps/e.xml"}, b""
        if path in sitemaps:
            headers, body = sitemaps[path]
            return 200, {"Content-Type": "application/xml", **headers}, body
        return 404, {"Content-Type": "text/html"}, b"<title>not found</title>"
