"""crawler: a fast, polite, durable asynchronous web crawler."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crawler")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
