"""The roll-up's rules around the numbers: local days in SQL, what it was built under, when
reports fall back to raw rows (and say so once), the triggers that mark it stale, the [rollup]
section, and `slamon db rebuild-rollup`. (Its numbers: test_rollup_property.py.)"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text, update

from helpers import make_config, write_config
from slamon import report
from slamon.config import parse
from slamon.domain import Closure, ComplaintRecord
from slamon.errors import ConfigError
from slamon.store import migrate, rollup
from slamon.store.complaints import apply_batch, ensure_source
from slamon.store.engine import make_engine, write_transaction
from slamon.store.models import complaints, sources

NOW = datetime(2026, 6, 1, tzinfo=UTC)
UTC_DAY = datetime(2026, 3, 2, 10, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def put(engine: Engine, records: list[ComplaintRecord], source: str = "crm") -> None:
    with write_transaction(engine) as conn:
        ensure_source(conn, source, "import", NOW)
        apply_batch(conn, source, records, NOW)


def sample() -> list[ComplaintRecord]:
    return [
        ComplaintRecord("a", utc(2026, 3, 2, 10), utc(2026, 3, 4, 9), queue="billing"),
        ComplaintRecord("b", utc(2026, 3, 2, 23, 30), None, queue="delivery", channel="chat"),
        ComplaintRecord("c", utc(2026, 3, 3, 8), utc(2026, 3, 3, 7), queue="billing"),
        ComplaintRecord("d", utc(2026, 3, 5, 12), utc(2026, 3, 9), excluded_reason="spam"),
    ]


def plan_of(engine: Engine, cfg: Any, **kwargs: Any) -> tuple[str, bool]:
    request = report.make_request(
        as_of=NOW, tz=cfg.settings.service_level.zone, since=date(2026, 3, 1), **kwargs
    )
    plans: list[tuple[str, bool]] = []
    got = report._run(engine, cfg, request, on_plan=lambda *p: plans.append(p))
    assert got.as_json() == report._run(engine, cfg, request, use_rollup=False).as_json()
    return plans[0]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test hears the once-per-process warnings afresh."""
    monkeypatch.setattr(report, "_said", set())


# --- local days in SQL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone",
    [
        "America/New_York",
        "Australia/Lord_Howe",  # a half-hour DST shift
        "Asia/Kathmandu",  # +05:45
        "Pacific/Apia",  # skipped 2011-12-30 entirely
        "America/Sao_Paulo",  # DST until 2019, changes at local midnight
    ],
)
def test_local_day_in_sql_is_python_s_local_day(engine: Engine, zone: str) -> None:
    tz = ZoneInfo(zone)
    lo, hi = int(utc(1965, 1, 1).timestamp()), int(utc(2027, 1, 1).timestamp())
    steps = rollup.zone_steps(tz, lo, hi)
    probes = {lo, hi}
    for t, _ in steps[1:]:
        probes.update(t + d for d in (-3601, -1, 0, 1, 3600))
    probes.update(range(lo, hi, 86400 * 37 + 3607))
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TEMPORARY TABLE probe (t BIGINT)")
        conn.execute(text("INSERT INTO probe VALUES (:t)"), [{"t": t} for t in sorted(probes)])
        query = text(f"SELECT t, {rollup.local_day_sql('t', steps)} FROM probe")
        got = {int(t): int(day) for t, day in conn.execute(query)}
    want = {t: rollup.local_day(datetime.fromtimestamp(t, UTC), tz) for t in probes}
    assert got == want


def test_instants_far_outside_the_sql_window_get_their_days_in_python(engine: Engine) -> None:
    """Typos such as year 2250 or 1850 are counted like any other instant, by a rebuild too."""
    cfg = make_config(str(engine.url), service_level={"timezone": "America/New_York"})
    report.rebuild_rollup(engine, cfg, NOW)
    put(
        engine,
        [
            ComplaintRecord("late", utc(2026, 3, 2, 10), utc(2250, 3, 2, 3)),
            ComplaintRecord("old", utc(1850, 7, 1, 2), utc(1850, 7, 3, 2)),
            ComplaintRecord("usual", utc(2026, 3, 8, 6, 30), utc(2026, 3, 9, 3, 59, 59)),
        ],
    )
    with engine.connect() as conn, conn.begin() as tx:
        kept = rollup.contents(conn)
        rollup.rebuild(conn, report.rollup_basis(cfg), NOW, rewrite_columns=True)
        assert rollup.contents(conn) == kept
        tx.rollback()
    assert {r[3] for r in kept[1] if r[0] == rollup.TOTAL} >= {
        rollup.day_number(date(2250, 3, 1)),  # 22:00 on 1 March in New York
        rollup.day_number(date(1850, 7, 2)),
    }


