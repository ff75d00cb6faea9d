"""Where our crawler's time goes: a py-spy recording (``--format raw``: one collapsed stack a
line, then its sample count) reduced to the top functions of the event-loop thread.

Only the main thread's stacks count: it runs the event loop, and a crawl on one loop is as fast
as that thread. Self time says what to make cheaper; inclusive time says which call to avoid.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

TOP = 15
WRAPPER_SHARE = 0.9
_MAIN_THREAD_ROOT = "_run_module_as_main"


def _frame(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``, shortened to the package path."""
    function, _, location = frame.partition(" (")
    path = location.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/crawler/", "python3.11/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/crawler/":
                path = "crawler/" + path
            break
    return f"{function} ({path})"


def summarize_profile(path: Path, top: int = TOP) -> dict[str, Any]:
    """The ``top`` functions by self and by inclusive share of the main thread's samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    main = every = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        every += count
        if not stack.startswith(_MAIN_THREAD_ROOT):
            continue
        main += count
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        # Frames on (nearly) every stack are the process and the loop around the crawl.
        ranked = [(name, n) for name, n in counter.most_common() if n < WRAPPER_SHARE * main]
        return [(name, round(100 * n / main, 1)) for name, n in ranked[:top]]

    return {
        "samples_main_thread": main,
        "samples_all_threads": every,
        "self": shares(own) if main else [],
        "inclusive": shares(inclusive) if main else [],
    }
