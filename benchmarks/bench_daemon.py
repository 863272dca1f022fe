"""The daemon at rest: resident memory and CPU of `slamon run` between its jobs (issue #8's goal:
RSS under 120 MB, CPU near zero).

    python benchmarks/bench_daemon.py [--rows 100000] [--seconds 180] [--db sqlite|postgresql]

A database holding ``--rows`` generated complaints (imported untimed), a CSV source pointing at
the same export (synced every minute: the file is unchanged, so each sync finds nothing new,
as a quiet ticket system would), the alert rules evaluated after each sync, the outbox
delivered every minute. The real `slamon run` is started as a child; after a warm-up its
/proc/PID/status (VmRSS, VmHWM) and /proc/PID/stat (utime + stime) are read every half second
for ``--seconds``. Printed: RSS at the end and its peak, CPU over the whole window (jobs
included), and the median and 95th percentile of the per-second CPU share (most seconds are
between jobs). The child must stop cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    DATA_DIR,
    DEFAULT_PG_URL,
    DEFAULT_TZ,
    ensure_csv,
    pg_create,
    pg_drop,
    run_child,
    slamon_command,
    slamon_version,
    write_config,
)
from generate import DEFAULT_SEED

TICKS = os.sysconf("SC_CLK_TCK")
SOURCE = "export"

# the suite's config (_common.CONFIG_TEMPLATE) and then:
DAEMON_CONFIG = """
[daemon]
log_format = "json"
deliver_every = "1m"

[sources.{source}]
kind = "csv"
path = "{csv}"
timezone = "{tz}"
sync_every = "1m"
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def memory_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (the peak) of ``pid``, MB."""
    got: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                got[key] = int(value.split()[0]) / 1024
    return got["VmRSS"], got["VmHWM"]


def measure(pid: int, seconds: float, every: float = 0.5) -> dict[str, float]:
    samples: list[tuple[float, float]] = []  # (wall, cpu seconds)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append((time.monotonic(), cpu_seconds(pid)))
        time.sleep(every)
    samples.append((time.monotonic(), cpu_seconds(pid)))
    rss, peak = memory_mb(pid)
    per_second: list[float] = []
    step = max(1, round(1 / every))
    for (w0, c0), (w1, c1) in zip(samples[::step], samples[step::step], strict=False):
        per_second.append(100 * (c1 - c0) / (w1 - w0))
    (w0, c0), (w1, c1) = samples[0], samples[-1]
    return {
        "window_s": w1 - w0,
        "rss_mb": rss,
        "peak_rss_mb": peak,
        "cpu_pct_window": 100 * (c1 - c0) / (w1 - w0),
        "cpu_pct_median_second": statistics.median(per_second),
        "cpu_pct_p95_second": statistics.quantiles(per_second, n=20)[-1],
        "busy_seconds": float(sum(1 for x in per_second if x >= 5)),
    }


def run(
    rows: int,
    seconds: float,
    *,
    warmup: float = 20,
    db: str = "sqlite",
    pg_url: str = DEFAULT_PG_URL,
    tz: str = DEFAULT_TZ,
    data_dir: Path = DATA_DIR,
) -> dict[str, float]:
    """`slamon run` over ``rows`` complaints, measured for ``seconds`` after ``warmup``; the
    figures of measure(), "syncs" (logged from the start) and "exit" (its status on SIGTERM)."""
    csv_path = ensure_csv(rows, DEFAULT_SEED, data_dir, tz)
    dbname = f"slamon_bench_daemon_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="slamon-daemon-") as tmp:
        if db == "sqlite":
            url = f"sqlite:///{Path(tmp, 'slamon.db').as_posix()}"
        else:
            url = pg_create(pg_url, dbname)
        cfg = write_config(Path(tmp, "slamon.toml"), url, tz)
        with cfg.open("a", encoding="utf-8") as fh:
            fh.write(DAEMON_CONFIG.format(tz=tz, csv=csv_path.as_posix(), source=SOURCE))
        cli = [*slamon_command(), "--config", str(cfg)]
        try:
            run_child([*cli, "db", "upgrade"])
            run_child([*cli, "db", "rebuild-rollup"])
            synced = run_child([*cli, "sync"])  # the first, full read: untimed
            print(f"daemon: synced {rows:,} rows in {synced.seconds:.1f} s", file=sys.stderr)
            log = Path(tmp, "daemon.log")
            with log.open("wb") as out:
                child = subprocess.Popen(
                    [*cli, "run"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
                try:
                    time.sleep(warmup)
                    if child.poll() is not None:
                        raise RuntimeError(f"slamon run exited early:\n{log.read_text()[-3000:]}")
                    figures = measure(child.pid, seconds)
                finally:
                    child.send_signal(signal.SIGTERM)
                    try:
                        code = child.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        code = child.wait()
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        finally:
            if db == "postgresql":
                pg_drop(pg_url, dbname)
    if code != 0:
        print("\n".join(lines[-20:]), file=sys.stderr)
    figures["syncs"] = float(sum(1 for line in lines if f"sync {SOURCE}: " in line))
    figures["exit"] = float(code)
    return {"rows": float(rows), "warmup_s": warmup, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="complaints in the database")
    parser.add_argument("--seconds", type=float, default=180, help="the measured window")
    parser.add_argument("--warmup", type=float, default=20, help="seconds before measuring")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL admin URL")
    parser.add_argument("--tz", default=DEFAULT_TZ)
    args = parser.parse_args(argv)
    f = run(args.rows, args.seconds, warmup=args.warmup, db=args.db, pg_url=args.pg_url, tz=args.tz)
    print(f"slamon {slamon_version()}; {args.db}, {args.rows:,} complaints")
    print(
        f"window {f['window_s']:.0f} s after {args.warmup:.0f} s of warm-up (a sync of an"
        f" unchanged CSV source and the alert rules every minute: {f['syncs']:.0f} syncs"
        " logged from the start)"
    )
    print(f"RSS at the end        {f['rss_mb']:7.1f} MB")
    print(f"peak RSS (VmHWM)      {f['peak_rss_mb']:7.1f} MB")
    print(f"CPU over the window   {f['cpu_pct_window']:7.2f} %")
    print(f"CPU per second median {f['cpu_pct_median_second']:7.2f} %")
    print(f"CPU per second p95    {f['cpu_pct_p95_second']:7.2f} %")
    print(f"seconds >= 5 % CPU    {f['busy_seconds']:7.0f}")
    print(f"exit status on SIGTERM: {f['exit']:.0f}")
    return 0 if f["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
