"""The bundled demo site: a deterministic synthetic website (:mod:`crawler.demo.site`), the
asyncio HTTP/1.1 server that serves it (:mod:`crawler.demo.server`), the site as a process
(``python -m crawler.demo.serve``), and ``make run``'s demo crawl (``python -m crawler.demo``).

The tests crawl it, and ``expected_pages`` / ``expected_statuses`` say what they must find.
"""

from crawler.demo.server import MAX_HEADER_BYTES, SiteServer
from crawler.demo.site import (
    BIG_TITLE,
    HOME_TITLE,
    HTML_TYPE,
    Response,
    SiteSpec,
    canonical_path,
    expected_pages,
    expected_statuses,
    render,
)

__all__ = [
    "BIG_TITLE",
    "HOME_TITLE",
    "HTML_TYPE",
    "MAX_HEADER_BYTES",
    "Response",
    "SiteServer",
    "SiteSpec",
    "canonical_path",
    "expected_pages",
    "expected_statuses",
    "render",
]
