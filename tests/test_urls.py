"""Tests for crawler.urls: one test per canonicalization rule, then host keys and scope."""

from __future__ import annotations

import pytest

from crawler.urls import (
    DEFAULT_MAX_URL_LENGTH,
    BaseURL,
    canonicalize,
    has_userinfo,
    host_key,
    hostname,
)

BASE = "http://example.com/dir/index.html?q=1"
RFC_BASE = "http://a/b/c/d;p?q"  # the base of RFC 3986 section 5.4


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("  http://example.com/a  ", "http://example.com/a"),
        ("\t\n\r\x0c http://example.com/a \r\n", "http://example.com/a"),
        ("http://exa\tmple.com/a\nb\r/c", "http://example.com/ab/c"),
        ("/pa\nth?x=\t1", "http://example.com/path?x=1"),
        ("http://example.com/a\x00b", None),
        ("\x01http://example.com/", None),
        ("http://example.com/\x7f", None),
        ("http://example.com/\x85", None),
        ("http://example.com/a\x0bb", None),
    ],
)
def test_rule01_whitespace_stripped_and_controls_rejected(href: str, expected: str | None) -> None:
    assert canonicalize(href, BASE) == expected


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("g", RFC_BASE, "http://a/b/c/g"),
        ("./g", RFC_BASE, "http://a/b/c/g"),
        ("g/", RFC_BASE, "http://a/b/c/g/"),
        ("/g", RFC_BASE, "http://a/g"),
        ("//g", RFC_BASE, "http://g/"),
        ("//Other.example:8080/p?x", "https://a/b", "https://other.example:8080/p?x"),
        ("?y", RFC_BASE, "http://a/b/c/d;p?y"),
        ("g?y", RFC_BASE, "http://a/b/c/g?y"),
        ("#s", RFC_BASE, "http://a/b/c/d;p?q"),
        ("", RFC_BASE, "http://a/b/c/d;p?q"),
        (";x", RFC_BASE, "http://a/b/c/;x"),
        ("..", RFC_BASE, "http://a/b/"),
        ("../g", RFC_BASE, "http://a/b/g"),
        ("../../g", RFC_BASE, "http://a/g"),
        ("../../../g", RFC_BASE, "http://a/g"),
        ("../../../../g", RFC_BASE, "http://a/g"),
        ("g?y/../x", RFC_BASE, "http://a/b/c/g?y/../x"),
        ("http:g", RFC_BASE, "http://a/b/c/g"),
        ("1g:h", RFC_BASE, "http://a/b/c/1g:h"),
        ("a b:c", RFC_BASE, "http://a/b/c/a%20b:c"),
        ("page", "http://a", "http://a/page"),
        ("https://b/x", RFC_BASE, "https://b/x"),
    ],
)
def test_rule02_relative_references_resolved(href: str, base: str, expected: str) -> None:
    assert canonicalize(href, base) == expected


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("HTTP://example.com/", None, "http://example.com/"),
        ("hTtPs://example.com/", None, "https://example.com/"),
        ("javascript:void(0)", BASE, None),
        ("JavaScript:alert(1)", BASE, None),
        ("mailto:someone@example.com", BASE, None),
        ("data:text/html,<p>hi</p>", BASE, None),
        ("tel:+15551234", BASE, None),
        ("ftp://example.com/file", BASE, None),
        ("file:///etc/passwd", BASE, None),
        ("/relative/path", None, None),
        ("//example.com/x", None, None),
        ("page.html", "ftp://example.com/", None),
        ("https:page", "http://example.com/", None),
    ],
)
def test_rule03_only_http_and_https(href: str, base: str | None, expected: str | None) -> None:
    assert canonicalize(href, base) == expected


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://EXAMPLE.Com/", "http://example.com/"),
        ("http://example.com./a", "http://example.com/a"),
        ("http://example.com../a", "http://example.com/a"),
        ("http://Bücher.de/x", "http://xn--bcher-kva.de/x"),
        ("http://例え.テスト/", "http://xn--r8jz45g.xn--zckzah/"),
        ("http://xn--bcher-kva.de/", "http://xn--bcher-kva.de/"),
        ("http://" + "ü" * 64 + ".de/", None),
        # Labels of 1-63 characters, names of at most 253 (RFC 1035 2.3.4).
        ("http://x..localhost/", None),
        ("http://.x.localhost/", None),
        ("http://" + "a" * 64 + ".localhost/", None),
        ("http://" + "a" * 63 + ".localhost/", "http://" + "a" * 63 + ".localhost/"),
        ("http://" + "a." * 126 + "b/", "http://" + "a." * 126 + "b/"),  # 253 characters
        ("http://" + "a." * 126 + "bc/", None),
        ("http://" + "a" * 10_000 + "/", None),
        ("http://x..localhost:8080/", None),
        ("http:///path", None),
        ("http://:80/", None),
        ("http://user@/", None),
        ("http://exa mple.com/", None),
        ("http://ex%61mple.com/", None),
        ("http://[2001:DB8::1]/", "http://[2001:db8::1]/"),
        ("http://[::FFFF:1.2.3.4]:81/", "http://[::ffff:1.2.3.4]:81/"),
        ("http://[not-ipv6]/", None),
        ("http://[fe80::1%25eth0]/", None),
        ("http://[::1/", None),
        ("http://[::1]x/", None),
    ],
)
def test_rule04_scheme_and_host_normalized(href: str, expected: str | None) -> None:
    assert canonicalize(href) == expected


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://example.com:80/", "http://example.com/"),
        ("https://example.com:443/", "https://example.com/"),
        ("http://example.com:443/", "http://example.com:443/"),
        ("https://example.com:80/", "https://example.com:80/"),
        ("http://example.com:8080/", "http://example.com:8080/"),
        ("http://example.com:0080/", "http://example.com/"),
        ("http://example.com:/", "http://example.com/"),
        ("http://example.com:65535/", "http://example.com:65535/"),
        ("http://example.com:65536/", None),
        ("http://example.com:0/", None),
        ("http://example.com:http/", None),
        ("http://example.com:-1/", None),
        ("http://example.com:\uff18\uff10/", None),  # full-width digits
        ("http://example.com:80:80/", None),
    ],
)
def test_rule05_default_port_dropped_and_bad_port_rejected(href: str, expected: str | None) -> None:
    assert canonicalize(href) == expected


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("http://user:pass@example.com/", None, "http://example.com/"),
        ("http://User:PaSS@EXAMPLE.com:80/x?q", None, "http://example.com/x?q"),
        ("https://user@example.com:8443/", None, "https://example.com:8443/"),
        ("http://us%65r:p%40ss@example.com/", None, "http://example.com/"),
        ("http://a@b@example.com/", None, "http://example.com/"),  # the last @ ends it
        ("http://@example.com/", None, "http://example.com/"),
        ("http://:@example.com/", None, "http://example.com/"),
        ("http://u:p@[2001:DB8::1]:81/", None, "http://[2001:db8::1]:81/"),
        ("http://u:p@Bücher.de/", None, "http://xn--bcher-kva.de/"),
        ("//u:p@example.net/a", BASE, "http://example.net/a"),  # network-path reference
        ("/b", "http://u:p@example.com/a", "http://example.com/b"),  # from the base too
        ("http://user@/", None, None),  # still no host
        ("http://u:p@exa mple.com/", None, None),
    ],
)
def test_rule06_userinfo_removed(href: str, base: str | None, expected: str | None) -> None:
    assert canonicalize(href, base) == expected


