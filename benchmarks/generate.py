"""Deterministic synthetic complaints as a CSV export that `slamon import` reads.

The same ``--rows`` and ``--seed`` always give the same file, byte for byte. Rows are written as
they are generated (constant memory at any size), oldest creation first, over about two years
ending at a fixed instant (``END``), so that reports over them are reproducible:

- 20 queues (skewed shares, each with its own closure-time scale), 5 channels, 30 categories,
  4 priorities;
- closure times lognormal (median about 1.7 days) with a heavier tail for 4 % of complaints;
- about 10 % open (9.5 % never closed, plus those whose closure falls after ``END``);
- about 0.05 % closed before they were created (slamon must exclude them);
- created_at / closed_at as ISO 8601 with an offset, "Z" or "+03:00", and about 0.5 % naive
  (local time in ``--naive-tz``, which slamon reads in its configured time zone).

Usage: python benchmarks/generate.py --rows 1000000 --out benchmarks/data/complaints-1000000.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

END = datetime(2026, 11, 20, tzinfo=UTC)
SPAN_DAYS = 730
START = END - timedelta(days=SPAN_DAYS)
DEFAULT_SEED = 20261120
COLUMNS = (
    "id",
    "created_at",
    "closed_at",
    "status",
    "queue",
    "channel",
    "category",
    "priority",
    "subject",
    "url",
)

QUEUES = tuple(f"q{i:02d}" for i in range(1, 21))
# Zipf-like shares: the biggest queue takes about 6x the smallest.
QUEUE_WEIGHTS = tuple(1.0 / (1 + i) ** 0.6 for i in range(20))
# Each queue's closure-time scale (some fast, some slow), fixed, not drawn from the seed.
QUEUE_SCALE = {q: 0.6 + 0.08 * ((i * 7) % 20) for i, q in enumerate(QUEUES)}
CHANNELS = ("phone", "email", "chat", "web", "social")
CHANNEL_WEIGHTS = (0.35, 0.30, 0.20, 0.10, 0.05)
CATEGORIES = tuple(f"cat-{i:02d}" for i in range(1, 31))
PRIORITIES = ("normal", "high", "urgent", "low")
PRIORITY_WEIGHTS = (0.70, 0.20, 0.05, 0.05)
PRIORITY_SCALE = {"normal": 1.0, "high": 0.8, "urgent": 0.5, "low": 1.4}
SUBJECTS = (
    "Возврат денег не поступил",
    "Курьер не приехал",
    "Refund not received",
    "Charged twice for one order",
    "Товар пришёл повреждённым",
    "Не могу войти в приложение",
    "Грубый оператор на линии",
    "Wrong item delivered",
)

P_NEVER_CLOSED = 0.095
P_CLOSED_BEFORE_CREATED = 0.0005
P_NAIVE = 0.005
P_TAIL = 0.04
MSK = timezone(timedelta(hours=3))


def _cumulative(weights: tuple[float, ...]) -> list[float]:
    total = sum(weights)
    acc, out = 0.0, []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def _pick(rng: random.Random, values: tuple[str, ...], cum: list[float]) -> str:
    u = rng.random()
    for value, edge in zip(values, cum, strict=True):
        if u < edge:
            return value
    return values[-1]


def _closure_seconds(rng: random.Random, scale: float) -> int:
    """Lognormal closure time, median about 1.7 days times ``scale``; 4 % with a long tail."""
    days = math.exp(rng.gauss(math.log(1.7), 0.9)) * scale
    if rng.random() < P_TAIL:
        days *= rng.uniform(3.0, 12.0)
    return max(60, int(days * 86400))


class _Formatter:
    """ISO 8601 text of epoch seconds: "Z", "+03:00", or naive local time in ``naive_tz``."""

    def __init__(self, naive_tz: ZoneInfo) -> None:
        self.naive_tz = naive_tz

    def __call__(self, ts: int, style: int) -> str:
        if style == 0:
            return datetime.fromtimestamp(ts, UTC).isoformat()[:19] + "Z"
        if style == 1:
            return datetime.fromtimestamp(ts, MSK).isoformat()
        return datetime.fromtimestamp(ts, self.naive_tz).replace(tzinfo=None).isoformat()


def rows(n: int, seed: int, naive_tz: ZoneInfo) -> Iterator[tuple[str, ...]]:
    """The ``n`` complaints, oldest creation first; deterministic in (n, seed)."""
    rng = random.Random(seed)
    fmt = _Formatter(naive_tz)
    queue_cum = _cumulative(QUEUE_WEIGHTS)
    channel_cum = _cumulative(CHANNEL_WEIGHTS)
    priority_cum = _cumulative(PRIORITY_WEIGHTS)
    start = int(START.timestamp())
    end = int(END.timestamp())
    step = (end - start) / n
    for i in range(n):
        created = start + int((i + rng.random()) * step)
        created = min(created, end - 1)
        queue = _pick(rng, QUEUES, queue_cum)
        channel = _pick(rng, CHANNELS, channel_cum)
        category = rng.choice(CATEGORIES)
        priority = _pick(rng, PRIORITIES, priority_cum)
        u = rng.random()
        closed: int | None
        if u < P_CLOSED_BEFORE_CREATED:
            closed = created - rng.randint(60, 2 * 86400)
        elif u < P_CLOSED_BEFORE_CREATED + P_NEVER_CLOSED:
            closed = None
        else:
            closed = created + _closure_seconds(rng, QUEUE_SCALE[queue] * PRIORITY_SCALE[priority])
            if closed > end:
                closed = None  # not closed yet as of the export
        style = 2 if rng.random() < P_NAIVE else rng.randrange(2)
        number = 1_000_000 + i
        yield (
            f"C{number}",
            fmt(created, style),
            "" if closed is None else fmt(closed, style),
            "open" if closed is None else "closed",
            queue,
            channel,
            category,
            priority,
            rng.choice(SUBJECTS),
            f"https://helpdesk.example/tickets/{number}",
        )


def write_csv(
    path: Path, n: int, seed: int = DEFAULT_SEED, naive_tz: str = "Europe/Moscow"
) -> None:
    """Write the file through a temporary name, so that a half-written file never looks done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows(n, seed, ZoneInfo(naive_tz)))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="number of complaints")
    parser.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument(
        "--naive-tz",
        default="Europe/Moscow",
        help="zone of the naive timestamps (use the zone of the slamon config that imports them)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    t0 = time.perf_counter()
    write_csv(args.out, args.rows, args.seed, args.naive_tz)
    secs = time.perf_counter() - t0
    size = args.out.stat().st_size / 1e6
    print(f"{args.out}: {args.rows} rows, {size:.1f} MB, {secs:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
