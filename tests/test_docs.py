"""Every code sample in README.md and docs/ is run, or explicitly marked as not run.

A fenced block's language says what it is and how it is checked:

- ``toml``: loaded by the config loader (which rejects unknown keys, so a misspelt key fails);
  a block whose first line is ``# NAME.toml ...`` is also written into the document's
  sandbox under that name, for the shell samples after it.
- ``sh``: every ``crawl`` command line is parsed by the CLI itself (the subcommand and every
  option must exist, every value must convert) and every ``make`` target must be in the
  Makefile; then the document's blocks run in order with bash in one sandbox directory:
  ``seeds.txt`` names a demo site on 127.0.0.1, ``.venv`` is this checkout's, politeness
  delay 0. Each block must exit 0.
- ``python``: run in the same sandbox, after the document's shell samples.
- ``json``: every line must be a JSON value.
- ``text``, or no language: output shown to the reader, not a sample.

A block that cannot run here (it needs Docker, or it is a benchmark run of minutes) is
preceded by ``<!-- not run: REASON -->``: its ``crawl`` and ``make`` lines are still checked.
The configuration reference's tables are checked against the config's real keys and defaults.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import typer
import typer.core
import typer.main

from crawler.cli.app import app
from crawler.config import Config
from crawler.config_load import load_config
from crawler.demo import SiteServer, SiteSpec
from crawler.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OUTPUT_LANGUAGES = {"", "text"}
SAMPLE_LANGUAGES = {"toml", "sh", "python", "json"}
SAMPLE_TIMEOUT = 120.0  # a whole document's shell samples crawl a 30-page site a few times
_FENCE = re.compile(r"^```(\S*)\s*$")
_NOT_RUN = re.compile(r"^<!-- not run: (?P<reason>.*\S) -->$")
_SHELL_OPERATORS = {"|", ">", ">>", "<", "2>", "&&", "||", ";", "&"}
_MAKE_TARGET = re.compile(r"^([A-Za-z][\w.-]*)\s*:(?!=)", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One fenced block of a document: where it starts, its language, its text, and the reason
    it is not run (``None``: it runs)."""

    path: Path
    line: int
    language: str
    text: str
    not_run: str | None

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        start = index
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
        before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = _NOT_RUN.match(before.strip())
        blocks.append(
            Block(
                path,
                start + 1,
                fence[1],
                "\n".join(lines[start + 1 : end]) + "\n",
                marker["reason"] if marker else None,
            )
        )
        index = end + 1
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in read_blocks(path)]


def _blocks(*languages: str) -> list[Block]:
    return [block for block in BLOCKS if block.language in languages]


def test_the_documents_have_samples_of_every_kind() -> None:
    # Guards the reader of the fences: a regular expression gone wrong would find no block,
    # and every test below would pass on nothing.
    assert {"README.md", "configuration.md", "database.md", "operations.md"} <= {
        block.path.name for block in _blocks("sh")
    }
    assert _blocks("toml")
    assert _blocks("json")


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_every_block_is_a_sample_or_output(block: Block) -> None:
    assert block.language in SAMPLE_LANGUAGES | OUTPUT_LANGUAGES, (
        f"{block}: ```{block.language} is neither a sample this test runs "
        f"({', '.join(sorted(SAMPLE_LANGUAGES))}) nor output (```text)"
    )
    if block.language in OUTPUT_LANGUAGES:
        assert block.not_run is None, f"{block}: output is never run, so it needs no marker"


@pytest.mark.parametrize("block", _blocks("toml"), ids=str)
def test_toml_sample_is_a_valid_config(block: Block, tmp_path: Path) -> None:
    assert block.not_run is None, f"{block}: every TOML sample can be loaded"
    path = tmp_path / "sample.toml"
    path.write_text(block.text, encoding="utf-8")
    load_config(path, environ={})


def test_a_misspelt_key_in_a_toml_sample_is_caught(tmp_path: Path) -> None:
    # Negative control: the loader the TOML samples go through rejects what it does not know.
    path = tmp_path / "sample.toml"
    path.write_text("[fetch]\nmax_retrys = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"fetch\.max_retrys"):
        load_config(path, environ={})


@pytest.mark.parametrize("block", _blocks("json"), ids=str)
def test_json_sample_parses(block: Block) -> None:
    for line in block.text.splitlines():
        json.loads(line)


def _commands(block: Block) -> Iterator[list[str]]:
    """The words of each command in a shell block, up to its first pipe or redirection, with
    leading ``NAME=value`` assignments dropped."""
    for line in block.text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if cut := [i for i, word in enumerate(words) if word in _SHELL_OPERATORS]:
            words = words[: cut[0]]
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]
        if words:
            yield words


