"""Importing CSV/JSONL exports: the service (slamon.importer.import_file) and `slamon import`.

CLI tests run with COLUMNS=1000 so that what they check is the content of each message; one test
(test_messages_are_never_wrapped_on_a_narrow_console) checks the 80-column case that cron jobs
and CI logs get.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tomli_w
from click.testing import CliRunner, Result
from sqlalchemy import Engine, inspect, select

from helpers import make_config, write_config
from slamon import cli as cli_mod
from slamon import clock, report
from slamon.domain import ComplaintRecord
from slamon.errors import InputError, UsageError
from slamon.importer import ImportResult, RowError, guess_format, import_file
from slamon.store.engine import make_engine, mask_url, normalize_url
from slamon.store.models import complaints, sources

SOURCE = "crm"
MSK = ZoneInfo("Europe/Moscow")
T1 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
HEADER = "id,created_at,closed_at,status,queue,channel,category,priority,subject,url\n"
_FIELDS = tuple(f.name for f in fields(ComplaintRecord))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def write(tmp_path: Path, name: str, content: str | bytes, *, bom: bool = False) -> Path:
    """A file with exactly these bytes (newlines untranslated)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path = tmp_path / name
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + data)
    return path


def csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue()


def jsonl_text(objects: list[Any]) -> str:
    return "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects)


def load(engine: Engine, path: Path, **kwargs: Any) -> ImportResult:
    kwargs.setdefault("source", SOURCE)
    kwargs.setdefault("tz", MSK)
    kwargs.setdefault("now", T1)
    return import_file(engine, path, **kwargs)


def stored(engine: Engine, source: str = SOURCE) -> dict[str, ComplaintRecord]:
    query = select(*(complaints.c[n] for n in _FIELDS)).where(complaints.c.source == source)
    with engine.connect() as conn:
        return {row.external_id: ComplaintRecord(*row) for row in conn.execute(query)}


def changed_at(engine: Engine) -> dict[str, tuple[datetime, datetime]]:
    query = select(complaints.c.external_id, complaints.c.first_seen_at, complaints.c.changed_at)
    with engine.connect() as conn:
        return {r.external_id: (r.first_seen_at, r.changed_at) for r in conn.execute(query)}


def table(engine: Engine, tbl: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(tbl)))


# --- the command line ---------------------------------------------------------------------


@dataclass
class Slamon:
    """`slamon --config <tmp>/slamon.toml ...` run in-process."""

    config: Path
    columns: int = 1000

    def __call__(self, *args: str) -> Result:
        runner = CliRunner(env={"COLUMNS": str(self.columns)})
        return runner.invoke(cli_mod.cli, ["--config", str(self.config), *args])


def config_file(tmp_path: Path, url: str, **sections: dict[str, Any]) -> Path:
    data: dict[str, Any] = {
        "database": {"url": url},
        "service_level": {"timezone": "Europe/Moscow"},
        **sections,
    }
    return write_config(tmp_path / "slamon.toml", tomli_w.dumps(data))


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: T1)


@pytest.fixture(autouse=True)
def _dispose_cli_engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI makes an engine per run and never disposes of it: do it here, so that PostgreSQL
    connections do not pile up over the run."""
    made: list[Engine] = []

    def tracking(*args: Any, **kwargs: Any) -> Engine:
        eng = make_engine(*args, **kwargs)
        made.append(eng)
        return eng

    monkeypatch.setattr(cli_mod, "make_engine", tracking)
    yield
    for eng in made:
        eng.dispose()


@pytest.fixture
def slamon(tmp_path: Path, engine: Engine, db_url: str) -> Slamon:
    """The CLI on the migrated database of the `engine` fixture (Europe/Moscow)."""
    return Slamon(config_file(tmp_path, db_url))


def at(clock_now: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: clock_now)


def assert_clean_failure(result: Result, code: int) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stdout + result.stderr


# --- encodings and CSV quoting -------------------------------------------------------------


@pytest.mark.parametrize("bom", [False, True], ids=["plain", "bom"])
def test_csv_in_utf8_with_or_without_bom(engine: Engine, tmp_path: Path, bom: bool) -> None:
    path = write(
        tmp_path, "export.csv", "id,created_at,subject\n1,2026-03-02T10:00Z,Жалоба\n", bom=bom
    )
    result = load(engine, path)
    assert (result.rows, result.bad_rows, result.errors, result.written) == (1, 0, [], True)
    assert stored(engine) == {"1": ComplaintRecord("1", utc(2026, 3, 2, 10, 0), subject="Жалоба")}


@pytest.mark.parametrize("bom", [False, True], ids=["plain", "bom"])
def test_jsonl_in_utf8_with_or_without_bom(engine: Engine, tmp_path: Path, bom: bool) -> None:
    text = jsonl_text([{"id": "1", "created_at": "2026-03-02T10:00Z", "subject": "Жалоба"}])
    result = load(engine, write(tmp_path, "export.jsonl", text, bom=bom))
    assert (result.rows, result.bad_rows, result.errors) == (1, 0, [])
    assert stored(engine) == {"1": ComplaintRecord("1", utc(2026, 3, 2, 10, 0), subject="Жалоба")}


def test_quoted_fields_with_commas_quotes_and_newlines(engine: Engine, tmp_path: Path) -> None:
    text = (
        "id,created_at,subject,category\r\n"
        '1,2026-03-02T10:00Z,"Refund, please: ""ASAP""",billing\r\n'
        '2,2026-03-02T11:00Z,"first line\nsecond line\r\nthird, ""quoted"" line","a,b"\r\n'
        '"3",2026-03-02T12:00Z,"",""\r\n'
    )
    result = load(engine, write(tmp_path, "export.csv", text))
    assert (result.rows, result.bad_rows) == (3, 0)
    got = stored(engine)
    assert got["1"].subject == 'Refund, please: "ASAP"'
    assert got["1"].category == "billing"
    assert got["2"].subject == 'first line\nsecond line\r\nthird, "quoted" line'
    assert got["2"].category == "a,b"
    assert (got["3"].subject, got["3"].category) == ("", "")