def test_rule06_the_same_page_with_or_without_credentials() -> None:
    page = BaseURL("http://example.com/dir/")
    assert (
        page.resolve("http://u:p@example.com/x") == page.resolve("/x") == ("http://example.com/x")
    )
    assert page.resolve("http://u:secret@example.com:8080/x") == "http://example.com:8080/x"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://user:pw@example.com/", True),
        ("http://@example.com/", True),
        ("  HTTP://u@Example.com", True),
        ("//u:p@example.com/", True),
        ("http://example.com/a@b", False),  # in the path: not user info
        ("http://example.com/?to=a@b", False),
        ("mailto:a@example.com", False),
        ("/relative@x", False),
        ("http://u\x00@example.com/", False),  # a control character: not a URL at all
    ],
)
def test_has_userinfo(href: str, expected: bool) -> None:
    assert has_userinfo(href) is expected


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://example.com", "http://example.com/"),
        ("http://example.com?a=1", "http://example.com/?a=1"),
        ("http://example.com#top", "http://example.com/"),
        ("http://example.com:8080", "http://example.com:8080/"),
    ],
)
def test_rule07_empty_path_becomes_slash(href: str, expected: str) -> None:
    assert canonicalize(href) == expected


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://example.com/a/./b", "http://example.com/a/b"),
        ("http://example.com/a/b/../c", "http://example.com/a/c"),
        ("http://example.com/a/b/..", "http://example.com/a/"),
        ("http://example.com/a/.", "http://example.com/a/"),
        ("http://example.com/../../a", "http://example.com/a"),
        ("http://example.com/..", "http://example.com/"),
        ("http://example.com/a/%2e%2E/b", "http://example.com/b"),
        ("http://example.com/a//../b", "http://example.com/a/b"),
        ("http://example.com/.hidden/..x/x..", "http://example.com/.hidden/..x/x.."),
        ("http://example.com/a?b/../c", "http://example.com/a?b/../c"),
    ],
)
def test_rule08_dot_segments_removed(href: str, expected: str) -> None:
    assert canonicalize(href) == expected


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
        ("http://example.com/?q=%3d%3D", "http://example.com/?q=%3D%3D"),
        ("http://example.com/%7Euser", "http://example.com/~user"),
        ("http://example.com/%41%62%2D%2E%5F%30", "http://example.com/Ab-._0"),
        ("http://example.com/?x=%41", "http://example.com/?x=A"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/café?q=é", "http://example.com/caf%C3%A9?q=%C3%A9"),
        ("http://example.com/€", "http://example.com/%E2%82%AC"),
        ('http://example.com/"<>\\^`{|}', "http://example.com/%22%3C%3E%5C%5E%60%7B%7C%7D"),
        ("http://example.com/100%", "http://example.com/100%25"),
        ("http://example.com/%zz%4", "http://example.com/%25zz%254"),
        ("http://example.com/%%341", "http://example.com/%2541"),
        ("http://example.com/a/b?c=d&e=f+g", "http://example.com/a/b?c=d&e=f+g"),
        ("http://example.com/p;a=1:@!$'()*,[]", "http://example.com/p;a=1:@!$'()*,[]"),
        ("http://example.com/?next=/a?b=c", "http://example.com/?next=/a?b=c"),
        ("http://example.com/%2F%3F%26%3D%2B", "http://example.com/%2F%3F%26%3D%2B"),
        ("http://example.com/\ud800", None),
    ],
)
def test_rule09_percent_encoding_normalized(href: str, expected: str | None) -> None:
    assert canonicalize(href) == expected


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("HTTP://EXAMPLE.COM/Path/To/File.HTML", "http://example.com/Path/To/File.HTML"),
        ("http://example.com/a?Q=UPPER", "http://example.com/a?Q=UPPER"),
        ("/Mixed/CASE", "http://example.com/Mixed/CASE"),
    ],
)
def test_rule10_path_case_kept(href: str, expected: str) -> None:
    assert canonicalize(href, BASE) == expected


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://example.com/a#frag", "http://example.com/a"),
        ("http://example.com/a?b=1#frag?c=2", "http://example.com/a?b=1"),
        ("http://example.com/a#", "http://example.com/a"),
        ("#only", "http://example.com/dir/index.html?q=1"),
        ("other#x/../y", "http://example.com/dir/other"),
    ],
)
def test_rule11_fragment_dropped(href: str, expected: str) -> None:
    assert canonicalize(href, BASE) == expected


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://example.com/a?", "http://example.com/a"),
        ("http://example.com/a?#f", "http://example.com/a"),
        ("?", "http://example.com/dir/index.html"),
        ("http://example.com/a?z=1&a=2&m=3", "http://example.com/a?z=1&a=2&m=3"),
        ("http://example.com/a?b=2&b=1&a", "http://example.com/a?b=2&b=1&a"),
        ("http://example.com/a??", "http://example.com/a??"),
    ],
)
def test_rule12_empty_query_dropped_and_order_kept(href: str, expected: str) -> None:
    assert canonicalize(href, BASE) == expected


