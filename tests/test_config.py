"""Configuration: where the file comes from, what it may say, and the exact error for each
mistake (``FILE: key.path: message``, one line per mistake)."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from helpers import write_config
from slamon.config import (
    DEFAULT_DATABASE_URL,
    CalendarSettings,
    DatabaseSettings,
    ImportSettings,
    Settings,
    load,
    parse,
)
from slamon.domain import Closure, DayMode
from slamon.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.toml"

#: The keys of the issue, exactly as written there; they must work as written.
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

URL_VAR = "SLAMON_TEST_CONFIG_DB_URL"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, and no $SLAMON_CONFIG from the environment of the run."""
    monkeypatch.delenv("SLAMON_CONFIG", raising=False)
    monkeypatch.delenv(URL_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load_error(body: str | bytes, name: str = "slamon.toml") -> str:
    """The message of the ConfigError that loading ``body`` from ./NAME raises."""
    path = Path(name)
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        write_config(path, body)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.exit_code == 2
    return str(caught.value)


# --- every error path, with its exact message ---------------------------------------------

ERRORS = [
    pytest.param(
        '[service_level]\nday_mode = "weekly"\n',
        "service_level.day_mode: must be one of calendar, working, elapsed",
        id="day_mode",
    ),
    pytest.param(
        '[service_level]\nclosure = "last"\n',
        "service_level.closure: must be one of final, first",
        id="closure",
    ),
    pytest.param(
        '[service_level]\ntimezone = "Mars/Olympus"\n',
        "service_level.timezone: unknown time zone 'Mars/Olympus'"
        " (use an IANA name such as Europe/Moscow)",
        id="timezone-unknown",
    ),
    pytest.param(
        '[service_level]\ntimezone = "MSK+3"\n',
        "service_level.timezone: unknown time zone 'MSK+3'"
        " (use an IANA name such as Europe/Moscow)",
        id="timezone-not-iana",
    ),
    pytest.param(
        "[service_level]\nthresholds = []\n",
        "service_level.thresholds: needs at least one threshold",
        id="thresholds-empty",
    ),
    # A bad threshold list is one mistake: one line, not a second one blaming the (default)
    # targets for not matching the thresholds that were just rejected.
    pytest.param(
        "[service_level]\nthresholds = [-1, 3]\n",
        "service_level.thresholds: thresholds are whole days from 0 to 366",
        id="thresholds-negative",
    ),
    pytest.param(
        "[service_level]\nthresholds = [3, 367]\n",
        "service_level.thresholds: thresholds are whole days from 0 to 366",
        id="thresholds-too-long",
    ),
    pytest.param(
        "[service_level]\nthresholds = [3, 5, 3]\n",
        "service_level.thresholds: thresholds must not repeat",
        id="thresholds-duplicate",
    ),
    pytest.param(
        '[service_level]\nthresholds = [3, 3]\ntargets = { "3" = 0.7 }\n',
        "service_level.thresholds: thresholds must not repeat",
        id="thresholds-duplicate-with-targets",
    ),
    pytest.param(
        "[service_level]\nthresholds = 3\n",
        "service_level.thresholds: must be a list",
        id="thresholds-number",
    ),
    pytest.param(
        '[service_level]\nthresholds = "3, 5, 10"\n',
        "service_level.thresholds: must be a list",
        id="thresholds-string",
    ),
    pytest.param(
        "[service_level]\nthresholds = [3.5]\n",
        "service_level.thresholds.0: input should be a valid integer,"
        " got a number with a fractional part",
        id="thresholds-fraction",
    ),
    pytest.param(
        '[service_level]\nthresholds = [3, 5]\ntargets = { "7" = 0.8 }\n',
        "service_level.targets.7: not a threshold (thresholds are 3, 5)",
        id="targets-not-a-threshold",
    ),
    pytest.param(
        '[service_level]\ntargets = { "three" = 0.8 }\n',
        "service_level.targets.three: not a threshold (thresholds are 3, 5, 10)",
        id="targets-not-a-number",
    ),
    # "03" is not how the threshold 3 is written: accepting it would store a target that
    # target(3) never finds, i.e. silently ignore it.
    pytest.param(
        '[service_level]\ntargets = { "03" = 0.7 }\n',
        "service_level.targets.03: not a threshold (thresholds are 3, 5, 10)",
        id="targets-leading-zero",
    ),
    pytest.param(
        '[service_level]\ntargets = { "3" = 1.5 }\n',
        "service_level.targets.3: must be a share between 0 and 1, like 0.8",
        id="targets-above-one",
    ),
    pytest.param(
        '[service_level]\ntargets = { "5" = 0 }\n',
        "service_level.targets.5: must be a share between 0 and 1, like 0.8",
        id="targets-zero",
    ),
    pytest.param(
        '[service_level]\ntargets = { "10" = -0.9 }\n',
        "service_level.targets.10: must be a share between 0 and 1, like 0.8",
        id="targets-negative",
    ),
    pytest.param(
        "[service_level]\ntargets = 0.8\n",
        "service_level.targets: must be a table",
        id="targets-not-a-table",
    ),
    pytest.param('colour = "red"\n', "colour: unknown key", id="unknown-top-level-key"),
    pytest.param(
        '[servicelevel]\nday_mode = "working"\n', "servicelevel: unknown key", id="unknown-section"
    ),
    pytest.param(
        '[service_level]\ndaymode = "working"\n',
        "service_level.daymode: unknown key",
        id="unknown-key-in-section",
    ),
    pytest.param(
        '[database]\nurl = "postgresql://u@h/db"\npassword = "hunter2"\n',
        "database.password: unknown key",
        id="unknown-key-password",
    ),
    # The section is [import]; the Python attribute name import_ is not a key of the file.
    pytest.param("[import_]\nbatch_size = 200\n", "import_: unknown key", id="unknown-import_"),
    pytest.param(
        'database = "sqlite:///slamon.db"\n', "database: must be a table", id="section-not-a-table"
    ),
    pytest.param(
        '[calendar]\ncountry = "XX"\n',
        "calendar.country: no public holidays known for country 'XX' (use ISO codes like RU)",
        id="country-unknown",
    ),
    pytest.param(
        '[calendar]\ncountry = "ru"\n',
        "calendar.country: no public holidays known for country 'ru' (use ISO codes like RU)",
        id="country-lowercase",
    ),
    pytest.param(
        '[calendar]\nsubdivision = "CA"\n',
        "calendar: subdivision needs a country",
        id="subdivision-without-country",
    ),
    pytest.param(
        '[calendar]\ncountry = "US"\nsubdivision = "ZZ"\n',
        "calendar: subdivision 'ZZ' is not one of US's",
        id="subdivision-unknown",
    ),
    pytest.param(
        '[calendar]\nextra_holidays = ["2026-12-31", "2027-01-08"]\n'
        'extra_working_days = ["2027-01-08", "2026-12-31"]\n',
        "calendar: 2026-12-31, 2027-01-08 both in extra_holidays and extra_working_days",
        id="date-in-both-lists",
    ),
    pytest.param(
        '[calendar]\nextra_holidays = ["2026-02-30"]\n',
        "calendar.extra_holidays.0: input should be a valid date or datetime,"
        " day value is outside expected range",
        id="invalid-date",
    ),
    pytest.param(
        '[calendar]\nextra_working_days = ["2026-01-10", "someday"]\n',
        "calendar.extra_working_days.1: input should be a valid date or datetime,"
        " input is too short",
        id="not-a-date",
    ),
    pytest.param(
        f'[database]\nurl = "sqlite:///slamon.db"\nurl_env = "{URL_VAR}"\n',
        "database: give only one of url, url_env, url_file (got url, url_env)",
        id="database-url-and-url_env",
    ),
    pytest.param(
        f'[database]\nurl_env = "{URL_VAR}"\nurl_file = "db-url"\n',
        "database: give only one of url, url_env, url_file (got url_env, url_file)",
        id="database-url_env-and-url_file",
    ),
    pytest.param(
        "[import]\nbatch_size = 99\n",
        "import.batch_size: input should be greater than or equal to 100",
        id="batch-size-small",
    ),
    pytest.param(
        "[import]\nbatch_size = 100001\n",
        "import.batch_size: input should be less than or equal to 100000",
        id="batch-size-large",
    ),
    pytest.param(
        '[import]\nexcluded_statuses = ["spam", " "]\n',
        "import.excluded_statuses: statuses must not be empty strings",
        id="excluded-statuses-empty-string",
    ),
    pytest.param(
        '[import]\nexcluded_statuses = "spam"\n',
        "import.excluded_statuses: must be a list",
        id="excluded-statuses-not-a-list",
    ),
    pytest.param(
        '[daemon]\nhttp_host = "0.0.0.0"\n',
        "daemon.http_host: '0.0.0.0': the endpoint listens on a loopback address only"
        " (127.0.0.1 or ::1); put a reverse proxy in front to expose it",
        id="daemon-http-host",
    ),
    pytest.param(
        '[daemon]\nheartbeat_url = "https://x.example"\nheartbeat_url_env = "HB"\n',
        "daemon: give heartbeat_url or heartbeat_url_env, not both",
        id="daemon-heartbeat-twice",
    ),
    pytest.param(
        '[daemon]\nstop_timeout = "2m"\n',
        "daemon.stop_timeout: must be at most 60s (systemd stops waiting long before)",
        id="daemon-stop-timeout",
    ),
    pytest.param(
        '[daemon]\nlog_format = "xml"\n',
        "daemon.log_format: must be one of human, json",
        id="daemon-log-format",
    ),
    pytest.param(
        '[sources.a]\nkind = "redmine"\nurl = "https://r.example"\napi_key_env = "K"\n'
        'sync_every = "0s"\n',
        "sources.a.sync_every: must be between 1s and 1d",
        id="source-sync-every",
    ),
]


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize(("body", "expected"), ERRORS)
def test_error_names_file_and_key_path(body: str, expected: str) -> None:
    assert load_error(body) == f"slamon.toml: {expected}"


@pytest.mark.usefixtures("workdir")
def test_the_issue_example_message_exactly() -> None:
    message = load_error('[service_level]\nday_mode = "weekdays"\n')
    assert (
        message == "slamon.toml: service_level.day_mode: must be one of calendar, working, elapsed"
    )


@pytest.mark.usefixtures("workdir")
def test_several_mistakes_give_one_line_each() -> None:
    message = load_error(
        'verbose = true\n[service_level]\nday_mode = "x"\nclosure = "y"\n'
        '[calendar]\ncountry = "XX"\n'
    )
    assert message.splitlines() == [
        "slamon.toml: service_level.day_mode: must be one of calendar, working, elapsed",
        "slamon.toml: service_level.closure: must be one of final, first",
        "slamon.toml: calendar.country: no public holidays known for country 'XX'"
        " (use ISO codes like RU)",
        "slamon.toml: verbose: unknown key",
    ]


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize(
    "body",
    ['[service_level\nday_mode = "calendar"\n', 'day_mode = "calendar"\nday_mode = "working"\n'],
    ids=["unclosed-table", "duplicate-key"],
)
def test_invalid_toml(body: str) -> None:
    with pytest.raises(tomllib.TOMLDecodeError) as toml_error:
        tomllib.loads(body)
    message = load_error(body)
    assert message == f"slamon.toml: not valid TOML: {toml_error.value}"
    assert "(at line " in message
    assert "\n" not in message


@pytest.mark.usefixtures("workdir")
def test_file_not_found() -> None:
    with pytest.raises(ConfigError) as caught:
        load(Path("missing.toml"))
    assert str(caught.value) == "missing.toml: no such file"
    assert caught.value.exit_code == 2


def test_file_not_found_from_slamon_config(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLAMON_CONFIG", "conf/missing.toml")
    with pytest.raises(ConfigError) as caught:
        load()
    assert str(caught.value) == "conf/missing.toml: no such file"


def test_config_is_a_directory(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "conf").mkdir()
    monkeypatch.setenv("SLAMON_CONFIG", "conf")
    with pytest.raises(ConfigError) as caught:
        load()
    assert str(caught.value) == "conf: cannot read: Is a directory"


@pytest.mark.usefixtures("workdir")
def test_not_utf8() -> None:
    # A Windows-1251 comment, as an editor on a Russian desktop might save it.
    body = b"# " + "Москва".encode("cp1251") + b'\n[service_level]\nday_mode = "calendar"\n'
    assert load_error(body) == "slamon.toml: not UTF-8 text (invalid continuation byte at byte 2)"


@pytest.mark.usefixtures("workdir")
def test_utf8_with_bom_is_read() -> None:
    Path("slamon.toml").write_bytes(
        "\ufeff# Москва\n[service_level]\ntimezone = 'Europe/Moscow'\n".encode()
    )
    assert load(Path("slamon.toml")).settings.service_level.timezone == "Europe/Moscow"


# --- what a valid file gives --------------------------------------------------------------


def test_issue_snippet_loads_with_exactly_those_values(workdir: Path) -> None:
    cfg = load(write_config(workdir / "slamon.toml", SNIPPET))
    s = cfg.settings
    assert s.database == DatabaseSettings(url="sqlite:///slamon.db")
    assert cfg.database_url == "sqlite:///slamon.db"
    assert cfg.masked_database_url == "sqlite:///slamon.db"
    sl = s.service_level
    assert sl.thresholds == (3, 5, 10)
    assert sl.targets == {"3": 0.70, "5": 0.80, "10": 0.90}
    assert [sl.target(n) for n in (3, 5, 10, 7)] == [0.70, 0.80, 0.90, None]
    assert sl.day_mode is DayMode.CALENDAR
    assert sl.timezone == "Europe/Moscow"
    assert sl.zone == ZoneInfo("Europe/Moscow")
    assert sl.closure is Closure.FINAL
    assert s.calendar == CalendarSettings(
        country="RU", extra_holidays=(date(2026, 12, 31),), extra_working_days=()
    )
    assert s.import_ == ImportSettings(batch_size=5000)
    work = s.calendar.work_calendar()
    assert work.is_working(date(2026, 12, 30))  # a Wednesday
    assert not work.is_working(date(2026, 12, 31))  # the extra holiday
    assert not work.is_working(date(2026, 1, 7))  # Orthodox Christmas: RU public holiday
    assert not work.is_working(date(2026, 12, 26))  # a Saturday


@pytest.mark.parametrize("mode", ["calendar", "working", "elapsed"])
@pytest.mark.parametrize("closure", ["final", "first"])
def test_every_day_mode_and_closure_as_written(mode: str, closure: str) -> None:
    body = SNIPPET.replace('"calendar"', f'"{mode}"').replace('"final"', f'"{closure}"')
    sl = parse(body, "slamon.toml").settings.service_level
    assert sl.day_mode == DayMode(mode)
    assert sl.day_mode.value == mode
    assert sl.closure == Closure(closure)
    assert sl.closure.value == closure


def test_postgresql_url_as_written() -> None:
    body = SNIPPET.replace('"sqlite:///slamon.db"', '"postgresql+psycopg://user@host/db"')
    cfg = parse(body, "slamon.toml")
    assert cfg.database_url == "postgresql+psycopg://user@host/db"


def test_dates_may_be_toml_dates() -> None:
    cal = parse(
        "[calendar]\nextra_holidays = [2026-12-31]\nextra_working_days = [2027-01-09]\n", "x"
    ).settings.calendar
    assert cal.extra_holidays == (date(2026, 12, 31),)
    assert cal.extra_working_days == (date(2027, 1, 9),)


def test_subdivision_with_its_country() -> None:
    cal = parse('[calendar]\ncountry = "US"\nsubdivision = "CA"\n', "x").settings.calendar
    assert (cal.country, cal.subdivision) == ("US", "CA")


def test_thresholds_are_sorted() -> None:
    sl = parse("[service_level]\nthresholds = [10, 3, 5]\n", "x").settings.service_level
    assert sl.thresholds == (3, 5, 10)


@pytest.mark.parametrize(
    ("thresholds", "targets"),
    [
        ("[3, 5, 10]", {"3": 0.70, "5": 0.80, "10": 0.90}),
        ("[3, 7]", {"3": 0.70}),
        ("[10, 5]", {"5": 0.80, "10": 0.90}),
        ("[1, 2, 30]", {}),
    ],
)
def test_default_targets_follow_thresholds(thresholds: str, targets: dict[str, float]) -> None:
    sl = parse(f"[service_level]\nthresholds = {thresholds}\n", "x").settings.service_level
    assert sl.targets == targets


def test_given_targets_replace_the_defaults() -> None:
    sl = parse('[service_level]\ntargets = { "5" = 0.85 }\n', "x").settings.service_level
    assert sl.targets == {"5": 0.85}
    assert [sl.target(n) for n in sl.thresholds] == [None, 0.85, None]


# --- config.example.toml ------------------------------------------------------------------


def test_example_loads(workdir: Path) -> None:
    cfg = load(EXAMPLE)
    assert cfg.path == EXAMPLE
    assert cfg.settings == parse(SNIPPET, "snippet").settings
    assert cfg.database_url == "sqlite:///slamon.db"


def test_example_contains_the_issue_snippet_verbatim() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    missing = [line for line in SNIPPET.splitlines() if line and line not in lines]
    assert missing == []


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^\[([a-z_.]+)\]\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_example_documents_every_key() -> None:
    """Every key of the fixed sections appears in its section, set or commented out, with a
    comment. ([sources.NAME] tables are not fixed keys: each connector kind validates its own;
    [digests.NAME] tables are checked in test_digest_config.py.)"""
    sections = _sections(EXAMPLE.read_text(encoding="utf-8"))
    tables = {"sources", "channels", "digests"}  # [NAME.x] tables of free names: commented examples
    expected = {
        (field.alias or name): field.annotation
        for name, field in Settings.model_fields.items()
        if name not in tables
    }
    assert {name for name in sections if name.split(".")[0] not in tables} == set(expected)
    for section, model in expected.items():
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        for key in model.model_fields:
            found = re.search(rf"^(# )?{key} = ", sections[section], flags=re.M)
            assert found, f"[{section}] {key} is not in config.example.toml"
            before = sections[section][: found.start()].rstrip().splitlines()
            assert before and before[-1].startswith("#"), f"[{section}] {key} has no comment"


def test_example_commented_database_keys_work(workdir: Path) -> None:
    """The url_env / url_file lines of the example, uncommented in place of url, load."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in ("url_env", "url_file"):
        line = re.search(rf"^# ({key} = .*)$", text, flags=re.M)
        assert line is not None
        body = re.sub(r"^url = .*$", line.group(1), text, count=1, flags=re.M)
        cfg = parse(body, "example")
        assert getattr(cfg.settings.database, key) is not None
        assert cfg.settings.database.url is None


# --- where the file comes from ------------------------------------------------------------


def test_no_file_gives_the_defaults(workdir: Path) -> None:
    cfg = load()
    assert cfg.path is None
    assert cfg.label == "(defaults)"
    assert cfg.database_url == "sqlite:///slamon.db" == DEFAULT_DATABASE_URL
    sl = cfg.settings.service_level
    assert sl.thresholds == (3, 5, 10)
    assert sl.targets == {"3": 0.70, "5": 0.80, "10": 0.90}
    assert (sl.day_mode, sl.timezone, sl.closure) == (DayMode.CALENDAR, "UTC", Closure.FINAL)
    assert cfg.settings.calendar == CalendarSettings()
    assert cfg.settings.import_.batch_size == 5000


def test_empty_file_gives_the_defaults(workdir: Path) -> None:
    cfg = load(write_config(workdir / "empty.toml", ""))
    assert cfg.settings == Settings()
    assert cfg.database_url == "sqlite:///slamon.db"


def test_slamon_toml_in_working_directory(workdir: Path) -> None:
    write_config(workdir / "slamon.toml", '[service_level]\ntimezone = "Asia/Tokyo"\n')
    cfg = load()
    assert cfg.path == Path("slamon.toml")
    assert cfg.settings.service_level.timezone == "Asia/Tokyo"


def test_slamon_config_used_without_config_option(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(workdir / "other.toml", '[service_level]\ntimezone = "Asia/Tokyo"\n')
    write_config(workdir / "slamon.toml", '[service_level]\ntimezone = "Europe/Berlin"\n')
    monkeypatch.setenv("SLAMON_CONFIG", str(path))
    cfg = load()
    assert cfg.path == path
    assert cfg.settings.service_level.timezone == "Asia/Tokyo"
    # The same through the env argument, without touching os.environ.
    monkeypatch.delenv("SLAMON_CONFIG")
    assert load(env={"SLAMON_CONFIG": str(path)}).settings.service_level.timezone == "Asia/Tokyo"


def test_config_option_wins_over_slamon_config(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = write_config(workdir / "given.toml", '[service_level]\ntimezone = "Asia/Tokyo"\n')
    env = write_config(workdir / "env.toml", '[service_level]\ntimezone = "Europe/Berlin"\n')
    monkeypatch.setenv("SLAMON_CONFIG", str(env))
    cfg = load(given)
    assert cfg.path == given
    assert cfg.settings.service_level.timezone == "Asia/Tokyo"


# --- secrets: url_env and url_file --------------------------------------------------------


def test_url_env_resolves(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_VAR, " postgresql://user:s3cret@db.example/slamon\n")
    cfg = load(write_config(workdir / "slamon.toml", f'[database]\nurl_env = "{URL_VAR}"\n'))
    assert cfg.database_url == "postgresql://user:s3cret@db.example/slamon"
    assert cfg.masked_database_url == f"<from ${URL_VAR}>"
    assert cfg.effective()["database"] == {"url_env": URL_VAR}
    assert "s3cret" not in repr(cfg.effective())


@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_url_env_missing_is_an_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    """A blank value is as good as none: it must not pass `config check` as an empty URL."""
    if value is not None:
        monkeypatch.setenv(URL_VAR, value)
    write_config(workdir / "slamon.toml", f'[database]\nurl_env = "{URL_VAR}"\n')
    cfg = load(Path("slamon.toml"))
    with pytest.raises(ConfigError) as caught:
        _ = cfg.database_url
    assert str(caught.value) == (
        f"slamon.toml: database.url_env: environment variable {URL_VAR} is not set"
    )
    assert caught.value.exit_code == 2


def test_url_file_is_relative_to_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc" / "slamon"
    (conf_dir / "secrets").mkdir(parents=True)
    (conf_dir / "secrets" / "db-url").write_text("postgresql://u:pw@db/slamon\n", "utf-8")
    work = tmp_path / "work"
    (work / "secrets").mkdir(parents=True)
    (work / "secrets" / "db-url").write_text("sqlite:///wrong.db\n", "utf-8")
    monkeypatch.chdir(work)
    path = write_config(conf_dir / "slamon.toml", '[database]\nurl_file = "secrets/db-url"\n')
    cfg = load(path)
    assert cfg.database_url == "postgresql://u:pw@db/slamon"
    assert cfg.masked_database_url == "<from file secrets/db-url>"
    assert cfg.effective()["database"] == {"url_file": "secrets/db-url"}


def test_url_file_relative_to_relative_config_path(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "conf").mkdir()
    (workdir / "conf" / "db-url").write_text("sqlite:///from-file.db", "utf-8")
    write_config(workdir / "conf" / "slamon.toml", '[database]\nurl_file = "db-url"\n')
    monkeypatch.setenv("SLAMON_CONFIG", "conf/slamon.toml")
    assert load().database_url == "sqlite:///from-file.db"


def test_url_file_absolute(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    secret = tmp_path_factory.mktemp("secret") / "db-url"
    secret.write_text("sqlite:///abs.db\n", "utf-8")
    cfg = parse(f'[database]\nurl_file = "{secret.as_posix()}"\n', "x.toml", Path("x.toml"))
    assert cfg.database_url == "sqlite:///abs.db"


def test_url_file_missing_is_an_error(workdir: Path) -> None:
    path = write_config(workdir / "conf.toml", '[database]\nurl_file = "nowhere/db-url"\n')
    cfg = load(path)
    with pytest.raises(ConfigError) as caught:
        _ = cfg.database_url
    assert str(caught.value) == (
        f"{path}: database.url_file: cannot read {workdir / 'nowhere' / 'db-url'}:"
        " No such file or directory"
    )


@pytest.mark.usefixtures("workdir")
def test_url_file_empty_is_an_error() -> None:
    """An empty secret file (a secret that was never filled in) is not an empty URL."""
    Path("db-url").write_text(" \n", "utf-8")
    cfg = load(write_config(Path("slamon.toml"), '[database]\nurl_file = "db-url"\n'))
    with pytest.raises(ConfigError) as caught:
        _ = cfg.database_url
    assert str(caught.value) == "slamon.toml: database.url_file: db-url is empty"


def test_password_in_url_is_masked() -> None:
    cfg = parse('[database]\nurl = "postgresql://user:secret@host/db"\n', "x")
    assert cfg.database_url == "postgresql://user:secret@host/db"
    assert cfg.masked_database_url == "postgresql://user:***@host/db"
    assert cfg.effective()["database"] == {"url": "postgresql://user:***@host/db"}
    assert "secret" not in repr(cfg.effective())


def _source_examples() -> dict[str, str]:
    """The commented [sources.*] examples of config.example.toml, uncommented, by name: each is
    a paragraph whose first line is "# [sources.NAME]"."""
    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text("utf-8")
    examples = {}
    for paragraph in text.split("\n\n"):
        lines = paragraph.strip("\n").splitlines()
        if lines and lines[0].startswith("# [sources."):
            name = lines[0][len("# [sources.") :].split("]")[0]
            examples[name] = "\n".join(line[2:] for line in lines) + "\n"
    return examples


def test_every_connector_has_a_source_example_and_each_loads() -> None:
    from slamon.connectors.base import registry

    examples = _source_examples()
    kinds = set()
    for name, body in examples.items():
        cfg = parse(body, f"example {name}")
        assert list(cfg.sources) == [name]
        kinds.add(cfg.sources[name].kind)
    assert kinds | {"jsonl"} == set(registry.names())