def test_a_bad_row_after_a_multi_line_field_is_reported_at_its_own_line(
    engine: Engine, slamon: Slamon, tmp_path: Path
) -> None:
    text = (
        "id,created_at,subject\n"  # 1
        '1,2026-03-02T10:00Z,"spans\n'  # 2
        "three\n"  # 3
        'lines"\n'  # 4
        "2,someday,ok\n"  # 5
        "\n"  # 6 (blank: skipped)
        '3,2026-03-02T11:00Z,"two\n'  # 7
        'lines"\n'  # 8
        ",2026-03-02T12:00Z,no id\n"  # 9
        "4,2026-03-02T13:00Z,fine\n"  # 10
    )
    path = write(tmp_path, "export.csv", text)
    result = load(engine, path)
    assert result.errors == [
        RowError(5, "created_at", "cannot read 'someday' as an ISO 8601 time"),
        RowError(9, "id", "missing"),
    ]
    assert sorted(stored(engine)) == ["1", "3", "4"]
    assert stored(engine)["1"].subject == "spans\nthree\nlines"

    cli_result = slamon("import", str(path), "--source", "other")
    assert cli_result.exit_code == 1
    assert cli_result.stderr.splitlines() == [
        f"{path}:5: created_at: cannot read 'someday' as an ISO 8601 time",
        f"{path}:9: id: missing",
    ]


# --- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-02T10:00:00+03:00", utc(2026, 3, 2, 7, 0)),
        ("2026-03-02T10:00:00-05:30", utc(2026, 3, 2, 15, 30)),
        ("2026-03-02T07:00:00Z", utc(2026, 3, 2, 7, 0)),
        ("2026-03-02 10:00", utc(2026, 3, 2, 7, 0)),  # naive: Moscow local time
        ("2026-03-02T10:00:00", utc(2026, 3, 2, 7, 0)),
        ("2026-03-02", utc(2026, 3, 1, 21, 0)),  # date only: local midnight
        ("2026-03-02T07:00:00.999999Z", utc(2026, 3, 2, 7, 0)),
        ("2026-03-02T10:00:59.5", utc(2026, 3, 2, 7, 0, 59)),
        (" 2026-03-02T07:00:00Z ", utc(2026, 3, 2, 7, 0)),
    ],
)
def test_timestamps(engine: Engine, tmp_path: Path, raw: str, expected: datetime) -> None:
    text = f"id,created_at,closed_at,first_closed_at\n1,{raw},{raw},{raw}\n"
    result = load(engine, write(tmp_path, "export.csv", text))
    assert result.errors == []
    got = stored(engine)["1"]
    assert (got.created_at, got.closed_at, got.first_closed_at) == (expected, expected, expected)
    assert got.created_at.tzinfo is UTC


def test_empty_closed_at_means_open(engine: Engine, tmp_path: Path) -> None:
    text = "id,created_at,closed_at\n1,2026-03-02T10:00Z,\n2,2026-03-02T10:00Z,  \n"
    load(engine, write(tmp_path, "export.csv", text))
    got = stored(engine)
    assert [(got[i].closed_at, got[i].first_closed_at) for i in ("1", "2")] == [(None, None)] * 2