def test_rule13_longer_than_max_length_rejected() -> None:
    prefix = "http://example.com/"
    assert DEFAULT_MAX_URL_LENGTH == 2048
    at_limit = prefix + "a" * (2048 - len(prefix))
    assert canonicalize(at_limit) == at_limit
    assert canonicalize(at_limit + "a") is None
    assert canonicalize(prefix + "abc", max_length=len(prefix) + 3) == prefix + "abc"
    assert canonicalize(prefix + "abc", max_length=len(prefix) + 2) is None
    # The length is measured after canonicalization, both ways.
    assert canonicalize(prefix + "é", max_length=len(prefix) + 5) is None
    assert canonicalize(prefix + "%41" * 3 + "#" + "f" * 50, max_length=len(prefix) + 3) == (
        prefix + "AAA"
    )


TRICKY = [
    "HTTP://User:Pw@EXAMPLE.com.:080/%7euser/%2f%zz a?x=%41&y=é#f",
    "http://example.com",
    "http://example.com/a/./b/../../c/",
    "http://example.com/%2e%2e/%2E/x",
    "http://example.com/%%341%",
    "http://example.com/%25%32%35",
    "http://example.com/a?",
    "http://example.com/a??&",
    "https://example.com:443/x?y=1#z",
    "http://example.com:8080",
    "http://Bücher.de/straße",
    "http://[2001:DB8::1]:81/a",
    'http://example.com/"<>\\^`{|}',
    "http://example.com/a b/c d?e f",
    "//cdn.example.net/lib.js",
    "../../../../up",
    "./a/./b/.",
    "?only=query",
    "#only-fragment",
    "",
    "page%2",
    "/a//b//../c",
    "\t /x\n/y \r",
    "http:rel",
    "/%7e%7E%7f",
    "/€uro?€=€",
    "http://a@b@example.com/",
    "/p;x=1/./y",
    "/x/..%2F../y",
    "http://example.com./A/B/%2E%2E/C",
]


