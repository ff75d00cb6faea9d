"""``python -m crawler.demo.serve``: the demo site as a process of its own, until SIGINT or
SIGTERM (what ``make run`` starts; also for trying the crawler on a site of one's own).

It prints ``listening on URL`` once bound (and writes the URL to ``--ready-file``, if given);
one option per `SiteSpec` field sets the site (``--pages``, ``--latency``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os

from crawler import runtime
from crawler.demo.server import SiteServer
from crawler.demo.site import SiteSpec


async def _serve_until_signal(site: SiteServer, ready_file: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in runtime.HANDLED_SIGNALS:
        loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        if ready_file:
            # Write then rename, so a script polling for the file never reads half a URL; and
            # before printing, so whichever signal a script waits for, both are in place.
            tmp = f"{ready_file}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(site.base_url)
            os.replace(tmp, ready_file)
        print(f"listening on {site.base_url}", flush=True)

    await site.serve(stop, ready)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.demo.serve", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", metavar="PATH", help="write the base URL here once bound")
    # One option per SiteSpec field, so the CLI grows with the spec (--pages, --latency, ...).
    defaults = SiteSpec()
    for field in dataclasses.fields(SiteSpec):
        value = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, dest=field.name, type=type(value), default=value)
    args = vars(parser.parse_args(argv))
    port, ready_file = args.pop("port"), args.pop("ready_file")
    with asyncio.Runner(loop_factory=runtime.loop_factory(use_uvloop=True)) as runner:
        runner.run(_serve_until_signal(SiteServer(SiteSpec(**args), port=port), ready_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
