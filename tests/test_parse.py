from __future__ import annotations

import random

import pytest
from selectolax.lexbor import SelectolaxError

import crawler.parse.html
from crawler.models import ParsedPage
from crawler.parse.html import detect_charset, parse_html

URL = "https://example.com/dir/page.html"


def page(head: str = "", body: str = "") -> bytes:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode()


# --- title, description, canonical -------------------------------------------------------


def test_title_is_whitespace_collapsed() -> None:
    parsed = parse_html(page("<title>\n  Hello \t  World\n</title>"), URL)
    assert parsed.title == "Hello World"


def test_first_title_wins_and_entities_are_decoded() -> None:
    parsed = parse_html(page("<title>Fish &amp; Chips</title><title>Second</title>"), URL)
    assert parsed.title == "Fish & Chips"


@pytest.mark.parametrize(
    "head", ["", "<title></title>", "<title>  \n </title>"], ids=["missing", "empty", "blank"]
)
def test_missing_or_blank_title_is_none(head: str) -> None:
    assert parse_html(page(head), URL).title is None


def test_svg_title_is_not_the_document_title() -> None:
    body = '<svg viewBox="0 0 1 1"><title>Close icon</title></svg>'
    assert parse_html(page(body=body), URL).title is None
    assert parse_html(page("<title>Real</title>", body), URL).title == "Real"


def test_description_name_is_case_insensitive_and_collapsed() -> None:
    head = '<meta NAME="Description" content="  A  short\n summary. ">'
    assert parse_html(page(head), URL).description == "A short summary."


def test_description_ignores_other_meta_tags() -> None:
    head = '<meta name="keywords" content="a, b"><meta property="og:description" content="og">'
    assert parse_html(page(head), URL).description is None


def test_canonical_is_resolved_against_the_page_url() -> None:
    parsed = parse_html(page('<link rel="canonical" href="../other.html">'), URL)
    assert parsed.canonical == "https://example.com/other.html"


def test_canonical_rel_is_a_case_insensitive_token_list() -> None:
    head = (
        '<link rel="noncanonical" href="/wrong">'
        '<link rel="alternate  CANONICAL" href="https://example.org/right">'
    )
    assert parse_html(page(head), URL).canonical == "https://example.org/right"


def test_canonical_is_resolved_against_base_href() -> None:
    head = '<base href="https://cdn.example.net/root/"><link rel="canonical" href="c.html">'
    assert parse_html(page(head), URL).canonical == "https://cdn.example.net/root/c.html"


@pytest.mark.parametrize(
    "head",
    [
        "",
        '<link rel="stylesheet" href="/s.css">',
        '<link rel="canonical" href="  ">',
        '<link rel="canonical" href="javascript:void(0)">',
        '<link rel="canonical" href="http://[::1">',
    ],
    ids=["missing", "other-rel", "blank", "javascript", "bad-ipv6"],
)
def test_missing_or_unusable_canonical_is_none(head: str) -> None:
    assert parse_html(page(head), URL).canonical is None


# --- base href ----------------------------------------------------------------------------


def test_absolute_base_href() -> None:
    parsed = parse_html(page('<base href="http://other.example/a/">'), URL)
    assert parsed.base_url == "http://other.example/a/"


def test_relative_base_href_is_resolved_against_the_page_url() -> None:
    parsed = parse_html(page('<base href="../static/">'), URL)
    assert parsed.base_url == "https://example.com/static/"


def test_protocol_relative_base_href() -> None:
    parsed = parse_html(page('<base href="//cdn.example.net/x/">'), URL)
    assert parsed.base_url == "https://cdn.example.net/x/"


@pytest.mark.parametrize(
    "base",
    [
        '<base href="javascript:alert(1)">',
        '<base href="data:text/html,hi">',
        '<base href="mailto:a@example.com">',
        '<base href="http://[::1">',
        '<base target="_blank">',
        '<base href="javascript:x"><base href="https://second.example/">',
    ],
    ids=["javascript", "data", "mailto", "bad-ipv6", "no-href", "only-first-counts"],
)
def test_unusable_base_falls_back_to_the_page_url(base: str) -> None:
    assert parse_html(page(base), URL).base_url == URL


def test_links_stay_raw_even_with_a_base() -> None:
    parsed = parse_html(page('<base href="https://b.example/"> ', '<a href="x/y">y</a>'), URL)
    assert parsed.links == ["x/y"]
    assert parsed.base_url == "https://b.example/"


# --- links --------------------------------------------------------------------------------


def test_links_in_document_order_deduplicated_without_fragments() -> None:
    body = """
        <a href="/b">b</a>
        <a href="  /a  ">a</a>
        <a href="#top">top</a>
        <a href="#">hash</a>
        <a href="">empty</a>
        <a href="   ">blank</a>
        <a href>bare</a>
        <a name="anchor">no href</a>
        <a href="/b">b again</a>
        <a href="/a">a again, stripped copy</a>
        <a href="/c#section">c</a>
        <a href="https://other.example/">abs</a>
        <a href="mailto:x@example.com">mail</a>
    """
    assert parse_html(page(body=body), URL).links == [
        "/b",
        "/a",
        "/c#section",
        "https://other.example/",
        "mailto:x@example.com",
    ]


