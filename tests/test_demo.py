"""`slamon demo` with no config at all: a database, a report, and what to do next."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import ru_range_dash


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

    # The preview of the demo's weekly digest, written beside the database and announced.
    digest = tmp_path / "slamon-demo-digest.html"
    assert (
        "Digest preview: slamon-demo-digest.html (subject: Service level, week of Nov 9\u2009–"
        "\u200915, 2026: ✘ 60.1% closed within 3 days, target 70%)" in out
    )
    html = digest.read_text(encoding="utf-8")
    assert len(html.encode("utf-8")) < 100 * 1024
    assert "Complaint service level · week of Nov 9\u2009–\u200915, 2026" in html
    assert "By queue, worst first" in html and "Oldest open complaints" in html
    assert "the mean closure time is 3.1 days" in html

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

    # Its config carries digests: the Russian one, scoped to the delivery queue, previews too.
    preview = subprocess.run(
        [
            sys.executable,
            "-m",
            "slamon",
            "--config",
            "slamon-demo.toml",
            "digest",
            "preview",
            "delivery-ru",
            "--as-of",
            "2026-11-20T09:00:00Z",
            "--out",
            "digest-ru.html",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert preview.returncode == 0, preview.stderr
    assert f"Уровень сервиса (delivery), неделя 9{ru_range_dash()}15 нояб." in preview.stdout
    ru = (tmp_path / "digest-ru.html").read_text(encoding="utf-8")
    assert "Срез: очередь: delivery" in ru and "Разбивка: канал (сначала худшие)" in ru
