"""Reading seeds files as editors write them: UTF-8 with or without a byte-order mark, UTF-16."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crawler.cli.app import app
from crawler.demo import SiteServer, SiteSpec
from crawler.errors import SeedsError
from crawler.frontier.seeds import read_seeds
from tests.helpers import pages, write_config

LINES = "# seeds\r\nhttp://a.test/\r\n\r\nhttp://b.test/x\r\n"
URLS = ["http://a.test/", "http://b.test/x"]

# What Notepad, PowerShell 7 (UTF-8 with a mark) and PowerShell 5 (UTF-16 LE) write.
ENCODINGS = {
    "utf-8": LINES.encode("utf-8"),
    "utf-8-bom": LINES.encode("utf-8-sig"),
    "utf-16-le-bom": LINES.encode("utf-16"),  # with its mark, in the machine's order
    "utf-16-be-bom": b"\xfe\xff" + LINES.encode("utf-16-be"),
}


@pytest.mark.parametrize("data", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_every_seed_is_read_whatever_the_editor_wrote(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "seeds.txt"
    path.write_bytes(data)
    seeds = read_seeds(path, max_url_length=2048)
    assert seeds.urls == URLS
    assert seeds.problems == []


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32"])
def test_text_with_nul_characters_is_refused_in_one_line(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "seeds.txt"
    path.write_bytes(LINES.encode(encoding))  # UTF-16 without a mark; UTF-32 with one
    with pytest.raises(SeedsError) as caught:
        read_seeds(path, max_url_length=2048)
    assert str(caught.value) == (
        f"seeds file {path} holds NUL characters: UTF-16 without a byte-order mark, or not "
        "text at all? Save it as UTF-8"
    )


def test_a_one_seed_file_with_a_byte_order_mark_is_crawled(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    seeds = tmp_path / "seeds.txt"
    with SiteServer(SiteSpec(pages=3)) as site:
        seeds.write_bytes(f"{site.base_url}/\r\n".encode("utf-8-sig"))
        result = CliRunner().invoke(
            app, ["run", str(seeds), "--db", str(db), "--config", str(write_config(tmp_path))]
        )
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output
    assert pages(db)["/"][0] == 200
