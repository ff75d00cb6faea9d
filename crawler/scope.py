"""Which canonical URLs a crawl may fetch, and why: pure, no I/O.

A :class:`Scope` answers for every link, redirect target and sitemap URL (the seeds themselves
are always fetched). Its rules, in the order they decide (``crawl.*`` keys):

1.  ``exclude``: a URL that any of these regular expressions matches is out, whatever else
    says (exclude wins).
2.  ``scope``: ``"hosts"``, the seeds' hosts exactly (not their subdomains); ``"domains"``, the
    seeds' registrable domains with all their subdomains (``www.example.co.uk`` admits
    ``shop.example.co.uk``; ``a.github.io`` does not admit ``b.github.io``: the Public Suffix
    List's private section counts, as for browsers' cookies); ``"any"``: every host. A seed
    that has no registrable domain (an IP address, a name that is itself a public suffix,
    ``localhost``) admits its own host only. ``allow_domains`` add domains with all their
    subdomains to any of them. The port never matters.
3.  ``include``: when given, a URL in scope must also match one of them.

``max_offsite_hops`` (N) lets the crawl step out of rule 2 only: a URL outside the scope that
rules 1 and 3 accept is fetched when it is at most N links away from an in-scope page
(:meth:`Scope.reach`); from a page N links out only links back into the scope are followed.
A redirect is no link: its target keeps the page's distance, and is one link out when the
page was in scope.

The patterns see the canonical URL (:func:`crawler.urls.canonicalize`: lower-case scheme and
host, no default port, no fragment, percent-encoding normalized) with the session parameters
of ``traps.session_params`` removed, and match with :func:`re.search` semantics: anywhere in
the URL unless anchored (``^https://example\\.com/docs/``), case-sensitive unless the pattern
says ``(?i)``.

The Public Suffix List is the one shipped in the ``publicsuffixlist`` package: read from the
installed file on first use of ``"domains"``, never downloaded.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from crawler.urls import canonicalize, hostname, normalize_host

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

__all__ = ["Decision", "Scope", "ScopeMode", "registrable_domain"]

ScopeMode = Literal["hosts", "domains", "any"]

_WHITESPACE = " \t\n\x0c\r"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a URL is in scope, the config key whose rule decided, and why in words."""

    allowed: bool
    rule: str
    reason: str


