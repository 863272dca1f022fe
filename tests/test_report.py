"""`slamon report`: the JSON contract, CSV, table, and identical answers on both engines."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from slamon.importer import import_file
from slamon.store import migrate
from slamon.store.engine import make_engine

CSV = """id,created_at,closed_at,queue,channel,priority
1,2026-03-02T10:00:00Z,2026-03-04T09:00:00Z,billing,phone,high
2,2026-03-02T23:30:00Z,2026-03-05T23:59:00Z,billing,email,
3,2026-03-03T08:00:00Z,2026-03-06T00:00:00Z,delivery,phone,
4,2026-03-03T08:00:00Z,2026-03-07T00:00:00Z,delivery,,
5,2026-03-05T12:00:00Z,,billing,chat,
6,2026-03-18T12:00:00Z,2026-03-18T13:00:00Z,,phone,
7,2026-03-19T12:00:00Z,,delivery,phone,
8,2026-03-10T12:00:00Z,2026-03-09T12:00:00Z,billing,phone,
9,2026-03-25T12:00:00Z,,billing,phone,
"""
AS_OF = "2026-03-20T00:00:00Z"


def slamon(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "slamon", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def loaded(tmp_path: Path, db_url: str) -> Path:
    config = tmp_path / "slamon.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[service_level]\nthresholds = [3, 5]\n'
        'targets = { "3" = 0.7 }\n',
        encoding="utf-8",
    )
    export = tmp_path / "export.csv"
    export.write_text(CSV, encoding="utf-8")
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        result = import_file(
            engine, export, source="crm", tz=ZoneInfo("UTC"), now=datetime.now(UTC)
        )
    finally:
        engine.dispose()
    assert result.counts.new == 9
    return config


def report_json(config: Path, *args: str) -> dict:
    proc = slamon(
        config,
        "report",
        "--as-of",
        AS_OF,
        "--since",
        "2026-03-01",
        "--until",
        "2026-03-31",
        "--format",
        "json",
        *args,
    )
    return json.loads(proc.stdout)


def test_json_contract(loaded: Path) -> None:
    data = report_json(loaded, "--by", "queue", "--period", "week")
    assert data["as_of"] == "2026-03-20T00:00:00+00:00"
    assert data["timezone"] == "UTC"
    assert data["day_mode"] == "calendar"
    assert data["thresholds"] == [3, 5]
    row_keys = {
        "period",
        "segment",
        "complaints",
        "excluded",
        "open",
        "mean_days",
        "median_days",
        "p90_days",
        "levels",
    }
    level_keys = {
        "hits",
        "misses",
        "matured",
        "pending",
        "share",
        "ci_low",
        "ci_high",
        "target",
        "met",
    }
    for row in data["rows"]:
        assert set(row) == row_keys
        assert set(row["levels"]) == {"3", "5"}
        for level in row["levels"].values():
            assert set(level) == level_keys
    keys = [(r["period"], r["segment"]["queue"]) for r in data["rows"]]
    assert keys == [
        ("2026-W10", "billing"),
        ("2026-W10", "delivery"),
        ("2026-W11", "billing"),
        ("2026-W12", ""),
        ("2026-W12", "delivery"),
    ]
    # Complaint 8 closed before it was created: excluded, not counted; 9 is created after as_of.
    w11 = data["rows"][2]
    assert (w11["complaints"], w11["excluded"]) == (0, 1)
    assert w11["levels"]["3"]["share"] is None and w11["mean_days"] is None
    total = data["total"]
    assert set(total) == row_keys - {"period", "segment"}
    assert (total["complaints"], total["excluded"], total["open"]) == (7, 1, 2)
    three = total["levels"]["3"]
    assert (three["hits"], three["misses"], three["matured"], three["pending"]) == (3, 2, 5, 2)
    assert three["share"] == pytest.approx(0.6)
    assert three["target"] == 0.7 and three["met"] is False
    assert 0 < three["ci_low"] < 0.6 < three["ci_high"] < 1
    assert total["levels"]["5"]["target"] is None and total["levels"]["5"]["met"] is None


def test_segment_by_two_fields_and_no_grouping(loaded: Path) -> None:
    data = report_json(loaded, "--by", "queue", "--by", "channel")
    assert all(set(r["segment"]) == {"queue", "channel"} for r in data["rows"])
    assert all(r["period"] is None for r in data["rows"])
    plain = report_json(loaded)
    assert len(plain["rows"]) == 1 and plain["rows"][0]["segment"] == {}
    assert plain["rows"][0]["complaints"] == plain["total"]["complaints"] == 7


def test_csv_one_line_per_row_and_threshold(loaded: Path) -> None:
    proc = slamon(
        loaded,
        "report",
        "--as-of",
        AS_OF,
        "--since",
        "2026-03-01",
        "--until",
        "2026-03-31",
        "--format",
        "csv",
        "--by",
        "queue",
    )
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["queue"] for r in rows if r["threshold"] == "3"] == ["", "billing", "delivery", ""]
    total3 = next(r for r in rows if r["period"] == "total" and r["threshold"] == "3")
    assert (total3["hits"], total3["matured"], total3["met"]) == ("3", "5", "false")
    assert len(rows) == 2 * 4


def test_output_file_and_table(loaded: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    slamon(
        loaded,
        "report",
        "--as-of",
        AS_OF,
        "--since",
        "2026-03-01",
        "--format",
        "json",
        "--output",
        str(out),
    )
    assert json.loads(out.read_text())["total"]["complaints"] == 7
    table = slamon(
        loaded,
        "report",
        "--as-of",
        AS_OF,
        "--since",
        "2026-03-01",
        "--format",
        "table",
        "--by",
        "queue",
    ).stdout
    assert "✘ 60.0%" in table  # the total misses its 70 % target for 3 days
    assert "billing" in table and "TOTAL" in table and "Mean" in table


def test_default_range_is_last_28_days(loaded: Path) -> None:
    data = json.loads(
        slamon(loaded, "report", "--as-of", "2026-03-28T12:00:00Z", "--format", "json").stdout
    )
    assert (data["since"], data["until"]) == ("2026-03-01", "2026-03-28")
    assert data["total"]["complaints"] + data["total"]["excluded"] == 9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2026-03-10", "--until", "2026-03-01"], "is after --until"),
        (["--by", "agent"], "cannot group by 'agent'"),
        (["--as-of", "yesterday"], "--as-of: cannot read 'yesterday'"),
        (["--since", "2026-02-30"], "--since: cannot read '2026-02-30'"),
    ],
)
def test_bad_arguments_exit_2(loaded: Path, args: list[str], message: str) -> None:
    proc = slamon(loaded, "report", *args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_sqlite_and_postgresql_give_identical_json(tmp_path: Path, pg_database: str | None) -> None:
    if pg_database is None:
        pytest.skip("PostgreSQL: set SLAMON_TEST_DATABASE_URL")
    from slamon.demo import generate

    as_of = datetime(2026, 5, 20, 9, 0, tzinfo=UTC)
    export = tmp_path / "demo.csv"
    with export.open("w", newline="", encoding="utf-8") as fh:
        writer = None
        for row in generate(as_of, ZoneInfo("Europe/Moscow")):
            if writer is None:
                writer = csv.DictWriter(fh, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
    outputs = []
    for name, url in (("sqlite", f"sqlite:///{tmp_path / 'a.db'}"), ("pg", pg_database)):
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\n[service_level]\ntimezone = "Europe/Moscow"\n'
            'day_mode = "working"\n[calendar]\ncountry = "RU"\n',
            encoding="utf-8",
        )
        slamon(config, "db", "upgrade")
        slamon(config, "import", str(export), "--source", "crm")
        for period in ("week", "month"):
            outputs.append(
                (
                    name,
                    period,
                    slamon(
                        config,
                        "report",
                        "--as-of",
                        "2026-05-20T09:00:00Z",
                        "--since",
                        "2025-11-01",
                        "--period",
                        period,
                        "--by",
                        "queue",
                        "--by",
                        "channel",
                        "--format",
                        "json",
                    ).stdout,
                )
            )
    by_engine = {}
    for name, period, text in outputs:
        by_engine.setdefault(period, {})[name] = json.loads(text)
    for period, answers in by_engine.items():
        assert answers["sqlite"] == answers["pg"], period
        assert answers["sqlite"]["total"]["complaints"] > 15000


def test_statuses_deleted_spam_merged_are_excluded(tmp_path: Path, db_url: str) -> None:
    config = tmp_path / "slamon.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n'
        '[import]\nexcluded_statuses = ["Deleted", "spam", "дубль"]\n',
        encoding="utf-8",
    )
    export = tmp_path / "export.csv"
    export.write_text(
        "id,created_at,closed_at,status\n"
        "1,2026-03-02T10:00:00Z,2026-03-03T10:00:00Z,closed\n"
        "2,2026-03-02T10:00:00Z,2026-03-03T10:00:00Z,DELETED\n"
        "3,2026-03-02T10:00:00Z,,Spam\n"
        "4,2026-03-02T10:00:00Z,,Дубль\n"
        "5,2026-03-02T10:00:00Z,,merged\n",
        encoding="utf-8",
    )
    slamon(config, "db", "upgrade")
    slamon(config, "import", str(export), "--source", "crm")
    total = report_json(config)["total"]
    # "merged" is not in this config's list: it counts; the other three are excluded.
    assert (total["complaints"], total["excluded"], total["open"]) == (2, 3, 1)
