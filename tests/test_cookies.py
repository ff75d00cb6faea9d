"""The per-host cookie store's bounds and rules, without a network (the wire tests are in
``tests/test_fetch_wire.py``)."""

from __future__ import annotations

from crawler.fetch.cookies import MAX_COOKIE_BYTES, HostCookies, make_cookie

URL = "http://a.test/"


def set_cookies(*pairs: str) -> list[bytes]:
    return [f"{pair}; Path=/".encode() for pair in pairs]


def names(cookies: HostCookies, url: str = URL, host: str = "a.test") -> list[str]:
    header = cookies.header(url, host)
    return [] if header is None else sorted(p.split("=")[0] for p in header.decode().split("; "))


def test_a_host_keeps_at_most_its_limit_and_can_still_change_what_it_has() -> None:
    cookies = HostCookies(max_per_host=3)
    cookies.store(URL, "a.test", set_cookies("a=1", "b=1"))
    cookies.store(URL, "a.test", set_cookies("c=1", "d=1", "e=1"))
    assert names(cookies) == ["a", "b", "c"]  # d and e refused: the host had all it may have
    cookies.store(URL, "a.test", set_cookies("a=2", "f=1"))
    assert cookies.header(URL, "a.test") == b"a=2; b=1; c=1"
    assert len(cookies) == 3


def test_all_hosts_together_keep_at_most_the_total_the_least_recently_used_go_first() -> None:
    cookies = HostCookies(max_per_host=2, max_total=4)
    for host in ("a.test", "b.test", "c.test"):
        cookies.store(f"http://{host}/", host, set_cookies("x=1", "y=1"))
        cookies.header(URL, "a.test")  # a.test stays in use
    assert len(cookies) == 4
    assert names(cookies) == ["x", "y"]
    assert names(cookies, "http://b.test/", "b.test") == []
    assert names(cookies, "http://c.test/", "c.test") == ["x", "y"]


def test_an_oversized_cookie_is_refused() -> None:
    cookies = HostCookies()
    cookies.store(URL, "a.test", set_cookies("big=" + "x" * MAX_COOKIE_BYTES, "small=1"))
    assert cookies.header(URL, "a.test") == b"small=1"


def test_an_expired_cookie_is_deleted_and_an_empty_host_forgotten() -> None:
    cookies = HostCookies()
    cookies.store(URL, "a.test", set_cookies("sid=1"))
    cookies.store(URL, "a.test", [b"sid=; Path=/; Max-Age=0"])
    assert (cookies.header(URL, "a.test"), len(cookies), repr(cookies)) == (
        None,
        0,
        "<HostCookies hosts=0 cookies=0>",
    )


def test_a_cookie_goes_back_to_every_port_of_its_host_and_only_over_https_if_secure() -> None:
    cookies = HostCookies()
    cookies.store("https://a.test/", "a.test", [b"sid=1; Path=/", b"token=2; Path=/; Secure"])
    assert cookies.header("http://a.test:8080/page", "a.test") == b"sid=1"
    assert cookies.header("https://a.test/page", "a.test") == b"sid=1; token=2"


def test_user_and_password_in_the_url_are_no_part_of_the_host() -> None:
    cookies = HostCookies()
    cookies.store("http://user:pw@a.test/login", "a.test", set_cookies("sid=1"))
    assert cookies.header("http://other:secret@a.test/", "a.test") == b"sid=1"


def test_an_imported_domain_wide_cookie_the_host_deleted_stays_deleted() -> None:
    # A logout: the site deletes the session it was given from the user's cookies.txt. The
    # host's emptied jar is forgotten, and must not be refilled from the file at the next
    # request, which would log the crawl back in.
    sid = make_cookie(".example.test", "/", "sid", "s3cret", False, None, False)
    cookies = HostCookies([sid])
    url = "http://a.example.test/"
    assert cookies.header(url, "a.example.test") == b"sid=s3cret"
    cookies.store(url, "a.example.test", [b"sid=; Domain=example.test; Path=/; Max-Age=0"])
    assert cookies.header(url, "a.example.test") is None
    assert cookies.header(url + "again", "a.example.test") is None
    # Other hosts under the domain still get it: only the host that deleted it is logged out.
    assert cookies.header("http://b.example.test/", "b.example.test") == b"sid=s3cret"
    assert bool(cookies)
