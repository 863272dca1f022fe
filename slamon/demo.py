"""`slamon demo`: a deterministic synthetic contact center, imported through the same path a user's
export takes, and the report a head of customer service would want to see first.

The data is generated relative to the demo's "now" with a fixed seed, so the same as_of always
gives the same complaints: six months of complaints in five queues, closure times with a long
tail (the mean looks fine while the 3-day level misses its target), a queue that slipped in the
last weeks, and some complaints left open past their deadlines.
"""

from __future__ import annotations

import csv
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from slamon import digest, importer
from slamon import report as report_mod
from slamon.config import Config, parse
from slamon.store import migrate
from slamon.store.engine import make_engine

TIMEZONE = "Europe/Moscow"
DAYS = 182
PER_DAY = 110
SEED = 20261123

QUEUES = (
    # name, share of complaints, closure-time scale
    ("billing", 0.30, 1.0),
    ("delivery", 0.25, 1.0),
    ("returns", 0.20, 0.8),
    ("technical", 0.20, 1.3),
    ("vip", 0.05, 0.5),
)
SLIPPING_QUEUE = "delivery"
SLIP_DAYS = 21
CHANNELS = (("phone", 0.35), ("email", 0.30), ("chat", 0.20), ("web", 0.10), ("social", 0.05))
CATEGORIES = ("refund", "late delivery", "damaged goods", "rude staff", "wrong charge", "app error")
PRIORITIES = (("normal", 0.7), ("high", 0.2), ("urgent", 0.05), ("low", 0.05))
SUBJECTS = (
    "Возврат денег не поступил",
    "Курьер не приехал",
    "Refund not received",
    "Charged twice for one order",
    "Товар пришёл повреждённым",
    "Не могу войти в приложение",
    "Грубый оператор на линии",
)

CONFIG_TEMPLATE = """\
[database]
url = "sqlite:///{db}"

[service_level]
thresholds = [3, 5, 10]
targets = {{ "3" = 0.70, "5" = 0.80, "10" = 0.90 }}
day_mode = "calendar"
timezone = "{tz}"
closure = "final"

[calendar]
country = "RU"

# A weekly summary for the head of customer service (see `slamon digest preview`).
[digests.weekly]
schedule = "0 8 * * mon"
locale = "en"
recipients = ["head-of-service@example.com"]
by = ["queue"]
period = "week"

# The manager of the delivery queue sees delivery only, in Russian.
[digests.delivery-ru]
schedule = "0 8 * * mon"
locale = "ru"
recipients = ["delivery-lead@example.com"]
scope = {{ queue = "delivery" }}
by = ["channel"]
"""


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


def _closure_days(rng: random.Random) -> float:
    """Closure time in days: most close fast, a long tail does not (the mean hides it)."""
    u = rng.random()
    if u < 0.60:
        return rng.uniform(0.05, 2.0)
    if u < 0.83:
        return rng.uniform(2.0, 5.0)
    if u < 0.95:
        return rng.uniform(5.0, 10.0)
    return rng.uniform(10.0, 28.0)


def generate(as_of: datetime, tz: ZoneInfo) -> Iterator[dict[str, str]]:
    """The demo's complaints as export rows (ISO 8601 with offsets), oldest first."""
    rng = random.Random(SEED)
    today = as_of.astimezone(tz).date()
    first = today - timedelta(days=DAYS - 1)
    number = 100000
    queues = tuple((q[0], q[1]) for q in QUEUES)
    scale = {q[0]: q[2] for q in QUEUES}
    for offset in range(DAYS):
        day = first + timedelta(days=offset)
        weekend = day.weekday() >= 5
        count = int(PER_DAY * (0.6 if weekend else 1.1) * rng.uniform(0.85, 1.15))
        for _ in range(count):
            number += 1
            local = datetime.combine(day, time(8), tzinfo=tz) + timedelta(
                seconds=rng.randint(0, 14 * 3600)
            )
            created = local.astimezone(UTC)
            if created > as_of:
                continue
            queue = _pick(rng, queues)
            days = _closure_days(rng) * scale[queue]
            if queue == SLIPPING_QUEUE and (today - day).days < SLIP_DAYS:
                days *= 2.6
            closed: datetime | None = created + timedelta(days=days)
            if rng.random() < 0.02:
                closed = None  # forgotten: open and overdue
            if closed is not None and closed > as_of:
                closed = None
            yield {
                "id": str(number),
                "created_at": created.isoformat(),
                "closed_at": closed.isoformat() if closed else "",
                "status": "closed" if closed else "open",
                "queue": queue,
                "channel": _pick(rng, CHANNELS),
                "category": rng.choice(CATEGORIES),
                "priority": _pick(rng, PRIORITIES),
                "subject": rng.choice(SUBJECTS),
                "url": f"https://helpdesk.example/tickets/{number}",
            }


