"""Extraction hooks for tests/test_extract.py, a module of their own so that the parse worker
process finds them by name (``extract.hook = "tests.extract_hooks:summary"``), as a user's."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from crawler.parse.hook import Page

HANG_SECONDS = 60.0
"""How long :func:`hang` waits: far past the tests' parse deadline, and still bounded."""


def summary(page: Page) -> dict[str, Any] | None:
    """What the hook sees of a page; raises on pages under /broken/ (a message with a comma)."""
    if "/broken/" in page.url:
        raise ValueError("no summary here, sorry")
    if page.url.endswith("/nothing"):
        return None
    cells = page.tree.css("td.cell")
    return {
        "words": len(page.text.split()),
        "status": page.status,
        "content_type": page.headers.get("content-type"),
        "fields_seen": sorted(page.fields),
        "cells": [node.text() for node in cells],
        "final_url": page.final_url,
    }


def follow_more(page: Page) -> None:
    """Offers URLs no page links to from the index: two in scope (one absolute, one relative)
    and one on another host."""
    if page.url.endswith("/"):
        page.follow(page.url + "hidden/1")
        page.follow("hidden/2")
        page.follow(page.url.replace("127.0.0.1", "127.0.0.2") + "offsite")


def unencodable(page: Page) -> dict[str, Any]:
    """A value JSON has no form for."""
    return {"when": datetime(2026, 1, 1, tzinfo=UTC)}


def not_a_dict(page: Page) -> list[str]:
    return ["a list"]


def int_keys(page: Page) -> dict[int, str]:
    return {1: "one"}


def not_a_number(page: Page) -> dict[str, float]:
    return {"ratio": float("nan")}


def hang(page: Page) -> None:
    """Never returns in time on /slow (bounded: the parse deadline comes long before)."""
    if page.url.endswith("/slow"):
        threading.Event().wait(HANG_SECONDS)


NOT_CALLABLE = 42
