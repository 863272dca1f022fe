"""Loading the generated export straight into the complaints table, for the sizes where the
real `slamon import` would take most of an hour (10 M rows at about 10,000 rows/s).

The rows are exactly what `slamon import` stores: each CSV row is read by slamon's own CSV
reader (slamon.importer.read_csv: instants, naive ones in the configured zone, exclusion by
status), written once to an "epoch" CSV beside the export (cached), and loaded with one
executemany per 50,000 rows (SQLite) or COPY (PostgreSQL), in one transaction. slamon then
rebuilds the roll-up and the complaints' roll-up columns itself (rollup.rebuild, columns
rewritten), as `slamon db rebuild-rollup` after a change of timezone does. What this skips is
only the import's upsert path; its rate is measured at the sizes imported with the CLI.
"""

from __future__ import annotations

import csv
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from slamon import config as config_mod
from slamon import report as report_mod
from slamon.importer import RowError, read_csv
from slamon.store import rollup
from slamon.store.engine import make_engine

COLUMNS = (
    "external_id",
    "created_at",
    "closed_at",
    "first_closed_at",
    "status",
    "queue",
    "channel",
    "category",
    "priority",
    "subject",
    "url",
    "source_updated_at",
    "excluded_reason",
    "source",
    "first_seen_at",
    "changed_at",
)
_INTS = {1, 2, 3, 11, 14, 15}


def _epoch(value: datetime | None) -> str:
    return "" if value is None else str(int(value.timestamp()))


def epoch_csv(export: Path, tz: str, source: str, now: int) -> Path:
    """The export as rows of the complaints table (instants as epoch seconds), written once."""
    out = export.with_suffix(".epoch.csv")
    if out.exists():
        return out
    t0 = time.perf_counter()
    part = out.with_suffix(".part")
    zone = ZoneInfo(tz)
    with (
        export.open(encoding="utf-8-sig", newline="") as f,
        part.open("w", encoding="utf-8", newline="") as o,
    ):
        w = csv.writer(o)
        for line, rec in read_csv(f, zone, str(export)):
            if isinstance(rec, RowError):
                raise SystemExit(rec.describe(str(export)))
            # merge(): the first closure is the closure when the source gives none
            first = rec.first_closed_at or rec.closed_at
            w.writerow(
                (
                    rec.external_id,
                    _epoch(rec.created_at),
                    _epoch(rec.closed_at),
                    _epoch(first),
                    rec.status,
                    rec.queue,
                    rec.channel,
                    rec.category,
                    rec.priority,
                    rec.subject,
                    rec.url,
                    _epoch(rec.source_updated_at),
                    rec.excluded_reason or "",
                    source,
                    now,
                    now,
                )
            )
            if line % 1_000_000 == 0:
                print(f"  epoch CSV: {line:,} rows", file=sys.stderr)
    part.rename(out)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


def _rows(path: Path, chunk: int):  # type: ignore[no-untyped-def]
    with path.open(encoding="utf-8", newline="") as f:
        buf = []
        for row in csv.reader(f):
            buf.append(
                tuple(
                    (int(v) if v else None) if i in _INTS else (v if v or i != 12 else None)
                    for i, v in enumerate(row)
                )
            )
            if len(buf) >= chunk:
                yield buf
                buf = []
        if buf:
            yield buf


def load(config_path: Path, export: Path, source: str) -> tuple[float, float]:
    """Bulk-load ``export`` into the (migrated, empty) database of ``config_path`` and rebuild
    the roll-up with slamon (its rl columns rewritten, as after a change of timezone); returns
    the seconds of the load and of the rebuild (the epoch CSV, if written, excluded)."""
    cfg = config_mod.load(config_path)
    tz = cfg.settings.service_level.timezone
    now = int(datetime.now(UTC).timestamp())
    rows_csv = epoch_csv(export, tz, source, now)
    t0 = time.perf_counter()
    url = cfg.database_url
    names = ", ".join(COLUMNS)
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT OR IGNORE INTO sources (name, kind, created_at) VALUES (?, 'import', ?)",
            (source, now),
        )
        marks = ", ".join("?" for _ in COLUMNS)
        for batch in _rows(rows_csv, 50_000):
            db.executemany(f"INSERT INTO complaints ({names}) VALUES ({marks})", batch)
        db.execute("COMMIT")
        db.close()
    else:
        pg_url = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(pg_url) as pg:
            pg.execute(
                "INSERT INTO sources (name, kind, created_at) VALUES (%s, 'import', %s)"
                " ON CONFLICT DO NOTHING",
                (source, now),
            )
            texts = "status, queue, channel, category, priority, subject, url"
            options = f"WITH (FORMAT csv, FORCE_NOT_NULL ({texts}))"
            with (
                pg.cursor() as cur,
                cur.copy(f"COPY complaints ({names}) FROM STDIN {options}") as copy,
                rows_csv.open("rb") as f,
            ):
                while block := f.read(1 << 20):
                    copy.write(block)
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine = make_engine(url)
    try:
        basis = report_mod.rollup_basis(cfg)
        with engine.begin() as conn:
            rollup.rebuild(conn, basis, datetime.now(UTC), rewrite_columns=True)
        rollup.vacuum(engine, complaints_too=True)
    finally:
        engine.dispose()
    return loaded, time.perf_counter() - t0
