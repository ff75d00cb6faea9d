"""``crawl export``: records re-read and compared row by row with the database, stdout, atomic
files, constant memory, and a reader that goes away."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from crawler.cli.app import app
from crawler.demo import SiteSpec, expected_statuses
from crawler.errors import FatalError, StorageError
from crawler.models import PageRecord
from crawler.store import export, parquet
from crawler.store.columns import FIELDS
from crawler.store.export import ExportFormat, export_to_file
from tests.crawl_dbs import (
    SYNTHETIC_FIELDS,
    TRICKY_TITLES,
    crawl_demo_site,
    make_synthetic_db,
    synthetic_data,
    write_pages,
)
from tests.helpers import crawl_process, database, wait_until

runner = CliRunner()
SPEC = SiteSpec(pages=60)
MEMORY_BOUND = 4_000_000


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crawl_demo_site(tmp_path_factory.mktemp("crawled"), SPEC)[0]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Values a crawl of the demo site lacks: NULL statuses, errors, truncated pages, titles
    with quotes, commas, newlines and non-ASCII."""
    db = tmp_path_factory.mktemp("synthetic") / "synthetic.db"
    make_synthetic_db(db, pages=2_500, pending=10)
    return db


# Pages with the user's data as a crawl writes them (the store's batch write): values of every
# JSON type, nested, non-ASCII, a name with a dot and one with a comma; a page without data,
# a page whose data is an empty object.
WRITTEN = [
    PageRecord(
        url="http://a.test/1",
        depth=0,
        fetched_at="2026-11-25T00:00:00.000+00:00",
        final_url="http://a.test/1",
        status=200,
        content_type="text/html",
        title="One",
        size=10,
        elapsed_ms=1.5,
        data={
            "price": "9.50",
            "tags": ["a", "b,c"],
            "n": 3,
            "ratio": 0.25,
            "ok": True,
            "nested": {"x": None, "ü": [1]},
            "none": None,
            "prix €": "€",
            "a.b": "dotted",
        },
        sha256="ab" * 32,
    ),
    PageRecord(url="http://a.test/2", depth=1, fetched_at="t", error="connect_failed: refused"),
    PageRecord(
        url="http://a.test/3",
        depth=1,
        fetched_at="t",
        status=200,
        data={"price": "12", "n": 4, "ratio": 1, "ok": False, "tags": []},
        sha256="cd" * 32,
    ),
    PageRecord(url="http://a.test/4", depth=2, fetched_at="t", status=200, data={}),
]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("written") / "written.db"
    write_pages(db, WRITTEN)
    return db


@pytest.fixture(params=["crawled", "synthetic", "written"])
def db(request: pytest.FixtureRequest) -> Path:
    path: Path = request.getfixturevalue(request.param)
    return path


