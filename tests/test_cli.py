"""The command line, run as users run it: a real `python -m slamon` process, its exit code, its
stdout and its stderr (errors are one line on stderr, no traceback unless --debug)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from helpers import write_config
from slamon import __version__
from slamon.cli import cli
from slamon.config import load, parse
from slamon.store import migrate
from slamon.store.engine import make_engine, mask_url, normalize_url

SNIPPET = """\
[database]
url = "sqlite:///slamon.db"            # or "postgresql+psycopg://user@host/db"

[service_level]
thresholds = [3, 5, 10]                # days
targets = { "3" = 0.70, "5" = 0.80, "10" = 0.90 }
day_mode = "calendar"                  # calendar | working | elapsed
timezone = "Europe/Moscow"             # IANA name; default UTC
closure = "final"                      # final | first

[calendar]
country = "RU"                         # public holidays from the holidays package
extra_holidays = ["2026-12-31"]
extra_working_days = []
"""

DAY_MODE_ERROR = "slamon.toml: service_level.day_mode: must be one of calendar, working, elapsed"
URL_VAR = "SLAMON_TEST_CLI_DB_URL"
#: Environment that changes how rich renders, or which file slamon reads: not inherited.
_SCRUBBED = (
    "COLUMNS",
    "LINES",
    "FORCE_COLOR",
    "NO_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "CLICOLOR_FORCE",
    "SLAMON_CONFIG",
    URL_VAR,
)


def slamon(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m slamon ARGS` in ``cwd``, its output captured (not a terminal)."""
    environ = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    environ["PYTHONIOENCODING"] = "utf-8"
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "slamon", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2, nothing on stdout, exactly ``error: MESSAGE`` on one line of stderr."""
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {message}\n")


def short_url(db_url: str) -> str:
    """The fixture's SQLite file (tmp_path/slamon.db) as seen from tmp_path, else db_url."""
    return "sqlite:///slamon.db" if db_url.startswith("sqlite") else db_url


def shown(url: str) -> str:
    """How slamon shows a database URL: normalized driver, password masked."""
    return mask_url(normalize_url(url))


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> Iterator[Engine]:
    """./slamon.db in tmp_path, migrated, and ./slamon.toml pointing at it."""
    eng = make_engine(f"sqlite:///{tmp_path / 'slamon.db'}")
    migrate.upgrade(eng)
    write_config(tmp_path / "slamon.toml", '[database]\nurl = "sqlite:///slamon.db"\n')
    try:
        yield eng
    finally:
        eng.dispose()


# --- slamon config check ------------------------------------------------------------------


