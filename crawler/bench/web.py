"""The synthetic web's model: which pages exist on which host, what they link to, how each
answer is delayed. Pure and deterministic from ``WebSpec.seed`` (and the hosts' ports, which
appear in cross-host links); :mod:`crawler.bench.server` puts it on sockets.

Per host (one ``127.0.0.1`` port each)::

    /                 page 0
    /p/N              page N (1 <= N < pages): HTML padded to ``page_bytes``, with links
    /r/N              301 to /p/N (a share of links, ``redirect_rate``)
    /private/N        disallowed by robots.txt (a share of links, ``disallowed_rate``);
                      answered 200, so a crawler that ignores robots.txt shows in the counts
    /robots.txt       ``Disallow: /private/``
    anything else     404

Link structure: ``random`` (page i links to i+1, so every page is reachable, and to random
pages of its host or, with ``cross_host``, of other hosts) or ``tree`` (page i links to pages
``i*links+1 .. i*links+links``: every link is a URL never seen before, for the big-frontier
scenario). A page in the ``error_rate`` share answers 500 to its first request only (the
server remembers), so a crawler that retries gets it on the next try.
"""

from __future__ import annotations

import dataclasses
import math
import random
import zlib
from collections.abc import Sequence

HTML_TYPE = "text/html; charset=utf-8"

EXTRACT_RULES = {
    "headline": {"css": "title"},
    "summary": {"css": 'meta[name="description"]', "attr": "content"},
    "links": {"css": "li a", "attr": "href", "all": True},
}
"""Three ``[extract.fields]`` rules every page of this web matches (``crawl bench --extract
on``): a text, an attribute, and a list of URLs made absolute (the costliest kind)."""
ROBOTS_TXT = b"User-agent: *\nDisallow: /private/\n"
LATENCY_KINDS = ("constant", "uniform", "exponential")
LINK_MODELS = ("random", "tree")

_FILLER = (
    "Synthetic text fills the page to its configured size so that bytes on the wire, "
    "decoding and parsing cost what they cost on a real site. "
)
_TWO32 = float(2**32)


@dataclasses.dataclass(frozen=True, slots=True)
class WebSpec:
    """One synthetic web. Every field is plain data, so a spec crosses processes as JSON."""

    hosts: int = 1
    pages: int = 1_000
    """Pages per host, page 0 (``/``) included."""
    page_bytes: int = 20_000
    """Pages are padded with text up to about this size (0: no padding)."""
    links_per_page: int = 35
    links: str = "random"
    """``random`` or ``tree`` (see the module docstring)."""
    cross_host: float = 0.0
    """Share of links (random model) that go to a page of another host."""
    latency_ms: float = 0.0
    """Mean delay before each answer."""
    latency: str = "constant"
    """Distribution of the delay: ``constant``, ``uniform`` (0 to 2x mean), ``exponential``."""
    error_rate: float = 0.0
    """Share of pages that answer 500 to their first request."""
    redirect_rate: float = 0.0
    """Share of links that go through a 301."""
    disallowed_rate: float = 0.0
    """Share of links into ``/private/``, which robots.txt disallows."""
    seed: int = 0
    seed_hosts: int = 0
    """Hosts whose home page is a seed (0: every host). Fewer, and the crawl discovers the
    others through cross-host links as it goes, as a broad crawl of the web does."""

    def __post_init__(self) -> None:
        if self.hosts < 1 or self.pages < 1:
            raise ValueError("hosts and pages must be >= 1")
        if not 0 <= self.seed_hosts <= self.hosts:
            raise ValueError("seed_hosts must be between 0 and hosts")
        if min(self.page_bytes, self.links_per_page, self.latency_ms) < 0:
            raise ValueError("page_bytes, links_per_page and latency_ms must be >= 0")
        rates = (self.cross_host, self.error_rate, self.redirect_rate, self.disallowed_rate)
        if not all(0.0 <= rate <= 1.0 for rate in rates):
            raise ValueError("rates must be between 0 and 1")
        if self.latency not in LATENCY_KINDS:
            raise ValueError(f"latency must be one of {LATENCY_KINDS}")
        if self.links not in LINK_MODELS:
            raise ValueError(f"links must be one of {LINK_MODELS}")

    @property
    def total_pages(self) -> int:
        return self.hosts * self.pages


