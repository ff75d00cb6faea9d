"""Turn a fetched HTML body into a :class:`ParsedPage`.

This is the only module that imports selectolax, so the parser can be swapped in one place.
``parse_html`` runs off the event loop, in the parse pool (:mod:`crawler.parse.pool`): in a
worker process by default, in threads with ``runtime.parse_processes = 0``. It keeps no state
between calls (lexbor parsers are not thread-safe, so each call builds its own) and does no
I/O, so either is safe.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from crawler.models import ParsedPage

__all__ = [
    "HtmlDocument",
    "HtmlNode",
    "HtmlTree",
    "collapse_whitespace",
    "detect_charset",
    "parse_html",
    "read_html",
    "selector_problem",
]

HtmlTree = LexborHTMLParser
"""The parsed tree: selectolax's lexbor parser (``css``, ``css_first``, nodes' ``text()`` and
``attrs``), as extraction rules and a hook see it."""
HtmlNode = LexborNode
"""One element of an :data:`HtmlTree`."""


@dataclass(frozen=True, slots=True)
class HtmlDocument:
    """One HTML body read: what the crawl records of it, and its text and tree for the user's
    own extraction (:mod:`crawler.parse.extract`), which reads the same tree: parsed once."""

    page: ParsedPage
    text: str
    """The body decoded (``page.charset``)."""
    tree: HtmlTree | None
    """None when lexbor refused the text (see :func:`parse_html`)."""


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)

_HEADER_CHARSET = re.compile(r"""(?:^|[;\s])charset\s*=\s*["']?([^"';,\s]+)""", re.IGNORECASE)

# A byte-level stand-in for the WHATWG prescan. One pattern covers both
# `<meta charset=x>` and `<meta http-equiv=Content-Type content="...; charset=x">`; it does
# not skip comments or check http-equiv, which real pages almost never need.
_META_CHARSET = re.compile(
    rb"""<meta[\s/][^>]*?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)""", re.IGNORECASE
)
_PRESCAN_BYTES = 1024  # where the WHATWG prescan gives up, so a late <meta> can't flip it

# Browsers decode pages labelled latin-1 or ascii as windows-1252 (WHATWG maps the labels):
# such pages routinely hold 0x80-0x9F bytes meant as curly quotes, dashes and euro signs,
# which latin-1 would turn into invisible C1 controls. A BOM-less "utf-16" is
# little-endian per WHATWG, whereas Python would pick the platform byte order.
_WHATWG_ALIASES = {"iso8859-1": "cp1252", "ascii": "cp1252", "utf-16": "utf-16-le"}

# Text codecs that codecs.lookup accepts but a page must never be decoded with: idna,
# punycode and undefined raise even with errors="replace"; the escape codecs emit
# DeprecationWarnings and rewrite backslash sequences; utf-7 and utf-32 are not in the
# WHATWG encoding list (utf-7 because it lets markup slip past filters).
_REJECTED = frozenset(
    {
        "idna",
        "punycode",
        "undefined",
        "unicode-escape",
        "raw-unicode-escape",
        "utf-7",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
    }
)

# An SVG <title> (icon tooltips in the body) is not the document title.
_TITLE = "title:not(svg title)"
_DESCRIPTION = 'meta[name="description" i][content]'
_CANONICAL = 'link[rel~="canonical" i][href]'
_BASE = "base[href]"
_LINKS = "a[href], area[href]"
_NOFOLLOW_LINKS = 'a[href][rel~="nofollow" i], area[href][rel~="nofollow" i]'
# Only the generic "robots" name: a crawler-specific name would need our product token here.
_META_ROBOTS = 'meta[name="robots" i][content]'


def detect_charset(body: bytes, content_type: str | None = None) -> str:
    """The Python codec name to decode ``body`` with: BOM, then header, then <meta>, then utf-8.

    Unknown or unusable labels are skipped, falling through to the next source.
    """
    return _sniff(body, content_type)[0]


def parse_html(body: bytes, url: str, content_type: str | None = None) -> ParsedPage:
    """What the crawl records of an HTML body: :func:`read_html` without the tree."""
    return read_html(body, url, content_type).page


def selector_problem(css: str) -> str | None:
    """Why lexbor cannot use the CSS selector ``css``, or None. Lexbor accepts some selectors
    that never match a static page (``:hover``, ``:focus``) and ignores a namespace prefix
    (``svg|a`` is ``a``); those pass."""
    try:
        # A tree of its own, as every parse here has: lexbor's are not thread-safe.
        LexborHTMLParser("").css_first(css)
    except SelectolaxError as exc:
        return str(exc)
    return None


def read_html(body: bytes, url: str, content_type: str | None = None) -> HtmlDocument:
    """Read title, description, canonical, base URL and raw links from an HTML body, and keep
    its text and tree for the user's extraction rules.

    Never raises on any ``body``: undecodable bytes become U+FFFD and the HTML parser
    recovers from any markup. ``links`` stay unresolved; resolve them against
    ``base_url``.

    Time is not bounded, though: lexbor, like the HTML algorithm it follows, rescans the
    open-element stack for each block-level start tag, so deeply nested <div>s cost
    quadratic time (10,000 levels take ~0.3 s, 80,000 take close to a minute).
    """
    charset, bom_length = _sniff(body, content_type)
    text = body[bom_length:].decode(charset, "replace")
    try:
        tree = LexborHTMLParser(text)
    except (SelectolaxError, ValueError):
        # Lexbor refuses only on allocation failure or inputs over 2.5 GB; an empty page
        # keeps the worker going where an exception would only be logged and dropped.
        return HtmlDocument(ParsedPage(base_url=url, charset=charset), text, None)

    title_node = tree.css_first(_TITLE)
    title = collapse_whitespace(title_node.text()) if title_node is not None else None

    description_node = tree.css_first(_DESCRIPTION)
    description = (
        collapse_whitespace(description_node.attrs.sget("content"))
        if description_node is not None
        else None
    )

    # Per HTML, only the first <base href> counts, even when it is unusable.
    base_url = url
    base_node = tree.css_first(_BASE)
    if base_node is not None:
        base_url = _resolve_http(base_node.attrs.sget("href"), url) or url

    canonical = None
    canonical_node = tree.css_first(_CANONICAL)
    if canonical_node is not None:
        canonical = _resolve_http(canonical_node.attrs.sget("href"), base_url)

    # dict.fromkeys de-duplicates in C while keeping first-seen order; filtering after it
    # touches each distinct value once instead of every occurrence. A list feeds it faster
    # than a generator.
    hrefs = dict.fromkeys([node.attrs.sget("href").strip() for node in tree.css(_LINKS)])
    links = [href for href in hrefs if href and href[0] != "#"]
    # Rare in practice, so a second, narrower query costs less than reading rel on every link.
    nofollow = frozenset(node.attrs.sget("href").strip() for node in tree.css(_NOFOLLOW_LINKS))
    robots = ",".join(
        directive
        for node in tree.css(_META_ROBOTS)
        for directive in node.attrs.sget("content").lower().replace(" ", "").split(",")
        if directive
    )

    page = ParsedPage(
        title=title,
        description=description,
        canonical=canonical,
        base_url=base_url,
        links=links,
        charset=charset,
        robots=robots,
        nofollow=nofollow,
    )
    return HtmlDocument(page, text, tree)


def _sniff(body: bytes, content_type: str | None) -> tuple[str, int]:
    """The charset and the length of the BOM to drop before decoding."""
    for bom, bom_charset in _BOMS:
        if body.startswith(bom):
            return bom_charset, len(bom)
    if content_type:
        header = _HEADER_CHARSET.search(content_type)
        if header is not None and (charset := _codec_name(header.group(1))) is not None:
            return charset, 0
    for meta in _META_CHARSET.finditer(body, 0, _PRESCAN_BYTES):
        charset = _codec_name(meta.group(1).decode("ascii"))
        if charset is not None:
            # The <meta> was readable as ASCII bytes, so the page cannot be UTF-16,
            # whatever it claims; WHATWG says to use utf-8 then.
            return ("utf-8" if charset.startswith("utf-16") else charset), 0
    return "utf-8", 0


def _codec_name(label: str) -> str | None:
    try:
        info = codecs.lookup(label.strip())
    except (LookupError, ValueError):  # ValueError: a NUL byte inside the label
        return None
    # codecs.lookup also finds bytes-to-bytes codecs such as base64 and zlib.
    if not info._is_text_encoding or info.name in _REJECTED:
        return None
    return _WHATWG_ALIASES.get(info.name, info.name)


def collapse_whitespace(value: str) -> str | None:
    """``value`` with runs of whitespace as one space, trimmed; None if nothing is left."""
    return " ".join(value.split()) or None


def _resolve_http(href: str, base: str) -> str | None:
    """``href`` made absolute against ``base`` if that gives an http(s) URL, else None."""
    href = href.strip()
    if not href:
        return None
    try:
        absolute = urljoin(base, href)
        parts = urlsplit(absolute)
    except ValueError:  # malformed netloc, e.g. an unclosed IPv6 bracket
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return absolute