def test_config_check_ok(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", SNIPPET)
    result = slamon("config", "check", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "slamon.toml: OK (database sqlite:///slamon.db)\n"


def test_config_check_defaults_without_a_file(tmp_path: Path) -> None:
    result = slamon("config", "check", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "(defaults): OK (database sqlite:///slamon.db)\n"


def test_config_check_reads_slamon_config(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    write_config(tmp_path / "conf" / "prod.toml", SNIPPET)
    write_config(tmp_path / "slamon.toml", '[service_level]\nday_mode = "never read"\n')
    result = slamon("config", "check", cwd=tmp_path, env={"SLAMON_CONFIG": "conf/prod.toml"})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "conf/prod.toml: OK (database sqlite:///slamon.db)\n"


def test_config_option_wins_over_slamon_config(tmp_path: Path) -> None:
    write_config(tmp_path / "given.toml", SNIPPET)
    result = slamon(
        "--config", "given.toml", "config", "check", cwd=tmp_path, env={"SLAMON_CONFIG": "no.toml"}
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "given.toml: OK (database sqlite:///slamon.db)\n"


def test_config_check_fails_with_the_key_at_fault(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", SNIPPET.replace('"calendar"', '"weekdays"'))
    result = slamon("config", "check", cwd=tmp_path)
    assert_one_line_error(result, DAY_MODE_ERROR)
    assert "Traceback" not in result.stderr


def test_config_check_debug_shows_the_traceback(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", SNIPPET.replace('"calendar"', '"weekdays"'))
    result = slamon("--debug", "config", "check", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert result.stderr.splitlines()[-1] == f"slamon.errors.ConfigError: {DAY_MODE_ERROR}"


def test_config_check_missing_file(tmp_path: Path) -> None:
    result = slamon("--config", "missing.toml", "config", "check", cwd=tmp_path)
    assert_one_line_error(result, "missing.toml: no such file")


def test_config_check_resolves_url_env(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", f'[database]\nurl_env = "{URL_VAR}"\n')
    result = slamon("config", "check", cwd=tmp_path)
    assert_one_line_error(
        result, f"slamon.toml: database.url_env: environment variable {URL_VAR} is not set"
    )
    url = "postgresql://user:topsecret@db.example/slamon"
    result = slamon("config", "check", cwd=tmp_path, env={URL_VAR: url})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"slamon.toml: OK (database <from ${URL_VAR}>)\n"


def test_config_check_masks_the_password(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", '[database]\nurl = "postgresql://user:secret@host/db"\n')
    result = slamon("config", "check", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "slamon.toml: OK (database postgresql://user:***@host/db)\n"


def test_config_check_prints_paths_verbatim(tmp_path: Path) -> None:
    """A path is text, not rich markup: "[prod]" must not vanish from it."""
    (tmp_path / "[prod]").mkdir()
    write_config(tmp_path / "[prod]" / "slamon.toml", SNIPPET)
    result = slamon("--config", "[prod]/slamon.toml", "config", "check", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "[prod]/slamon.toml: OK (database sqlite:///slamon.db)\n"


def test_long_error_stays_on_one_line(tmp_path: Path) -> None:
    """Not a terminal: no wrapping at 80 columns, whatever the message's length."""
    write_config(tmp_path / "slamon.toml", '[service_level]\ntimezone = "Mars/Olympus_Mons"\n')
    result = slamon("config", "check", cwd=tmp_path)
    assert_one_line_error(
        result,
        "slamon.toml: service_level.timezone: unknown time zone 'Mars/Olympus_Mons'"
        " (use an IANA name such as Europe/Moscow)",
    )


# --- slamon config show -------------------------------------------------------------------


def test_config_show_prints_the_effective_config_as_toml(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", SNIPPET)
    result = slamon("config", "show", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("# effective configuration from slamon.toml\n")
    shown = tomllib.loads(result.stdout)
    # the sections the snippet leaves out are shown with their defaults
    assert shown.pop("alerts")["repeat_every"] == "1d"
    assert shown.pop("email")["security"] == "starttls"
    assert shown.pop("outbox")["claim_timeout"] == "10m"
    assert shown.pop("channels") == {}
    assert shown.pop("daemon") == {
        "log_format": "human",
        "http_port": 0,
        "http_host": "127.0.0.1",
        "standby_poll": "30s",
        "deliver_every": "1m",
        "alerts_every": "15m",
        "housekeeping_every": "1d",
        "stop_timeout": "8s",
    }
    assert shown == {
        "database": {"url": "sqlite:///slamon.db"},
        "service_level": {
            "thresholds": [3, 5, 10],
            "targets": {"3": 0.70, "5": 0.80, "10": 0.90},
            "day_mode": "calendar",
            "timezone": "Europe/Moscow",
            "closure": "final",
        },
        "calendar": {
            "country": "RU",
            "extra_holidays": ["2026-12-31"],
            "extra_working_days": [],
        },
        "import": {"batch_size": 5000, "excluded_statuses": ["deleted", "spam", "merged"]},
        "rollup": {"dimensions": ["queue", "channel", "category", "priority", "source"]},
    }
    # What `config show` prints is itself a configuration giving the same settings.
    again = write_config(tmp_path / "shown.toml", result.stdout)
    assert load(again).settings == parse(SNIPPET, "snippet").settings


def test_config_show_defaults(tmp_path: Path) -> None:
    result = slamon("config", "show", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("# effective configuration from (defaults)\n")
    data = tomllib.loads(result.stdout)
    assert data["database"] == {"url": "sqlite:///slamon.db"}
    assert data["service_level"]["timezone"] == "UTC"


def test_config_show_masks_the_password(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", '[database]\nurl = "postgresql://user:secret@host/db"\n')
    result = slamon("config", "show", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert "secret" not in result.stdout
    assert tomllib.loads(result.stdout)["database"] == {"url": "postgresql://user:***@host/db"}


def test_config_show_names_url_env_without_resolving_it(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", f'[database]\nurl_env = "{URL_VAR}"\n')
    for env in ({URL_VAR: "postgresql://user:topsecret@db.example/slamon"}, {}):
        result = slamon("config", "show", cwd=tmp_path, env=env)
        assert (result.returncode, result.stderr) == (0, "")
        assert "topsecret" not in result.stdout
        assert "db.example" not in result.stdout
        assert tomllib.loads(result.stdout)["database"] == {"url_env": URL_VAR}


def test_config_show_names_url_file_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "db-url").write_text("postgresql://user:topsecret@db.example/slamon\n", "utf-8")
    write_config(tmp_path / "slamon.toml", '[database]\nurl_file = "db-url"\n')
    result = slamon("config", "show", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert "topsecret" not in result.stdout
    assert tomllib.loads(result.stdout)["database"] == {"url_file": "db-url"}


def test_config_show_long_url_is_still_valid_toml(tmp_path: Path) -> None:
    """Output is data, not prose: a long value must not be wrapped into invalid TOML."""
    url = (
        "postgresql://slamon:secret@db.internal.example.com:5432/complaints_production"
        "?application_name=slamon&sslmode=require"
    )
    write_config(tmp_path / "slamon.toml", f'[database]\nurl = "{url}"\n')
    result = slamon("config", "show", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert tomllib.loads(result.stdout)["database"] == {"url": mask_url(url)}
    assert "secret" not in result.stdout


def test_config_show_invalid_config(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", SNIPPET.replace('"calendar"', '"weekdays"'))
    assert_one_line_error(slamon("config", "show", cwd=tmp_path), DAY_MODE_ERROR)


# --- slamon db ----------------------------------------------------------------------------


def test_db_upgrade_then_current(db_url: str, tmp_path: Path) -> None:
    url = short_url(db_url)
    write_config(tmp_path / "slamon.toml", f'[database]\nurl = "{url}"\n')
    head = migrate.head_revision(make_engine(url))
    assert head is not None
    for _ in range(2):  # a second upgrade is a no-op
        result = slamon("db", "upgrade", cwd=tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == f"{shown(url)}: at revision {head}\n"
    result = slamon("db", "current", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{shown(url)}: {head} (current)\n"
    eng = make_engine(db_url)
    try:
        assert migrate.current_revision(eng) == head
    finally:
        eng.dispose()


def test_db_current_on_an_empty_database(db_url: str, tmp_path: Path) -> None:
    url = short_url(db_url)
    write_config(tmp_path / "slamon.toml", f'[database]\nurl = "{url}"\n')
    head = migrate.head_revision(make_engine(url))
    result = slamon("db", "current", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == f"{shown(url)}: empty (this slamon needs {head})\n"


def test_db_unsupported_database(tmp_path: Path) -> None:
    write_config(tmp_path / "slamon.toml", '[database]\nurl = "mysql://user@host/db"\n')
    assert_one_line_error(
        slamon("db", "current", cwd=tmp_path),
        "unsupported database 'mysql': use sqlite:/// or postgresql://",
    )


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (["db", "current"], "cannot open"),
        (["db", "upgrade"], "migration failed on"),
        (["report"], "cannot open"),
    ],
    ids=["db-current", "db-upgrade", "report"],
)
def test_unreachable_database_is_one_line(tmp_path: Path, command: list[str], prefix: str) -> None:
    """Nothing listens on port 1: one line naming the database, password masked."""
    url = "postgresql://slamon:hunter2@127.0.0.1:1/slamon"
    write_config(tmp_path / "slamon.toml", f'[database]\nurl = "{url}"\n')
    result = slamon(*command, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"error: {prefix} {shown(url)}: ")
    assert "Connection refused" in result.stderr
    assert "hunter2" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


# --- slamon report ------------------------------------------------------------------------


def test_report_on_an_unmigrated_database(db_url: str, tmp_path: Path) -> None:
    url = short_url(db_url)
    write_config(tmp_path / "slamon.toml", f'[database]\nurl = "{url}"\n')
    result = slamon("report", "--as-of", "2026-03-01T12:00:00Z", cwd=tmp_path)
    assert_one_line_error(result, f"{shown(url)} has no slamon schema yet: run `slamon db upgrade`")


@pytest.mark.usefixtures("migrated_sqlite")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--since", "2026-03-10", "--until", "2026-03-01"],
            "--since 2026-03-10 is after --until 2026-03-01",
            id="since-after-until",
        ),
        pytest.param(
            ["--since", "2026-03-10", "--as-of", "2026-03-01T12:00:00Z"],
            "--since 2026-03-10 is after --until 2026-03-01",
            id="since-after-as-of",
        ),
        pytest.param(
            ["--by", "queue", "--by", "colour"],
            "cannot group by 'colour': use one of source, queue, channel, category, priority",
            id="by-unknown-field",
        ),
        pytest.param(
            ["--as-of", "yesterday"],
            "--as-of: cannot read 'yesterday' as an ISO 8601 instant",
            id="as-of-unparseable",
        ),
        pytest.param(
            ["--since", "2026-02-30"],
            "--since: cannot read '2026-02-30' as a date (YYYY-MM-DD)",
            id="since-bad-date",
        ),
        pytest.param(
            ["--until", "01.03.2026"],
            "--until: cannot read '01.03.2026' as a date (YYYY-MM-DD)",
            id="until-bad-date",
        ),
    ],
)
def test_report_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    result = slamon("report", *args, cwd=tmp_path)
    assert_one_line_error(result, message)
    assert "Traceback" not in result.stderr


def _empty_level(target: float) -> dict[str, object]:
    return {
        "hits": 0,
        "misses": 0,
        "matured": 0,
        "pending": 0,
        "share": None,
        "ci_low": None,
        "ci_high": None,
        "target": target,
        "met": None,
    }


@pytest.mark.usefixtures("engine")
def test_report_on_an_empty_database(db_url: str, tmp_path: Path) -> None:
    write_config(
        tmp_path / "slamon.toml", SNIPPET.replace("sqlite:///slamon.db", short_url(db_url))
    )
    as_of = ["--as-of", "2026-03-01T12:00:00+03:00"]
    result = slamon("report", *as_of, "--format", "json", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    report = json.loads(result.stdout)
    assert report["rows"] == []
    assert report["total"]["complaints"] == 0
    assert report == {
        "as_of": "2026-03-01T09:00:00+00:00",
        "timezone": "Europe/Moscow",
        "day_mode": "calendar",
        "closure": "final",
        "thresholds": [3, 5, 10],
        "since": "2026-02-02",
        "until": "2026-03-01",
        "period": "none",
        "by": [],
        "rows": [],
        "total": {
            "complaints": 0,
            "excluded": 0,
            "open": 0,
            "mean_days": None,
            "median_days": None,
            "p90_days": None,
            "levels": {"3": _empty_level(0.7), "5": _empty_level(0.8), "10": _empty_level(0.9)},
        },
    }
    # Not a terminal: JSON is the default format.
    default = slamon("report", *as_of, cwd=tmp_path)
    assert (default.returncode, default.stderr) == (0, "")
    assert json.loads(default.stdout) == report
    grouped = slamon("report", *as_of, "--period", "week", "--by", "queue", cwd=tmp_path)
    assert grouped.returncode == 0
    data = json.loads(grouped.stdout)
    assert (data["rows"], data["period"], data["by"]) == ([], "week", ["queue"])
    assert data["total"]["complaints"] == 0


# --- help and version ---------------------------------------------------------------------


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


ALL_COMMANDS = dict(_commands(cli))


def test_the_walk_finds_every_command() -> None:
    expected = {
        ("config",),
        ("config", "check"),
        ("config", "show"),
        ("db",),
        ("db", "upgrade"),
        ("db", "current"),
        ("import",),
        ("report",),
        ("demo",),
    }
    assert expected <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", [(), *ALL_COMMANDS], ids=lambda p: " ".join(p) or "slamon")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    command = ALL_COMMANDS[path] if path else cli
    assert command.help is not None
    assert command.help.strip(), f"slamon {' '.join(path)} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help and param.help.strip(), f"{param.opts} has no help text"
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="slamon")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {' '.join(('slamon', *path))} [OPTIONS]")
    first_paragraph = command.help.strip().split("\n\n")[0]
    assert " ".join(first_paragraph.split()) in " ".join(result.output.split())


def test_help_as_a_process(tmp_path: Path) -> None:
    for flag in ("--help", "-h"):
        result = slamon(flag, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout.startswith("Usage: slamon [OPTIONS] COMMAND [ARGS]...\n")
        for name in ("config", "db", "import", "report", "demo"):
            assert f"\n  {name} " in result.stdout


def test_version(tmp_path: Path) -> None:
    result = slamon("--version", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"slamon, version {__version__}\n"
    assert __version__ == version("slamon")
