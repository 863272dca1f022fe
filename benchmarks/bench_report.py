"""The weekly report by queue over 1 M complaints: slamon beside hand-written SQL and DuckDB.

Data: the generated export (benchmarks/generate.py) imported with the real CLI into an SQLite
file and a PostgreSQL database (reused when already there with the right count; PostgreSQL gets
VACUUM ANALYZE, as autovacuum would). Config: calendar days, thresholds 3/5/10, timezone
Europe/Moscow. The report: `--period week --by queue --since <2 years before> --until <end>
--as-of <end>`, end = 2026-11-20T00:00:00Z (the generator's fixed end).

Each round runs every method once, engine after engine (medians of ``--rounds``):
- slamon CLI: `slamon --config X report ... --format json` in a subprocess (wall, peak RSS);
- slamon.report.run in-process (engine and config made once), with the two statements it runs
  timed apart: levels.count_groups (the counts) and levels.closure_ranks (median and p90 ranks);
- hand SQL (counts): one statement on the same engine, same table and indexes, computing per ISO
  week of local creation date x queue: complaints, excluded, open, matured and hits for 3/5/10
  calendar days, mean closure days. Local days by integer arithmetic on epoch seconds with the
  zone's UTC offset (a constant for Europe/Moscow; a CASE over the offset changes in the range
  for zones with DST, exact either way): hit = local closing day <= local creation day + N,
  matured = creation day + N + 1 <= local day of as_of;
- hand SQL (+ median/p90): the same figures plus median and p90, as slamon's report has them;
- DuckDB, the same rows in memory (loaded untimed), the same two queries.
Every hand-written and DuckDB result is compared with slamon's report, group by group, and the
CLI's JSON with the in-process report; a mismatch is printed loudly and the exit code is 1.
Goal (issue): slamon's report within 1.5x of the hand-written query on the same engine.

Usage: python benchmarks/bench_report.py [--rows 1000000] [--db sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import signal
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import bulk as bulk_mod
import duckdb
import numpy as np
import psycopg
from _common import (
    DATA_DIR,
    DEFAULT_PG_URL,
    DEFAULT_TZ,
    ChildRun,
    ensure_csv,
    load_average,
    median,
    pg_admin_connect,
    pg_create,
    pg_database_url,
    pg_drop,
    pg_exists,
    print_table,
    remove_sqlite,
    run_child,
    slamon_command,
    slamon_fingerprint,
    slamon_version,
    write_config,
)
from generate import DEFAULT_SEED, END

from slamon import config as config_mod
from slamon import report as report_mod
from slamon.store import levels, rollup_levels
from slamon.store.engine import make_engine

THRESHOLDS = (3, 5, 10)
GOAL_RATIO = 1.5
SOURCE = "bench"
DAY = 86400

# --- the report's parameters ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Params:
    tz: ZoneInfo
    as_of: int  # epoch seconds
    since: date
    until: date
    start: int  # first instant of local day `since`
    stop: int  # min(first instant of the day after `until`, as_of + 1): created_at < stop
    ad: int  # local day number (days since 1970-01-01) of as_of
    offsets: list[tuple[int, int]]  # (from instant, UTC offset seconds), ascending

    def cli_args(self) -> list[str]:
        as_of = datetime.fromtimestamp(self.as_of, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return [
            "report",
            "--period",
            "week",
            "--by",
            "queue",
            "--format",
            "json",
            "--since",
            self.since.isoformat(),
            "--until",
            self.until.isoformat(),
            "--as-of",
            as_of,
        ]


def _offset(tz: ZoneInfo, t: int) -> int:
    off = datetime.fromtimestamp(t, tz).utcoffset()
    assert off is not None
    return int(off.total_seconds())


def _offsets(tz: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int]]:
    """The zone's UTC offset as a step function over [lo, hi]: (instant it starts, offset)."""
    steps = [(lo, _offset(tz, lo))]
    t = lo
    while t < hi:
        nxt = min(t + 6 * 3600, hi)
        if _offset(tz, nxt) != steps[-1][1]:
            a, b = t, nxt  # the change lies in (a, b]: bisect to the second
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(tz, mid) == steps[-1][1]:
                    a = mid
                else:
                    b = mid
            steps.append((b, _offset(tz, b)))
        t = nxt
    return steps


def _local_day(p_offsets: Sequence[tuple[int, int]], t: int) -> int:
    off = p_offsets[0][1]
    for since, o in p_offsets:
        if t >= since:
            off = o
    return (t + off) // DAY