def test_area_links_are_interleaved_with_anchors_in_document_order() -> None:
    body = """
        <a href="/one">1</a>
        <map name="m"><area shape="rect" href="/two"><area shape="rect" nohref></map>
        <a href="/three">3</a>
        <area href="/one">
    """
    assert parse_html(page(body=body), URL).links == ["/one", "/two", "/three"]


def test_link_and_script_hrefs_are_not_links() -> None:
    head = '<link rel="stylesheet" href="/s.css"><script src="/app.js"></script>'
    assert parse_html(page(head, '<a href="/only">x</a>'), URL).links == ["/only"]


# --- charset --------------------------------------------------------------------------------


def test_utf8_bom() -> None:
    body = b"\xef\xbb\xbf" + "<title>Caf\u00e9</title>".encode()
    assert detect_charset(body) == "utf-8"
    parsed = parse_html(body, URL)
    assert parsed.title == "Caf\u00e9"
    assert parsed.charset == "utf-8"


@pytest.mark.parametrize(("bom", "codec"), [(b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")])
def test_utf16_bom(bom: bytes, codec: str) -> None:
    body = bom + '<title>\u00c9t\u00e9</title><a href="/x">x</a>'.encode(codec)
    parsed = parse_html(body, URL)
    assert parsed.charset == codec
    assert parsed.title == "\u00c9t\u00e9"
    assert parsed.links == ["/x"]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html; charset=windows-1251",
        'text/html; charset="windows-1251"',
        "text/html;CHARSET='Windows-1251'",
        "TEXT/HTML ; Charset = cp1251",
    ],
)
def test_charset_from_header(content_type: str) -> None:
    body = "<title>\u041f\u0440\u0438\u0432\u0435\u0442</title>".encode("cp1251")
    assert detect_charset(body, content_type) == "cp1251"
    assert parse_html(body, URL, content_type).title == "\u041f\u0440\u0438\u0432\u0435\u0442"


def test_charset_from_meta_charset() -> None:
    body = '<meta charset="Shift_JIS"><title>\u65e5\u672c</title>'.encode("shift_jis")
    parsed = parse_html(body, URL, "text/html")
    assert parsed.charset == "shift_jis"
    assert parsed.title == "\u65e5\u672c"


def test_charset_from_meta_http_equiv() -> None:
    body = (
        '<meta http-equiv="Content-Type" content="text/html; charset=KOI8-R">'
        "<title>\u041c\u0438\u0440</title>"
    ).encode("koi8-r")
    parsed = parse_html(body, URL)
    assert parsed.charset == "koi8-r"
    assert parsed.title == "\u041c\u0438\u0440"


def test_header_beats_meta() -> None:
    body = '<meta charset="shift_jis"><title>\u00e9</title>'.encode("cp1252")
    parsed = parse_html(body, URL, "text/html; charset=windows-1252")
    assert parsed.charset == "cp1252"
    assert parsed.title == "\u00e9"


def test_bom_beats_header() -> None:
    body = b"\xef\xbb\xbf" + "<title>\u00e9</title>".encode()
    assert detect_charset(body, "text/html; charset=windows-1251") == "utf-8"
    assert parse_html(body, URL, "text/html; charset=windows-1251").title == "\u00e9"


def test_unknown_header_label_falls_through_to_meta() -> None:
    assert detect_charset(b'<meta charset="koi8-r">', "text/html; charset=klingon") == "koi8-r"


def test_unknown_meta_label_falls_through_to_the_next_meta() -> None:
    assert detect_charset(b'<meta charset="bogus"><meta charset="koi8-r">') == "koi8-r"


def test_unknown_labels_everywhere_fall_back_to_utf8() -> None:
    body = b'<meta charset="x-nope"><title>ok</title>'
    parsed = parse_html(body, URL, "text/html; charset=klingon")
    assert parsed.charset == "utf-8"
    assert parsed.title == "ok"


@pytest.mark.parametrize("label", ["base64", "rot13", "zlib", "idna", "punycode", "undefined"])
def test_non_text_or_failing_codecs_are_skipped(label: str) -> None:
    body = b"<title>caf\xe9 \xff</title>"
    parsed = parse_html(body, URL, f"text/html; charset={label}")
    assert parsed.charset == "utf-8"
    assert parsed.title == "caf\ufffd \ufffd"


@pytest.mark.parametrize("label", ["unicode_escape", "utf-7", "utf-32"])
def test_non_whatwg_codecs_are_skipped(label: str) -> None:
    assert detect_charset(b"<p>\\x41</p>", f"text/html; charset={label}") == "utf-8"


@pytest.mark.parametrize("label", ["iso-8859-1", "ISO_8859-1", "latin1", "l1", "us-ascii", "ascii"])
def test_latin1_and_ascii_labels_decode_as_cp1252(label: str) -> None:
    body = b"<title>\x93quoted\x94 \x80 caf\xe9</title>"
    assert detect_charset(body, f"text/html; charset={label}") == "cp1252"
    assert detect_charset(b'<meta charset="' + label.encode() + b'">' + body) == "cp1252"
    title = parse_html(body, URL, f"text/html; charset={label}").title
    assert title == "\u201cquoted\u201d \u20ac caf\u00e9"


def test_utf16_declared_in_meta_means_utf8() -> None:
    body = '<meta charset="utf-16"><title>caf\u00e9</title>'.encode()
    parsed = parse_html(body, URL)
    assert parsed.charset == "utf-8"
    assert parsed.title == "caf\u00e9"


def test_utf16_from_header_without_bom_is_little_endian() -> None:
    body = "<title>hi</title>".encode("utf-16-le")
    parsed = parse_html(body, URL, "text/html; charset=UTF-16")
    assert parsed.charset == "utf-16-le"
    assert parsed.title == "hi"


def test_meta_after_the_first_1024_bytes_is_ignored() -> None:
    body = b"<!--" + b"x" * 1100 + b'--><meta charset="koi8-r">'
    assert detect_charset(body) == "utf-8"


def test_meta_lookalike_tags_do_not_declare_a_charset() -> None:
    assert detect_charset(b'<metadata charset="koi8-r">') == "utf-8"


def test_no_declaration_defaults_to_utf8() -> None:
    assert detect_charset(b"<p>plain</p>") == "utf-8"
    assert detect_charset(b"", None) == "utf-8"


# --- robustness -----------------------------------------------------------------------------


def test_invalid_utf8_is_replaced_not_raised() -> None:
    body = b'<title>caf\xe9 \xc3\x28</title><a href="/x\xff">x</a>'
    parsed = parse_html(body, URL, "text/html; charset=utf-8")
    assert parsed.title == "caf\ufffd \ufffd("
    assert parsed.links == ["/x\ufffd"]


def test_parser_failure_returns_what_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_html: str) -> None:
        raise SelectolaxError("Can't parse HTML.")

    monkeypatch.setattr(crawler.parse.html, "LexborHTMLParser", refuse)
    body = b'<title>t</title><a href="/a">a</a>'
    parsed = parse_html(body, URL, "text/html; charset=koi8-r")
    assert parsed == ParsedPage(base_url=URL, charset="koi8-r")