def test_the_cli_reads_naive_times_in_the_configured_timezone(
    engine: Engine, slamon: Slamon, tmp_path: Path
) -> None:
    path = write(tmp_path, "export.csv", "id,created_at,closed_at\n1,2026-03-02 10:00,2026-03-02\n")
    result = slamon("import", str(path), "--source", SOURCE)
    assert result.exit_code == 0, result.stderr
    got = stored(engine)["1"]
    assert (got.created_at, got.closed_at) == (utc(2026, 3, 2, 7, 0), utc(2026, 3, 1, 21, 0))


# --- bad rows -----------------------------------------------------------------------------


def test_bad_rows_are_reported_skipped_and_counted(
    engine: Engine, slamon: Slamon, tmp_path: Path
) -> None:
    text = (
        "id,created_at,closed_at,excluded,subject\n"  # 1
        "g1,2026-03-02T10:00Z,,,ok\n"  # 2
        "b1,yesterday,,,x\n"  # 3
        ",2026-03-02T10:00Z,,,x\n"  # 4
        "b3,,,,x\n"  # 5
        "b4,2026-03-02T10:00Z,,\n"  # 6
        "b5,2026-03-02T10:00Z,,bogus,x\n"  # 7
        "b6,2026-03-02T10:00Z,03/04/2026,,x\n"  # 8
        "g2,2026-03-03T10:00Z,2026-03-04T10:00Z,Spam,y\n"  # 9
        "b7,2026-03-02T10:00Z,,,x,extra\n"  # 10
    )
    path = write(tmp_path, "export.csv", text)
    result = slamon("import", str(path), "--source", SOURCE)
    assert_clean_failure(result, 1)
    assert result.stderr.splitlines() == [
        f"{path}:3: created_at: cannot read 'yesterday' as an ISO 8601 time",
        f"{path}:4: id: missing",
        f"{path}:5: created_at: missing",
        f"{path}:6: has 4 fields, the header has 5",
        f"{path}:7: excluded: 'bogus' is not one of deleted, merged, spam (or empty)",
        f"{path}:8: closed_at: cannot read '03/04/2026' as an ISO 8601 time",
        f"{path}:10: has 6 fields, the header has 5",
    ]
    assert result.stdout == f"{path}: 9 rows: 2 new, 0 changed, 0 unchanged, 7 bad (skipped)\n"
    got = stored(engine)
    assert sorted(got) == ["g1", "g2"]
    assert got["g2"].excluded_reason == "spam"
    assert got["g2"].closed_at == utc(2026, 3, 4, 10, 0)


def test_bad_values_are_echoed_verbatim_in_error_lines(slamon: Slamon, tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "id,created_at\n1,:fire: <b>[red]x[/red]\n")
    result = slamon("import", str(path), "--source", SOURCE)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:2: created_at: cannot read ':fire: <b>[red]x[/red]' as an ISO 8601 time"
    ]


