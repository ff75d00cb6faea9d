"""The installed version of the crawler, in a module of its own: the parts that name it (the
CLI's ``--version``, the WARC ``warcinfo`` record) import it from here, not from the package,
whose ``__init__`` re-exports the public API and would otherwise sit in an import cycle."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crawler")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
