"""The throughput benchmark harness behind ``crawl bench`` (issue 4).

Data flow::

    scenarios (what to run)  ->  harness (orchestrates one run)
        server: the synthetic web (model in web, worker processes in server)
        runner: our crawler in a child process (+ measure: lag probe, RSS/CPU sampler)
        peers:  Scrapy, crawlee, bare aiohttp/httpx loops, each in a child process
    ->  report (JSON, terminal table, PNG)

Every crawler runs in its own process against the same servers, so CPU, RSS and event-loop lag
are the crawler's own, and the server counts what each crawler really asked for.
"""

from pathlib import Path

DEFAULT_OUT = Path("build/bench")
"""Where ``crawl bench`` writes its results unless told (``--out``)."""