def test_messages_are_never_wrapped_on_a_narrow_console(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Cron and CI give no terminal: the console is 80 columns wide, and a `FILE:LINE: ...`
    line longer than that must still be one line (grep, log collectors)."""
    narrow = Slamon(config_file(tmp_path, db_url), columns=80)
    path = write(
        tmp_path,
        "complaints-export-from-the-ticket-system-2026-03.csv",
        "id,created_at\n1,2026-03-02T10:00Z\n2,not a date at all\n",
    )
    expected = f"{path}:3: created_at: cannot read 'not a date at all' as an ISO 8601 time"
    assert len(expected) > 80
    result = narrow("import", str(path), "--source", SOURCE)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [expected]
    assert result.stdout.splitlines() == [
        f"{path}: 2 rows: 1 new, 0 changed, 0 unchanged, 1 bad (skipped)"
    ]

    headless = write(tmp_path, "complaints-export-without-created-at-column.csv", "id\n1\n")
    result = narrow("import", str(headless), "--source", SOURCE)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {headless}:1: missing required column created_at"
    ]


# --- --strict -----------------------------------------------------------------------------


def test_strict_writes_nothing_when_any_row_is_bad(
    engine: Engine, slamon: Slamon, tmp_path: Path
) -> None:
    text = "id,created_at\n1,2026-03-02T10:00Z\n2,2026-13-02T10:00Z\n3,2026-03-02T12:00Z\n"
    path = write(tmp_path, "export.csv", text)
    result = slamon("import", str(path), "--source", SOURCE, "--strict")
    assert_clean_failure(result, 1)
    assert result.stderr.splitlines() == [
        f"{path}:3: created_at: cannot read '2026-13-02T10:00Z' as an ISO 8601 time",
        f"{path}: 1 bad rows of 3; --strict: nothing imported",
    ]
    assert result.stdout == ""
    assert table(engine, complaints) == []
    assert table(engine, sources) == []


def test_strict_leaves_an_existing_source_untouched(engine: Engine, tmp_path: Path) -> None:
    first = write(tmp_path, "first.csv", "id,created_at\n1,2026-03-01T10:00Z\n")
    load(engine, first)
    sources_before = table(engine, sources)
    complaints_before = table(engine, complaints)
    # Batches of one: rows 1 and 2 reach the database before the bad row 3 is read.
    text = "id,created_at,status\n1,2026-03-01T10:00Z,closed\n2,2026-03-02T10:00Z,\n3,oops,\n"
    result = load(engine, write(tmp_path, "second.csv", text), strict=True, now=T2, batch_size=1)
    assert (result.written, result.rows, result.bad_rows) == (False, 3, 1)
    assert table(engine, sources) == sources_before
    assert table(engine, complaints) == complaints_before
    assert stored(engine)["1"].status == ""


def test_strict_with_only_good_rows_imports_them(
    engine: Engine, slamon: Slamon, tmp_path: Path
) -> None:
    path = write(tmp_path, "export.csv", "id,created_at\n1,2026-03-02T10:00Z\n2,2026-03-02\n")
    result = slamon("import", str(path), "--source", SOURCE, "--strict")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{path}: 2 rows: 2 new, 0 changed, 0 unchanged\n"
    assert sorted(stored(engine)) == ["1", "2"]


# --- re-import and later exports ----------------------------------------------------------


EXPORT_1 = (
    "id,created_at,closed_at,first_closed_at,status,queue,updated_at\n"
    "1,2026-03-02 10:00,,,open,billing,2026-03-02 10:00\n"
    "2,2026-03-02 11:00,2026-03-04 09:00,2026-03-03 09:00,closed,billing,2026-03-04 09:00\n"
    "3,2026-03-03 12:00,2026-03-03 13:00,,closed,tech,\n"
)
EXPORT_2 = (
    "id,created_at,closed_at,first_closed_at,status,queue,updated_at\n"
    "1,2026-03-02 10:00,2026-03-05 10:00,,closed,billing,2026-03-05 10:00\n"
    "2,2026-03-02 11:00,2026-03-04 09:00,2026-03-03 09:00,closed,billing,2026-03-04 09:00\n"
    "4,2026-03-06 08:00,,,open,tech,\n"
)


def test_importing_the_same_file_twice_changes_nothing(
    engine: Engine, slamon: Slamon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "export.csv", EXPORT_1)
    first = slamon("import", str(path), "--source", SOURCE)
    assert first.exit_code == 0, first.stderr
    assert first.stdout == f"{path}: 3 rows: 3 new, 0 changed, 0 unchanged\n"
    records, times = stored(engine), changed_at(engine)
    assert set(times.values()) == {(T1, T1)}

    at(T2, monkeypatch)
    second = slamon("import", str(path), "--source", SOURCE)
    assert second.exit_code == 0, second.stderr
    assert second.stdout == f"{path}: 3 rows: 0 new, 0 changed, 3 unchanged\n"
    assert stored(engine) == records
    assert changed_at(engine) == times


def test_a_newer_export_updates_rows_and_deletes_none(
    engine: Engine, slamon: Slamon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        slamon("import", str(write(tmp_path, "a.csv", EXPORT_1)), "--source", SOURCE).exit_code == 0
    )
    at(T2, monkeypatch)
    path = write(tmp_path, "b.csv", EXPORT_2)
    result = slamon("import", str(path), "--source", SOURCE)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{path}: 3 rows: 1 new, 1 changed, 1 unchanged\n"

    got = stored(engine)
    assert sorted(got) == ["1", "2", "3", "4"]  # 3 is not in the newer export: kept
    assert got["1"] == ComplaintRecord(
        "1",
        created_at=utc(2026, 3, 2, 7, 0),
        closed_at=utc(2026, 3, 5, 7, 0),
        first_closed_at=utc(2026, 3, 5, 7, 0),
        status="closed",
        queue="billing",
        source_updated_at=utc(2026, 3, 5, 7, 0),
    )
    assert got["2"].first_closed_at == utc(2026, 3, 3, 6, 0)  # the source's own first closure
    assert got["3"].closed_at == utc(2026, 3, 3, 10, 0)
    assert changed_at(engine) == {"1": (T1, T2), "2": (T1, T1), "3": (T1, T1), "4": (T2, T2)}


def test_one_id_twice_in_a_file_is_applied_in_file_order(
    db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export may list a complaint twice (closed, then reopened further down): the rows apply
    in file order, the later one wins, and the closure seen first is kept as the first closure.
    Known limit (documented): when the repeats fall in different batches a re-import rewrites
    them (same final state, new changed_at); within one batch it changes nothing."""
    slamon = Slamon(config_file(tmp_path, db_url, **{"import": {"batch_size": 100}}))
    lines = ["id,created_at,closed_at,status", "dup,2026-03-02T10:00Z,2026-03-03T10:00Z,closed"]
    lines += [f"f{i},2026-03-02T10:00Z,,open" for i in range(100)]
    lines += ["dup,2026-03-02T10:00Z,,reopened"]
    path = write(tmp_path, "export.csv", "\n".join(lines) + "\n")
    assert slamon("import", str(path), "--source", SOURCE).exit_code == 0
    dup = stored(engine)["dup"]
    assert (dup.status, dup.closed_at) == ("reopened", None)
    assert dup.first_closed_at == datetime(2026, 3, 3, 10, tzinfo=UTC)

    at(T2, monkeypatch)
    again = slamon("import", str(path), "--source", SOURCE)
    assert again.exit_code == 0, again.stderr
    assert ": 0 new, 2 changed, 100 unchanged" in again.stdout
    assert stored(engine)["dup"] == dup

    close_together = ["id,created_at,closed_at,status", lines[1], lines[-1]]
    path = write(tmp_path, "small.csv", "\n".join(close_together) + "\n")
    slamon("import", str(path), "--source", "other")
    times = changed_at(engine)
    at(T2 + timedelta(days=1), monkeypatch)
    repeat = slamon("import", str(path), "--source", "other")
    assert ": 0 new, 0 changed, 1 unchanged" in repeat.stdout
    assert "1 rows repeated an id seen shortly before in the file" in repeat.stdout
    assert changed_at(engine) == times


def test_what_is_stored_does_not_depend_on_the_batch_size(engine: Engine, tmp_path: Path) -> None:
    """The same file imported in batches of 100 and of 5000 must store the same complaints, also
    when one id appears twice and the two rows fall into different batches of 100."""
    lines = ["id,created_at,closed_at,status", "dup,2026-03-02T10:00Z,2026-03-03T10:00Z,closed"]
    lines += [f"f{i},2026-03-02T10:00Z,,open" for i in range(100)]
    lines += ["dup,2026-03-02T10:00Z,,reopened"]
    path = write(tmp_path, "export.csv", "\n".join(lines) + "\n")
    load(engine, path, source="small", batch_size=100)
    load(engine, path, source="large", batch_size=5000)
    assert stored(engine, "small")["dup"] == stored(engine, "large")["dup"]
    assert stored(engine, "small") == stored(engine, "large")


# --- closed before created ----------------------------------------------------------------


def test_closed_before_created_is_stored_counted_and_excluded_from_the_report(
    engine: Engine, db_url: str, slamon: Slamon, tmp_path: Path
) -> None:
    text = (
        "id,created_at,closed_at\n"
        "a,2026-03-02T10:00Z,2026-03-04T09:00Z\n"
        "z,2026-03-05T12:00Z,2026-03-05T11:00Z\n"
        "e,2026-03-05T12:00Z,\n"
    )
    path = write(tmp_path, "export.csv", text)
    result = slamon("import", str(path), "--source", SOURCE)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{path}: 3 rows: 3 new, 0 changed, 0 unchanged",
        "1 complaints closed before they were created: stored, and excluded from every metric",
    ]
    z = stored(engine)["z"]
    assert (z.created_at, z.closed_at) == (utc(2026, 3, 5, 12, 0), utc(2026, 3, 5, 11, 0))

    window = ["--as-of", "2026-03-20T00:00Z", "--since", "2026-03-01", "--until", "2026-03-19"]
    shown = slamon("report", "--format", "json", *window)
    assert shown.exit_code == 0, shown.stderr
    total = json.loads(shown.stdout)["total"]
    assert (total["complaints"], total["excluded"], total["open"]) == (2, 1, 1)
    assert {k: total["levels"]["3"][k] for k in ("hits", "misses", "pending")} == {
        "hits": 1,
        "misses": 1,
        "pending": 0,
    }

    cfg = make_config(db_url, service_level={"timezone": "Europe/Moscow"})
    request = report.make_request(
        as_of=utc(2026, 3, 20, 0, 0),
        tz=MSK,
        since=datetime(2026, 3, 1).date(),
        until=datetime(2026, 3, 19).date(),
    )
    run = report.run(engine, cfg, request)
    assert (run.total.complaints, run.total.excluded) == (2, 1)
    assert run.total.mean_days == pytest.approx((2 * 86400 - 3600) / 86400)


