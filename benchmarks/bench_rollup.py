"""The maintained roll-up beside raw rows and DuckDB, on the same data in one run.

Data: the generated export (benchmarks/generate.py), imported with the real CLI into an SQLite
file and a PostgreSQL database of this script's own (reused by the next run when they hold the
rows: the committed batch of step 4 changes complaints but adds none to the import's source).
Config: timezone Europe/Moscow, thresholds 3/5/10, RU public holidays (working mode); the
report: `--period week --by queue` over the two years of data, as_of = the data's end.

Per engine:
1. the roll-up rebuilt under the config, timed twice: as after a change of timezone (the
   complaints' rl columns rewritten too, then VACUUM on PostgreSQL) and as after a change of
   dimensions (`slamon db rebuild-rollup` in-process, tables only); its rows, its size on disk
   (PostgreSQL: after VACUUM FULL, without the rebuilds' dead rows), and the size of the two
   indexes median and p90 read. (The import before it keeps the roll-up as it goes: the empty
   roll-up is rebuilt under the config first, as a user with another timezone than UTC does.)
2. interleaved rounds (medians), calendar and working modes: slamon's report answered from the
   roll-up, and from raw rows (report._run(use_rollup=False)), each with its counting and its
   median/p90 statements timed apart; DuckDB over the same rows in memory (loaded untimed), the
   same counts, and the counts with exact median/p90 (quantile_cont);
3. sync batches of ``--batch`` complaints, 90 % changed versions of complaints created in the
   last 90 days (closed or re-closed later, reopened, moved to another queue, another channel
   and priority, marked spam, edited and moved), 10 % new ones (under another source); no
   closure later than as_of, so that reports after them still need no raw correction:
   apply_batch with the roll-up's upkeep (all five dimensions; and keeping the queue only), and
   the same batch with the roll-up switched off (its meta row marked stale in the
   transaction), each rolled back; the difference is the roll-up's cost per batch;
4. one batch committed, then the maintained roll-up compared with a rebuild, row for row.
Every report from the roll-up is compared with the report from raw rows (field by field), and
DuckDB's figures with slamon's; a mismatch is printed loudly and the exit code is 1.

Goals (issue #10, at 10 M): the week x queue report (levels, counts, mean) in at most 0.2x
DuckDB's time; with exact median and p90, at most DuckDB's time; upkeep under 0.5 s per batch
of 10,000 changed complaints.

Usage: python benchmarks/bench_rollup.py [--rows 1000000] [--db sqlite|postgresql|both]
       python benchmarks/bench_rollup.py --ten-million      (opt-in: hours of import)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_report
import duckdb
from _common import (
    DATA_DIR,
    DEFAULT_PG_URL,
    ensure_csv,
    load_average,
    median,
    pg_admin_connect,
    pg_drop,
    print_table,
    slamon_version,
)
from bench_report import (
    THRESHOLDS,
    EngineSetup,
    Params,
    _filter_agg,
    _offset_sql,
    compare,
    from_counts_rows,
    from_report,
    kept_database,
    load_duckdb,
    make_params,
    week_by_queue,
)
from generate import DEFAULT_SEED
from sqlalchemy import Engine, select, text, update

from slamon import config as config_mod
from slamon import report as report_mod
from slamon.domain import ComplaintRecord
from slamon.servicelevel.deadlines import deadline_day
from slamon.store import levels, rollup, rollup_levels
from slamon.store.complaints import apply_batch, ensure_source, stored_versions
from slamon.store.engine import make_engine, write_transaction
from slamon.store.models import complaints, rollup_meta

SOURCE = "bench"
NEW_SOURCE = "bench-sync"
DAY = 86400
MODES = ("calendar", "working")
BUILD_NOW = datetime(2026, 11, 21, tzinfo=UTC)
QUEUES = tuple(f"q{i:02d}" for i in range(1, 21))


# --- configuration and timing ------------------------------------------------------------------


def config_for(url: str, tz: str, mode: str) -> config_mod.Config:
    body = (
        f'[database]\nurl = "{url}"\n'
        f'[service_level]\nthresholds = [3, 5, 10]\nday_mode = "{mode}"\ntimezone = "{tz}"\n'
        'closure = "final"\n[calendar]\ncountry = "RU"\n'
    )
    return config_mod.parse(body, f"bench-{mode}")


class Spent:
    """Wall time of the statements report.run sends, by the store function that sends them."""

    TARGETS: tuple[tuple[Any, str], ...] = (
        (levels, "count_groups"),
        (levels, "closure_ranks"),
        (rollup_levels, "count_groups"),
        (rollup_levels, "closure_ranks"),
    )

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> Spent:
        for module, name in self.TARGETS:
            fn = getattr(module, name)
            self._saved.append((module, name, fn))
            label = "ranks" if name == "closure_ranks" else "counts"
            setattr(module, name, self._timed(label, fn))
        return self

    def _timed(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0

        return wrapper

    def __exit__(self, *exc: object) -> None:
        for module, name, fn in self._saved:
            setattr(module, name, fn)


def timed_report(
    engine: Engine, cfg: config_mod.Config, request: Any, *, use_rollup: bool
) -> tuple[dict[str, Any], dict[str, float], tuple[str, bool]]:
    plans: list[tuple[str, bool]] = []
    with Spent() as spent:
        t0 = time.perf_counter()
        rep = report_mod._run(
            engine, cfg, request, use_rollup=use_rollup, on_plan=lambda *p: plans.append(p)
        )
        spent.seconds["total"] = time.perf_counter() - t0
    return json.loads(json.dumps(rep.as_json())), spent.seconds, plans[0]


# --- DuckDB, calendar and working modes ---------------------------------------------------------


def deadline_days(p: Params, cfg: config_mod.Config) -> list[tuple[int, ...]]:
    """(local day, deadline day per threshold) for every creation day of the range."""
    calendar = cfg.settings.calendar.work_calendar()
    mode = cfg.settings.service_level.day_mode
    out = []
    day = p.since
    while day <= p.until:
        deadlines = (rollup.day_number(deadline_day(day, n, mode, calendar)) for n in THRESHOLDS)
        out.append((rollup.day_number(day), *deadlines))
        day += timedelta(days=1)
    return out


def duckdb_sql(p: Params, *, quantiles: bool) -> str:
    """The report's counts per ISO week x queue over raw rows, joined to the deadline days
    (table dl): matured when the deadline day is before as_of's day, a hit when the local
    closing day is on or before it."""

    def local_day(col: str) -> str:
        return f"(({col} + {_offset_sql(col, p)}) // {DAY})"

    rows = (
        "SELECT queue, created_at, closed_at,"
        f" {local_day('created_at')} AS d, {local_day('closed_at')} AS c,"
        " (excluded_reason IS NULL AND (closed_at IS NULL OR closed_at >= created_at)) AS inc"
        f" FROM complaints WHERE created_at >= {p.start} AND created_at < {p.stop}"
    )
    closed = f"inc AND closed_at <= {p.as_of}"
    cols = [
        "count(*)",
        _filter_agg("1", "inc"),
        _filter_agg("1", closed),
        _filter_agg("closed_at - created_at", closed),
    ]
    for i in range(len(THRESHOLDS)):
        matured = f"inc AND dl.dl{i} < {p.ad}"
        cols += [_filter_agg("1", matured), _filter_agg("1", f"{matured} AND c <= dl.dl{i}")]
    extra, group = "", "GROUP BY w, queue"
    if quantiles:
        extra = f", quantile_cont(closed_at - created_at, [0.5, 0.9]) FILTER (WHERE {closed}) AS q"
        group = "GROUP BY GROUPING SETS ((w, queue), ())"
    return (
        f"SELECT (r.d + 3) // 7 AS w, queue, {', '.join(cols)}{extra}"
        f" FROM ({rows}) r JOIN dl ON dl.d = r.d {group}"
    )


def duckdb_run(
    con: duckdb.DuckDBPyConnection, p: Params, dls: list[tuple[int, ...]], quantiles: bool
) -> tuple[list[Any], float]:
    con.execute("CREATE OR REPLACE TEMP TABLE dl (d INTEGER, dl0 INT, dl1 INT, dl2 INT)")
    con.executemany("INSERT INTO dl VALUES (?, ?, ?, ?)", dls)
    t0 = time.perf_counter()
    rows = con.execute(duckdb_sql(p, quantiles=quantiles)).fetchall()
    return rows, time.perf_counter() - t0


# --- sizes -----------------------------------------------------------------------------------


def size_mb(engine: Engine, names: tuple[str, ...]) -> float:
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            listed = ", ".join(f"'{n}'" for n in names)
            query = f"SELECT sum(pgsize) FROM dbstat WHERE name IN ({listed})"
        else:
            query = "SELECT " + " + ".join(f"pg_total_relation_size('{n}')" for n in names)
        return float(conn.execute(text(query)).scalar_one() or 0) / 1e6


# --- sync batches ----------------------------------------------------------------------------

Batch = tuple[list[ComplaintRecord], list[ComplaintRecord]]  # (changed, new)


def changed_batch(engine: Engine, rng: random.Random, size: int, end: int) -> Batch:
    """``size`` records: 90 % changed versions of complaints created in the last 90 days before
    ``end``, 10 % new complaints; no closure after ``end``."""
    last = datetime.fromtimestamp(end - 1, UTC)
    with engine.connect() as conn:
        query = select(complaints.c.external_id).where(
            complaints.c.source == SOURCE, complaints.c.created_at >= end - 90 * DAY
        )
        ids = [r[0] for r in conn.execute(query)]
        picked = rng.sample(ids, min(len(ids), size - size // 10))
        stored = stored_versions(conn, SOURCE, picked)
    changed = []
    for rec in stored.values():
        roll = rng.random()
        if roll < 0.3:
            base = rec.closed_at or rec.created_at
            closed = min(base + timedelta(hours=rng.uniform(1, 200)), last)
            new = replace(rec, closed_at=closed, excluded_reason=None)
        elif roll < 0.5:
            new = replace(rec, closed_at=None)
        elif roll < 0.7:
            new = replace(rec, queue=rng.choice(QUEUES))
        elif roll < 0.8:
            new = replace(rec, channel=rng.choice(["chat", "email"]), priority="high")
        elif roll < 0.9:
            new = replace(rec, excluded_reason="spam", status="spam")
        else:
            new = replace(rec, subject=rec.subject + " (edited)", queue=rng.choice(QUEUES))
        changed.append(replace(new, source_updated_at=None))
    start = datetime.fromtimestamp(end - 30 * DAY, UTC)
    fresh = []
    for i in range(size - len(changed)):
        created = start + timedelta(seconds=rng.randrange(29 * DAY))
        closed = min(created + timedelta(hours=rng.uniform(1, 100)), last)
        fresh.append(
            ComplaintRecord(
                external_id=f"N{rng.randrange(10**12)}-{i}",
                created_at=created,
                closed_at=closed if i % 3 else None,
                queue=rng.choice(QUEUES),
                channel="phone",
                category="cat-01",
                priority="normal",
            )
        )
    return changed, fresh


def _apply(conn: Any, batch: Batch) -> None:
    ensure_source(conn, NEW_SOURCE, "bench", BUILD_NOW)
    apply_batch(conn, SOURCE, batch[0], BUILD_NOW)
    apply_batch(conn, NEW_SOURCE, batch[1], BUILD_NOW)


def time_batch(
    engine: Engine, batch: Batch, *, with_rollup: bool, dimensions: str | None = None
) -> dict[str, float]:
    """apply_batch of ``batch`` in a transaction that is rolled back; with_rollup False marks
    the roll-up stale first (in the same transaction), so that only the raw upsert runs;
    ``dimensions`` (comma-separated) has the roll-up keep only those (in the same way)."""
    flush = rollup.Upkeep.flush
    spent: dict[str, float] = {"flush": 0.0}

    def timed_flush(self: rollup.Upkeep, conn: Any) -> None:
        t0 = time.perf_counter()
        flush(self, conn)
        spent["flush"] += time.perf_counter() - t0

    rollup.Upkeep.flush = timed_flush  # type: ignore[method-assign]
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin() as tx:
                if not with_rollup:
                    conn.execute(update(rollup_meta).values(state="stale"))
                if dimensions is not None:
                    conn.execute(update(rollup_meta).values(dimensions=dimensions))
                t0 = time.perf_counter()
                _apply(conn, batch)
                spent["total"] = time.perf_counter() - t0
                tx.rollback()
    finally:
        rollup.Upkeep.flush = flush  # type: ignore[method-assign]
    return spent


def commit_and_check(engine: Engine, cfg: config_mod.Config, batch: Batch) -> tuple[float, bool]:
    """One batch committed (the changes only: the import's source keeps its count), then the
    maintained roll-up compared with a rebuild (rolled back)."""
    t0 = time.perf_counter()
    with write_transaction(engine) as conn:
        apply_batch(conn, SOURCE, batch[0], BUILD_NOW)
    committed = time.perf_counter() - t0
    with engine.connect() as conn, conn.begin() as tx:
        kept = rollup.contents(conn)
        rollup.rebuild(conn, report_mod.rollup_basis(cfg), BUILD_NOW)
        same = rollup.contents(conn) == kept
        tx.rollback()
    return committed, same


# --- the run ---------------------------------------------------------------------------------


def measure_build(
    engine: Engine, cfg: config_mod.Config, *, with_columns: float | None = None
) -> dict[str, Any]:
    """The roll-up rebuilt under ``cfg``, timed twice: as after a change of timezone (the
    complaints' rl columns rewritten too, then VACUUM) and as after a change of dimensions
    (tables only); its rows and sizes (PostgreSQL: after VACUUM FULL). ``with_columns``: the
    seconds of such a rebuild already done (benchmarks/bulk.py), not done again."""
    seconds = with_columns
    if seconds is None:
        t0 = time.perf_counter()
        with write_transaction(engine) as conn:
            basis = report_mod.rollup_basis(cfg)
            rollup.rebuild(conn, basis, BUILD_NOW, rewrite_columns=True)
        rollup.vacuum(engine, complaints_too=True)
        seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    built = report_mod.rebuild_rollup(engine, cfg, BUILD_NOW)
    tables_only = time.perf_counter() - t0
    if engine.dialect.name == "postgresql":  # the size without the rebuilds' dead rows
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM FULL rollup_days")
            conn.exec_driver_sql("VACUUM FULL rollup_closures")
    return {
        "build": seconds,
        "tables_only": tables_only,
        "rows": (built.day_rows, built.closure_rows),
        "mb": size_mb(engine, ("rollup_days", "rollup_closures")),
        "ix_mb": size_mb(engine, ("ix_complaints_rl_queue", "ix_complaints_rl_dur")),
        "raw_mb": size_mb(engine, ("complaints",)),
    }


def report_round(
    rnd: int,
    setups: list[EngineSetup],
    cfgs: dict[tuple[str, str], config_mod.Config],
    opened: dict[str, Engine],
    request: Any,
    con: duckdb.DuckDBPyConnection,
    p: Params,
    dls: dict[str, list[tuple[int, ...]]],
    times: dict[tuple[str, str, str], list[float]],
) -> list[str]:
    """One interleaved round, both modes: the report from the roll-up and from raw rows on each
    engine, then DuckDB (counts, and counts + median/p90); times appended to ``times`` under
    (engine, mode, "rollup total" | "rollup counts" | ... | "raw ranks") and ("duckdb", mode,
    "counts" | "counts + median/p90"). Round 1 also compares the answers; returns problems."""
    problems: list[str] = []
    for mode in MODES:
        want: dict[str, Any] | None = None
        for s in setups:
            cfg, engine = cfgs[s.name, mode], opened[s.name]
            got, spent, plan = timed_report(engine, cfg, request, use_rollup=True)
            raw, raw_spent, raw_plan = timed_report(engine, cfg, request, use_rollup=False)
            for key, value in spent.items():
                times[s.name, mode, f"rollup {key}"].append(value)
            for key, value in raw_spent.items():
                times[s.name, mode, f"raw {key}"].append(value)
            if rnd > 1:
                continue
            if plan != ("rollup", True) or raw_plan != ("raw", False):
                problems.append(f"{s.name} {mode}: paths {plan} / {raw_plan}")
            if got["rows"] != raw["rows"] or got["total"] != raw["total"]:
                problems.append(f"{s.name} {mode}: roll-up report != raw report")
            want = want or got
            problems += compare(
                f"{s.name} {mode}", from_report(got), from_report(want), quantiles=True
            )
        rows, secs = duckdb_run(con, p, dls[mode], False)
        times["duckdb", mode, "counts"].append(secs)
        rows_q, secs_q = duckdb_run(con, p, dls[mode], True)
        times["duckdb", mode, "counts + median/p90"].append(secs_q)
        if want is not None:
            expected = from_report(want)
            got_d = from_counts_rows(iter(rows))
            got_q = from_counts_rows(iter(rows_q))
            problems += compare(f"DuckDB {mode}", got_d, expected, quantiles=False)
            problems += compare(f"DuckDB+q {mode}", got_q, expected, quantiles=True)
    return problems


def measure_batches(
    engine: Engine,
    cfg: config_mod.Config,
    p: Params,
    *,
    size: int,
    batches: int,
    seed: int,
    check: bool,
    queue_only: bool,
    label: str,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """``batches`` sync batches of ``size`` complaints, each applied with the roll-up (all
    dimensions; and the queue only when ``queue_only``) and without it, rolled back; then, when
    ``check``, one committed and the roll-up compared with a rebuild. Returns the times by label
    and the facts ("committed" seconds, "check": "equal" | "DIFFERENT")."""
    times: dict[str, list[float]] = defaultdict(list)
    facts: dict[str, Any] = {}
    rng = random.Random(seed)  # the same batches on every engine: the same data after
    for i in range(batches):
        batch = changed_batch(engine, rng, size, p.as_of)
        with_rl = time_batch(engine, batch, with_rollup=True)
        without = time_batch(engine, batch, with_rollup=False)
        times["batch with roll-up"].append(with_rl["total"])
        times["batch without roll-up"].append(without["total"])
        times["roll-up's own share"].append(with_rl["total"] - without["total"])
        times["  of which its writes (flush)"].append(with_rl["flush"])
        if queue_only:
            queue = time_batch(engine, batch, with_rollup=True, dimensions="queue")
            times["roll-up's share, queue only"].append(queue["total"] - without["total"])
        print(
            f"{label}: batch {i + 1}: {with_rl['total']:.2f} / {without['total']:.2f} s",
            file=sys.stderr,
        )
    if check:
        batch = changed_batch(engine, rng, size, p.as_of)
        committed, same = commit_and_check(engine, cfg, batch)
        facts["committed"] = committed
        facts["check"] = "equal" if same else "DIFFERENT"
    return dict(times), facts


def _ratio_row(
    mode: str, engine: str, label: str, secs: list[float], duck: float, duck_q: float
) -> list[str]:
    m = median(secs)
    return [
        mode,
        engine,
        label,
        f"{m:.3f}",
        f"{min(secs):.3f}-{max(secs):.3f}",
        f"{m / duck:.2f}x",
        f"{m / duck_q:.2f}x",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="complaints")
    parser.add_argument(
        "--ten-million", action="store_true", help="10,000,000 complaints (opt-in: long)"
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL admin URL")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--batch", type=int, default=10_000, help="complaints per sync batch")
    parser.add_argument("--batches", type=int, default=3, help="sync batches timed (medians)")
    parser.add_argument("--no-check", action="store_true", help="skip the rebuild comparison")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--tz", default="Europe/Moscow", help="the config's timezone")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--fresh", action="store_true", help="re-import even when there")
    parser.add_argument(
        "--keep", action="store_true", help="keep the PostgreSQL database for the next run"
    )
    args = parser.parse_args(argv)
    if args.ten_million:
        args.rows = 10_000_000
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    version = slamon_version()
    engines = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    p = make_params(args.tz)
    csv_path = ensure_csv(args.rows, args.seed, args.data_dir, args.tz)
    setups: list[EngineSetup] = [
        bench_report.setup_engine(e, csv_path, args, prefix="rollup", bind_rollup=True)
        for e in engines
    ]
    problems: list[str] = []
    times: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    facts: dict[str, dict[str, Any]] = defaultdict(dict)
    opened: dict[str, Engine] = {}
    loads = [load_average()]
    try:
        cfgs = {(s.name, m): config_for(s.url, args.tz, m) for s in setups for m in MODES}
        for s in setups:
            cfg = cfgs[s.name, "calendar"]
            engine = opened[s.name] = make_engine(cfg.database_url)
            facts[s.name].update(measure_build(engine, cfg))
            print(f"{s.name}: roll-up rebuilt in {facts[s.name]['build']:.1f} s", file=sys.stderr)
        request = week_by_queue(p)
        con = load_duckdb(setups[0])
        dls = {m: deadline_days(p, cfgs[setups[0].name, m]) for m in MODES}
        for rnd in range(1, args.rounds + 1):
            problems += report_round(rnd, setups, cfgs, opened, request, con, p, dls, times)
            loads.append(load_average())
            print(f"round {rnd} done (load {loads[-1]})", file=sys.stderr)
        for s in setups:
            batch_times, batch_facts = measure_batches(
                opened[s.name],
                cfgs[s.name, "calendar"],
                p,
                size=args.batch,
                batches=args.batches,
                seed=args.seed,
                check=not args.no_check,
                queue_only=True,
                label=s.name,
            )
            for label, secs in batch_times.items():
                times[s.name, "sync", label] += secs
            facts[s.name].update(batch_facts)
            if batch_facts.get("check") == "DIFFERENT":
                problems.append(f"{s.name}: after a committed batch the roll-up != a rebuild")
        pg_info = ""
        if "postgresql" in engines:
            with pg_admin_connect(args.pg_url) as conn:
                row = conn.execute("SELECT current_setting('jit'), version()").fetchone()
            pg_info = f"; PostgreSQL jit={row[0]}, {row[1].split(',')[0]}" if row else ""
    finally:
        for engine in opened.values():
            engine.dispose()
        if "postgresql" in engines and not args.keep:
            pg_drop(args.pg_url, kept_database(args.data_dir, "rollup", args.rows, args.seed)[1])

    print()
    print(
        f"report --period week --by queue over {args.rows:,} complaints, {p.since} to {p.until},"
        f" as of {datetime.fromtimestamp(p.as_of, UTC).isoformat()}, timezone {p.tz.key},"
        " thresholds 3/5/10 (working: RU holidays); roll-up dimensions: all five"
    )
    print(
        f"medians of {args.rounds} interleaved rounds; {os.cpu_count()} cores; load average"
        f" before: {loads[0]}, after: {loads[-1]}; SQLite {sqlite3.sqlite_version};"
        f" DuckDB {duckdb.__version__}{pg_info}"
    )
    print(f"slamon: {version}")
    if slamon_version() != version:
        print(f"!!! slamon changed during the run: now {slamon_version()} !!!")
    print()
    table = []
    labels = {
        "rollup total": "roll-up: report.run",
        "rollup counts": "  counts (levels, mean)",
        "rollup ranks": "  median/p90 (indexes)",
        "raw total": "raw rows: report.run",
        "raw counts": "  counts",
        "raw ranks": "  median/p90",
    }
    for mode in MODES:
        duck = median(times["duckdb", mode, "counts"])
        duck_q = median(times["duckdb", mode, "counts + median/p90"])
        for s in setups:
            for key, label in labels.items():
                secs = times[s.name, mode, key]
                if secs:
                    table.append(_ratio_row(mode, s.name, label, secs, duck, duck_q))
        for label in ("counts", "counts + median/p90"):
            secs = times["duckdb", mode, label]
            table.append(_ratio_row(mode, "duckdb", label, secs, duck, duck_q))
    print_table(
        ["mode", "engine", "what", "median s", "range s", "x DuckDB counts", "x DuckDB +q"],
        table,
    )
    print()
    build = []
    for s in setups:
        f = facts[s.name]
        build.append(
            [
                s.name,
                f"{f['build']:.1f}",
                f"{f['tables_only']:.1f}",
                f"{f['rows'][0]:,}",
                f"{f['rows'][1]:,}",
                f"{f['mb']:.1f}",
                f"{f['ix_mb']:.1f}",
                f"{f['raw_mb']:.0f}",
            ]
        )
    print_table(
        [
            "engine",
            "rebuild s (+ rl columns)",
            "rebuild s (tables only)",
            "day rows",
            "closure rows",
            "roll-up MB",
            "median/p90 indexes MB",
            "complaints table MB",
        ],
        build,
    )
    print()
    sync_rows = []
    for s in setups:
        for label in (
            "batch with roll-up",
            "batch without roll-up",
            "roll-up's own share",
            "  of which its writes (flush)",
            "roll-up's share, queue only",
        ):
            secs = times[s.name, "sync", label]
            sync_rows.append(
                [s.name, label, f"{median(secs):.3f}", f"{min(secs):.3f}-{max(secs):.3f}"]
            )
        if "committed" in facts[s.name]:
            f = facts[s.name]
            check = f"{f['check']} to a rebuild after it"
            sync_rows.append([s.name, "one batch committed", f"{f['committed']:.3f}", check])
    print(f"sync batches of {args.batch:,} complaints (rolled back; medians of {args.batches})")
    print_table(["engine", "what", "median s", "range s / check"], sync_rows)
    print()
    for s in setups:
        for mode in MODES:
            counts = median(times[s.name, mode, "rollup counts"]) / median(
                times["duckdb", mode, "counts"]
            )
            full = median(times[s.name, mode, "rollup total"]) / median(
                times["duckdb", mode, "counts + median/p90"]
            )
            print(
                f"goal ({s.name}, {mode}): levels, counts, mean in <= 0.2x DuckDB's time:"
                f" {'MET' if counts <= 0.2 else 'MISSED'} ({counts:.2f}x)"
            )
            print(
                f"goal ({s.name}, {mode}): with exact median/p90 in <= DuckDB's time:"
                f" {'MET' if full <= 1 else 'MISSED'} ({full:.2f}x)"
            )
        for label, what in (
            ("roll-up's own share", "five dimensions"),
            ("roll-up's share, queue only", "queue only"),
        ):
            upkeep = median(times[s.name, "sync", label])
            print(
                f"goal ({s.name}): upkeep < 0.5 s per {args.batch:,}-complaint batch, {what}:"
                f" {'MET' if upkeep < 0.5 else 'MISSED'} ({upkeep:.2f} s)"
            )
    if problems:
        print(f"\n!!! MISMATCH: {len(problems)} problems !!!")
        for line in problems[:40]:
            print(f"!!! {line}")
        return 1
    print("\nchecks: roll-up report = raw report (every field), DuckDB = slamon, roll-up = rebuild")
    return 0


if __name__ == "__main__":
    sys.exit(main())