# --- what it was built under, and when reports fall back -----------------------------------


def test_a_new_database_has_a_ready_roll_up_under_the_defaults(engine: Engine) -> None:
    with engine.connect() as conn:
        meta = rollup.read_meta(conn)
    assert meta is not None and meta.ready
    assert (meta.timezone, meta.closure) == ("UTC", "final")
    assert meta.dimensions == ("source", "queue", "channel", "category", "priority")
    assert meta.exclusion == rollup.EXCLUSION_RULE
    put(engine, sample())
    cfg = make_config(str(engine.url))
    assert plan_of(engine, cfg, period="week", by=["queue"]) == ("rollup", True)


def test_a_different_timezone_reads_raw_rows_and_says_so_once(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    put(engine, sample())
    cfg = make_config(str(engine.url), service_level={"timezone": "Europe/Moscow"})
    with caplog.at_level(logging.WARNING, logger="slamon.report"):
        assert plan_of(engine, cfg) == ("raw", False)
        assert plan_of(engine, cfg, by=["queue"]) == ("raw", False)
    said = [r.getMessage() for r in caplog.records if r.name == "slamon.report"]
    assert said == [
        "the roll-up was built under timezone UTC (configured: Europe/Moscow): reports read raw"
        " rows (slower) until you run `slamon db rebuild-rollup`"
    ]
    result = report.rebuild_rollup(engine, cfg, NOW)
    assert result.rewrote_columns and result.complaints == 4
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="slamon.report"):
        assert plan_of(engine, cfg, by=["queue"]) == ("rollup", True)
    assert not caplog.records


def test_a_different_closure_rule_reads_raw_rows(engine: Engine) -> None:
    put(engine, sample())
    cfg = make_config(str(engine.url), service_level={"closure": "first"})
    assert plan_of(engine, cfg) == ("raw", False)
    report.rebuild_rollup(engine, cfg, NOW)
    assert plan_of(engine, cfg) == ("rollup", True)


def test_thresholds_holidays_and_as_of_need_no_rebuild(engine: Engine) -> None:
    put(engine, sample())
    cfg = make_config(
        str(engine.url),
        service_level={"thresholds": [0, 2, 7], "day_mode": "working", "targets": {}},
        calendar={"country": "US", "extra_working_days": ["2026-03-07"]},
    )
    assert plan_of(engine, cfg, period="day") == ("rollup", True)


