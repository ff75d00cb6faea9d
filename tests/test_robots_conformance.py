"""robots.txt conformance: Google's robots.txt test assertions and RFC 9309's examples
(``tests/data/robots-conformance``), each run through our own decision path: the product token
``robots_token`` derives from the case's user agent, the policy ``RobotsCache`` builds from the
case's file, and ``RobotsPolicy.allows`` for the case's URL as the worker asks it (canonical).

Every case must agree except the ones in ``DEVIATIONS``, each with its reason; a deviation that
disappears fails too, so the list (and docs/politeness.md's robots.txt section, checked below)
stays true.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from crawler.config_load import load_config
from crawler.errors import ConfigError
from crawler.frontier.robots import RobotsCache, RobotsFetch, robots_token
from crawler.urls import canonicalize, host_key

DATA = Path(__file__).parent / "data" / "robots-conformance" / "google-robotstxt-cases.json"
POLITENESS_DOC = Path(__file__).parent.parent / "docs" / "politeness.md"
SUITE: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = SUITE["cases"] + SUITE["rfc_examples"] + SUITE["probes"]
ALLOWED = [case for case in CASES if case["kind"] == "allowed"]
TOKENS = [case for case in CASES if case["kind"] == "token"]
SITEMAPS = [case for case in CASES if case["kind"] == "sitemaps"]

# The worker asks only about canonical URLs: these URLs have none, so no answer is ours.
_NOT_ASKED = "no canonical URL (empty): the worker never asks robots.txt about it"
_GOOGLE_LONG_LINES = (
    "Google cuts a line after 16,664 bytes (its own choice; RFC 9309 2.5 sets no line limit, "
    "only 500 KiB for the file): we read the whole line"
)
_GOOGLE_NO_ENCODING = (
    "Google's matcher leaves the URL as given and asks the caller to percent-encode it; we "
    "canonicalize it (RFC 9309 2.2.2: octets outside US-ASCII are percent-encoded), so the "
    "raw-UTF-8 URL matches the encoded rule"
)
DEVIATIONS: dict[str, str] = {
    "G001": _NOT_ASKED,
    "G002": _NOT_ASKED,
    "G003": _NOT_ASKED,
    "G004": _NOT_ASKED,
    "G075": _GOOGLE_NO_ENCODING,
    "G077": _GOOGLE_NO_ENCODING,
    "G078": (
        "Google does not decode %62%61%7A in a rule; RFC 9309 2.2.2 (Figure 4, row 5) matches "
        "/foo/bar/%62%61%7A as /foo/bar/baz, and so do we (R21)"
    ),
    "G052": (
        "the user agent 'Foo Bar' is a User-Agent header to us: its product token is 'Foo', "
        "whose group applies; Google matches the whole string, not a token (RFC 9309 2.2.1), "
        "to no group and falls back to '*'"
    ),
    "G095": _GOOGLE_LONG_LINES,
    "G098": _GOOGLE_LONG_LINES,
    "R16": (
        "ambiguous reading of RFC 9309 2.2.2 Figure 4 row 2: Protego keeps %3A and %2F "
        "(reserved) encoded, so an encoded query does not match the plain rule"
    ),
    "R17": "the same as R16, the other way round",
    "P07": "a partial UTF-8 BOM (EF BB) is skipped by Google only; for us it is garbage",
    "P08": "a partial UTF-8 BOM (EF) is skipped by Google only; for us it is garbage",
    "P21": (
        "Google's extension, which Protego follows: 'Allow: /x/index.html' allows /x/ too "
        "(RFC 9309 2.2.2 would match only 'Disallow: /'); G090 is the Google view and agrees"
    ),
    "P22": (
        "Protego, like Google, reads 'user-agent FooBot' without a colon (RFC 9309 2.2 needs "
        "one); G007 is the Google view and agrees"
    ),
    "P23": (
        "Protego applies a group named by a prefix of our token ('crawl' for 'crawler'); "
        "RFC 9309 2.2.1 matches the token exactly"
    ),
    "P24": "the same as P23: the 'crawl' group applies to 'crawler'",
    "P25": (
        "Protego decodes percent-escapes as UTF-8 with replacement, so %E8 and %E9 (not UTF-8) "
        "both become U+FFFD and compare equal; RFC 9309 2.2.2 keeps them apart"
    ),
    "P26": "the same as P25, the other way round",
}
"""Cases where our answer differs, by id, and why. Where Google and RFC 9309 disagree the RFC
wins (its section is cited); the ``P`` probes give the RFC-strict view of Google's choices."""

