"""``make run`` (``python -m crawler.demo``): start the bundled demo site on 127.0.0.1, crawl it
with ``crawl run``, show what was stored.

Both run as real processes, exactly as a user would run them; the output goes to
``demo-output/`` (the seeds file and the database, ready to open with ``sqlite3``).
"""

from __future__ import annotations

import select
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

OUTPUT = Path("demo-output")
# In a checkout (`make run`); an installed package has no configs/ and crawls with the defaults.
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"
PAGES = 500
STARTUP_DEADLINE = 15.0


def main() -> int:
    OUTPUT.mkdir(exist_ok=True)
    site = subprocess.Popen(
        [sys.executable, "-m", "crawler.demo.serve", "--port", "0", "--pages", str(PAGES)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = _wait_for_site(site)
        print(f"demo site: {PAGES} pages at {base_url}")
        seeds = OUTPUT / "seeds.txt"
        seeds.write_text(f"# the demo site's home page\n{base_url}/\n")
        db = OUTPUT / "demo.db"
        command = ["crawl", "run", str(seeds), "--db", str(db), "--fresh"]
        if CONFIG.exists():
            command += ["--config", str(CONFIG)]
        print("$", " ".join(command), flush=True)
        code = subprocess.call([sys.executable, "-m", "crawler", *command[1:]])
        if code == 0:
            _show(db)
        return code
    finally:
        site.terminate()
        site.wait(timeout=10)


def _wait_for_site(site: subprocess.Popen[str]) -> str:
    # The site prints exactly one line once it listens; readline returns "" if it died first.
    assert site.stdout is not None
    readable, _, _ = select.select([site.stdout], [], [], STARTUP_DEADLINE)
    line = site.stdout.readline() if readable else ""
    if not line.startswith("listening on "):
        raise SystemExit(f"the demo site did not start (exit code {site.poll()})")
    return line.removeprefix("listening on ").strip()


def _show(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT status, url, title FROM pages ORDER BY fetched_at LIMIT 8"
        ).fetchall()
    print(f"\nfirst pages stored in {db} (sqlite3 {db} 'SELECT * FROM pages'):")
    for status, url, title in rows:
        print(f"  {status} {url}  {title or ''}")


if __name__ == "__main__":
    raise SystemExit(main())
