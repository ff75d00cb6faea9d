"""The user's Python hook (``extract.hook = "package.module:function"``, or
``crawler.run(..., extract=function)``): what it is given (:class:`Page`), and how it is found.

The hook runs in the parse worker, a process of its own by default, which knows it by name only:
the name is resolved there by importing its module, as it is when the config loads. So a hook
must be a module's top-level function; a lambda, a function defined inside another, or one
defined in the script being run (``__main__``) is refused when the crawl starts
(:func:`hook_name`). What it returns, and what happens when it raises, is
:func:`crawler.parse.extract.extract`'s business.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crawler.parse.html import HtmlTree

__all__ = ["Hook", "HookUnusable", "Page", "hook_name", "load_hook", "use_search_path"]


@dataclass(frozen=True, slots=True)
class Page:
    """One HTML page as the hook sees it, in the parse worker. Read-only, but for
    :meth:`follow`."""

    url: str
    """The URL fetched (canonical)."""
    final_url: str
    """Where the page was found: the URL fetched (redirects are pages of their own)."""
    status: int
    headers: Mapping[str, str]
    """The response's headers, names lower-cased; a repeated header's values joined by ", "."""
    text: str
    """The body, decoded."""
    tree: HtmlTree
    """The parsed tree (selectolax's ``LexborHTMLParser``), the one the rules and the link
    extraction read: ``tree.css("td.price")``, ``node.text()``, ``node.attrs.get("href")``."""
    fields: Mapping[str, Any]
    """The fields the ``[extract.fields]`` rules found on this page so far."""
    _follow: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

    def follow(self, url: str) -> None:
        """Offer ``url`` (absolute, or relative to the page's base) to the frontier, as if the
        page linked to it: canonicalized, then through the scope, the depth limit, dedup, the
        trap rules and politeness like any link, and recorded in the ``links`` table."""
        if not isinstance(url, str):
            raise TypeError(f"Page.follow takes a URL as a str, not {type(url).__name__}")
        self._follow.append(url)

    @property
    def followed(self) -> tuple[str, ...]:
        """The URLs given to :meth:`follow` so far, as given."""
        return tuple(self._follow)


Hook = Callable[[Page], Mapping[str, Any] | None]
"""A hook: a :class:`Page` in, fields to merge into the page's data (or None) out."""


class HookUnusable(ValueError):
    """A hook name that names nothing callable, or a callable the parse worker cannot find by
    name; the message says why (the config check turns it into a ConfigError)."""


@functools.cache
def load_hook(name: str) -> Hook:
    """The callable ``name`` (``"package.module:function"``, ``"module:Class.method"``) names,
    imported. Raises :class:`HookUnusable`. Cached: each page of the crawl calls it."""
    module_name, colon, attribute = name.partition(":")
    if not colon or not module_name or not attribute:
        raise HookUnusable(f"must be package.module:function, not {name!r}")
    try:
        found: object = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any error while importing it
        raise HookUnusable(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise HookUnusable(f"names {attribute}, which {module_name} does not have") from None
    if not callable(found):
        raise HookUnusable(f"names {name}, which is a {type(found).__name__}, not callable")
    return found


def hook_name(hook: Callable[..., object]) -> str:
    """The importable name of ``hook`` (``crawler.run(..., extract=hook)``), by which the parse
    worker finds it. Raises :class:`HookUnusable` for a callable it could not find."""
    module = getattr(hook, "__module__", None)
    qualname = getattr(hook, "__qualname__", None)
    shown = qualname or repr(hook)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise HookUnusable(
            f"{shown} is not importable by name (a lambda, a function defined inside another, "
            "or a callable object): the parse worker imports the hook by name, so make it a "
            "module's top-level function"
        )
    if module == "__main__":
        raise HookUnusable(
            f"{qualname} is defined in the script being run (__main__), which the parse worker "
            "cannot import: put it in a module of its own"
        )
    name = f"{module}:{qualname}"
    if load_hook(name) is not hook:
        raise HookUnusable(
            f"{name} names another object than the one given (a bound method? a decorated "
            "function?): give a module's top-level function"
        )
    return name


def use_search_path(entries: Iterable[str]) -> None:
    """Add to this process's ``sys.path`` the ``entries`` it lacks (after its own): the parse
    worker finds the hook's module where the crawl's process found it (a script's directory,
    a ``sys.path`` entry added in code)."""
    sys.path.extend(entry for entry in dict.fromkeys(entries) if entry not in sys.path)
