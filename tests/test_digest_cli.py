"""`slamon digest preview NAME [--as-of T] --out FILE.html`: writes the HTML part and nothing
else, opens nothing; errors are one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import ru_range_dash
from slamon.cli import cli
from slamon.domain import ComplaintRecord
from slamon.store import migrate
from slamon.store.complaints import apply_batch, ensure_source
from slamon.store.engine import make_engine, write_transaction

AS_OF = "2026-03-23T08:00:00Z"
DIGEST = """
[digests.weekly]
schedule = "0 8 * * mon"
recipients = ["head@example.com"]
locale = "ru"

[digests.billing]
schedule = "0 9 * * mon-fri"
recipients = ["billing@example.com"]
scope = { queue = "billing" }
period = "day"
"""


@pytest.fixture
def workdir(tmp_path: Path, db_url: str) -> Path:
    """A config with two digests and a migrated database holding a few complaints."""
    (tmp_path / "slamon.toml").write_text(
        f'[database]\nurl = "{db_url}"\n' + DIGEST, encoding="utf-8"
    )
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        created = datetime(2026, 3, 17, 9, 0, tzinfo=UTC)
        with write_transaction(engine) as conn:
            ensure_source(conn, "crm", "import", created)
            apply_batch(
                conn,
                "crm",
                [
                    ComplaintRecord("1", created, None, queue="billing", subject="<b>Refund</b>"),
                    ComplaintRecord("2", created, created.replace(day=18), queue="delivery"),
                ],
                created,
            )
    finally:
        engine.dispose()
    return tmp_path


def run(workdir: Path, *args: str) -> tuple[int, str]:
    old = Path.cwd()
    os.chdir(workdir)
    try:
        result = CliRunner().invoke(cli, list(args), prog_name="slamon")
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def test_preview_writes_the_html_and_nothing_else(workdir: Path) -> None:
    before = set(os.listdir(workdir))
    code, output = run(workdir, "digest", "preview", "weekly", "--as-of", AS_OF, "--out", "d.html")
    assert code == 0, output
    new = {f for f in set(os.listdir(workdir)) - before if not f.startswith("slamon.db-")}
    assert new == {"d.html"}  # (SQLite's own -wal and -shm files aside)
    html = (workdir / "d.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert f"Уровень сервиса по жалобам · неделя 16{ru_range_dash()}22 мар. 2026" in html
    assert "&lt;b&gt;Refund&lt;/b&gt;" in html
    size = len(html.encode("utf-8")) / 1024
    assert output == (
        f"d.html: {size:.1f} KB, subject: Уровень сервиса, неделя 16{ru_range_dash()}22 мар."
        " 2026\u202fг.:"
        " ✘ за 5 дней закрыто 50,0\xa0%, цель 80\xa0%\n"
    )


def test_preview_follows_as_of_and_scope(workdir: Path) -> None:
    code, output = run(
        workdir,
        "digest",
        "preview",
        "billing",
        "--as-of",
        "2026-03-21T10:00:00Z",
        "--out",
        "b.html",
    )
    assert code == 0, output
    html = (workdir / "b.html").read_text(encoding="utf-8")
    assert "Service level (billing), Fri, Mar 20, 2026" in output
    assert "Scope: queue: billing" in html
    assert "billing · #1</div>" in html  # open, oldest
    assert "#2</div>" not in html and "delivery" not in html  # out of scope


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["daily", "--out", "x.html"],
            "error: no digest 'daily' in slamon.toml (digests: billing, weekly)",
        ),
        (
            ["weekly", "--as-of", "yesterday", "--out", "x.html"],
            "error: --as-of: cannot read 'yesterday' as an ISO 8601 instant",
        ),
    ],
)
def test_preview_errors(workdir: Path, args: list[str], message: str) -> None:
    code, output = run(workdir, "digest", "preview", *args)
    assert (code, output.strip()) == (2, message)
    assert not (workdir / "x.html").exists()


def test_preview_needs_out(workdir: Path) -> None:
    code, output = run(workdir, "digest", "preview", "weekly")
    assert code == 2 and "Missing option '--out'" in output


def test_preview_on_an_unmigrated_database(tmp_path: Path) -> None:
    (tmp_path / "slamon.toml").write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "empty.db"}"\n' + DIGEST, encoding="utf-8"
    )
    code, output = run(tmp_path, "digest", "preview", "weekly", "--out", "x.html")
    assert code == 2 and "has no slamon schema yet: run `slamon db upgrade`" in output
    assert not (tmp_path / "x.html").exists()


def test_preview_as_a_process(workdir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slamon",
            "digest",
            "preview",
            "weekly",
            "--as-of",
            AS_OF,
            "--out",
            str(workdir / "p.html"),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SLAMON_CONFIG": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout.startswith(f"{workdir / 'p.html'}: ")
    assert (workdir / "p.html").stat().st_size > 5000
