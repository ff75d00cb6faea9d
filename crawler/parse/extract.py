"""The user's own data from an HTML page: the ``[extract.fields]`` rules, then the hook
(:mod:`crawler.parse.hook`), into :attr:`crawler.models.PageRecord.data`.

It runs in the parse worker, inside :func:`crawler.parse.outcome.build_outcome`, on the tree the
link extraction reads (one parse a page), so under the same ``runtime.parse_timeout``; never on
the event loop. docs/extraction.md is the reference; in short:

- a rule's value is the first match's text (whitespace collapsed), or its ``attr``; with
  ``all``, every match's, as a list; a field whose value is empty or that matched nothing is
  absent; a URL attribute (:data:`URL_ATTRIBUTES`) is resolved against the page's base and
  canonicalized as links are (an empty one is the page itself; one that is no http(s) URL,
  ``mailto:x``, stays as written);
- the hook gets a :class:`~crawler.parse.hook.Page` with the rules' fields and returns a dict
  merged into them (its keys win) or None; ``Page.follow`` offers further URLs. If it raises, or
  returns anything else or anything that is not JSON, the page keeps the rules' fields, follows
  none of the hook's URLs, and gets the note ``extract_error: <Type>: <message>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from crawler.config import ExtractSection
from crawler.models import Lease, Response
from crawler.parse.hook import Page, load_hook
from crawler.parse.html import HtmlDocument, HtmlNode, collapse_whitespace
from crawler.urls import BaseURL

__all__ = ["URL_ATTRIBUTES", "ExtractRules", "Extracted", "FieldRule", "extract"]

URL_ATTRIBUTES = frozenset(
    ("href", "src", "action", "formaction", "cite", "poster", "background", "longdesc", "data")
)
"""Attributes whose value is one URL (HTML's), made absolute. ``srcset`` holds several and
stays as written."""

_NOTE_LENGTH = 300
"""An ``extract_error`` note's message is cut here: a note is a word, not a traceback."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One ``[extract.fields.NAME]`` table, ready to run."""

    name: str
    css: str
    attr: str = ""
    """Lower-case (HTML attribute names are); empty: the text."""
    all: bool = False
    urls: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class ExtractRules:
    """What :func:`extract` runs on each HTML page; picklable, so it travels to the parse
    worker process with the link rules."""

    fields: tuple[FieldRule, ...] = ()
    hook: str = ""
    """The hook's importable name; empty: none."""
    search_path: tuple[str, ...] = ()
    """The crawl process's ``sys.path``, where the worker looks for the hook's module too."""

    @classmethod
    def of(cls, section: ExtractSection, search_path: tuple[str, ...] = ()) -> ExtractRules:
        """The rules of a config section (checked at load: the selectors and regexes work)."""
        fields = tuple(
            FieldRule(
                name,
                rule.css,
                rule.attr.lower(),
                rule.all,
                re.compile(rule.urls) if rule.urls else None,
            )
            for name, rule in section.fields.items()
        )
        return cls(fields, section.hook, search_path if section.hook else ())

    @property
    def enabled(self) -> bool:
        return bool(self.fields or self.hook)


@dataclass(frozen=True, slots=True)
class Extracted:
    """What :func:`extract` found on one page."""

    data: dict[str, Any] | None
    """The fields by name; None: none."""
    follow: tuple[str, ...] = ()
    """URLs the hook asked to follow, as it gave them (to resolve against the page's base)."""
    note: str | None = None
    """``extract_error: <Type>: <message>`` when the hook failed."""
    resolved: Mapping[str, str | None] = field(default_factory=dict)
    """URL attribute values (stripped) and what ``base.resolve`` made of them: a rule reading
    ``a[href]`` resolves the page's links, which the link extraction then need not do again
    (two thirds of three rules' cost on the benchmark's pages)."""


def extract(
    document: HtmlDocument,
    lease: Lease,
    response: Response,
    rules: ExtractRules,
    base: BaseURL,
    max_url_length: int,
) -> Extracted:
    """The user's data from one page (``base``: the page's base URL): the rules' fields, then
    the hook's."""
    tree = document.tree
    if tree is None:  # lexbor refused the text: nothing to select from
        return Extracted(None)
    resolved: dict[str, str | None] = {}
    fields: dict[str, Any] = {}
    for rule in rules.fields:
        if rule.urls is not None and rule.urls.search(lease.url) is None:
            continue
        if rule.all:
            nodes = tree.css(rule.css)
        elif (first := tree.css_first(rule.css)) is not None:
            nodes = [first]
        else:
            continue
        values = _values(nodes, rule.attr, base, max_url_length, resolved)
        if values:
            fields[rule.name] = values if rule.all else values[0]
    if not rules.hook:
        return Extracted(fields or None, resolved=resolved)
    page = Page(
        url=lease.url,
        final_url=lease.url,
        status=response.status,
        headers=_headers(response.headers),
        text=document.text,
        tree=tree,
        fields=MappingProxyType(dict(fields)),
    )
    try:
        added = _checked(load_hook(rules.hook)(page))
    except Exception as exc:  # the user's code: any failure is this page's note
        return Extracted(fields or None, note=_note(exc), resolved=resolved)
    return Extracted({**fields, **added} or None, page.followed, resolved=resolved)


def _values(
    nodes: list[HtmlNode],
    attr: str,
    base: BaseURL,
    max_url_length: int,
    resolved: dict[str, str | None],
) -> list[str]:
    """The values of ``nodes`` that are not empty (one call per rule, not per node: the
    benchmark's pages have 35 links)."""
    if not attr:
        return [text for node in nodes if (text := collapse_whitespace(node.text())) is not None]
    if attr not in URL_ATTRIBUTES:
        return [
            value
            for node in nodes
            if (raw := node.attrs.get(attr)) is not None
            and (value := collapse_whitespace(raw)) is not None
        ]
    values = []
    for node in nodes:
        raw = node.attrs.get(attr)
        if raw is None:
            continue
        # Stripped as the link extraction strips a link (crawler.parse.html), so that it finds
        # this one's resolution here.
        reference = raw.strip()
        if reference in resolved:
            url = resolved[reference]
        else:
            url = resolved[reference] = base.resolve(reference, max_length=max_url_length)
        if url is not None:
            values.append(url)
        elif (value := collapse_whitespace(raw)) is not None:  # no http(s) URL: as written
            values.append(value)
    return values


def _headers(headers: tuple[tuple[bytes, bytes], ...]) -> Mapping[str, str]:
    joined: dict[str, str] = {}
    for name, value in headers:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        joined[key] = f"{joined[key]}, {text}" if key in joined else text
    return MappingProxyType(joined)


def _checked(result: object) -> dict[str, Any]:
    """The hook's result as JSON values (tuples become lists): raises for anything else."""
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise TypeError(f"the hook returned a {type(result).__name__}, not a dict or None")
    if any(not isinstance(key, str) for key in result):
        raise TypeError("the hook returned a dict whose keys are not all strings")
    # The stdlib's idea of JSON, not msgspec's (which also writes datetimes, sets, ...): what a
    # hook returns must read back as it was given.
    checked: dict[str, Any] = json.loads(json.dumps(dict(result), allow_nan=False))
    return checked


def _note(exc: Exception) -> str:
    message = " ".join(f"{type(exc).__name__}: {exc}".split())
    # Notes are comma-separated in pages.notes and counted one by one in the stats.
    message = message.replace(",", ";")[:_NOTE_LENGTH]
    return f"extract_error: {message.encode('utf-8', 'backslashreplace').decode()}"
