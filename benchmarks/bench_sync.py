"""Sync throughput: `slamon sync` from a local fake Redmine holding N tickets (pages of 100, as
Redmine serves them), into SQLite and/or PostgreSQL. Prints complaints/s and requests.

    python benchmarks/bench_sync.py [--tickets 100000] [--db sqlite|postgresql|both]

The fake (tests/fakes/redmine.py) is a real HTTP server on 127.0.0.1 in this process; slamon
runs as a subprocess, as in production, so the figure includes HTTP, JSON decoding, the merge
and the upsert with its cursor in one transaction per page.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakes.redmine import FakeRedmine  # noqa: E402


def seed(api: FakeRedmine, n: int) -> None:
    rng = random.Random(1)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(1, n + 1):
        api.create(
            i,
            start + timedelta(minutes=5 * i),
            project=rng.choice(["Billing", "Delivery", "Returns", "Tech"]),
            status=rng.choice([1, 2, 5, 5, 5]),
        )


def run(url: str, api: FakeRedmine, label: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "slamon.toml"
        conf.write_text(
            f'[database]\nurl = "{url}"\n'
            f'[sources.rm]\nkind = "redmine"\nurl = "{api.url}"\napi_key_env = "BENCH_KEY"\n'
            "rate_limit = 100000\n",
            encoding="utf-8",
        )
        env = {**os.environ, "BENCH_KEY": api.api_key}
        base = [sys.executable, "-m", "slamon", "--config", str(conf)]
        subprocess.run([*base, "db", "upgrade"], check=True, env=env, capture_output=True)
        before = len(api.requests)
        started = time.perf_counter()
        proc = subprocess.run([*base, "sync"], env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        n = len(api.issues)
        print(
            f"{label:<11} {n:>8} tickets  {elapsed:7.1f} s  {n / elapsed:8.0f} complaints/s"
            f"  {len(api.requests) - before:>5} requests  peak RSS (max so far) {rss:.0f} MB"
        )
        print(f"            {proc.stdout.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1/postgres")
    args = parser.parse_args()

    api = FakeRedmine(api_key="bench-key").start()
    try:
        t0 = time.perf_counter()
        seed(api, args.tickets)
        print(f"fake Redmine with {args.tickets} tickets ready in {time.perf_counter() - t0:.1f} s")
        if args.db in ("sqlite", "both"):
            with tempfile.TemporaryDirectory() as tmp:
                run(f"sqlite:///{Path(tmp) / 'sync.db'}", api, "SQLite")
        if args.db in ("postgresql", "both"):
            import psycopg

            name = f"slamon_bench_sync_{uuid.uuid4().hex[:8]}"
            admin = args.pg_url.replace("postgresql://", "postgresql://", 1)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                run(admin.rsplit("/", 1)[0] + f"/{name}", api, "PostgreSQL")
            finally:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        api.stop()


if __name__ == "__main__":
    main()
