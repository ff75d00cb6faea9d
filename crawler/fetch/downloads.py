"""Which bodies besides HTML the fetcher reads: ``fetch.download_types``.

A response whose ``Content-Type`` names one of these media types (``application/pdf``; or a
whole top-level type, ``image/*``; or every type, ``*/*``) is a *download*: its body is read
like a page's (up to ``fetch.max_body_bytes``, after decompression, within the same deadlines)
and its SHA-256 taken on the way (:mod:`crawler.fetch.body`); it is not parsed for links, since
it is not HTML. HTML stays a page whatever the list says (``text/*`` does not make ``text/html``
a download). The Content-Type's parameters (``; charset=...``) play no part in the match; a
config entry with parameters is refused at load, where it would look like a condition on them.

Entries are checked when the config loads (:func:`media_range_problem`, asked by
:mod:`crawler.config_checks`), so a malformed one is named before any request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from crawler.models import HTML_TYPES, is_html_type

_TOKEN = r"[!#$%&'+.^_`|~0-9A-Za-z-]+"
"""RFC 9110 5.6.2 token, without ``*`` (a wildcard is a whole subtype, never part of one)."""
_MEDIA_RANGE = re.compile(rf"\*/\*|{_TOKEN}/(?:\*|{_TOKEN})")


def media_range_problem(entry: str) -> str | None:
    """Why ``entry`` cannot be a ``fetch.download_types`` entry, said of it ("is not ...");
    None: it can."""
    if ";" in entry:
        bare = entry.split(";", 1)[0].strip()
        return f"has parameters: they are not matched, write {bare!r}"
    if not _MEDIA_RANGE.fullmatch(entry):
        return "is not a media type such as application/pdf or image/*"
    if entry.lower() in HTML_TYPES:
        return "is HTML: always read and parsed as a page, never a download"
    return None


class DownloadTypes:
    """The configured media ranges, matched against a response's Content-Type."""

    def __init__(self, entries: Iterable[str]) -> None:
        """``entries``: checked by :func:`media_range_problem` (at load)."""
        ranges = {entry.lower() for entry in entries}
        self._any = "*/*" in ranges
        self._types = frozenset(entry for entry in ranges if not entry.endswith("/*"))
        self._top_levels = frozenset(
            entry.removesuffix("/*") for entry in ranges - {"*/*"} if entry.endswith("/*")
        )

    def __bool__(self) -> bool:
        """False when nothing but HTML is read (the default)."""
        return self._any or bool(self._types or self._top_levels)

    def match(self, content_type: str | None) -> bool:
        """Whether a response of ``content_type`` (its header; None: none sent) is a download.
        HTML never is, nor a response without a Content-Type, which counts as HTML
        (:func:`crawler.models.is_html_type`)."""
        if not content_type or is_html_type(content_type):
            return False
        media_type = content_type.split(";", 1)[0].strip().lower()
        return (
            self._any
            or media_type in self._types
            or media_type.partition("/")[0] in self._top_levels
        )
