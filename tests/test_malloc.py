"""Tests for crawler.parse.malloc: the parse worker keeps freed C heap memory (glibc only)."""

from __future__ import annotations

import os

import pytest

from crawler.parse import malloc


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_keep_freed_memory_sets_the_trim_threshold_on_glibc() -> None:
    assert malloc.keep_freed_memory() is True


def test_keep_freed_memory_leaves_other_c_libraries_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_glibc(name: str) -> str:
        raise ValueError(name)  # what os.confstr does where the name is unknown (musl, macOS)

    monkeypatch.setattr(malloc.os, "confstr", not_glibc)
    assert malloc.keep_freed_memory() is False


def test_the_parse_worker_keeps_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.parse import child as parse_child

    called: list[bool] = []
    monkeypatch.setattr(parse_child, "keep_freed_memory", lambda: called.append(True) or True)
    monkeypatch.setattr(parse_child, "serve", lambda inp, out: None)
    monkeypatch.setattr(parse_child.os, "dup2", lambda a, b: None)
    monkeypatch.setattr(parse_child.signal, "signal", lambda *a: None)
    parse_child.main()
    assert called == [True]