def stored_pages(db: Path) -> list[dict[str, Any]]:
    """Every row of ``pages`` in rowid order, as the export should write it."""
    with database(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM pages ORDER BY rowid").fetchall()
    conn.close()
    pages = []
    for row in rows:
        page = dict(row)
        page["data"] = None if page["data"] is None else json.loads(page["data"])
        page["truncated"] = bool(page["truncated"])
        pages.append(page)
    return pages


def data_names(pages: list[dict[str, Any]]) -> list[str]:
    """The user's field names on ``pages``, in code point order (the CSV and Parquet columns)."""
    return sorted({name for page in pages for name in page["data"] or {}})


def flat_columns(pages: list[dict[str, Any]]) -> list[str]:
    """The default CSV and Parquet columns for ``pages``."""
    return [f for f in FIELDS if f != "data"] + [f"data.{n}" for n in data_names(pages)]


def flat_value(page: dict[str, Any], column: str) -> Any:
    """``column``'s value on ``page``, a user field's from its data (None where absent)."""
    if column.startswith("data.") and column not in page:
        return (page["data"] or {}).get(column.removeprefix("data."))
    return page[column]


def csv_cell(value: Any) -> str:
    """``value`` as the CSV export should write it, by the documented rule."""
    if value is None:
        return ""
    if type(value) is bool:
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def export_file(db: Path, out: Path, fmt: str, *flags: str) -> str:
    result = runner.invoke(app, ["export", str(db), "--format", fmt, "--out", str(out), *flags])
    assert result.exit_code == 0, result.output
    return result.stderr


def test_jsonl_matches_the_database_row_by_row(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages.jsonl"
    stored = stored_pages(db)
    assert export_file(db, out, "jsonl") == f"exported {len(stored):,} pages to {out}\n"
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]

    assert len(records) == len(stored) > 0
    for record, page in zip(records, stored, strict=True):
        assert list(record) == list(FIELDS)
        assert record == page  # data an object (or null), sha256 a string (or null)
        assert record["status"] is None or type(record["status"]) is int
        assert type(record["truncated"]) is bool
        assert type(record["elapsed_ms"]) is float
        assert (type(record["depth"]), type(record["size"])) == (int, int)


def test_csv_matches_the_database_row_by_row(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages.csv"
    export_file(db, out, "csv")
    with out.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    stored = stored_pages(db)
    columns = flat_columns(stored)

    assert header == columns
    assert len(rows) == len(stored) > 0
    for row, page in zip(rows, stored, strict=True):
        assert row == [csv_cell(flat_value(page, column)) for column in columns]
        assert float(row[FIELDS.index("elapsed_ms")]) == page["elapsed_ms"]  # exact round trip
        for column, cell in zip(columns, row, strict=True):
            value = flat_value(page, column)
            if column.startswith("data.") and cell and not isinstance(value, str):
                assert json.loads(cell) == value  # lists, objects, numbers: JSON


def test_parquet_matches_the_database_row_by_row(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages.parquet"
    stored = stored_pages(db)
    assert export_file(db, out, "parquet") == f"exported {len(stored):,} pages to {out}\n"
    table = pq.read_table(out)
    columns = flat_columns(stored)

    assert table.column_names == columns
    assert table.num_rows == len(stored) > 0
    types = dict(zip(table.column_names, map(str, table.schema.types), strict=True))
    assert {types[c] for c in ("status", "depth", "size")} == {"int64"}
    assert (types["elapsed_ms"], types["truncated"], types["url"]) == ("double", "bool", "string")
    for record, page in zip(table.to_pylist(), stored, strict=True):
        for column in columns:
            value, expected = record[column], flat_value(page, column)
            if not column.startswith("data."):
                assert value == expected, column
            elif types[column] == "string" and not _all_strings(stored, column):
                # A field that is not a string everywhere: each value as JSON.
                assert (None if value is None else json.loads(value)) == expected, column
            else:
                assert value == expected, column
                assert value is None or type(value) is type(expected) or types[column] == "double"


def _all_strings(pages: list[dict[str, Any]], column: str) -> bool:
    values = [flat_value(page, column) for page in pages]
    return all(value is None or isinstance(value, str) for value in values)


def test_each_field_gets_the_parquet_type_of_its_values(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages.parquet"
    export_file(synthetic, out, "parquet")
    schema = pq.read_schema(out)
    assert {name: str(schema.field(f"data.{name}").type) for name in SYNTHETIC_FIELDS} == {
        "headline": "string",
        "in_stock": "bool",
        "mixed": "string",  # a string on some pages, a number on others: JSON
        "price": "double",
        "rank": "int64",
        "tags": "string",  # lists: JSON
    }
    rows = pq.read_table(out, columns=["data.mixed", "data.tags"]).to_pylist()
    assert (rows[5]["data.mixed"], rows[10]["data.mixed"]) == ("5", '"n/a"')
    assert rows[0]["data.tags"] == '["t0","all"]'


def test_the_demo_crawl_exports_every_fetched_path_with_its_status(
    crawled: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pages.jsonl"
    export_file(crawled, out, "jsonl")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    paths = {r["url"].split("/", 3)[3]: r["status"] for r in records}
    assert {f"/{path}": status for path, status in paths.items()} == expected_statuses(SPEC)


def test_tricky_values_survive_both_formats(synthetic: Path, tmp_path: Path) -> None:
    jsonl, csv_file = tmp_path / "p.jsonl", tmp_path / "p.csv"
    export_file(synthetic, jsonl, "jsonl")
    export_file(synthetic, csv_file, "csv")
    from_json = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    with csv_file.open(newline="", encoding="utf-8") as f:
        from_csv = list(csv.DictReader(f))
    # Page 0 has the title with quotes, a comma and a newline; page 5 is a failure; page 97 is
    # truncated (see tests/crawl_dbs.py).
    assert from_json[0]["title"] == from_csv[0]["title"] == TRICKY_TITLES[0]
    assert from_json[5]["status"] is None
    assert from_json[5]["error"] == "timeout: read timed out"
    assert (from_csv[5]["status"], from_csv[5]["error"]) == ("", "timeout: read timed out")
    assert (from_json[97]["truncated"], from_csv[97]["truncated"]) == (True, "true")
    assert (from_json[1]["truncated"], from_csv[1]["truncated"]) == (False, "false")
    assert csv_file.read_bytes().count(b"\r\n") > 2_500  # RFC 4180 line ends


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_stdout_is_the_default_and_dash_means_stdout(
    crawled: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"pages.{fmt}"
    export_file(crawled, out, fmt)
    default = runner.invoke(app, ["export", str(crawled), "-f", fmt])
    dash = runner.invoke(app, ["export", str(crawled), "-f", fmt, "-o", "-"])
    assert default.exit_code == dash.exit_code == 0
    assert default.stdout_bytes == dash.stdout_bytes == out.read_bytes()
    assert default.stderr == ""  # stdout carries only the records


def test_every_column_of_pages_is_exported(tmp_path: Path) -> None:
    make_synthetic_db(tmp_path / "fresh.db", pages=0)
    with database(tmp_path / "fresh.db") as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(pages)")]
    conn.close()
    assert list(FIELDS) == columns


def test_an_empty_database_exports_nothing_but_the_csv_header(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    make_synthetic_db(db, pages=0)
    assert runner.invoke(app, ["export", str(db)]).stdout_bytes == b""
    csv_out = runner.invoke(app, ["export", str(db), "-f", "csv"]).stdout_bytes
    assert csv_out == (",".join(flat_columns([])) + "\r\n").encode()


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (sqlite3.OperationalError("disk I/O error"), StorageError),
        (OSError(errno.ENOSPC, "No space left on device"), FatalError),
        (KeyboardInterrupt(), KeyboardInterrupt),
    ],
    ids=["database-error", "disk-full", "interrupt"],
)
@pytest.mark.parametrize("existing", [True, False], ids=["over-a-file", "new-file"])
@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_a_failed_export_leaves_no_half_file(
    synthetic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    raised: type[BaseException],
    existing: bool,
    fmt: ExportFormat,
) -> None:
    out = tmp_path / "pages.out"
    if existing:
        out.write_text("the previous export\n")
    real_batches = export._batches
    written: list[int] = []

    def fail_after_one_batch(conn: sqlite3.Connection) -> Iterator[list[tuple[Any, ...]]]:
        for batch in real_batches(conn):
            yield batch
            written.append(len(batch))
            raise error

    monkeypatch.setattr(export, "_batches", fail_after_one_batch)
    with pytest.raises(raised):
        export_to_file(synthetic, fmt, out)
    assert written == [export.BATCH_ROWS]  # the failure came after records were written
    assert list(tmp_path.iterdir()) == ([out] if existing else [])
    if existing:
        assert out.read_text() == "the previous export\n"


def test_a_write_error_exits_1_with_one_line(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing-directory" / "pages.jsonl"
    result = runner.invoke(app, ["export", str(synthetic), "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot write {out}: No such file or directory\n"


@pytest.mark.parametrize("suffix", ["", "-wal"])
def test_the_export_never_replaces_its_own_database(
    synthetic: Path, tmp_path: Path, suffix: str
) -> None:
    before = synthetic.read_bytes()
    result = runner.invoke(app, ["export", str(synthetic), "-o", f"{synthetic}{suffix}"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: refusing to export {synthetic} over itself ({synthetic}{suffix})\n"
    )
    assert synthetic.read_bytes() == before


# -- --fields, older databases, Parquet without pyarrow (issue 21) ---------------------------


def read_export(path: Path, fmt: str) -> list[dict[str, Any]]:
    """The records of an export file as dicts, in column order (CSV's values as text)."""
    if fmt == "parquet":
        records: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return records
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_fields_choose_and_order_the_columns(written: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"pages.{fmt}"
    chosen = ["data.price", "url", "data.prix €", "status", "data.tags", "data.a.b"]
    export_file(written, out, fmt, "--fields", ", ".join(chosen))  # spaces around names: fine
    records = read_export(out, fmt)
    stored = stored_pages(written)

    assert len(records) == len(stored)
    for record, page in zip(records, stored, strict=True):
        assert list(record) == chosen
        expected = {column: flat_value(page, column) for column in chosen}
        if fmt == "csv":
            expected = {column: csv_cell(value) for column, value in expected.items()}
        elif fmt == "parquet":  # tags are lists: JSON
            tags = expected["data.tags"]
            expected["data.tags"] = None if tags is None else json.dumps(tags)
            record["data.tags"] = (
                None if record["data.tags"] is None else json.dumps(json.loads(record["data.tags"]))
            )
        assert record == expected


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_fields_can_name_the_whole_data_object(written: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"pages.{fmt}"
    export_file(written, out, fmt, "--fields", "url,data")
    records = read_export(out, fmt)
    stored = stored_pages(written)
    # JSON Lines: the object; CSV and Parquet: its JSON text (CSV's NULL: an empty field).
    got = [
        r["data"] if fmt == "jsonl" else json.loads(r["data"]) if r["data"] else None
        for r in records
    ]
    assert got == [page["data"] for page in stored]


@pytest.mark.parametrize("fmt", list(ExportFormat))
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("url,nope", "unknown field 'nope' in --fields; known: {known}"),
        ("url,data.nope", "unknown field 'data.nope' in --fields; known: {known}"),
        ("url,status,url", "field 'url' is named twice in --fields"),
    ],
    ids=["unknown", "unknown-data-field", "twice"],
)
def test_an_unknown_field_exits_1_with_one_line_naming_it(
    written: Path, tmp_path: Path, fmt: str, fields: str, message: str
) -> None:
    out = tmp_path / "pages.out"
    result = runner.invoke(
        app, ["export", str(written), "-f", fmt, "--fields", fields, "-o", str(out)]
    )
    known = ", ".join([*FIELDS, *(f"data.{name}" for name in data_names(stored_pages(written)))])
    assert result.exit_code == 1
    assert result.stderr == f"error: {message.format(known=known)}\n"
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
    to_stdout = runner.invoke(app, ["export", str(written), "-f", fmt, "--fields", fields])
    assert (to_stdout.exit_code, to_stdout.stdout_bytes) == (1, b"")


def _schema(path: Path) -> tuple[list[str], list[tuple[str]]]:
    with database(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(pages)")]
        version = conn.execute("SELECT value FROM meta").fetchall()
    conn.close()
    return columns, version


@pytest.mark.parametrize("fmt", list(ExportFormat))
@pytest.mark.parametrize("version", ["1", "2", "3"])
def test_an_older_database_exports_null_data_and_is_not_upgraded(
    tmp_path: Path, version: str, fmt: str
) -> None:
    db = tmp_path / "old.db"
    make_synthetic_db(db, pages=50, version=version)
    before = _schema(db)
    assert "data" not in before[0]
    out = tmp_path / f"pages.{fmt}"
    export_file(db, out, fmt)
    records = read_export(out, fmt)

    assert _schema(db) == before  # read as it is: never upgraded
    assert [r["url"] for r in records] == [f"http://h{i % 7}.test/p/{i}" for i in range(50)]
    null = "" if fmt == "csv" else None
    assert {r["sha256"] for r in records} == {null}
    if fmt == "jsonl":
        assert {r["data"] for r in records} == {None}
    else:  # no data.NAME columns: no page has data
        assert list(records[0]) == [f for f in FIELDS if f != "data"]
    export_file(db, out, fmt, "--fields", "url,data,sha256")
    assert [(r["data"], r["sha256"]) for r in read_export(out, fmt)] == [(null, null)] * 50


def test_parquet_without_pyarrow_exits_1_with_how_to_install_it(
    written: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    out = tmp_path / "pages.parquet"
    for target in (["-o", str(out)], []):
        result = runner.invoke(app, ["export", str(written), "-f", "parquet", *target])
        assert result.exit_code == 1
        assert result.stderr == (
            "error: --format parquet needs pyarrow: pip install 'crawler[parquet]'\n"
        )
        assert result.stdout_bytes == b""
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("large") / "large.db"
    make_synthetic_db(db, pages=200_000)
    return db


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_export_memory_does_not_grow_with_the_database(
    large: Path, tmp_path: Path, fmt: ExportFormat
) -> None:
    out = tmp_path / "out"
    tracemalloc.start()
    try:
        count = export_to_file(large, fmt, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    # One batch of 1,000 rows; measured ~2.0 MB (JSONL), ~3.3 (CSV), ~2.4 (Parquet, Python's
    # share: Arrow's own memory is the test below's).
    assert peak < MEMORY_BOUND
    data_columns = [f"data.{name}" for name in SYNTHETIC_FIELDS]
    if fmt is ExportFormat.CSV:  # the pages' data was written too, in its columns
        with out.open(newline="", encoding="utf-8") as f:
            assert next(csv.reader(f))[-len(data_columns) :] == data_columns
    elif fmt is ExportFormat.PARQUET:
        assert pq.read_schema(out).names[-len(data_columns) :] == data_columns
    else:
        with out.open(encoding="utf-8") as f:
            assert json.loads(f.readline())["data"] == synthetic_data(0)


ARROW_BOUND = 24_000_000
# Arrow allocates outside Python's allocator (tracemalloc does not see it): its memory pool
# counts its peak, which only a fresh process reads for one export alone.
_ARROW_PEAK = """
import sys
from pathlib import Path
import pyarrow
from crawler.store import parquet
from crawler.store.export import ExportFormat, export_to_file
parquet.ROW_GROUP_ROWS = int(sys.argv[3])
export_to_file(Path(sys.argv[1]), ExportFormat.PARQUET, Path(sys.argv[2]))
print(pyarrow.default_memory_pool().max_memory())
"""


def arrow_peak(db: Path, out: Path, row_group_rows: int) -> int:
    """The peak of Arrow's memory in a process that exports ``db`` as Parquet into ``out``,
    in row groups of ``row_group_rows``."""
    done = subprocess.run(
        [sys.executable, "-c", _ARROW_PEAK, str(db), str(out), str(row_group_rows)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert pq.read_metadata(out).num_rows == 200_000
    return int(done.stdout)


def test_parquet_holds_one_row_group_of_arrow_memory(large: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages.parquet"
    assert arrow_peak(large, out, parquet.ROW_GROUP_ROWS) < ARROW_BOUND  # measured ~5.3 MB
    assert pq.read_metadata(out).num_row_groups == 200_000 // parquet.ROW_GROUP_ROWS


def test_negative_control_one_row_group_breaks_the_arrow_bound(large: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages.parquet"
    assert arrow_peak(large, out, 200_000) > 2 * ARROW_BOUND  # measured ~87 MB
    assert pq.read_metadata(out).num_row_groups == 1


def test_negative_control_loading_every_row_breaks_the_memory_bound(large: Path) -> None:
    tracemalloc.start()
    try:
        with database(large) as conn:
            rows = conn.execute("SELECT * FROM pages").fetchall()
        conn.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rows) == 200_000
    assert peak > 10 * MEMORY_BOUND


def test_a_reader_that_goes_away_gets_one_line_and_exit_1(large: Path) -> None:
    # `crawl export db | head -c 1000`: the pipe closes long before 60 MB of JSON are written.
    proc = crawl_process("export", large)
    assert proc.stdout is not None
    head = proc.stdout.read(1000)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert head.startswith('{"url":"http://h0.test/p/0"')
    assert proc.returncode == 1
    assert err == "error: the output pipe closed before the export finished\n"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_export_exits_with_its_code_and_keeps_the_old_file(
    large: Path, tmp_path: Path, signum: int, code: int
) -> None:
    out = tmp_path / "pages.jsonl"
    out.write_text("the previous export\n")
    proc = crawl_process("export", large, "--out", out)
    # The temporary file appears once the export has started writing.
    wait_until(lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir()))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    name = signal.Signals(signum).name
    assert proc.returncode == code
    assert err == (
        f"interrupted (received {name}): the export is incomplete; {out} was not written\n"
    )
    assert list(tmp_path.iterdir()) == [out]
    assert out.read_text() == "the previous export\n"


def test_help_names_every_option() -> None:
    result = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ["--format", "--out", "--fields", "jsonl", "csv", "parquet", "--debug"]:
        assert option in result.output


# -- what is at --out: only a regular file is replaced (issue 23, item 5) --------------------


def _stdout_export(db: Path) -> bytes:
    result = runner.invoke(app, ["export", str(db)])
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


def test_a_fifo_at_out_is_written_into_and_stays_a_fifo(synthetic: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # Our own write end keeps the reader from seeing end-of-file before the export opens the
    # FIFO; closing it after the export ends the reader in every case, even if the export never
    # wrote into the FIFO.
    reader_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    keep_open = os.open(fifo, os.O_WRONLY)
    os.set_blocking(reader_fd, True)
    received = bytearray()

    def read_all() -> None:
        with os.fdopen(reader_fd, "rb") as stream:
            while chunk := stream.read1(65536):
                received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    try:
        result = runner.invoke(app, ["export", str(synthetic), "--out", str(fifo)])
    finally:
        os.close(keep_open)
        reader.join(timeout=30)
    assert not reader.is_alive()
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert bytes(received) == _stdout_export(synthetic)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary file left


def test_a_device_at_out_is_written_into_and_stays_a_device(
    synthetic: Path, tmp_path: Path
) -> None:
    # A /dev/null of our own (same major and minor) in tmp_path: the real one must never be
    # what a failing test replaces.
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    before = os.lstat(device)
    result = runner.invoke(app, ["export", str(synthetic), "--out", str(device)])
    assert result.exit_code == 0, result.stderr
    after = os.lstat(device)
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev, after.st_mode) == (
        before.st_ino,
        before.st_rdev,
        before.st_mode,
    )
    assert result.stderr == f"exported 2,500 pages to {device}\n"


def test_out_dev_null_stays_the_system_device(synthetic: Path) -> None:
    if os.access("/dev", os.W_OK):
        pytest.skip("as root a regression would replace the system's /dev/null: see the test above")
    before = os.stat("/dev/null")
    result = runner.invoke(app, ["export", str(synthetic), "--out", "/dev/null"])
    assert result.exit_code == 0, result.stderr
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev, after.st_mode) == (
        before.st_ino,
        before.st_rdev,
        before.st_mode,
    )


def test_a_symlink_at_out_is_followed_and_stays_a_link(synthetic: Path, tmp_path: Path) -> None:
    target = tmp_path / "data" / "pages.jsonl"
    target.parent.mkdir()
    target.write_text("old export\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    result = runner.invoke(app, ["export", str(synthetic), "--out", str(link)])
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink()
    assert link.readlink() == target
    assert target.read_bytes() == _stdout_export(synthetic)  # replaced atomically, beside it
    assert sorted(p.name for p in target.parent.iterdir()) == ["pages.jsonl"]