def _check_crawl_command(args: list[str]) -> None:
    """Parse ``crawl ARGS`` as the CLI would, without running it: an unknown subcommand or
    option, or a value of the wrong type, raises the CLI's usage error."""
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    try:
        if not args or args[0].startswith("-"):  # `crawl --version`, `crawl --help`
            group.make_context("crawl", list(args))
            return
        context = group.make_context("crawl", args[:1])
        command = group.get_command(context, args[0])
        assert command is not None, f"no such command: crawl {args[0]}"
        command.make_context(args[0], list(args[1:]), parent=context)
    except typer.Exit as done:  # --help and --version print and stop: the option exists
        if done.exit_code != 0:
            raise


def _make_targets() -> set[str]:
    return set(_MAKE_TARGET.findall((ROOT / "Makefile").read_text(encoding="utf-8")))


@pytest.mark.parametrize("block", _blocks("sh"), ids=str)
def test_shell_sample_commands_exist(block: Block) -> None:
    checked = 0
    for words in _commands(block):
        program = Path(words[0]).name
        if program == "crawl":
            _check_crawl_command(words[1:])
            checked += 1
        elif program == "make":
            targets = [word for word in words[1:] if "=" not in word]
            assert set(targets) <= _make_targets(), f"{block}: no such make target in {targets}"
            checked += 1
    if block.not_run is not None:  # what cannot run is at least checked, or it is only docker
        assert checked or all(words[0] in {"docker", "podman"} for words in _commands(block))


def test_a_wrong_option_in_a_sample_is_caught() -> None:
    # Negative control for the check above.
    with pytest.raises(Exception, match="--max-pagez"):
        _check_crawl_command(["run", "seeds.txt", "--max-pagez", "3"])
    with pytest.raises(Exception, match="valid integer"):
        _check_crawl_command(["run", "seeds.txt", "--concurrency", "many"])


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory to run samples in, as a user in this checkout: ``seeds.txt`` names a demo
    site on 127.0.0.1, ``.venv`` is this checkout's, ``my.toml`` the demo config."""
    with SiteServer(SiteSpec(pages=30)) as site:
        (tmp_path / "seeds.txt").write_text(f"{site.base_url}/\n", encoding="utf-8")
        (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
        (tmp_path / "my.toml").write_text(
            (ROOT / "configs" / "demo.toml").read_text(encoding="utf-8"), encoding="utf-8"
        )
        environ = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            # Our own site: no politeness delay (a sample's config file cannot raise it),
            # and no live display.
            "CRAWL_POLITENESS__PER_HOST_DELAY": "0",
            "CRAWL_OUTPUT__PROGRESS": "off",
        }
        yield tmp_path, environ


_RUN_DOCUMENTS = sorted(
    {block.path for block in _blocks("sh", "python") if block.not_run is None}, key=str
)


@pytest.mark.parametrize("document", _RUN_DOCUMENTS, ids=lambda path: path.name)
def test_document_samples_run(document: Path, sandbox: tuple[Path, dict[str, str]]) -> None:
    directory, environ = sandbox
    blocks = [block for block in read_blocks(document) if block.not_run is None]
    for block in blocks:
        if block.language == "toml" and (name := re.match(r"# (\S+\.toml)\b", block.text)):
            (directory / name[1]).write_text(block.text, encoding="utf-8")
    for block in blocks:
        if block.language == "sh":
            command = ["bash", "-e", "-o", "pipefail", "-c", block.text]
        elif block.language == "python":
            command = [sys.executable, "-c", block.text]
        else:
            continue
        done = subprocess.run(
            command,
            cwd=directory,
            env=environ,
            capture_output=True,
            text=True,
            timeout=SAMPLE_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"{block} exit code {done.returncode}:\n{done.stderr}"


def _reference_tables() -> dict[str, object]:
    """``section.key`` -> default, as docs/configuration.md's tables state them."""
    documented: dict[str, object] = {}
    section = None
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        if heading := re.match(r"^### `\[(\w+)\]`$", line):
            section = heading[1]
        elif section and (row := re.match(r"^\| `(\w+)` \| `(.*?)` \|", line)):
            documented[f"{section}.{row[1]}"] = tomllib.loads(f"v = {row[2]}")["v"]
        elif line.startswith("## "):
            section = None
    return documented


def test_configuration_reference_names_every_key_with_its_default() -> None:
    defaults = msgspec.json.decode(msgspec.json.encode(Config()))  # tuples as lists, as in TOML
    actual = {
        f"{section}.{key}": value
        for section, keys in defaults.items()
        for key, value in keys.items()
    }
    assert _reference_tables() == actual


def test_readme_is_a_front_page() -> None:
    # Issue 19: the README says what a user needs first; the depth lives in docs/.
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {_anchor(m[1]) for m in re.finditer(r"^#+ (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_links_between_documents_resolve(document: Path) -> None:
    for target in _LINK.findall(document.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # an absolute URL: not ours to check offline
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        assert path.exists(), f"{document.name}: link to missing {target}"
        if anchor:
            assert anchor in _anchors(path), f"{document.name}: no heading for {target}"


def test_heading_anchors_are_githubs() -> None:
    assert _anchor("Logs: `--log-format json`") == "logs---log-format-json"
    assert _anchor("robots.txt") == "robotstxt"