# --- JSONL --------------------------------------------------------------------------------


JSONL_LINES = [
    '{"id": 101, "created_at": "2026-03-02T10:00:00+03:00", "closed_at": null, "subject": "Ж"}',
    "",
    '{"id": "a-2", "created_at": "2026-03-02 10:00", "closed_at": "2026-03-03T07:00:00Z",'
    ' "queue": "billing", "extra": {"nested": [1, 2]}}',
    "[1, 2]",
    '{"id": 3,, "created_at": "2026-03-02"}',
    "   ",
    '{"id": 4, "created_at": 20260302}',
    '{"id": null, "created_at": "2026-03-02"}',
    '"just text"',
    '{"id": 5, "created_at": "2026-03-02", "excluded": "deleted", "status": null}',
]


def test_jsonl_rows_and_bad_lines(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "export.jsonl", "\n".join(JSONL_LINES) + "\n")
    result = load(engine, path)
    assert result.errors == [
        RowError(4, None, "not a JSON object"),
        RowError(
            5, None, "not valid JSON: Expecting property name enclosed in double quotes (column 10)"
        ),
        RowError(7, "created_at", "expected an ISO 8601 time as text, got 20260302"),
        RowError(8, "id", "missing"),
        RowError(9, None, "not a JSON object"),
    ]
    assert (result.rows, result.bad_rows, result.written) == (8, 5, True)
    assert stored(engine) == {
        "101": ComplaintRecord("101", utc(2026, 3, 2, 7, 0), subject="Ж"),
        "a-2": ComplaintRecord(
            "a-2",
            utc(2026, 3, 2, 7, 0),
            closed_at=utc(2026, 3, 3, 7, 0),
            first_closed_at=utc(2026, 3, 3, 7, 0),
            queue="billing",
        ),
        "5": ComplaintRecord("5", utc(2026, 3, 1, 21, 0), excluded_reason="deleted"),
    }