def _start_of_local_day(offsets: Sequence[tuple[int, int]], day: int) -> int:
    """The first instant whose local day is >= ``day`` (bisection: exact in DST gaps too)."""
    lo, hi = day * DAY - 2 * DAY, day * DAY + 2 * DAY
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _local_day(offsets, mid) >= day:
            hi = mid
        else:
            lo = mid
    return hi


def make_params(tz_name: str) -> Params:
    tz = ZoneInfo(tz_name)
    as_of = int(END.timestamp())
    until = END.astimezone(tz).date()
    since = until.replace(year=until.year - 2)
    epoch = date(1970, 1, 1)
    lo = int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp()) - 3 * DAY
    offsets = _offsets(tz, lo, as_of + 400 * DAY)
    start = _start_of_local_day(offsets, (since - epoch).days)
    stop = min(_start_of_local_day(offsets, (until - epoch).days + 1), as_of + 1)
    return Params(tz, as_of, since, until, start, stop, _local_day(offsets, as_of), offsets)


def week_by_queue(p: Params) -> report_mod.ReportRequest:
    """The measured report: `report --period week --by queue` over the two years of ``p``."""
    return report_mod.make_request(
        as_of=datetime.fromtimestamp(p.as_of, UTC),
        tz=p.tz,
        since=p.since,
        until=p.until,
        period="week",
        by=["queue"],
    )


def week_label(week: int) -> str:
    """ISO week label of the Monday-to-Sunday week number ``(local day number + 3) // 7``."""
    monday = date(1970, 1, 1) + timedelta(days=7 * week - 3)
    year, number, _ = monday.isocalendar()
    return f"{year}-W{number:02d}"


# --- the hand-written queries --------------------------------------------------------------


def _offset_sql(col: str, p: Params) -> str:
    """The local UTC offset of an instant column: a constant, or a CASE over the zone's changes
    within the data (none for Europe/Moscow since 2014)."""
    if len(p.offsets) == 1:
        return str(p.offsets[0][1])
    arms = " ".join(
        f"WHEN {col} < {t} THEN {o}"
        for (t, _), (_, o) in zip(p.offsets[1:], p.offsets[:-1], strict=True)
    )
    return f"(CASE {arms} ELSE {p.offsets[-1][1]} END)"


def _counts_select(p: Params, idiv: str, agg: Callable[[str, str | None], str]) -> str:
    """Aggregates over the derived table r(d, c, inc, created_at, closed_at)."""
    closed = f"inc AND closed_at <= {p.as_of}"
    cols = [
        agg("1", None) + " AS total",
        agg("1", "inc") + " AS n",
        agg("1", closed) + " AS closed",
        agg("closed_at - created_at", closed) + " AS secs",
    ]
    for i, n in enumerate(THRESHOLDS):
        # deadline = start of local day d + n + 1; matured: deadline <= as_of, i.e. the local day
        # of as_of is at least d + n + 1; hit: closed before the deadline, i.e. c <= d + n.
        matured = f"inc AND d <= {p.ad - n - 1}"
        cols.append(agg("1", matured) + f" AS m{i}")
        cols.append(agg("1", f"{matured} AND c <= d + {n}") + f" AS h{i}")
    return f"(d + 3) {idiv} 7 AS w, queue, " + ", ".join(cols)


def _rows_sql(p: Params, local_day: Callable[[str], str]) -> str:
    return (
        "SELECT queue, created_at, closed_at,"
        f" {local_day('created_at')} AS d, {local_day('closed_at')} AS c,"
        " (excluded_reason IS NULL AND (closed_at IS NULL OR closed_at >= created_at)) AS inc"
        f" FROM complaints WHERE created_at >= {p.start} AND created_at < {p.stop}"
    )


def _sqlite_agg(expr: str, cond: str | None) -> str:
    if cond is None:
        return "count(*)" if expr == "1" else f"sum({expr})"
    return f"sum({cond})" if expr == "1" else f"sum(CASE WHEN {cond} THEN {expr} END)"


def _filter_agg(expr: str, cond: str | None) -> str:
    base = "count(*)" if expr == "1" else f"sum({expr})"
    return base if cond is None else f"{base} FILTER (WHERE {cond})"