TOKEN_DEVIATIONS: dict[str, str] = {
    "G031": "an empty crawl.robots_token means 'not set: derive it from the user agent'",
    "G032": "the same as G031",
}


def _body(case: dict[str, Any]) -> bytes:
    return str(case["robots"]).encode(case.get("robots_encoding", "utf-8"))


async def _decide_all() -> dict[str, bool | tuple[str, ...] | None]:
    decisions: dict[str, bool | tuple[str, ...] | None] = {}
    for case in ALLOWED + SITEMAPS:
        # Long enough for Google's long-line cases: crawl.max_url_length can be raised as far.
        url = canonicalize(case["url"], max_length=1_000_000) if case["url"] else None
        if url is None:
            decisions[case["id"]] = None
            continue
        origin = f"{url[: url.find(':')]}://{host_key(url)}"  # origin_of() caps the length
        body = _body(case)

        async def fetch(_: str, body: bytes = body) -> RobotsFetch:
            return RobotsFetch(200, body)

        async with RobotsCache(fetch, robots_token(case["ua"])) as cache:
            policy = await cache.policy(origin)
        sitemaps = case["kind"] == "sitemaps"
        decisions[case["id"]] = policy.sitemaps if sitemaps else policy.allows(url)
    return decisions


@pytest.fixture(scope="module")
def decisions() -> dict[str, bool | tuple[str, ...] | None]:
    return asyncio.run(_decide_all())


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['id']}-{case.get('test') or case['source']}"


@pytest.mark.parametrize("case", ALLOWED, ids=_case_id)
def test_allowed_case(case: dict[str, Any], decisions: dict[str, bool | None]) -> None:
    got = decisions[case["id"]]
    if case["id"] in DEVIATIONS:
        assert got != case["expected"], f"{case['id']} agrees now: remove it from DEVIATIONS"
    else:
        assert got == case["expected"], f"{case['id']}: {case.get('note') or case.get('why')}"


@pytest.mark.parametrize("case", SITEMAPS, ids=_case_id)
def test_sitemaps_case(case: dict[str, Any], decisions: dict[str, Any]) -> None:
    assert decisions[case["id"]] == tuple(case["expected_sitemaps"])


@pytest.mark.parametrize("case", TOKENS, ids=_case_id)
def test_token_case_against_config_validation(case: dict[str, Any]) -> None:
    try:
        load_config(overrides={"crawl.robots_token": case["value"]}, environ={})
        valid = True
    except ConfigError:
        valid = False
    if case["id"] in TOKEN_DEVIATIONS:
        assert valid != case["expected"], f"{case['id']} agrees now: remove it"
    else:
        assert valid == case["expected"]


def test_every_deviation_names_a_case() -> None:
    ids = {case["id"] for case in ALLOWED}
    assert set(DEVIATIONS) <= ids
    assert set(TOKEN_DEVIATIONS) <= {case["id"] for case in TOKENS}


def test_docs_state_the_figure_and_every_deviation() -> None:
    doc = POLITENESS_DOC.read_text(encoding="utf-8")
    section = doc[doc.index("### robots.txt conformance") :]
    agree = len(ALLOWED) - len(DEVIATIONS)
    assert f"{agree} of {len(ALLOWED)}" in section
    listed = set(re.findall(r"\b[GRP]\d{2,3}\b", section.split("\n## ", 1)[0]))
    assert set(DEVIATIONS) <= listed
