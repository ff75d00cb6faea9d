"""The process around a crawl (crawler.runtime): the garbage collector's settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from crawler.runtime import YOUNG_COLLECTION_THRESHOLD, tune_gc


@pytest.fixture
def gc_settings() -> Iterator[None]:
    """Put the collector back as it was (other tests share this process)."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("gc_settings")
def test_a_crawl_freezes_what_exists_and_collects_the_young_generation_less_often() -> None:
    gc.unfreeze()
    alive_before = object.__new__(type("AliveBefore", (), {}))
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert not any(o is alive_before for o in gc.get_objects())  # frozen: never scanned
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