def test_jsonl_bad_lines_through_the_cli(engine: Engine, slamon: Slamon, tmp_path: Path) -> None:
    path = write(tmp_path, "export.jsonl", "\r\n".join(JSONL_LINES) + "\r\n")
    result = slamon("import", str(path), "--source", SOURCE)
    assert_clean_failure(result, 1)
    assert result.stderr.splitlines() == [
        f"{path}:4: not a JSON object",
        f"{path}:5: not valid JSON: Expecting property name enclosed in double quotes (column 10)",
        f"{path}:7: created_at: expected an ISO 8601 time as text, got 20260302",
        f"{path}:8: id: missing",
        f"{path}:9: not a JSON object",
    ]
    assert result.stdout == f"{path}: 8 rows: 3 new, 0 changed, 0 unchanged, 5 bad (skipped)\n"
    assert sorted(stored(engine)) == ["101", "5", "a-2"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_invalid_json_at_the_end_of_a_line_names_its_column(
    engine: Engine, tmp_path: Path, newline: str
) -> None:
    """A line cut short: the value was expected at column 25 of line 2, after its 24 characters
    (not at "column 1", which is where the line's own newline leaves the decoder)."""
    text = '{"id": 1, "created_at": "2026-03-02"}' + newline + '{"id": 2, "created_at": ' + newline
    result = load(engine, write(tmp_path, "export.jsonl", text))
    assert result.errors == [RowError(2, None, "not valid JSON: Expecting value (column 25)")]
    assert list(stored(engine)) == ["1"]


def test_a_numeric_jsonl_id_and_a_csv_id_are_the_same_complaint(
    engine: Engine, tmp_path: Path
) -> None:
    load(engine, write(tmp_path, "a.jsonl", '{"id": 7, "created_at": "2026-03-02"}\n'))
    result = load(engine, write(tmp_path, "b.csv", "id,created_at,status\n7,2026-03-02,closed\n"))
    assert (result.counts.new, result.counts.changed) == (0, 1)
    assert list(stored(engine)) == ["7"]


# --- file-level errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.csv", b"id,closed_at\n1,\n", "{path}:1: missing required column created_at"),
        ("e.csv", b"subject,url\nx,y\n", "{path}:1: missing required column id, created_at"),
        ("e.csv", b"", "{path}: empty file (expected a header line with id and created_at)"),
        (
            "e.csv",
            codecs.BOM_UTF8,
            "{path}: empty file (expected a header line with id and created_at)",
        ),
        ("e.csv", b"id,created_at,subject\n1,2026-03-02,caf\xe9\n", "{path}: not UTF-8 text ("),
        (
            "e.jsonl",
            b'{"id": 1, "created_at": "2026-03-02", "s": "\xff"}\n',
            "{path}: not UTF-8 text (",
        ),
    ],
    ids=["missing-created_at", "missing-both", "empty", "bom-only", "latin1-csv", "binary-jsonl"],
)
def test_file_level_errors_exit_2_with_one_line_and_write_nothing(
    engine: Engine, slamon: Slamon, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = write(tmp_path, name, content)
    result = slamon("import", str(path), "--source", SOURCE)
    assert_clean_failure(result, 2)
    assert result.stdout == ""
    expected = "error: " + message.format(path=path)
    if message.endswith("("):  # the decoder's own detail follows
        assert result.stderr.startswith(expected)
        assert result.stderr.endswith("; nothing imported\n")
        assert result.stderr.count("\n") == 1
    else:
        assert result.stderr == expected + "\n"
    assert table(engine, complaints) == []
    assert table(engine, sources) == []


def test_bad_utf8_far_into_a_file_rolls_back_what_was_already_written(
    engine: Engine, tmp_path: Path
) -> None:
    good = "".join(f"{i},2026-03-02T10:00Z,subject number {i}\n" for i in range(500))
    data = ("id,created_at,subject\n" + good).encode() + b"999,2026-03-02,\xc3\x28\n"
    path = write(tmp_path, "export.csv", data)
    with pytest.raises(InputError, match=r"not UTF-8 text .*; nothing imported$") as caught:
        load(engine, path, batch_size=10)
    assert str(caught.value).startswith(f"{path}: ")
    assert table(engine, complaints) == []
    assert table(engine, sources) == []


# --- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("export.csv", None, "csv"),
        ("EXPORT.CSV", None, "csv"),
        ("export.2026-03.csv", None, "csv"),
        ("export.jsonl", None, "jsonl"),
        ("export.ndjson", None, "jsonl"),
        ("Export.JSONL", None, "jsonl"),
        ("export.csv", "jsonl", "jsonl"),
        ("export.txt", "csv", "csv"),
    ],
)
def test_format_is_guessed_from_the_extension(name: str, given: str | None, expected: str) -> None:
    assert guess_format(Path(name), given) == expected


