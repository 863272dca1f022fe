"""`slamon demo` with no config at all: a database, a report, and what to do next."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_from_an_empty_directory(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "slamon", "demo", "--as-of", "2026-11-20T09:00:00Z"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "100"},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert (tmp_path / "slamon-demo.db").is_file()
    assert "Demo contact center: 19" in out  # about 20,000 complaints
    assert "The mean closure time is 3.1 days, which sounds fine; but only 68 %" in out
    assert "Queue 'delivery' slipped" in out
    # the slipped queue raises its alert (judged by the Wilson rule; nothing recorded or sent)
    assert "level: 3-day level of queue delivery: 43.3 %, target 70.0 %" in out
    assert "TOTAL" in out and "≤3d" in out and "✘" in out
    assert "slamon db upgrade" in out and "config.example.toml" in out

    # The demo's database answers the report through the config it wrote beside it.
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "slamon",
            "--config",
            "slamon-demo.toml",
            "report",
            "--as-of",
            "2026-11-20T09:00:00Z",
            "--by",
            "queue",
            "--format",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(report.stdout)
    queues = {r["segment"]["queue"]: r for r in data["rows"]}
    assert set(queues) == {"billing", "delivery", "returns", "technical", "vip"}
    delivery = queues["delivery"]["levels"]["3"]
    assert delivery["met"] is False and delivery["share"] < 0.55
    assert queues["vip"]["levels"]["3"]["met"] is True
    assert data["total"]["open"] > 0
