"""Reading a seeds file: one URL per line, blank lines and ``#`` comments skipped.

A bad line is reported with its line number and skipped; the caller decides what no valid seed
at all means (the CLI: exit 1). A seed with user info (``http://user:pw@host/``) is crawled
without it, as every URL is (:mod:`crawler.urls` rule 6), and warned about with its line number,
so that a crawl answered ``401`` everywhere says why; the warning never repeats the credentials.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path

from crawler.errors import SeedsError
from crawler.urls import canonicalize, has_userinfo


@dataclass(slots=True)
class Seeds:
    urls: list[str] = field(default_factory=list)
    """Canonical seed URLs, in file order, without duplicates."""
    problems: list[str] = field(default_factory=list)
    """One ``FILE:LINE: message`` per skipped line."""
    warnings: list[str] = field(default_factory=list)
    """One ``FILE:LINE: message`` per line kept with a change the user should know of."""


def parse_seeds(lines: list[str], source: str, *, max_url_length: int) -> Seeds:
    seeds = Seeds()
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        url = canonicalize(line, max_length=max_url_length)
        if url is None:
            seeds.problems.append(f"{source}:{number}: not an http(s) URL: {line[:200]!r}")
        elif url not in seen:
            seen.add(url)
            seeds.urls.append(url)
            if has_userinfo(line):
                seeds.warnings.append(
                    f"{source}:{number}: user info removed, credentials in URLs are never "
                    f"sent: crawling {url[:200]!r}"
                )
    return seeds


def read_seeds(path: Path, *, max_url_length: int) -> Seeds:
    """The seeds in the file ``path``: UTF-8, with or without a byte-order mark (Notepad and
    PowerShell write one), or UTF-16 with its mark (PowerShell 5's ``>``). A file with NUL
    characters left after decoding (UTF-16 without a mark, UTF-32, not text) is refused as a
    whole, :class:`SeedsError`: no URL holds a NUL, and a warning per line helps nobody."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SeedsError(f"cannot read seeds file {path}: {exc.strerror}") from None
    text = data.decode(_encoding(data), errors="replace")
    if "\0" in text:
        raise SeedsError(
            f"seeds file {path} holds NUL characters: UTF-16 without a byte-order mark, or not "
            "text at all? Save it as UTF-8"
        )
    return parse_seeds(text.splitlines(), str(path), max_url_length=max_url_length)


def _encoding(data: bytes) -> str:
    # The "utf-16" codec reads the mark to tell the byte order, and drops it; "utf-8-sig"
    # drops a UTF-8 mark and reads plain UTF-8 as it is.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig"
