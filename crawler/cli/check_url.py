"""``crawl check-url``: whether a crawl would follow a URL, and which rule of
:mod:`crawler.scope` decides, so users can debug their ``crawl.include``/``exclude`` patterns.

Exit codes: 0 in scope, 3 out of scope (so a script can tell "out" from 1, a bad config or
seeds file, and 2, a usage error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crawler import api
from crawler.cli.output import fail
from crawler.cli.run import ScopeChoice
from crawler.scope import Decision, Scope
from crawler.urls import canonicalize

OUT_OF_SCOPE = 3
"""The exit code of a URL the crawl would not follow."""


def check_url(
    url: Annotated[str, typer.Argument(help="The URL to check, as found in a page.")],
    seeds: Annotated[
        Path | None,
        typer.Option(help="The crawl's seeds file: its hosts are the scope of hosts/domains."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file (see configs/default.toml)."),
    ] = None,
    scope: Annotated[
        ScopeChoice | None, typer.Option(help="Override crawl.scope, as `crawl run --scope`.")
    ] = None,
) -> None:
    """Say whether a crawl would follow URL (exit 0) or not (exit 3), and which rule decides."""
    try:
        cfg = api.configure(
            config,
            {"scope": scope.value if scope else None},
            overrides_from="the command line",
        )
        max_length = cfg.crawl.max_url_length
        seed_list = api.seed_urls(seeds, max_url_length=max_length) if seeds else []
        rules = Scope.from_seeds(
            seed_list,
            cfg.crawl.allow_domains,
            mode=cfg.crawl.scope,
            include=cfg.crawl.include,
            exclude=cfg.crawl.exclude,
            max_offsite_hops=cfg.crawl.max_offsite_hops,
        )
    except Exception as exc:  # bad config or seeds: one line, exit 1, as for `crawl run`
        fail(exc, debug=False)
    canonical = canonicalize(url, max_length=max_length)
    if canonical is None:
        decision = Decision(False, "url", "not a crawlable http(s) URL (or too long)")
    elif canonical in seed_list:
        decision = Decision(True, "seeds", "a seed: seeds are always fetched")
    else:
        decision = rules.decide(canonical)
        if not decision.allowed and decision.rule == "crawl.scope":
            if seeds is None:
                decision = Decision(False, decision.rule, f"{decision.reason} (no --seeds given)")
            if rules.max_offsite_hops:
                decision = Decision(
                    False,
                    decision.rule,
                    f"{decision.reason}; still fetched when it is at most "
                    f"crawl.max_offsite_hops = {rules.max_offsite_hops} links from an in-scope "
                    "page",
                )
    typer.echo(f"{'in' if decision.allowed else 'out'}: {canonical or url}")
    if canonical is not None and canonical != url:
        typer.echo(f"  canonical form of {url} (the form the rules see)")
    typer.echo(f"  decided by {decision.rule}: {decision.reason}")
    raise typer.Exit(0 if decision.allowed else OUT_OF_SCOPE)