def sqlite_counts_sql(p: Params) -> str:
    def local_day(col: str) -> str:
        return f"({col} + {_offset_sql(col, p)}) / {DAY}"

    return (
        f"SELECT {_counts_select(p, '/', _sqlite_agg)}"
        f" FROM ({_rows_sql(p, local_day)}) GROUP BY w, queue"
    )


def sqlite_ranks_sql(p: Params, total_closed: int | None) -> str:
    """Closure durations at the ranks numpy's linear median and p90 interpolate between: per
    group (``total_closed`` None) or over all groups, whose closed count the counts query gave.
    One window per statement, so each sorts once; the group's count comes from the same window
    (a frame over the whole partition): a separate count(*) OVER (PARTITION BY ...) would be a
    second sort, and three windows in one statement took 7.1 s against 5.7 s for the two."""

    def local_day(col: str) -> str:
        return f"({col} + {_offset_sql(col, p)}) / {DAY}"

    closed = (
        "SELECT (d + 3) / 7 AS w, queue, closed_at - created_at AS dur"
        f" FROM ({_rows_sql(p, local_day)}) WHERE inc AND closed_at <= {p.as_of}"
    )
    n = "cnt" if total_closed is None else str(total_closed)
    keep = f"k IN (({n} - 1) / 2, {n} / 2, 9 * ({n} - 1) / 10, (9 * ({n} - 1) + 9) / 10)"
    if total_closed is None:
        return (
            "SELECT w, queue, k, cnt, dur FROM (SELECT w, queue, dur,"
            " row_number() OVER win - 1 AS k,"
            " count(*) OVER (win ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS cnt"
            f" FROM ({closed}) WINDOW win AS (PARTITION BY w, queue ORDER BY dur)) WHERE {keep}"
        )
    return (
        f"SELECT NULL, NULL, k, {total_closed}, dur FROM (SELECT dur,"
        f" row_number() OVER (ORDER BY dur) - 1 AS k FROM ({closed})) WHERE {keep}"
    )


def pg_counts_sql(p: Params, *, quantiles: bool) -> str:
    """The local day by offset arithmetic, as on SQLite: per-row `to_timestamp(x) AT TIME ZONE`
    computed the same figures 2.7x slower here (4.98 s against 1.83 s, medians of 3, load 5-6)."""

    def local_day(col: str) -> str:
        return f"(({col} + {_offset_sql(col, p)}) / {DAY})"

    extra = ""
    group = "GROUP BY w, queue"
    if quantiles:
        extra = (
            ", percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY closed_at - created_at)"
            f" FILTER (WHERE inc AND closed_at <= {p.as_of}) AS q"
        )
        group = "GROUP BY GROUPING SETS ((w, queue), ())"
    return (
        f"SELECT {_counts_select(p, '/', _filter_agg)}{extra}"
        f" FROM ({_rows_sql(p, local_day)}) r {group}"
    )


def duckdb_counts_sql(p: Params, *, quantiles: bool) -> str:
    def local_day(col: str) -> str:
        return f"(({col} + {_offset_sql(col, p)}) // {DAY})"

    extra = ""
    group = "GROUP BY w, queue"
    if quantiles:
        extra = (
            ", quantile_cont(closed_at - created_at, [0.5, 0.9])"
            f" FILTER (WHERE inc AND closed_at <= {p.as_of}) AS q"
        )
        group = "GROUP BY GROUPING SETS ((w, queue), ())"
    return (
        f"SELECT {_counts_select(p, '//', _filter_agg)}{extra}"
        f" FROM ({_rows_sql(p, local_day)}) r {group}"
    )


# --- results, as comparable figures --------------------------------------------------------

Key = tuple[str, str]  # (week label, queue); ("total", "") for the total


@dataclass(slots=True)
class Figures:
    complaints: int
    excluded: int
    open: int
    matured: tuple[int, ...]
    hits: tuple[int, ...]
    mean_days: float | None
    median_days: float | None = None
    p90_days: float | None = None


def _figures(row: Sequence[Any]) -> Figures:
    """From (total, n, closed, secs, m0, h0, m1, h1, m2, h2) as the hand queries give them."""
    total, n, closed, secs, *per = (int(v or 0) for v in row[:10])
    return Figures(
        complaints=n,
        excluded=total - n,
        open=n - closed,
        matured=tuple(per[0::2]),
        hits=tuple(per[1::2]),
        mean_days=secs / closed / DAY if closed else None,
    )