@pytest.mark.parametrize("href", TRICKY)
def test_canonicalize_is_idempotent(href: str) -> None:
    once = canonicalize(href, BASE)
    assert once is not None
    assert canonicalize(once) == once
    assert canonicalize(once, "http://unrelated.example/") == once


@pytest.mark.parametrize(
    "base",
    [
        BASE,
        RFC_BASE,
        "HTTP://User@Example.COM.:8080/a/b?q#f",
        "https://[2001:DB8::1]/x",
        "http://a",
        "mailto:x@example.com",
        "/relative/only",
        "http://exa mple.com/",
        "",
    ],
)
def test_one_base_url_resolves_every_link_as_canonicalize_does(base: str) -> None:
    # One BaseURL serves all the links of a page: nothing of one link may leak into the next.
    resolver = BaseURL(base)
    for href in [*TRICKY, *reversed(TRICKY)]:
        assert resolver.resolve(href) == canonicalize(href, base), href
    assert resolver.resolve("/" + "a" * 40, max_length=30) is None


def test_base_url_normalizes_its_authority() -> None:
    base = BaseURL("HTTP://User@Example.COM.:8080/a/b?q#f")
    assert base.resolve("c") == "http://example.com:8080/a/c"
    assert base.resolve("") == "http://example.com:8080/a/b?q"
    assert base.resolve("//Other.example:80/") == "http://other.example/"
    unusable = BaseURL("http://exa mple.com/")
    assert unusable.resolve("/a") is None
    assert unusable.resolve("https://ok.example/a") == "https://ok.example/a"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/a", "example.com"),
        ("http://example.com:8080/a?b", "example.com:8080"),
        ("https://example.com:8443/", "example.com:8443"),
        ("http://[2001:db8::1]:8080/", "[2001:db8::1]:8080"),
        ("http://[::1]/", "[::1]"),
    ],
)
def test_host_key(url: str, expected: str) -> None:
    assert host_key(url) == expected


def test_host_key_of_canonicalized_url() -> None:
    url = canonicalize("http://Example.com:8080/a")
    assert url is not None
    assert host_key(url) == "example.com:8080"
    default_port = canonicalize("HTTPS://Example.com:443/a")
    assert default_port is not None
    assert host_key(default_port) == "example.com"
    with_credentials = canonicalize("https://user:pw@Example.com:8443/")
    assert with_credentials is not None
    assert host_key(with_credentials) == "example.com:8443"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/a", "example.com"),
        ("http://example.com:8080/a", "example.com"),
        ("https://sub.example.com:8443/", "sub.example.com"),
        ("http://[2001:db8::1]:8080/", "[2001:db8::1]"),
        ("http://[::1]/", "[::1]"),
    ],
)
def test_hostname(url: str, expected: str) -> None:
    assert hostname(url) == expected
