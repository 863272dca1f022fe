"""Shared pieces of the benchmark scripts: data files, configs, databases, timed children."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import generate

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1/postgres"
DEFAULT_TZ = "Europe/Moscow"

CONFIG_TEMPLATE = """\
[database]
url = "{url}"

[service_level]
thresholds = [3, 5, 10]
day_mode = "calendar"
timezone = "{tz}"
closure = "final"
"""


def slamon_command() -> list[str]:
    """The real CLI: the `slamon` script beside this interpreter, else `python -m slamon`."""
    script = Path(sys.executable).with_name("slamon")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "slamon"]


def _git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
    ).stdout


def slamon_version() -> str:
    """The slamon being measured: its version, and the commit of its checkout when it has one."""
    import slamon

    where = Path(slamon.__file__).resolve().parent.parent
    text = f"{slamon.__version__} from {where}"
    try:
        head = _git(where, "rev-parse", "--short", "HEAD").strip()
        dirty = _git(where, "status", "--porcelain", "--", "slamon", "migrations").strip()
    except (OSError, subprocess.CalledProcessError):
        return text
    return f"{text}, commit {head}" + (" + local changes" if dirty else "")


def slamon_fingerprint() -> str:
    """What decides the figures: the code under slamon/ and migrations/ (committed trees, local
    changes and untracked files), not the commit: a commit elsewhere changes nothing measured."""
    import hashlib

    import slamon

    where = Path(slamon.__file__).resolve().parent.parent
    try:
        parts = [
            _git(where, "rev-parse", "HEAD:slamon", "HEAD:migrations"),
            _git(where, "diff", "HEAD", "--", "slamon", "migrations"),
            _git(where, "ls-files", "--others", "--exclude-standard", "--", "slamon", "migrations"),
        ]
    except (OSError, subprocess.CalledProcessError):
        return slamon_version()
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def ensure_csv(rows: int, seed: int, data_dir: Path, tz: str) -> Path:
    """The generated export of ``rows`` complaints (generated once, then reused)."""
    path = data_dir / f"complaints-{rows}-{seed}.csv"
    if not path.exists():
        t0 = time.perf_counter()
        generate.write_csv(path, rows, seed, tz)
        print(f"generated {path} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return path


def write_config(path: Path, url: str, tz: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG_TEMPLATE.format(url=url, tz=tz), encoding="utf-8")
    return path


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class ChildRun:
    argv: tuple[str, ...]
    seconds: float
    peak_rss_mb: float  # this child's own peak (ru_maxrss of wait4 on its pid)
    returncode: int
    stdout: str
    stderr: str


def run_child(
    argv: Sequence[str], *, stdout_file: Path | None = None, check: bool = True
) -> ChildRun:
    """Run a command, timing its wall clock, and read the command's own peak RSS.

    The peak comes from /usr/bin/time (%M: ru_maxrss of the process it forked), not from wait4()
    on a child of this script: Linux carries a forked child's RSS high-water mark across exec(),
    so a child forked from this (large) process would report at least this process's RSS.
    /usr/bin/time is small, so what it forks starts small. Without it, a small Python helper
    does the same fork-and-wait4 (its own ~10 MB then sets the floor).
    Output goes to files, not pipes, so a large report can never block the child."""
    out_path = stdout_file or DATA_DIR / f".child-{os.getpid()}.out"
    err_path = DATA_DIR / f".child-{os.getpid()}.err"
    rss_path = DATA_DIR / f".child-{os.getpid()}.rss"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if Path("/usr/bin/time").is_file():
        wrapper = ["/usr/bin/time", "-f", "%M", "-o", str(rss_path)]
    else:
        wrapper = [sys.executable, "-c", _RSS_HELPER, str(rss_path)]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*wrapper, *argv], stdout=out, stderr=err, stdin=subprocess.DEVNULL, check=False
        )
        seconds = time.perf_counter() - t0
    text_out = out_path.read_text(encoding="utf-8", errors="replace")
    text_err = err_path.read_text(encoding="utf-8", errors="replace")
    rss_lines = rss_path.read_text(encoding="utf-8").split() if rss_path.exists() else []
    peak_kb = float(rss_lines[-1]) if rss_lines and rss_lines[-1].isdigit() else math.nan
    for path in (err_path, rss_path, *([] if stdout_file else [out_path])):
        path.unlink(missing_ok=True)
    run = ChildRun(tuple(argv), seconds, peak_kb / 1024, proc.returncode, text_out, text_err)
    if check and run.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {run.returncode}:\n{text_err[-3000:]}{text_out[-2000:]}"
        )
    return run


_RSS_HELPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def pg_admin_connect(admin_url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(admin_url, autocommit=True)


def pg_database_url(admin_url: str, name: str) -> str:
    """The admin URL pointed at database ``name`` (plain postgresql://, as slamon takes it)."""
    from sqlalchemy.engine import make_url

    url = make_url(admin_url).set(database=name)
    if url.drivername != "postgresql":
        url = url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def pg_create(admin_url: str, name: str) -> str:
    with pg_admin_connect(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_database_url(admin_url, name)


def pg_exists(admin_url: str, name: str) -> bool:
    with pg_admin_connect(admin_url) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def pg_drop(admin_url: str, name: str) -> None:
    with pg_admin_connect(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