@dataclass(frozen=True, slots=True)
class DemoRun:
    config: Config
    imported: int
    overall: report_mod.Report
    by_queue: report_mod.Report
    findings: list[str]
    next_steps: str
    #: The HTML preview of the demo's weekly digest, and its subject.
    digest_path: Path
    digest_subject: str


NEXT_STEPS = """\
What next:
  1. Write slamon.toml (every key is documented in config.example.toml): the database
     (SQLite file or PostgreSQL URL), thresholds and targets, timezone, day mode, holidays.
  2. slamon db upgrade
  3. slamon import export.csv --source crm     (CSV or JSONL export of your ticket system)
  4. slamon report --period week --by queue     (--format json or csv for your own tools)
Explore this demo: slamon --config {config} report --period week --by queue
The weekly digest managers would get by mail: {digest} (open it in a browser).
The delivery queue's, in Russian:
  slamon --config {config} digest preview delivery-ru --out digest-ru.html
"""


def build(db_path: Path, *, as_of: datetime) -> DemoRun:
    """Create (or replace) the demo database, import the synthetic export, report, and write
    the preview of the weekly digest beside the database (slamon-demo-digest.html)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    config_path = db_path.with_suffix(".toml")
    text = CONFIG_TEMPLATE.format(db=db_path.resolve().as_posix(), tz=TIMEZONE)
    config_path.write_text(text, encoding="utf-8")
    cfg = parse(text, str(config_path), config_path)
    tz = cfg.settings.service_level.zone
    engine = make_engine(cfg.database_url)
    try:
        migrate.upgrade(engine)
        report_mod.adopt_rollup(engine, cfg, as_of)
        with tempfile.TemporaryDirectory(prefix="slamon-demo-") as tmp:
            export = Path(tmp) / "demo-export.csv"
            with export.open("w", encoding="utf-8", newline="") as fh:
                writer: csv.DictWriter[str] | None = None
                for row in generate(as_of, tz):
                    if writer is None:
                        writer = csv.DictWriter(fh, fieldnames=list(row))
                        writer.writeheader()
                    writer.writerow(row)
            result = importer.import_file(
                engine, export, source="demo-crm", tz=tz, now=as_of, fmt="csv"
            )
        today = as_of.astimezone(tz).date()
        overall = report_mod.run(
            engine,
            cfg,
            report_mod.make_request(
                as_of=as_of, tz=tz, since=today - timedelta(weeks=12), period="week"
            ),
        )
        by_queue = report_mod.run(
            engine, cfg, report_mod.make_request(as_of=as_of, tz=tz, by=["queue"])
        )
        before = report_mod.run(
            engine,
            cfg,
            report_mod.make_request(
                as_of=as_of,
                tz=tz,
                until=today - timedelta(days=report_mod.DEFAULT_DAYS),
                by=["queue"],
            ),
        )
        weekly = digest.render(digest.build_context(engine, cfg, "weekly", as_of))
        digest_path = db_path.with_name(f"{db_path.stem}-digest.html")
        digest_path.write_text(weekly.html, encoding="utf-8")
    finally:
        engine.dispose()
    return DemoRun(
        config=cfg,
        imported=result.counts.new,
        overall=overall,
        by_queue=by_queue,
        findings=findings(overall, by_queue, before),
        next_steps=NEXT_STEPS.format(config=config_path, digest=digest_path),
        digest_path=digest_path,
        digest_subject=weekly.subject,
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def findings(
    overall: report_mod.Report, by_queue: report_mod.Report, before: report_mod.Report
) -> list[str]:
    """What a manager should take from the demo report, in plain sentences."""
    lines = []
    total = overall.total
    first = total.levels[0]
    if total.mean_days is not None:
        lines.append(
            f"The mean closure time is {total.mean_days:.1f} days, which sounds fine; but only"
            f" {_pct(first.share)} of complaints closed within {first.threshold} days"
            f" (target {_pct(first.target)}), and the slowest 10 % took more than"
            f" {total.p90_days or 0:.1f} days."
        )
    previous = {r.segment["queue"]: r for r in before.rows}
    for row in by_queue.rows:
        old = previous.get(row.segment["queue"])
        now_share = row.levels[0].share
        old_share = old.levels[0].share if old else None
        if now_share is not None and old_share is not None and old_share - now_share >= 0.10:
            lines.append(
                f"Queue {row.segment['queue']!r} slipped: {_pct(now_share)} closed within"
                f" {row.levels[0].threshold} days over the last {report_mod.DEFAULT_DAYS} days,"
                f" against {_pct(old_share)} the {report_mod.DEFAULT_DAYS} days before."
            )
    last = by_queue.total.levels[-1]
    lines.append(
        f"{last.misses} complaints of the last {report_mod.DEFAULT_DAYS} days missed the"
        f" {last.threshold}-day deadline; {by_queue.total.open} are still open."
    )
    return lines