Answer = tuple[int, bytes, bytes]
"""(status, extra header lines, body) of one response."""


class Web:
    """Renders a :class:`WebSpec` whose hosts listen on ``ports`` (index = host number)."""

    def __init__(self, spec: WebSpec, ports: Sequence[int]) -> None:
        if len(ports) != spec.hosts:
            raise ValueError(f"{spec.hosts} hosts need {spec.hosts} ports, got {len(ports)}")
        self.spec = spec
        self.ports = tuple(ports)
        # Long enough for any page; each page takes a prefix of it.
        self._filler = _FILLER * (spec.page_bytes // len(_FILLER) + 2)

    def origin(self, host: int) -> str:
        return f"http://127.0.0.1:{self.ports[host]}"

    def seeds(self) -> list[str]:
        return [f"{self.origin(h)}/" for h in range(self.spec.seed_hosts or self.spec.hosts)]

    def answer(self, host: int, path: str) -> Answer:
        """The response to a GET of ``path`` (no query) on ``host``, errors aside."""
        if path == "/":
            return 200, b"", self.page(host, 0)
        kind, _, number = path[1:].partition("/")
        index = int(number) if number.isdigit() and number[0] != "0" else -1
        if 0 < index < self.spec.pages:
            if kind == "p":
                return 200, b"", self.page(host, index)
            if kind == "r":
                return 301, f"Location: /p/{index}\r\n".encode(), b""
            if kind == "private":
                return 200, b"", self.page(host, index)
        if path == "/robots.txt":
            return 200, b"", ROBOTS_TXT
        return 404, b"", b"<!doctype html><title>Not found</title>\n"

    def page(self, host: int, index: int) -> bytes:
        links = "".join(f'<li><a href="{href}">page</a></li>\n' for href in self.hrefs(host, index))
        head = (
            f"<!doctype html>\n<html><head><meta charset=utf-8><title>Host {host} page {index}"
            f"</title>\n<meta name=description content='Synthetic page {index} of host {host}.'>"
            "\n</head><body><ul>\n"
        )
        size = len(head) + len(links) + 30
        filler = self._filler[: max(0, self.spec.page_bytes - size)]
        return f"{head}{links}</ul><p>{filler}</p></body></html>\n".encode()

    def hrefs(self, host: int, index: int) -> list[str]:
        """The links of page ``index`` on ``host``, in document order."""
        spec = self.spec
        count = spec.links_per_page
        if spec.links == "tree":
            first = index * count + 1
            return [f"/p/{j}" for j in range(first, min(first + count, spec.pages))]
        rng = random.Random(spec.seed * 1_000_003 + host * 10_007 + index)
        hrefs = [f"/p/{index + 1}"] if index + 1 < spec.pages else []
        for _ in range(count - len(hrefs) if spec.pages > 1 else 0):
            target = rng.randrange(1, spec.pages)
            roll = rng.random()
            if roll < spec.cross_host and spec.hosts > 1:
                other = rng.randrange(spec.hosts)
                hrefs.append(f"{self.origin(other)}/p/{target}")
            elif (roll := rng.random()) < spec.redirect_rate:
                hrefs.append(f"/r/{target}")
            elif roll < spec.redirect_rate + spec.disallowed_rate:
                hrefs.append(f"/private/{target}")
            else:
                hrefs.append(f"/p/{target}")
        return hrefs

    def fails_first(self, host: int, path: str) -> bool:
        """Whether ``path`` answers 500 to its first request (``error_rate``)."""
        rate = self.spec.error_rate
        return rate > 0 and path.startswith("/p/") and self._unit(host, path, 1) < rate

    def delay(self, host: int, path: str) -> float:
        """Seconds to wait before answering ``path`` on ``host``."""
        spec = self.spec
        mean = spec.latency_ms / 1000
        if mean <= 0 or spec.latency == "constant":
            return mean
        unit = self._unit(host, path, 2)
        if spec.latency == "uniform":
            return 2 * mean * unit
        return -mean * math.log(1.0 - unit)  # exponential

    def _unit(self, host: int, path: str, salt: int) -> float:
        # A hash, not a Random per request: this runs on every request of the server.
        value = zlib.crc32(path.encode(), ((self.spec.seed * 31 + host) * 8 + salt) & 0xFFFFFFFF)
        return ((value * 2_654_435_761) % 2**32) / _TWO32
