"""The exception tree drawn in crawler/errors.py's docstring is the tree in the code: every
subclass of ``CrawlError`` the package defines, under its own base, and nothing else."""

from __future__ import annotations

import importlib
import pkgutil
import re

import crawler
from crawler import errors
from crawler.errors import CrawlError

_TREE_LINE = re.compile(r"^(?P<prefix>[ │├└─]*)(?P<name>[A-Z]\w*)\b")


def drawn_tree() -> dict[str, str | None]:
    """Each class drawn in the docstring's ``::`` block -> the class drawn above it, one
    level up (None for the root). A line is a class when its first word is CamelCase; a
    continuation of a description is not."""
    doc = errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: dict[str, str | None] = {}
    ancestry: list[tuple[int, str]] = []  # (column, name), the current branch
    for line in block.splitlines():
        if (match := _TREE_LINE.match(line)) is None:
            continue
        column, name = len(match["prefix"]), match["name"]
        while ancestry and ancestry[-1][0] >= column:
            ancestry.pop()
        parents[name] = ancestry[-1][1] if ancestry else None
        ancestry.append((column, name))
    return parents


def defined_tree() -> dict[str, str | None]:
    """Each subclass of CrawlError defined anywhere in the package -> its base."""
    for module in pkgutil.walk_packages(crawler.__path__, "crawler."):
        # __main__ runs the CLI when imported; the bench defines no crawl errors.
        if module.name != "crawler.__main__" and not module.name.startswith("crawler.bench"):
            importlib.import_module(module.name)
    parents: dict[str, str | None] = {"CrawlError": None}
    pending = [CrawlError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("crawler."):
                parents[sub.__name__] = cls.__name__
                pending.append(sub)
    return parents


def test_the_docstring_draws_every_error_class_under_its_base() -> None:
    drawn, defined = drawn_tree(), defined_tree()
    assert len(defined) > 10  # the walk found the tree (a broken walk would find only the root)
    assert drawn == defined