_RANDOM = random.Random(20240601)
_HUGE = "v" * 1_000_000

HOSTILE: list[tuple[str, bytes, ParsedPage]] = [
    ("empty", b"", ParsedPage(base_url=URL)),
    ("nul-bytes", b"\x00" * 1000, ParsedPage(base_url=URL)),
    (
        "random-bytes",
        bytes(_RANDOM.randrange(256) for _ in range(65_536)),
        ParsedPage(base_url=URL),
    ),
    ("truncated-a", b"<html><body><a href=", ParsedPage(base_url=URL)),
    ("truncated-value", b'<a href="/half', ParsedPage(base_url=URL)),
    (
        "unclosed-title",
        b"<title>never closed <a href='/x'>",
        ParsedPage(title="never closed <a href='/x'>", base_url=URL),
    ),
    (
        "unclosed-comment",
        b'<a href="/before">b</a><!-- <a href="/hidden">',
        ParsedPage(base_url=URL, links=["/before"]),
    ),
    (
        "nested-divs",
        b"<div>" * 10_000 + b'<a href="/deep">deep</a>',
        ParsedPage(base_url=URL, links=["/deep"]),
    ),
    (
        "huge-attribute",
        f'<div data-x="{_HUGE}"></div><a href="/{_HUGE}">x</a>'.encode(),
        ParsedPage(base_url=URL, links=[f"/{_HUGE}"]),
    ),
    (
        "nul-in-markup",
        b'<ti\x00tle>x</title><a hr\x00ef="/n" href="/\x00ok">',
        ParsedPage(base_url=URL, links=["/\ufffdok"]),
    ),
    (
        "binary-with-bom",
        b"\xfe\xff" + bytes(range(256)) * 4,
        ParsedPage(base_url=URL, charset="utf-16-be"),
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [(b, e) for _, b, e in HOSTILE], ids=[name for name, _, _ in HOSTILE]
)
def test_hostile_input_returns_a_page(body: bytes, expected: ParsedPage) -> None:
    assert parse_html(body, URL) == expected


def test_several_megabyte_page_returns_every_distinct_link() -> None:
    filler = "<p>" + "lorem ipsum dolor sit amet " * 4 + "</p>"
    parts = []
    for i in range(20_000):
        parts.append(f'<li><a href="/item/{i}">item {i}</a>{filler}')
        if i % 4 == 0:  # repeats must not add entries or reorder
            parts.append(f'<a href="/item/{i // 2}">again</a>')
    body = page("<title>big</title>", "<ul>" + "".join(parts) + "</ul>")
    assert len(body) > 3_000_000

    parsed = parse_html(body, URL)

    assert parsed.title == "big"
    assert parsed.links == [f"/item/{i}" for i in range(20_000)]
