"""Against a real Redmine (skipped unless one is named): sync a few thousand complaints, change
them through Redmine's own API, sync again, and check `slamon report` against an independent
computation over Redmine's database.

    SLAMON_TEST_REDMINE_URL=http://127.0.0.1:3000 SLAMON_TEST_REDMINE_KEY=<admin API key>
    SLAMON_TEST_REDMINE_DB=<Redmine's SQLite file>  [SLAMON_TEST_REDMINE_ISSUES=2000]

Redmine cannot take a creation time through its API, so history is back-dated in its database
(as its harness documents); every later change goes through the API.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import oracle

URL = os.environ.get("SLAMON_TEST_REDMINE_URL")
KEY = os.environ.get("SLAMON_TEST_REDMINE_KEY")
DB = os.environ.get("SLAMON_TEST_REDMINE_DB")
N = int(os.environ.get("SLAMON_TEST_REDMINE_ISSUES", "2000"))

pytestmark = pytest.mark.skipif(
    not (URL and KEY and DB), reason="set SLAMON_TEST_REDMINE_URL, _KEY and _DB to a real Redmine"
)
PRIORITIES = {1: "Low", 2: "Normal", 3: "High", 4: "Urgent"}
TZ = "Europe/Moscow"


def _ts(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC, microsecond=0)


def redmine_truth(project_id: int) -> list[oracle.Case]:
    """Complaints as Redmine's own tables have them: closed only while the status is closed."""
    with sqlite3.connect(DB) as conn:
        rows = conn.execute(
            "SELECT i.created_on, i.closed_on, s.is_closed, p.name FROM issues i"
            " JOIN issue_statuses s ON s.id = i.status_id"
            " JOIN enumerations p ON p.id = i.priority_id WHERE i.project_id = ?",
            (project_id,),
        ).fetchall()
    return [
        oracle.Case(
            created_at=_ts(created),
            closed_at=_ts(closed) if is_closed else None,
            first_closed_at=_ts(closed) if is_closed else None,
            queue=priority,
        )
        for created, closed, is_closed, priority in rows
    ]


def compare(report: dict, cases: list[oracle.Case], as_of: datetime, since: date) -> None:
    rules = oracle.Rules(TZ, "calendar", "final", (3, 5, 10), {3: 0.7, 5: 0.8, 10: 0.9})
    want = oracle.report(
        cases, rules, as_of=as_of, since=since, until=as_of.date(), period="week", by_queue=True
    )
    want_total = want.pop(("total", None))
    got = {(r["period"], r["segment"]["queue"]): r for r in report["rows"]}
    assert set(got) == set(want)
    for key, row in want.items():
        for field in ("complaints", "excluded", "open"):
            assert got[key][field] == row[field], (key, field)
        for n, level in row["levels"].items():
            for field in ("hits", "misses", "pending"):
                assert got[key]["levels"][n][field] == level[field], (key, n, field)
        if row["mean_days"] is not None:
            assert got[key]["mean_days"] == pytest.approx(row["mean_days"])
            assert got[key]["p90_days"] == pytest.approx(row["p90_days"])
    assert report["total"]["complaints"] == want_total["complaints"]


@pytest.mark.timeout(3600)
def test_sync_from_a_real_redmine(tmp_path: Path) -> None:
    api = httpx.Client(base_url=URL, headers={"X-Redmine-API-Key": KEY}, timeout=60)
    ident = f"cc-{uuid.uuid4().hex[:8]}"
    project = api.post("/projects.json", json={"project": {"name": ident, "identifier": ident}})
    assert project.status_code == 201, project.text
    project_id = project.json()["project"]["id"]
    rng = random.Random(11)
    priorities = [rng.choice(list(PRIORITIES)) for _ in range(N)]

    def create(i: int) -> int:
        made = api.post(
            "/issues.json",
            json={
                "issue": {
                    "project_id": project_id,
                    "tracker_id": 3,
                    "subject": f"Жалоба {i}",
                    "priority_id": priorities[i],
                }
            },
        )
        assert made.status_code == 201, made.text
        return int(made.json()["issue"]["id"])

    ids = [create(i) for i in range(N)]  # one at a time: Redmine on SQLite locks under load
    # Back-date the history: created over the last 60 days, 85 % closed after a long-tailed delay.
    now = datetime.now(UTC).replace(microsecond=0)
    with sqlite3.connect(DB) as conn:
        for issue_id in ids:
            created = now - timedelta(days=60) + timedelta(seconds=rng.randint(0, 59 * 86400))
            closed = created + timedelta(hours=rng.lognormvariate(3.5, 1.0))
            if rng.random() < 0.85 and closed < now - timedelta(hours=1):
                conn.execute(
                    "UPDATE issues SET created_on = ?, closed_on = ?, updated_on = ?, status_id = 5"
                    " WHERE id = ?",
                    (
                        created.replace(tzinfo=None),
                        closed.replace(tzinfo=None),
                        closed.replace(tzinfo=None),
                        issue_id,
                    ),
                )
            else:
                conn.execute(
                    "UPDATE issues SET created_on = ?, updated_on = ? WHERE id = ?",
                    (created.replace(tzinfo=None), created.replace(tzinfo=None), issue_id),
                )
    conf = tmp_path / "slamon.toml"
    conf.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
        f'[service_level]\ntimezone = "{TZ}"\n'
        f'[sources.rm]\nkind = "redmine"\nurl = "{URL}"\napi_key_env = "RM_KEY"\n'
        f'rate_limit = 6000\n[sources.rm.filter]\nproject_id = "{ident}"\n'
        '[sources.rm.map]\nqueue = "priority"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "RM_KEY": KEY}
    base = [sys.executable, "-m", "slamon", "--config", str(conf)]

    def run(*args: str) -> str:
        proc = subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    run("db", "upgrade")
    started = time.monotonic()
    print(run("sync"), f"first sync of {N} issues: {time.monotonic() - started:.1f} s")
    since = (now - timedelta(days=61)).date()

    def report_now() -> tuple[dict, datetime]:
        as_of = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        out = run(
            "report",
            "--since",
            since.isoformat(),
            "--as-of",
            as_of.isoformat(),
            "--period",
            "week",
            "--by",
            "queue",
            "--format",
            "json",
        )
        return json.loads(out), as_of

    report, as_of = report_now()
    compare(report, redmine_truth(project_id), as_of, since)

    # Through Redmine's API: close some open ones, reopen some closed ones, add new ones.
    with sqlite3.connect(DB) as conn:
        open_ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM issues WHERE project_id = ? AND status_id = 1", (project_id,)
            )
        ]
        closed_ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM issues WHERE project_id = ? AND status_id = 5", (project_id,)
            )
        ]
    for issue_id in rng.sample(open_ids, min(40, len(open_ids))):
        assert (
            api.put(f"/issues/{issue_id}.json", json={"issue": {"status_id": 5}}).status_code == 204
        )
    for issue_id in rng.sample(closed_ids, 30):
        assert (
            api.put(f"/issues/{issue_id}.json", json={"issue": {"status_id": 2}}).status_code == 204
        )
    for i in range(25):
        assert (
            api.post(
                "/issues.json",
                json={"issue": {"project_id": project_id, "tracker_id": 3, "subject": f"New {i}"}},
            ).status_code
            == 201
        )
    print(run("sync"))
    report, as_of = report_now()
    compare(report, redmine_truth(project_id), as_of, since)
    assert report["total"]["complaints"] == N + 25
