"""Import speed and memory of `slamon import` on SQLite and PostgreSQL, through the real CLI.

Per engine and file size, each run: a fresh database (SQLite file / PostgreSQL database created
by this script), `slamon --config X db upgrade` (untimed), then the timed child
`slamon --config X import FILE --source bench`: wall time and the child's own peak RSS (wait4 on
its pid). Runs are interleaved (each round runs every engine and size once); the table shows
medians. The PostgreSQL server's own memory is not the child's and is not counted.

Two sizes (``--rows`` and ``--small-rows``) show whether memory is flat in the file size.
Goal (issue): 1,000,000 rows in under 20 s on SQLite.

Usage: python benchmarks/bench_import.py [--rows 1000000] [--db sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import sys
from collections import defaultdict
from pathlib import Path

import psycopg
from _common import (
    DATA_DIR,
    DEFAULT_PG_URL,
    DEFAULT_TZ,
    ChildRun,
    ensure_csv,
    load_average,
    median,
    pg_create,
    pg_database_url,
    pg_drop,
    print_table,
    remove_sqlite,
    run_child,
    slamon_command,
    slamon_fingerprint,
    slamon_version,
    write_config,
)
from generate import DEFAULT_SEED

GOAL_SECONDS = 20.0
GOAL_ROWS = 1_000_000


def _fresh_database(engine: str, rows: int, args: argparse.Namespace) -> tuple[Path, str]:
    """A new empty database at the current schema; returns its config file and a label."""
    tag = f"{engine}-{rows}-{os.getpid()}"
    if engine == "sqlite":
        db = args.data_dir / f"import-{tag}.db"
        remove_sqlite(db)
        url = f"sqlite:///{db.resolve().as_posix()}"
    else:
        url = pg_create(args.pg_url, _pg_name(rows))
    cfg = write_config(args.data_dir / f"import-{tag}.toml", url, args.tz)
    run_child([*slamon_command(), "--config", str(cfg), "db", "upgrade"])
    return cfg, url


def _pg_name(rows: int) -> str:
    return f"slamon_bench_import_{rows}_{os.getpid()}"


def _cleanup(engine: str, rows: int, args: argparse.Namespace) -> None:
    tag = f"{engine}-{rows}-{os.getpid()}"
    (args.data_dir / f"import-{tag}.toml").unlink(missing_ok=True)
    if engine == "sqlite":
        remove_sqlite(args.data_dir / f"import-{tag}.db")
    else:
        pg_drop(args.pg_url, _pg_name(rows))


def _import_once(engine: str, rows: int, csv_path: Path, args: argparse.Namespace) -> ChildRun:
    cfg, _ = _fresh_database(engine, rows, args)
    cli_args = ["--config", str(cfg), "import", str(csv_path), "--source", "bench"]
    argv = [*slamon_command(), *cli_args]
    if args.profile:
        prof = args.data_dir / f"import-{engine}-{rows}.prof"
        argv = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "slamon", *cli_args]
    run = run_child(argv)
    expected = f"{rows} rows: {rows} new"
    if expected not in " ".join(run.stdout.split()):
        raise RuntimeError(f"unexpected import output (wanted {expected!r}):\n{run.stdout}")
    return run


def _size_on_disk(engine: str, rows: int, args: argparse.Namespace) -> str:
    if engine == "sqlite":
        db = args.data_dir / f"import-{engine}-{rows}-{os.getpid()}.db"
        return f"{db.stat().st_size / 1e6:.0f} MB"
    with psycopg.connect(pg_database_url(args.pg_url, _pg_name(rows))) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return f"{row[0] / 1e6:.0f} MB" if row else "?"


def _print_profile(engine: str, rows: int, args: argparse.Namespace) -> None:
    prof = args.data_dir / f"import-{engine}-{rows}.prof"
    print(f"\n--- cProfile of the import, {engine}, {rows} rows ({prof}), top by cumulative time")
    stats = pstats.Stats(str(prof))
    stats.sort_stats("cumulative").print_stats(30)
    print(f"--- {engine}, {rows} rows, top by own time")
    stats.sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=GOAL_ROWS, help="rows of the large file")
    parser.add_argument(
        "--small-rows",
        type=int,
        default=100_000,
        help="rows of the small file (memory flatness check); 0 to skip",
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL admin URL")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--tz", default=DEFAULT_TZ, help="the config's timezone")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run each import under cProfile (slower; prints where the time goes; 1 round)",
    )
    args = parser.parse_args(argv)
    # SIGTERM as an exception, so that the cleanup (databases, files) in finally runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.profile:
        args.rounds = 1
    # before the runs: the checkout may change under them
    version, fingerprint = slamon_version(), slamon_fingerprint()
    engines = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    sizes = sorted({args.rows, *([args.small_rows] if args.small_rows > 0 else [])})
    files = {n: ensure_csv(n, args.seed, args.data_dir, args.tz) for n in sizes}

    runs: dict[tuple[str, int], list[ChildRun]] = defaultdict(list)
    disk: dict[tuple[str, int], str] = {}
    loads: list[str] = [load_average()]
    for rnd in range(1, args.rounds + 1):
        for n in sizes:
            for engine in engines:
                try:
                    run = _import_once(engine, n, files[n], args)
                    disk[engine, n] = _size_on_disk(engine, n, args)
                finally:
                    _cleanup(engine, n, args)
                runs[engine, n].append(run)
                print(
                    f"round {rnd}: {engine:10} {n:>9} rows  {run.seconds:7.2f} s"
                    f"  {n / run.seconds:9.0f} rows/s  peak RSS {run.peak_rss_mb:6.1f} MB"
                    f"  (load {load_average()})",
                    file=sys.stderr,
                )
                loads.append(load_average())

    if args.profile:
        for n in sizes:
            for engine in engines:
                _print_profile(engine, n, args)

    print()
    print(
        f"slamon import, medians of {args.rounds} interleaved rounds; machine: {os.cpu_count()}"
        f" cores; load average (1/5/15 min) before: {loads[0]}, after: {loads[-1]}"
    )
    print(f"slamon: {version}")
    if slamon_fingerprint() != fingerprint:
        print(f"!!! slamon changed during the run: now {slamon_version()}; figures are mixed !!!")
    if args.profile:
        print("(under cProfile: times are inflated, read them only relative to each other)")
    table = []
    for engine in engines:
        for n in sizes:
            rs = runs[engine, n]
            secs = median([r.seconds for r in rs])
            table.append(
                [
                    engine,
                    f"{n:,}",
                    f"{secs:.2f}",
                    f"{min(r.seconds for r in rs):.2f}-{max(r.seconds for r in rs):.2f}",
                    f"{n / secs:,.0f}",
                    f"{median([r.peak_rss_mb for r in rs]):.1f}",
                    f"{max(r.peak_rss_mb for r in rs):.1f}",
                    disk.get((engine, n), "?"),
                ]
            )
    print_table(
        [
            "engine",
            "rows",
            "median s",
            "range s",
            "rows/s",
            "peak RSS MB (median)",
            "peak RSS MB (max)",
            "db size",
        ],
        table,
    )
    print()
    for engine in engines:
        if len(sizes) == 2:
            small, large = (median([r.peak_rss_mb for r in runs[engine, n]]) for n in sizes)
            print(
                f"memory, {engine}: {small:.1f} MB at {sizes[0]:,} rows, {large:.1f} MB at"
                f" {sizes[1]:,} rows ({large / small:.2f}x for {sizes[1] / sizes[0]:.0f}x the rows)"
            )
    if "sqlite" in engines and args.rows == GOAL_ROWS and not args.profile:
        secs = median([r.seconds for r in runs["sqlite", GOAL_ROWS]])
        verdict = "MET" if secs < GOAL_SECONDS else "MISSED"
        print(
            f"goal: {GOAL_ROWS:,} rows in under {GOAL_SECONDS:.0f} s on SQLite: {verdict}"
            f" ({secs:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
