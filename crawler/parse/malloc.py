"""The parse worker's malloc tuning: the C heap memory it frees is kept for the next page, not
handed back.

Each page is parsed into a lexbor tree of a few hundred KB that is freed as soon as its links
are read. glibc's ``malloc`` returns free memory at the top of its heap to the kernel once
there is more than its trim threshold (128 KB, adapted as large blocks come and go), so every
page's tree was built on memory the kernel had to map and zero again. With the threshold at
:data:`TRIM_THRESHOLD` the process keeps that memory for the next tree:

- ``python -m crawler.bench.stages``: ``parse_html`` 0.243-0.275 ms a page with glibc's
  default, 0.087-0.089 ms with the heap kept (the same run, the same pages);
- ``crawl bench -s single-host --no-ceiling``, three alternating pairs on one machine:
  1,173 / 1,246 / 1,261 pages/s without, 1,348 / 1,446 / 1,366 with (git history).

The crawl's own process is left as it is: its buffers (bodies, frames) are smaller and
outlive each other, and doing the same there made no difference that runs could show.
Other C libraries (musl, macOS) are left alone too.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("crawler")

TRIM_THRESHOLD = 16 * 1024 * 1024
"""Bytes of free memory at the top of the heap a process keeps instead of returning them."""

_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>


def keep_freed_memory() -> bool:
    """Make this process keep freed heap memory for reuse (glibc only); True if it did."""
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return False
    except (AttributeError, ValueError, OSError):  # not a glibc system
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # Python's own process links glibc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:  # 1 is success
        log.debug("mallopt(M_TRIM_THRESHOLD) refused")
        return False
    return True
