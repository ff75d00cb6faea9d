"""``python -m crawler`` is the ``crawl`` command."""

from crawler.cli.app import main

main()
