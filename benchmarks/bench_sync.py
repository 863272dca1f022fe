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
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import pg_create, pg_drop, run_child, slamon_command

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


def run(url: str, api: FakeRedmine, label: str) -> dict[str, Any]:
    """One full `slamon sync` of every ticket the fake holds into the empty database ``url``:
    wall time, the child's own peak RSS, requests; printed and returned."""
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "slamon.toml"
        conf.write_text(
            f'[database]\nurl = "{url}"\n'
            f'[sources.rm]\nkind = "redmine"\nurl = "{api.url}"\napi_key_env = "BENCH_KEY"\n'
            "rate_limit = 100000\n",
            encoding="utf-8",
        )
        os.environ["BENCH_KEY"] = api.api_key  # the children inherit it
        base = [*slamon_command(), "--config", str(conf)]
        run_child([*base, "db", "upgrade"])
        before = len(api.requests)
        child = run_child([*base, "sync"], check=False)
        if child.returncode != 0:
            raise SystemExit(child.stderr)
        n = len(api.issues)
        result = {
            "engine": label,
            "tickets": n,
            "seconds": child.seconds,
            "rate": n / child.seconds,
            "requests": len(api.requests) - before,
            "peak_rss_mb": child.peak_rss_mb,
            "output": child.stdout.strip(),
        }
        print(
            f"{label:<11} {n:>8} tickets  {child.seconds:7.1f} s  {n / child.seconds:8.0f}"
            f" complaints/s  {result['requests']:>5} requests  peak RSS {child.peak_rss_mb:.0f} MB"
        )
        print(f"            {result['output']}")
        return result


def measure(tickets: int, engines: list[str], pg_url: str) -> list[dict[str, Any]]:
    """A fake Redmine with ``tickets`` tickets, synced into a fresh database per engine."""
    api = FakeRedmine(api_key="bench-key").start()
    results = []
    try:
        t0 = time.perf_counter()
        seed(api, tickets)
        print(f"fake Redmine with {tickets} tickets ready in {time.perf_counter() - t0:.1f} s")
        if "sqlite" in engines:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(run(f"sqlite:///{Path(tmp) / 'sync.db'}", api, "sqlite"))
        if "postgresql" in engines:
            name = f"slamon_bench_sync_{uuid.uuid4().hex[:8]}"
            try:
                results.append(run(pg_create(pg_url, name), api, "postgresql"))
            finally:
                pg_drop(pg_url, name)
    finally:
        api.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1/postgres")
    args = parser.parse_args()
    engines = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    measure(args.tickets, engines, args.pg_url)


if __name__ == "__main__":
    main()
