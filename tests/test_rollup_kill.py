"""Killed at random moments (SIGKILL), a sync and an import leave the roll-up equal to a rebuild
from the raw rows they left behind; rerun, they finish with the same equality. SQLite and
PostgreSQL; the moments are random (the seed is printed on failure)."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from helpers import write_config
from slamon import config as config_mod
from slamon import report
from slamon.store import migrate, rollup
from slamon.store.engine import make_engine
from slamon.store.models import sources

TZ = ZoneInfo("America/New_York")
START = datetime(2026, 2, 20, tzinfo=UTC)  # the data crosses the DST change of 2026-03-08
HEADER = ["id", "created_at", "closed_at", "status", "queue", "channel"]
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def rows(rng: random.Random, ids: range, version: int) -> list[list[str]]:
    out = []
    for i in ids:
        created = START + timedelta(seconds=(i * 7919) % (30 * 86400))
        roll = rng.random()
        closed = "" if roll < 0.2 else (created + timedelta(hours=rng.uniform(-2, 300))).isoformat()
        status = "spam" if roll > 0.97 else ("open" if not closed else "closed")
        queue = rng.choice(["billing", "delivery", "returns"]) if version else "billing"
        out.append([str(i), created.isoformat(), closed, status, queue, rng.choice("ab")])
    return out


def write_export(path: Path, data: list[list[str]]) -> None:
    tmp = path.with_suffix(".part")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(data)
    tmp.replace(path)


def assert_equals_rebuild(engine: Engine, basis: rollup.Basis, where: str) -> None:
    with engine.connect() as conn, conn.begin() as tx:
        # The roll-up's write lock first: on PostgreSQL the server may still be committing the
        # killed client's last batch (its COMMIT was sent before the kill); once we hold the
        # lock no batch is in flight, and both reads below see the same committed state.
        meta = rollup.read_meta(conn, lock=True)
        assert meta is not None and meta.ready, where
        kept = rollup.contents(conn)
        rollup.rebuild(conn, basis, NOW)
        assert rollup.contents(conn) == kept, where
        tx.rollback()


def cursor(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        raw = conn.execute(select(sources.c.cursor).where(sources.c.name == "exp")).scalar()
    return json.loads(raw) if raw else None


def slamon(cfg: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "slamon", "--config", str(cfg), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_killed_sync_and_import_leave_the_rollup_equal_to_a_rebuild(
    db_url: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("SLAMON_KILL_SEED", str(random.randrange(10**6))))
    rng = random.Random(seed)
    where = f"(seed {seed}: SLAMON_KILL_SEED={seed} repeats it)"
    export = tmp_path / "export.csv"
    cfg_path = write_config(
        tmp_path / "slamon.toml",
        f'[database]\nurl = "{db_url}"\n'
        '[service_level]\ntimezone = "America/New_York"\n'
        '[rollup]\ndimensions = ["queue", "channel"]\n'
        f'[sources.exp]\nkind = "csv"\npath = "{export}"\npage_size = 25\n'
        'timezone = "America/New_York"\n',
    )
    cfg = config_mod.load(cfg_path)
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        report.rebuild_rollup(engine, cfg, NOW)
        basis = report.rollup_basis(cfg)

        write_export(export, rows(rng, range(800), 0))
        assert slamon(cfg_path, "sync").wait(timeout=120) == 0
        assert_equals_rebuild(engine, basis, f"after the first sync {where}")

        # The second version changes most complaints (closed, reopened, moved, spam) and adds
        # some: a sync of it, killed at random moments, resumes page by page.
        write_export(export, rows(rng, range(200, 2600), 1))
        before = cursor(engine)
        interrupted = 0
        for attempt in range(3):
            proc = slamon(cfg_path, "sync")
            deadline = time.monotonic() + 60
            while proc.poll() is None and cursor(engine) == before:
                assert time.monotonic() < deadline, "the sync made no progress"
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.15))
            proc.kill()
            proc.wait()
            now = cursor(engine)
            interrupted += now is not None and "complete" not in now
            before = now
            assert_equals_rebuild(engine, basis, f"after kill {attempt + 1} {where}")
        assert interrupted, f"no kill landed during the sync {where}"
        assert slamon(cfg_path, "sync").wait(timeout=120) == 0
        assert "complete" in (cursor(engine) or {})
        assert_equals_rebuild(engine, basis, f"after the sync finished {where}")

        # An import is one transaction: killed, it leaves all or nothing; rerun, it lands.
        other = tmp_path / "other.csv"
        write_export(other, rows(rng, range(1000, 3000), 2))
        proc = slamon(cfg_path, "import", str(other), "--source", "other")
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.wait()
        assert_equals_rebuild(engine, basis, f"after the killed import {where}")
        assert slamon(cfg_path, "import", str(other), "--source", "other").wait(timeout=120) == 0
        assert_equals_rebuild(engine, basis, f"after the import {where}")

        # And the report answered from it is the report from raw rows.
        request = report.make_request(
            as_of=NOW, tz=TZ, since=START.date(), until=NOW.date(), period="week", by=["queue"]
        )
        plans: list[tuple[str, bool]] = []
        got = report._run(engine, cfg, request, on_plan=lambda *p: plans.append(p))
        assert plans == [("rollup", True)]
        assert got.as_json() == report._run(engine, cfg, request, use_rollup=False).as_json()
        assert got.total.complaints > 2000
    finally:
        engine.dispose()