def _with_quantiles(fig: Figures, q: Sequence[float] | None) -> Figures:
    if q is not None and q[0] is not None:
        fig.median_days, fig.p90_days = q[0] / DAY, q[1] / DAY
    return fig


def _numpy_lerp(ranked: dict[int, int], count: int, q: float) -> float | None:
    if count == 0:
        return None
    pos = (count - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return (ranked[lo] + (ranked[hi] - ranked[lo]) * (pos - lo)) / DAY


def _sum_figures(figs: Sequence[Figures]) -> Figures:
    closed = sum(f.complaints - f.open for f in figs)
    secs = sum((f.mean_days or 0.0) * DAY * (f.complaints - f.open) for f in figs)
    return Figures(
        complaints=sum(f.complaints for f in figs),
        excluded=sum(f.excluded for f in figs),
        open=sum(f.open for f in figs),
        matured=tuple(sum(f.matured[i] for f in figs) for i in range(len(THRESHOLDS))),
        hits=tuple(sum(f.hits[i] for f in figs) for i in range(len(THRESHOLDS))),
        mean_days=secs / closed / DAY if closed else None,
    )


def from_counts_rows(rows: Iterator[Sequence[Any]]) -> dict[Key, Figures]:
    """Rows (w, queue, total, n, closed, secs, m0, h0, ...[, q]); w None: the grouping-set total."""
    out: dict[Key, Figures] = {}
    for row in rows:
        w, queue = row[0], row[1]
        fig = _figures(row[2:12])
        if len(row) > 12:
            fig = _with_quantiles(fig, row[12])
        out[("total", "") if w is None else (week_label(int(w)), str(queue))] = fig
    if ("total", "") not in out:
        out["total", ""] = _sum_figures(list(out.values()))
    return out


def add_sqlite_ranks(figs: dict[Key, Figures], rows: Iterator[Sequence[Any]]) -> None:
    """Rows (w, queue, rank, count, duration); w None: the total."""
    per: dict[Key, dict[int, int]] = defaultdict(dict)
    counts: dict[Key, int] = {}
    for w, queue, k, cnt, dur in rows:
        key = ("total", "") if w is None else (week_label(int(w)), str(queue))
        per[key][int(k)] = int(dur)
        counts[key] = int(cnt)
    for key, ranked in per.items():
        figs[key].median_days = _numpy_lerp(ranked, counts[key], 0.5)
        figs[key].p90_days = _numpy_lerp(ranked, counts[key], 0.9)


def from_report(rep: dict[str, Any]) -> dict[Key, Figures]:
    """Figures of slamon's report, from its JSON shape (Report.as_json() or the CLI output)."""

    def figs(r: dict[str, Any]) -> Figures:
        lv = r["levels"]
        return Figures(
            complaints=r["complaints"],
            excluded=r["excluded"],
            open=r["open"],
            matured=tuple(lv[str(n)]["matured"] for n in THRESHOLDS),
            hits=tuple(lv[str(n)]["hits"] for n in THRESHOLDS),
            mean_days=r["mean_days"],
            median_days=r["median_days"],
            p90_days=r["p90_days"],
        )

    out = {(r["period"], r["segment"]["queue"]): figs(r) for r in rep["rows"]}
    out["total", ""] = figs(rep["total"])
    return out


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def compare(
    name: str, got: dict[Key, Figures], want: dict[Key, Figures], *, quantiles: bool
) -> list[str]:
    """Differences of ``got`` from slamon's ``want``, one line each (empty when equal)."""
    problems = []
    for key in sorted(set(got) | set(want)):
        g, w = got.get(key), want.get(key)
        if g is None or w is None:
            problems.append(f"{name}: group {key} only in {'slamon' if g is None else name}")
            continue
        fields = ["complaints", "excluded", "open", "matured", "hits"]
        diffs = [f for f in fields if getattr(g, f) != getattr(w, f)]
        diffs += [] if _close(g.mean_days, w.mean_days) else ["mean_days"]
        if quantiles:
            diffs += [
                f for f in ("median_days", "p90_days") if not _close(getattr(g, f), getattr(w, f))
            ]
        for f in diffs:
            problems.append(f"{name}: {key} {f}: {getattr(g, f)} != slamon's {getattr(w, f)}")
    return problems


# --- the methods ---------------------------------------------------------------------------


@dataclass(slots=True)
class Timings:
    seconds: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    rss: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, method: str, engine: str, secs: float, rss: float | None = None) -> None:
        self.seconds[method, engine].append(secs)
        if rss is not None:
            self.rss[method, engine].append(rss)