@pytest.mark.parametrize("name", ["export.txt", "export", "export.csv.gz", "export.json"])
def test_guess_format_refuses_unknown_extensions(name: str) -> None:
    with pytest.raises(UsageError, match="cannot tell the format from the name"):
        guess_format(Path(name), None)


def test_the_cli_guesses_jsonl_from_ndjson(engine: Engine, slamon: Slamon, tmp_path: Path) -> None:
    path = write(tmp_path, "export.ndjson", '{"id": "n1", "created_at": "2026-03-02T10:00Z"}\n')
    result = slamon("import", str(path), "--source", SOURCE)
    assert result.exit_code == 0, result.stderr
    assert list(stored(engine)) == ["n1"]


def test_an_unknown_extension_needs_format(engine: Engine, slamon: Slamon, tmp_path: Path) -> None:
    path = write(tmp_path, "export.txt", "id,created_at\nt1,2026-03-02T10:00Z\n")
    result = slamon("import", str(path), "--source", SOURCE)
    assert_clean_failure(result, 2)
    assert result.stderr == (
        f"error: {path}: cannot tell the format from the name; pass --format csv or jsonl\n"
    )
    assert table(engine, sources) == []

    result = slamon("import", str(path), "--source", SOURCE, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{path}: 1 rows: 1 new, 0 changed, 0 unchanged\n"
    assert list(stored(engine)) == ["t1"]


# --- an unmigrated database ---------------------------------------------------------------


def test_import_into_a_database_never_migrated(db_url: str, tmp_path: Path) -> None:
    slamon = Slamon(config_file(tmp_path, db_url))
    path = write(tmp_path, "export.csv", "id,created_at\n1,2026-03-02T10:00Z\n")
    result = slamon("import", str(path), "--source", SOURCE)
    assert_clean_failure(result, 2)
    where = mask_url(normalize_url(db_url))
    assert result.stderr == f"error: {where} has no slamon schema yet: run `slamon db upgrade`\n"
    check = make_engine(db_url)
    try:
        assert inspect(check).get_table_names() == []

        upgraded = slamon("db", "upgrade")
        assert upgraded.exit_code == 0, upgraded.stderr
        result = slamon("import", str(path), "--source", SOURCE)
        assert result.exit_code == 0, result.stderr
        assert list(stored(check)) == ["1"]
    finally:
        check.dispose()


# --- hostile values -----------------------------------------------------------------------


LONG_TEXT = "Жалоба на «сервис» — " * 5_000 + "end"  # about 105,000 characters
HOSTILE = {
    "h1": {
        "subject": '<script>alert("x")</script>',
        "queue": "'; DROP TABLE complaints; --",
        "url": "javascript:alert(document.cookie)",
    },
    "h2": {"subject": "line one\r\nline two\nline three\rline four", "category": "a\tb"},
    "h3": {"subject": LONG_TEXT, "channel": "😀 \u202eRTL\u202c"},
    "h4": {"subject": "[bold red]not markup[/] :fire: %s {0} \\N $(rm -rf /)", "priority": "%n"},
}


def test_hostile_values_are_stored_verbatim_and_break_nothing(
    engine: Engine, slamon: Slamon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = ["id", "created_at", "subject", "queue", "channel", "category", "priority", "url"]
    rows = [columns] + [
        [ext_id, "2026-03-02T10:00Z", *(vals.get(c, "") for c in columns[2:])]
        for ext_id, vals in HOSTILE.items()
    ]
    csv_path = write(tmp_path, "hostile.csv", csv_text(rows))
    objects = [{"id": k, "created_at": "2026-03-02T10:00Z", **v} for k, v in HOSTILE.items()]
    jsonl_path = write(tmp_path, "hostile.jsonl", jsonl_text(objects))

    expected = {k: ComplaintRecord(k, utc(2026, 3, 2, 10, 0), **v) for k, v in HOSTILE.items()}
    for path, source in ((csv_path, "csv-source"), (jsonl_path, "jsonl-source")):
        result = slamon("import", str(path), "--source", source)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == f"{path}: 4 rows: 4 new, 0 changed, 0 unchanged\n"
        assert stored(engine, source) == expected

    at(T2, monkeypatch)
    again = slamon("import", str(csv_path), "--source", "csv-source")
    assert again.stdout == f"{csv_path}: 4 rows: 0 new, 0 changed, 4 unchanged\n"

    window = ["--as-of", "2026-03-20T00:00Z", "--since", "2026-03-01", "--until", "2026-03-19"]
    shown = slamon("report", "--format", "json", "--by", "queue", *window)
    assert shown.exit_code == 0, shown.stderr
    queues = {
        row["segment"]["queue"]: row["complaints"] for row in json.loads(shown.stdout)["rows"]
    }
    assert queues == {"": 6, "'; DROP TABLE complaints; --": 2}


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_nul_character_is_a_bad_row_on_every_engine(
    engine: Engine, slamon: Slamon, tmp_path: Path, kind: str
) -> None:
    """PostgreSQL text cannot hold NUL: the row must be reported like any bad row (the same on
    SQLite), not abort the whole import with a driver error."""
    objects = [
        {"id": "1", "created_at": "2026-03-02T10:00Z", "subject": "fine"},
        {"id": "2", "created_at": "2026-03-02T10:00Z", "subject": "nul\x00inside"},
        {"id": "3", "created_at": "2026-03-02T10:00Z", "subject": "fine too"},
    ]
    if kind == "csv":
        rows = [["id", "created_at", "subject"]] + [list(o.values()) for o in objects]
        path, line = write(tmp_path, "export.csv", csv_text(rows)), 3
    else:
        path, line = write(tmp_path, "export.jsonl", jsonl_text(objects)), 2
    result = slamon("import", str(path), "--source", SOURCE)
    assert_clean_failure(result, 1)
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}:{line}: subject: ")
    assert sorted(stored(engine)) == ["1", "3"]


def test_an_overlong_id_is_a_bad_row_on_every_engine(
    engine: Engine, slamon: Slamon, tmp_path: Path
) -> None:
    """A 10,000-character random id does not fit PostgreSQL's unique index on (source, id): the
    row must be reported like any bad row (the same on SQLite), not abort the whole import."""
    huge = random.Random(7).randbytes(5_000).hex()
    text = f"id,created_at\n1,2026-03-02T10:00Z\n{huge},2026-03-02T10:00Z\n3,2026-03-02T10:00Z\n"
    path = write(tmp_path, "export.csv", text)
    result = slamon("import", str(path), "--source", SOURCE)
    assert_clean_failure(result, 1)
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}:3: id: ")
    assert sorted(stored(engine)) == ["1", "3"]
