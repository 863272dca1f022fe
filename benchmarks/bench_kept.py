"""The week x queue report from the roll-up, again, on the databases a `run.py --keep` run left:
what a change to the report's code is worth at a size whose load takes most of an hour.

    python benchmarks/bench_kept.py [--rows 10000000] [--db sqlite|postgresql|both] [--rounds 4]

Per engine and mode (calendar; working with RU holidays): report.run in-process over the
roll-up, its parts (counts; median and p90 from the indexes) as medians of ``--rounds``, and a
hash of the answer, to compare with another checkout's (run it with PYTHONPATH pointing there).
The kept databases have one sync batch committed by the run's upkeep step; run.py's own
figures come from a fresh load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import bench_rollup
from _common import DATA_DIR, DEFAULT_PG_URL, DEFAULT_TZ, pg_database_url, slamon_version
from bench_report import kept_database, make_params, week_by_queue
from generate import DEFAULT_SEED

from slamon.store.engine import make_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--prefix", default="suite", help="the kept databases' prefix")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--tz", default=DEFAULT_TZ)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    sqlite_file, dbname = kept_database(args.data_dir, args.prefix, args.rows, args.seed)
    urls = {
        "sqlite": f"sqlite:///{sqlite_file.resolve().as_posix()}",
        "postgresql": pg_database_url(args.pg_url, dbname),
    }
    engines = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "sqlite" in engines and not sqlite_file.exists():
        raise SystemExit(f"{sqlite_file}: no kept database (run.py --keep --data-dir ...)")
    p = make_params(args.tz)
    request = week_by_queue(p)
    print(f"slamon {slamon_version()}; {args.rows:,} complaints, {args.rounds} rounds (medians)")
    heads = ("engine", "mode", "path", "total s", "counts s", "ranks s")
    print("{:<11} {:<9} {:<7} {:>8} {:>9} {:>8}  answer".format(*heads))
    for e in engines:
        for mode in bench_rollup.MODES:
            cfg = bench_rollup.config_for(urls[e], args.tz, mode)
            engine = make_engine(cfg.database_url)
            spent_all: dict[str, list[float]] = defaultdict(list)
            answers = set()
            try:
                for _ in range(args.rounds):
                    got, spent, plan = bench_rollup.timed_report(
                        engine, cfg, request, use_rollup=True
                    )
                    answers.add(
                        hashlib.sha256(json.dumps(got, sort_keys=True).encode()).hexdigest()
                    )
                    for key, value in spent.items():
                        spent_all[key].append(value)
            finally:
                engine.dispose()
            m = {k: statistics.median(v) for k, v in spent_all.items()}
            answer = answers.pop()[:16] if len(answers) == 1 else "DIFFERS BETWEEN ROUNDS"
            print(
                f"{e:<11} {mode:<9} {plan[0]:<7} {m['total']:8.3f} {m.get('counts', 0):9.3f}"
                f" {m.get('ranks', 0):8.3f}  {answer}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