class Scope:
    """The crawl's URL rules (see the module's docstring), built once, asked for every link.

    ``seed_hosts`` and ``allow_domains`` are normalized like a URL host (rule 4 of
    :mod:`crawler.urls`); a leading ``.`` of a domain is ignored. Raises ``ValueError`` for an
    invalid name and ``re.error`` for an invalid pattern."""

    __slots__ = ("_any", "_domains", "_exclude", "_hosts", "_include", "_max_offsite", "_mode")

    def __init__(
        self,
        seed_hosts: Iterable[str],
        allow_domains: Iterable[str] = (),
        *,
        mode: ScopeMode = "hosts",
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        max_offsite_hops: int = 0,
    ) -> None:
        if isinstance(seed_hosts, str) or isinstance(allow_domains, str):
            # A bare string would silently become a set of one-letter hosts.
            raise TypeError("seed_hosts and allow_domains must be iterables of names, not str")
        if isinstance(include, str) or isinstance(exclude, str):
            raise TypeError("include and exclude must be iterables of patterns, not str")
        self._mode = mode
        self._any = mode == "any"
        self._hosts = frozenset(_normalize_name(h, "seed host") for h in seed_hosts)
        # Domain -> the key that put it in scope, for Decision.rule.
        self._domains: dict[str, str] = {}
        if mode == "domains":
            for host in sorted(self._hosts):
                domain = registrable_domain(host)
                if domain is not None:
                    self._domains[domain] = "crawl.scope"
        for name in allow_domains:
            domain = _normalize_name(name.strip(_WHITESPACE).lstrip("."), "allowed domain")
            self._domains[domain] = "crawl.allow_domains"
        self._include = tuple(re.compile(p) for p in include)
        self._exclude = tuple(re.compile(p) for p in exclude)
        self._max_offsite = max_offsite_hops

    @classmethod
    def from_seeds(
        cls,
        seed_urls: Iterable[str],
        allow_domains: Iterable[str] = (),
        *,
        mode: ScopeMode = "hosts",
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        max_offsite_hops: int = 0,
    ) -> Scope:
        """The scope of the seed URLs' hosts. Raises ``ValueError`` for a seed that is not a
        crawlable URL."""
        hosts = []
        for seed in seed_urls:
            url = canonicalize(seed)
            if url is None:
                raise ValueError(f"not a crawlable http(s) URL: {seed!r}")
            hosts.append(hostname(url))
        return cls(
            hosts,
            allow_domains,
            mode=mode,
            include=include,
            exclude=exclude,
            max_offsite_hops=max_offsite_hops,
        )

    def allows(self, url: str) -> bool:
        """Whether the canonical ``url`` is in scope (what :meth:`decide` says, faster)."""
        return self.reach(url, 0) == 0

    @property
    def max_offsite_hops(self) -> int:
        return self._max_offsite

    def reach(self, url: str, offsite: int) -> int | None:
        """The offsite distance the canonical ``url`` gets when a page ``offsite`` links out of
        the scope (0: in it) links to it: 0 in scope, one more than the page's outside it, up
        to ``max_offsite_hops``; None: not followed."""
        if self._exclude and any(p.search(url) for p in self._exclude):
            return None
        if self._include and not any(p.search(url) for p in self._include):
            return None
        if self._any or self._in_scope(hostname(url)):
            return 0
        return offsite + 1 if offsite < self._max_offsite else None

    def decide(self, url: str) -> Decision:
        """Whether the canonical ``url`` is in scope, and which rule decided (for
        ``crawl check-url``)."""
        for pattern in self._exclude:
            if pattern.search(url):
                return Decision(False, "crawl.exclude", f"matches {pattern.pattern!r}")
        host = hostname(url)
        if self._any:
            host_rule = "crawl.scope", 'crawl.scope = "any": every host is in scope'
        elif (found := self._host_rule(host)) is not None:
            host_rule = found
        else:
            return Decision(False, "crawl.scope", self._off_scope(host))
        if self._include:
            for pattern in self._include:
                if pattern.search(url):
                    return Decision(True, "crawl.include", f"matches {pattern.pattern!r}")
            listed = ", ".join(repr(p.pattern) for p in self._include)
            return Decision(False, "crawl.include", f"matches none of {listed}")
        return Decision(True, *host_rule)

    def _in_scope(self, host: str) -> bool:
        """Whether ``host`` is in scope: :meth:`_host_rule` without its reason, for the parse
        path, which asks for every link and has no use for a formatted reason per link."""
        if host in self._hosts:
            return True
        if not self._domains:
            return False
        # One dict lookup per label suffix: cost does not grow with the number of domains.
        while host not in self._domains:
            dot = host.find(".")
            if dot < 0:
                return False
            host = host[dot + 1 :]
        return True

    def _host_rule(self, host: str) -> tuple[str, str] | None:
        """(key, reason) that puts ``host`` in scope, or None."""
        if host in self._hosts:
            return "crawl.scope", f"{host} is a seed's host"
        if not self._domains:
            return None
        # One dict lookup per label suffix: cost does not grow with the number of domains.
        domain = host
        while (key := self._domains.get(domain)) is None:
            dot = domain.find(".")
            if dot < 0:
                return None
            domain = domain[dot + 1 :]
        if key == "crawl.scope":
            return key, f"{host} is in {domain}, a seed's registrable domain"
        return key, f"{host} is in {domain}, an allowed domain"

    def _off_scope(self, host: str) -> str:
        extra = (
            ", nor in crawl.allow_domains"
            if "crawl.allow_domains" in self._domains.values()
            else ""
        )
        if self._mode == "domains":
            return f"{host} is not in a seed's registrable domain{extra}"
        return f'{host} is not a seed\'s host (crawl.scope = "hosts"){extra}'

    def __repr__(self) -> str:
        return (
            f"Scope(mode={self._mode!r}, seed_hosts={sorted(self._hosts)!r}, "
            f"domains={sorted(self._domains)!r}, include={[p.pattern for p in self._include]!r}, "
            f"exclude={[p.pattern for p in self._exclude]!r}, "
            f"max_offsite_hops={self._max_offsite})"
        )


def registrable_domain(host: str) -> str | None:
    """The registrable domain of a normalized host name (``www.example.co.uk`` ->
    ``example.co.uk``, ``a.github.io`` -> ``a.github.io``), from the Public Suffix List's ICANN
    and private sections; None for an IP address or a name that is itself a public suffix."""
    if host.startswith("["):
        return None
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        pass
    else:
        return None
    domain: str | None = _public_suffix_list().privatesuffix(host)
    return domain


@functools.cache
def _public_suffix_list() -> PublicSuffixList:
    # Imported and parsed (~10 ms) only by crawls that use "domains", once per process.
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def _normalize_name(name: str, what: str) -> str:
    host = normalize_host(name.strip(_WHITESPACE))
    if host is None:
        raise ValueError(f"invalid {what}: {name!r}")
    return host