def test_which_reports_the_roll_up_answers(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    put(engine, sample())
    cfg = make_config(str(engine.url), rollup={"dimensions": ["queue", "channel"]})
    report.rebuild_rollup(engine, cfg, NOW)
    assert plan_of(engine, cfg, by=["channel"], period="month") == ("rollup", False)
    assert plan_of(engine, cfg, filters={"queue": "billing"}) == ("rollup", True)
    both = plan_of(engine, cfg, by=["queue"], filters={"channel": "chat"})
    assert both == ("raw", False)  # a drill-down across two dimensions
    assert plan_of(engine, cfg, by=["priority"]) == ("raw", False)  # not kept, not configured
    elapsed = make_config(
        str(engine.url),
        service_level={"day_mode": "elapsed"},
        rollup={"dimensions": ["queue", "channel"]},
    )
    assert plan_of(engine, elapsed, by=["queue"]) == ("raw", True)
    assert not caplog.records
    wider = make_config(str(engine.url), rollup={"dimensions": ["queue", "priority"]})
    with caplog.at_level(logging.WARNING, logger="slamon.report"):
        assert plan_of(engine, wider, by=["priority"]) == ("raw", False)
        assert plan_of(engine, wider, by=["queue"]) == ("rollup", True)
    assert [r.getMessage() for r in caplog.records] == [
        "the roll-up does not keep the configured dimension priority yet: reports by priority"
        " read raw rows (slower) until you run `slamon db rebuild-rollup`"
    ]


def test_an_empty_database_is_nothing_to_warn_about(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_config(str(engine.url), service_level={"timezone": "Asia/Tokyo"})
    with caplog.at_level(logging.WARNING, logger="slamon.report"):
        assert plan_of(engine, cfg) == ("raw", False)
    assert not caplog.records


def test_complaints_deleted_behind_slamon_s_back_mark_the_roll_up_stale(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    put(engine, sample())
    cfg = make_config(str(engine.url))
    with engine.begin() as conn:
        conn.execute(complaints.delete().where(complaints.c.external_id == "a"))
        meta = rollup.read_meta(conn)
    assert meta is not None and not meta.ready
    assert meta.note == "complaints were deleted outside slamon"
    put(engine, [ComplaintRecord("e", utc(2026, 3, 6, 10), None)])  # kept out while stale
    with caplog.at_level(logging.WARNING, logger="slamon.report"):
        assert plan_of(engine, cfg) == ("raw", False)
    assert "the roll-up is stale (complaints were deleted outside slamon)" in caplog.text
    report.rebuild_rollup(engine, cfg, NOW)
    assert plan_of(engine, cfg, by=["queue"]) == ("rollup", True)


def test_a_renamed_source_marks_the_roll_up_stale(engine: Engine) -> None:
    put(engine, sample())
    with engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.name == "crm").values(name="helpdesk"))
        meta = rollup.read_meta(conn)
        assert meta is not None and meta.state == rollup.STALE
        assert meta.note == "a source was renamed"
    cfg = make_config(str(engine.url))
    report.rebuild_rollup(engine, cfg, NOW)
    assert plan_of(engine, cfg, by=["source"]) == ("rollup", False)


def test_a_batch_that_fails_leaves_the_roll_up_as_it_was(engine: Engine) -> None:
    put(engine, sample())
    with engine.connect() as conn:
        before = rollup.contents(conn)
    bad = ComplaintRecord("z", datetime(2026, 3, 3, 10), None)  # naive: refused
    with pytest.raises(ValueError), write_transaction(engine) as conn:
        apply_batch(conn, "crm", [ComplaintRecord("a", utc(2026, 3, 2, 10), None), bad], NOW)
    with engine.connect() as conn:
        assert rollup.contents(conn) == before


# --- configuration and the command ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[rollup]\ndimensions = ["queue", "team"]\n',
            "x.toml: rollup.dimensions: 'team' is not a segment field (use queue, channel,"
            " category, priority, source)",
        ),
        (
            '[rollup]\ndimensions = ["queue", "queue"]\n',
            "x.toml: rollup.dimensions: dimensions must not repeat",
        ),
        ("[rollup]\nkeep = true\n", "x.toml: rollup.keep: unknown key"),
    ],
)
def test_rollup_section_errors_name_the_key(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(body, "x.toml")
    assert str(err.value) == message


def test_rollup_dimensions_default_to_every_segment_field() -> None:
    dims = parse("", "x.toml").settings.rollup.dimensions
    assert dims == ("queue", "channel", "category", "priority", "source")
    assert parse("[rollup]\ndimensions = []\n", "x.toml").settings.rollup.dimensions == ()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SLAMON_CONFIG", "COLUMNS")}
    return subprocess.run(
        [sys.executable, "-m", "slamon", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_rebuild_rollup(db_url: str, tmp_path: Path) -> None:
    """Built under UTC, then the timezone changes: raw rows (said once) until the rebuild."""
    utc = f'[database]\nurl = "{db_url}"\n[rollup]\ndimensions = ["queue"]\n'
    write_config(tmp_path / "slamon.toml", utc)
    (tmp_path / "export.csv").write_text(
        "id,created_at,closed_at,queue\n"
        "1,2026-03-02T22:30:00Z,2026-03-05T21:00:00Z,billing\n"
        "2,2026-03-02T10:00:00Z,,delivery\n",
        encoding="utf-8",
    )
    assert _cli("db", "upgrade", cwd=tmp_path).returncode == 0
    assert _cli("import", "export.csv", "--source", "crm", cwd=tmp_path).returncode == 0
    write_config(tmp_path / "slamon.toml", utc + '[service_level]\ntimezone = "Europe/Moscow"\n')
    args = ("report", "--as-of", "2026-03-20T00:00:00Z", "--by", "queue", "--format", "json")
    before = _cli(*args, cwd=tmp_path)
    assert before.returncode == 0
    assert before.stderr == (
        "the roll-up was built under timezone UTC (configured: Europe/Moscow): reports read raw"
        " rows (slower) until you run `slamon db rebuild-rollup`\n"
    )
    rebuilt = _cli("db", "rebuild-rollup", cwd=tmp_path)
    assert (rebuilt.returncode, rebuilt.stderr) == (0, "")
    assert rebuilt.stdout.startswith("roll-up rebuilt in ")
    assert rebuilt.stdout.rstrip().endswith(
        "from 2 complaints: 4 day rows, 2 closure rows"
        " (timezone Europe/Moscow, closure final, dimensions queue)"
    )
    after = _cli(*args, cwd=tmp_path)
    assert (after.returncode, after.stderr) == (0, "")
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert json.loads(after.stdout)["rows"][0]["levels"]["3"]["hits"] == 1
    helped = _cli("db", "rebuild-rollup", "--help", cwd=tmp_path)
    assert "service_level.timezone" in helped.stdout


def test_db_upgrade_builds_an_empty_roll_up_for_the_configured_timezone(
    db_url: str, tmp_path: Path
) -> None:
    """A new database is migrated for UTC; while it is empty, `db upgrade` rebuilds the
    roll-up under the configured timezone at once, so the first import keeps one that serves."""
    write_config(
        tmp_path / "slamon.toml",
        f'[database]\nurl = "{db_url}"\n[service_level]\ntimezone = "Asia/Tokyo"\n',
    )
    assert _cli("db", "upgrade", cwd=tmp_path).returncode == 0
    (tmp_path / "export.csv").write_text(
        "id,created_at,closed_at,queue\n1,2026-03-02T22:30:00Z,,billing\n", encoding="utf-8"
    )
    assert _cli("import", "export.csv", "--source", "crm", cwd=tmp_path).returncode == 0
    report = _cli("report", "--as-of", "2026-03-20T00:00:00Z", "--by", "queue", cwd=tmp_path)
    assert (report.returncode, report.stderr) == (0, "")


def test_a_database_with_complaints_is_migrated_to_a_stale_roll_up(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The migration does not know the configured timezone: it marks the roll-up stale rather
    than guess; reports read raw rows and say so until the rebuild."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0002")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO sources (name, kind, created_at) VALUES ('crm', 'x', 0)")
            )
            conn.execute(
                text(
                    "INSERT INTO complaints (source, external_id, created_at, closed_at, status,"
                    " queue, channel, category, priority, subject, url, first_seen_at,"
                    " changed_at) VALUES ('crm', '1', :c, :d, '', 'billing', '', '', '', '', '',"
                    " 0, 0)"
                ),
                {"c": int(UTC_DAY.timestamp()), "d": int(UTC_DAY.timestamp()) + 3600},
            )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            meta = rollup.read_meta(conn)
        assert meta is not None and meta.state == rollup.STALE and meta.timezone is None
        cfg = make_config(db_url)
        with caplog.at_level(logging.WARNING, logger="slamon.report"):
            assert plan_of(engine, cfg) == ("raw", False)
        assert "the roll-up is stale (not built yet" in caplog.text
        put(engine, [ComplaintRecord("2", UTC_DAY, None)])  # a sync while stale: no upkeep
        result = report.rebuild_rollup(engine, cfg, NOW)
        assert result.rewrote_columns and result.complaints == 2
        assert plan_of(engine, cfg, by=["queue"]) == ("rollup", True)
        put(engine, [ComplaintRecord("3", UTC_DAY, UTC_DAY + timedelta(days=1))])
        with engine.connect() as conn, conn.begin() as tx:
            kept = rollup.contents(conn)
            rollup.rebuild(conn, report.rollup_basis(cfg), NOW, rewrite_columns=True)
            assert rollup.contents(conn) == kept
            tx.rollback()
    finally:
        engine.dispose()


def test_rebuild_reports_progress_step_by_step(engine: Engine) -> None:
    put(engine, sample())
    cfg = make_config(
        str(engine.url),
        service_level={"timezone": "Asia/Tokyo", "closure": "first"},
        rollup={"dimensions": ["channel", "queue"]},
    )
    seen: list[tuple[int, int, str]] = []
    result = report.rebuild_rollup(engine, cfg, NOW, lambda *p: seen.append(p))
    assert seen == [
        (0, 4, "complaints: local days and closure times"),
        (1, 4, "grain all complaints"),
        (2, 4, "grain queue"),
        (3, 4, "grain channel"),
        (4, 4, "done"),
    ]
    assert result.basis == rollup.Basis(
        "Asia/Tokyo", Closure.FIRST, ("queue", "channel"), result.basis.excluded_statuses
    )
    with engine.connect() as conn:
        meta = rollup.read_meta(conn)
    assert meta is not None and meta.ready and meta.built_at == NOW
    assert meta.excluded_statuses == ("deleted", "spam", "merged")
    assert meta.closed_hwm == int(utc(2026, 3, 9).timestamp())