CLI = "slamon report, CLI subprocess"
INPROC = "slamon.report.run, in-process"
COUNTS = "  of which count_groups"
RANKS = "  of which closure_ranks"
HAND = "hand SQL (counts)"
HAND_Q = "hand SQL (counts + median/p90)"
DUCK = "DuckDB in memory (counts)"
DUCK_Q = "DuckDB in memory (counts + median/p90)"
METHODS = (CLI, INPROC, COUNTS, RANKS, HAND, HAND_Q)


def timed_report_run(
    engine: Any, cfg: config_mod.Config, request: report_mod.ReportRequest
) -> tuple[report_mod.Report, dict[str, float]]:
    """report.run, with its two SQL steps (count_groups, closure_ranks: from raw rows in
    store.levels, or from the roll-up and its indexes in store.rollup_levels, whichever answers;
    bench_rollup.py compares the two) timed on the way through."""
    spent: dict[str, float] = {"count_groups": 0.0, "closure_ranks": 0.0}
    modules = (levels, rollup_levels)
    originals = {
        (module, name): getattr(module, name)
        for module in modules
        for name in ("count_groups", "closure_ranks")
    }

    def timing(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0

        return wrapper

    for (module, name), fn in originals.items():
        setattr(module, name, timing(name, fn))
    try:
        t0 = time.perf_counter()
        rep = report_mod.run(engine, cfg, request)
        spent["total"] = time.perf_counter() - t0
    finally:
        for (module, name), fn in originals.items():
            setattr(module, name, fn)
    return rep, spent


@dataclass(slots=True)
class EngineSetup:
    name: str
    config: Path
    url: str
    sqlite_path: Path | None = None
    import_run: ChildRun | None = None  # the timed `slamon import` when this run imported
    # when this run loaded the rows by benchmarks/bulk.py: seconds of the load, of the rebuild
    bulk_seconds: tuple[float, float] | None = None


# the rows as loaded: all of them changed at one instant (a committed sync batch changes some)
_UNTOUCHED = (
    "SELECT count(*) FROM complaints WHERE source = {mark} HAVING count(DISTINCT changed_at) = 1"
)


def _count_rows_sqlite(path: Path) -> int:
    """The rows of the benchmark's source when none has changed since they were loaded."""
    try:
        with sqlite3.connect(path) as conn:
            row = conn.execute(_UNTOUCHED.format(mark="?"), (SOURCE,)).fetchone()
            return int(row[0]) if row else -1
    except sqlite3.Error:
        return -1


def _count_rows_pg(url: str) -> int:
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(_UNTOUCHED.format(mark="%s"), (SOURCE,)).fetchone()
            return int(row[0]) if row else -1
    except psycopg.Error:
        return -1


def kept_database(data_dir: Path, prefix: str, rows: int, seed: int) -> tuple[Path, str]:
    """Where setup_engine keeps a size's data: the SQLite file and the PostgreSQL database."""
    tag = f"{rows}-{seed}"
    return data_dir / f"{prefix}-{tag}.db", f"slamon_bench_{prefix}_{tag}"


def setup_engine(
    name: str,
    csv_path: Path,
    args: argparse.Namespace,
    prefix: str = "report",
    *,
    bind_rollup: bool = False,
    bulk: bool = False,
) -> EngineSetup:
    """The imported database for ``name``: reused when it holds all the rows, else rebuilt.
    ``bind_rollup``: rebuild the (empty) roll-up under the config before the import, as a user
    with a timezone other than UTC does once, so that the import keeps the right one.
    ``bulk``: load the rows with benchmarks/bulk.py instead of `slamon import` (10 M rows)."""
    cfg_path = args.data_dir / f"{prefix}-{name}-{args.rows}-{args.seed}.toml"
    sqlite_file, dbname = kept_database(args.data_dir, prefix, args.rows, args.seed)
    if name == "sqlite":
        db: Path | None = sqlite_file
        url = f"sqlite:///{db.resolve().as_posix()}"
        ready = not args.fresh and db.exists() and _count_rows_sqlite(db) == args.rows
        if not ready:
            remove_sqlite(db)
    else:
        url = pg_database_url(args.pg_url, dbname)
        ready = (
            not args.fresh and pg_exists(args.pg_url, dbname) and _count_rows_pg(url) == args.rows
        )
        if not ready:
            pg_create(args.pg_url, dbname)
        db = None
    write_config(cfg_path, url, args.tz)
    cli = [*slamon_command(), "--config", str(cfg_path)]
    run_child([*cli, "db", "upgrade"])  # also when reused: the schema may have moved on
    run = None
    if not ready and bulk:
        secs = bulk_mod.load(cfg_path, csv_path, SOURCE)
        print(
            f"bulk-loaded {args.rows} rows into {name} in {secs[0]:.1f} s,"
            f" roll-up rebuilt in {secs[1]:.1f} s",
            file=sys.stderr,
        )
        return EngineSetup(name, cfg_path, url, db, None, secs)
    if not ready:
        if bind_rollup:
            run_child([*cli, "db", "rebuild-rollup"])
        run = run_child([*cli, "import", str(csv_path), "--source", SOURCE])
        print(f"imported {args.rows} rows into {name} in {run.seconds:.1f} s", file=sys.stderr)
        if name == "postgresql":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE complaints")
    return EngineSetup(name, cfg_path, url, db, run)


def load_rows(setup: EngineSetup) -> dict[str, np.ndarray]:
    """The columns the report reads, as arrays (closed_at 0 where has_closed is false)."""
    query = "SELECT created_at, closed_at, excluded_reason, queue FROM complaints"
    if setup.sqlite_path is not None:
        with sqlite3.connect(setup.sqlite_path) as conn:
            rows = conn.execute(query).fetchall()
    else:
        with psycopg.connect(setup.url) as pg:
            rows = pg.execute(query).fetchall()
    created = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    has_closed = np.fromiter((r[1] is not None for r in rows), dtype=np.bool_, count=len(rows))
    closed = np.fromiter((r[1] or 0 for r in rows), dtype=np.int64, count=len(rows))
    excluded = np.array([r[2] for r in rows], dtype=object)
    queue = np.array([r[3] for r in rows], dtype=object)
    del rows
    return {
        "created_at": created,
        "closed_at": closed,
        "has_closed": has_closed,
        "excluded_reason": excluded,
        "queue": queue,
    }


def load_duckdb(
    setup: EngineSetup, frame: dict[str, np.ndarray] | None = None
) -> duckdb.DuckDBPyConnection:
    """The same rows, in memory (untimed): the columns the report reads."""
    frame = load_rows(setup) if frame is None else frame
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute(
        "CREATE TABLE complaints AS SELECT created_at,"
        " CASE WHEN has_closed THEN closed_at END AS closed_at,"
        " CAST(excluded_reason AS VARCHAR) AS excluded_reason, CAST(queue AS VARCHAR) AS queue"
        " FROM frame"
    )
    con.unregister("frame")
    return con


def _run_round(
    rnd: int,
    setups: Sequence[EngineSetup],
    p: Params,
    args: argparse.Namespace,
    timings: Timings,
    state: dict[str, Any],
) -> list[str]:
    problems: list[str] = []
    for s in setups:
        eng = s.name
        # 1. the CLI, a child process: wall and peak RSS
        out_file = args.data_dir / f"report-{eng}-{os.getpid()}.json"
        run = run_child(
            [*slamon_command(), "--config", str(s.config), *p.cli_args()], stdout_file=out_file
        )
        timings.add(CLI, eng, run.seconds, run.peak_rss_mb)
        cli_json = json.loads(out_file.read_text(encoding="utf-8"))
        out_file.unlink()
        # 2. in-process
        rep, spent = timed_report_run(
            state[f"engine:{eng}"], state[f"config:{eng}"], state["request"]
        )
        timings.add(INPROC, eng, spent["total"])
        timings.add(COUNTS, eng, spent["count_groups"])
        timings.add(RANKS, eng, spent["closure_ranks"])
        slamon_json = json.loads(json.dumps(rep.as_json()))
        want = from_report(slamon_json)
        # 3. hand-written SQL: counts, then counts + median/p90
        # (one connection per engine for the whole run, as slamon's engine pools its own)
        conn = state[f"hand:{eng}"]
        if eng == "sqlite":
            t0 = time.perf_counter()
            counts = conn.execute(sqlite_counts_sql(p)).fetchall()
            timings.add(HAND, eng, time.perf_counter() - t0)
            t0 = time.perf_counter()
            counts_q = conn.execute(sqlite_counts_sql(p)).fetchall()
            closed = sum(int(r[4] or 0) for r in counts_q)
            ranks = conn.execute(sqlite_ranks_sql(p, None)).fetchall()
            ranks += conn.execute(sqlite_ranks_sql(p, closed)).fetchall()
            timings.add(HAND_Q, eng, time.perf_counter() - t0)
            hand = from_counts_rows(iter(counts))
            hand_q = from_counts_rows(iter(counts_q))
            add_sqlite_ranks(hand_q, iter(ranks))
        else:
            t0 = time.perf_counter()
            counts = conn.execute(pg_counts_sql(p, quantiles=False)).fetchall()
            timings.add(HAND, eng, time.perf_counter() - t0)
            t0 = time.perf_counter()
            counts_q = conn.execute(pg_counts_sql(p, quantiles=True)).fetchall()
            timings.add(HAND_Q, eng, time.perf_counter() - t0)
            hand = from_counts_rows(iter(counts))
            hand_q = from_counts_rows(iter(counts_q))
        if rnd == 1:
            problems += compare(f"CLI JSON ({eng})", from_report(cli_json), want, quantiles=True)
            if cli_json["rows"] != slamon_json["rows"] or cli_json["total"] != slamon_json["total"]:
                problems.append(f"CLI JSON ({eng}): rows differ from the in-process report")
            problems += compare(f"hand SQL ({eng})", hand, want, quantiles=False)
            problems += compare(f"hand SQL + quantiles ({eng})", hand_q, want, quantiles=True)
            state[f"groups:{eng}"] = len(want) - 1
            state.setdefault("sample", (eng, want, hand))
    # 4. DuckDB over the same rows in memory
    con: duckdb.DuckDBPyConnection = state["duckdb"]
    t0 = time.perf_counter()
    dcounts = con.execute(duckdb_counts_sql(p, quantiles=False)).fetchall()
    timings.add(DUCK, "duckdb", time.perf_counter() - t0)
    t0 = time.perf_counter()
    dcounts_q = con.execute(duckdb_counts_sql(p, quantiles=True)).fetchall()
    timings.add(DUCK_Q, "duckdb", time.perf_counter() - t0)
    if rnd == 1:
        _, want, _ = state["sample"]
        problems += compare("DuckDB", from_counts_rows(iter(dcounts)), want, quantiles=False)
        problems += compare(
            "DuckDB + quantiles", from_counts_rows(iter(dcounts_q)), want, quantiles=True
        )
    return problems


def _print_sample(state: dict[str, Any]) -> None:
    eng, want, hand = state["sample"]
    keys = sorted(k for k in want if k[0] != "total")
    picks = [keys[0], keys[len(keys) // 2], keys[-1], ("total", "")]
    print(
        f"\nsample groups ({eng}): slamon | hand SQL"
        "  (complaints, excluded, open, matured, hits, mean days)"
    )
    for key in picks:
        w, h = want[key], hand[key]
        print(
            f"  {key[0]:8} {key[1]:4}  {w.complaints} {w.excluded} {w.open} {w.matured} {w.hits}"
            f" {w.mean_days:.4f} | {h.complaints} {h.excluded} {h.open} {h.matured} {h.hits}"
            f" {h.mean_days:.4f}"
        )


def _print_results(setups: Sequence[EngineSetup], timings: Timings) -> None:
    duck = median(timings.seconds[DUCK, "duckdb"])
    table = []
    for s in setups:
        hand = median(timings.seconds[HAND, s.name])
        hand_q = median(timings.seconds[HAND_Q, s.name])
        for method in METHODS:
            secs = timings.seconds[method, s.name]
            m = median(secs)
            rss = timings.rss.get((method, s.name))
            table.append(
                [
                    method,
                    s.name,
                    f"{m:.3f}",
                    f"{min(secs):.3f}-{max(secs):.3f}",
                    f"{m / hand:.2f}x",
                    f"{m / hand_q:.2f}x",
                    f"{m / duck:.1f}x",
                    f"{median(rss):.0f}" if rss else "",
                ]
            )
    for method in (DUCK, DUCK_Q):
        secs = timings.seconds[method, "duckdb"]
        m = median(secs)
        table.append(
            [
                method,
                "duckdb",
                f"{m:.3f}",
                f"{min(secs):.3f}-{max(secs):.3f}",
                "",
                "",
                f"{m / duck:.1f}x",
                "",
            ]
        )
    print_table(
        [
            "method",
            "engine",
            "median s",
            "range s",
            "x hand (counts)",
            "x hand (+median/p90)",
            "x DuckDB (counts)",
            "peak RSS MB",
        ],
        table,
    )
    print()
    for s in setups:
        hand = median(timings.seconds[HAND, s.name])
        for method in (INPROC, CLI):
            ratio = median(timings.seconds[method, s.name]) / hand
            verdict = "MET" if ratio <= GOAL_RATIO else "MISSED"
            print(
                f"goal ({s.name}): {method} within {GOAL_RATIO}x of the hand-written query:"
                f" {verdict} ({ratio:.2f}x)"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="complaints to report over")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL admin URL")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--tz", default=DEFAULT_TZ, help="the config's timezone")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--fresh", action="store_true", help="re-import even when the data is there"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the PostgreSQL database for the next run (the SQLite file is always kept)",
    )
    args = parser.parse_args(argv)
    # SIGTERM as an exception, so that the cleanup (databases, files) in finally runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # before the runs: the checkout may change under them
    version, fingerprint = slamon_version(), slamon_fingerprint()
    engines = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    p = make_params(args.tz)
    csv_path = ensure_csv(args.rows, args.seed, args.data_dir, args.tz)
    setups = [setup_engine(e, csv_path, args) for e in engines]
    state: dict[str, Any] = {}
    try:
        for s in setups:
            cfg = config_mod.load(s.config)
            state[f"config:{s.name}"] = cfg
            state[f"engine:{s.name}"] = make_engine(cfg.database_url)
            if s.sqlite_path is not None:
                state[f"hand:{s.name}"] = sqlite3.connect(s.sqlite_path)
            else:
                state[f"hand:{s.name}"] = psycopg.connect(s.url, autocommit=True)
        state["request"] = week_by_queue(p)
        state["duckdb"] = load_duckdb(setups[0])
        timings = Timings()
        problems: list[str] = []
        loads = [load_average()]
        for rnd in range(1, args.rounds + 1):
            problems += _run_round(rnd, setups, p, args, timings, state)
            loads.append(load_average())
            done = ", ".join(
                f"{m.strip()} {e} {v[-1]:.2f}s" for (m, e), v in timings.seconds.items()
            )
            print(f"round {rnd} (load {loads[-1]}): {done}", file=sys.stderr)
        if args.db in ("postgresql", "both"):
            with pg_admin_connect(args.pg_url) as conn:
                row = conn.execute("SELECT current_setting('jit'), version()").fetchone()
            pg_info = f"; PostgreSQL jit={row[0]}, {row[1].split(',')[0]}" if row else ""
        else:
            pg_info = ""
    finally:
        for key, value in state.items():
            if key.startswith("engine:"):
                value.dispose()
            elif key.startswith("hand:"):
                value.close()
        if "postgresql" in engines and not args.keep:
            pg_drop(args.pg_url, kept_database(args.data_dir, "report", args.rows, args.seed)[1])

    print()
    groups = ", ".join(f"{e}: {state.get(f'groups:{e}', '?')}" for e in engines)
    print(
        f"report --period week --by queue over {args.rows:,} complaints, {p.since} to {p.until},"
        f" as of {datetime.fromtimestamp(p.as_of, UTC).isoformat()}, timezone {p.tz.key},"
        f" thresholds {'/'.join(map(str, THRESHOLDS))} calendar days; groups {groups}"
    )
    print(
        f"medians of {args.rounds} interleaved rounds; {os.cpu_count()} cores; load average"
        f" (1/5/15 min) before: {loads[0]}, after: {loads[-1]}; SQLite"
        f" {sqlite3.sqlite_version}; DuckDB {duckdb.__version__}{pg_info}"
    )
    print(f"slamon: {version}")
    if slamon_fingerprint() != fingerprint:
        print(f"!!! slamon changed during the run: now {slamon_version()}; figures are mixed !!!")
    print()
    _print_results(setups, timings)
    _print_sample(state)
    if problems:
        print(f"\n!!! MISMATCH: {len(problems)} differences from slamon's report !!!")
        for line in problems[:40]:
            print(f"!!! {line}")
        return 1
    print("\nchecks: hand SQL, DuckDB and the CLI's JSON equal slamon's report in every group")
    return 0


if __name__ == "__main__":
    sys.exit(main())
