from __future__ import annotations

import re
import tomllib
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from crawler.cli.app import app
from crawler.config import MAX_CONCURRENCY, MAX_PARSE_PROCESSES, Config
from crawler.config_load import load_config
from crawler.errors import ConfigError

CONFIGS = Path(__file__).parent.parent / "configs"


def test_default_toml_documents_every_key_with_its_default() -> None:
    with (CONFIGS / "default.toml").open("rb") as f:
        documented = tomllib.load(f)
    # Same keys, same values (a JSON round trip turns the tuples into TOML's lists).
    assert documented == msgspec.json.decode(msgspec.json.encode(Config()))


@pytest.mark.parametrize("name", ["default.toml", "demo.toml"])
def test_shipped_configs_load(name: str) -> None:
    assert isinstance(load_config(CONFIGS / name, environ={}), Config)


def test_file_values_are_used(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[crawl]\nconcurrency = 7\n[fetch]\nmax_retries = 0\n")
    config = load_config(path, environ={})
    assert config.crawl.concurrency == 7
    assert config.fetch.max_retries == 0
    assert config.fetch.connect_timeout == Config().fetch.connect_timeout


def test_environment_overrides_file_and_flags_override_both(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[crawl]\nconcurrency = 7\nmax_depth = 3\nmax_pages = 9\n")
    env = {"CRAWL_CRAWL__CONCURRENCY": "8", "CRAWL_CRAWL__MAX_DEPTH": "4"}
    config = load_config(path, {"crawl.concurrency": 9, "crawl.max_pages": None}, environ=env)
    assert config.crawl.concurrency == 9  # flag beats env and file
    assert config.crawl.max_depth == 4  # env beats file
    assert config.crawl.max_pages == 9  # a flag left unset (None) does not override


def test_environment_values_are_toml(tmp_path: Path) -> None:
    env = {
        "CRAWL_CRAWL__ALLOW_DOMAINS": '["a.example", "b.example"]',
        "CRAWL_RUNTIME__UVLOOP": "false",
    }
    config = load_config(environ=env)
    assert config.crawl.allow_domains == ("a.example", "b.example")
    assert config.runtime.uvloop is False


def test_config_is_frozen() -> None:
    config = load_config(environ={})
    with pytest.raises(AttributeError):
        config.crawl.concurrency = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[crawl]\nbogus = 1\n", "unknown key `crawl.bogus`"),
        ("[nonsense]\nx = 1\n", "unknown key `nonsense`"),
        ("[crawl]\nconcurrency = 0\n", "`crawl.concurrency`"),
        ("[fetch]\ntotal_timeout = 'soon'\n", "`fetch.total_timeout`"),
        ("[politeness]\nper_host_delay = -1\n", "`politeness.per_host_delay`"),
        ("[crawl]\nallow_domains = 'a.com'\n", "`crawl.allow_domains`"),
        ("[fetch]\ndns_ttl = 0\n", "`fetch.dns_ttl`"),
        ("[fetch]\nresolve = {'a.test' = 'nowhere'}\n", "'a.test' to 'nowhere', which is not"),
        ("[fetch]\nresolve = {'a.test/x' = '127.0.0.2'}\n", "not a name[:port]: 'a.test/x'"),
        ("[fetch]\nresolve = {'a..test' = '127.0.0.2'}\n", "not a name[:port]: 'a..test'"),
        (
            "[fetch]\ntransport = 'httpcore'\nresolve = {'a.test' = '127.0.0.2'}\n",
            '`fetch.resolve` needs fetch.transport = "aiohttp"',
        ),
    ],
)
def test_bad_keys_and_values_are_rejected_with_the_key_name(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, environ={})


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[crawl\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml", environ={})


def test_a_config_file_that_is_not_utf8_is_named_in_one_short_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    padding = "# a long comment\n" * 6000  # 100 kB: none of it belongs in the message
    path.write_bytes(f"{padding}[crawl]\nuser_agent = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert message == f"config file {path} is not UTF-8 (TOML must be): byte 0xe9 on line 6002"


def test_a_bad_environment_value_is_blamed_on_its_variable_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[crawl]\nconcurrency = 7\n")
    env = {"CRAWL_CRAWL__CONCURRENCY": "0"}
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=env)
    assert str(caught.value) == (
        "invalid config from environment variable CRAWL_CRAWL__CONCURRENCY: "
        "Expected `int` >= 1 - at `crawl.concurrency`"
    )
    with pytest.raises(ConfigError, match="from environment variable CRAWL_NOPE__X: unknown key"):
        load_config(path, environ={"CRAWL_NOPE__X": "1"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("crawl.user_agent", ""),
        ("crawl.user_agent", "crawlér/1"),
        ("crawl.user_agent", "crawler/1\r\nX-Injected: 1"),
        ("crawl.user_agent", " crawler/1"),
        ("crawl.allow_domains", ("http://example.com/",)),
        ("crawl.allow_domains", ("",)),
    ],
)
def test_values_no_request_could_send_are_rejected_naming_key_and_source(
    tmp_path: Path, key: str, value: object
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(overrides={key: value}, environ={})
    assert str(caught.value).startswith(f"invalid config from the command line: `{key}` must ")
    assert "\n" not in str(caught.value)
    # The same value in a file is blamed on the file.
    path = tmp_path / "c.toml"
    section, name = key.split(".")
    path.write_text(f"[{section}]\n{name} = {msgspec.json.encode(value).decode()}\n")
    with pytest.raises(ConfigError, match=re.escape(f"invalid config in {path}: `{key}` must ")):
        load_config(path, environ={})


def test_a_plain_user_agent_with_spaces_and_punctuation_is_accepted() -> None:
    agent = "Mozilla/5.0 (compatible; MyBot/1.0; +https://example.com/bot)"
    assert load_config(overrides={"crawl.user_agent": agent}, environ={}).crawl.user_agent == agent


@pytest.mark.parametrize("token", ["MyBot", "my_bot", "Googlebot-Image", ""])
def test_robots_token_accepts_product_tokens(token: str) -> None:
    config = load_config(overrides={"crawl.robots_token": token}, environ={})
    assert config.crawl.robots_token == token


@pytest.mark.parametrize("token", ["My Bot", "MyBot/1.0", "MJ12bot", "*", "ツ"])
def test_robots_token_rejects_what_rfc_9309_does_not_allow(token: str) -> None:
    with pytest.raises(ConfigError, match=r"`crawl\.robots_token`"):
        load_config(overrides={"crawl.robots_token": token}, environ={})


@pytest.mark.parametrize(
    ("key", "maximum"),
    [("crawl.concurrency", MAX_CONCURRENCY), ("runtime.parse_processes", MAX_PARSE_PROCESSES)],
)
def test_worker_counts_have_a_documented_maximum(key: str, maximum: int) -> None:
    section, name = key.split(".")
    assert getattr(getattr(load_config(overrides={key: maximum}, environ={}), section), name)
    for value in (maximum + 1, 10**9):
        with pytest.raises(ConfigError, match=rf"<= {maximum} - at `{re.escape(key)}`"):
            load_config(overrides={key: value}, environ={})
    with (CONFIGS / "default.toml").open() as f:
        assert str(maximum) in f.read()  # the comment above the key says it


def test_a_concurrency_flag_past_the_maximum_is_a_usage_error(tmp_path: Path) -> None:
    # An empty seeds file: were the flag accepted, the command would end at the seeds (exit 1)
    # before crawling, so this test cannot start 10**9 workers even against unfixed code.
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("")
    result = CliRunner().invoke(app, ["run", str(seeds), "--concurrency", str(10**9)])
    assert result.exit_code == 2
    assert "--concurrency" in result.stderr
