"""Configuration: one TOML file, validated when loaded into frozen settings.

Where the file comes from: ``--config PATH``, else ``$SLAMON_CONFIG``, else ./slamon.toml when it
exists; with no file the defaults apply (an SQLite file slamon.db in the working directory).

Every error names the file and the key path, e.g.
``slamon.toml: service_level.day_mode: must be one of calendar, working, elapsed``.
Unknown keys are errors. Secrets are never written in the file itself: a ``*_env`` key names an
environment variable and a ``*_file`` key a file that holds the value; neither value is ever shown.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from slamon.domain import SEGMENT_FIELDS, Closure, DayMode
from slamon.errors import ConfigError, UsageError
from slamon.servicelevel.deadlines import WorkCalendar
from slamon.store.engine import mask_url

DEFAULT_PATH = Path("slamon.toml")
DEFAULT_DATABASE_URL = "sqlite:///slamon.db"
DEFAULT_THRESHOLDS = (3, 5, 10)
DEFAULT_TARGETS = {"3": 0.70, "5": 0.80, "10": 0.90}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _valid_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Moscow)"
        ) from exc
    return name


TimeZoneName = Annotated[str, AfterValidator(_valid_zone)]


class DatabaseSettings(_Section):
    #: The SQLAlchemy URL; a password in it is better given through url_env or url_file.
    url: str | None = None
    url_env: str | None = None
    url_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseSettings:
        given = [k for k in ("url", "url_env", "url_file") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of url, url_env, url_file (got {', '.join(given)})")
        return self


class ServiceLevelSettings(_Section):
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    targets: dict[str, float] = Field(default_factory=dict)
    day_mode: DayMode = DayMode.CALENDAR
    timezone: TimeZoneName = "UTC"
    closure: Closure = Closure.FINAL

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("needs at least one threshold")
        if any(n < 0 or n > 366 for n in value):
            raise ValueError("thresholds are whole days from 0 to 366")
        if len(set(value)) != len(value):
            raise ValueError("thresholds must not repeat")
        return tuple(sorted(value))

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        if "thresholds" not in info.data:
            return value  # the thresholds are wrong, and that error is reported already
        thresholds = info.data["thresholds"]
        for key, target in value.items():
            if not key.isdigit() or str(int(key)) != key or int(key) not in thresholds:
                shown = ", ".join(map(str, thresholds))
                raise PydanticCustomError(
                    "slamon",
                    "{key}: not a threshold (thresholds are {shown})",
                    {"key": key, "shown": shown},
                )
            if not 0 < target <= 1:
                raise PydanticCustomError(
                    "slamon", "{key}: must be a share between 0 and 1, like 0.8", {"key": key}
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_targets(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "targets" not in data:
            thresholds = data.get("thresholds", DEFAULT_THRESHOLDS)
            if isinstance(thresholds, list | tuple):
                data = {
                    **data,
                    "targets": {
                        k: v for k, v in DEFAULT_TARGETS.items() if int(k) in set(thresholds)
                    },
                }
        return data

    def target(self, n: int) -> float | None:
        return self.targets.get(str(n))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class CalendarSettings(_Section):
    country: str | None = None
    subdivision: str | None = None
    extra_holidays: tuple[date, ...] = ()
    extra_working_days: tuple[date, ...] = ()

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and value not in holidays.list_supported_countries():
            raise ValueError(
                f"no public holidays known for country {value!r} (use ISO codes like RU)"
            )
        return value

    @model_validator(mode="after")
    def _subdivision(self) -> CalendarSettings:
        if self.subdivision is not None:
            if self.country is None:
                raise ValueError("subdivision needs a country")
            known = holidays.list_supported_countries()[self.country]
            if self.subdivision not in known:
                raise ValueError(f"subdivision {self.subdivision!r} is not one of {self.country}'s")
        both = set(self.extra_holidays) & set(self.extra_working_days)
        if both:
            days = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"{days} both in extra_holidays and extra_working_days")
        return self

    def work_calendar(self) -> WorkCalendar:
        return WorkCalendar(
            country=self.country,
            subdivision=self.subdivision,
            extra_holidays=self.extra_holidays,
            extra_working_days=self.extra_working_days,
        )


class ImportSettings(_Section):
    #: Rows per database batch: memory stays flat whatever the file size.
    batch_size: int = Field(default=5000, ge=100, le=100_000)
    #: Values of an export's status column (any case) that mark a complaint the source deleted,
    #: flagged as spam or merged: such complaints are kept but excluded from every metric.
    excluded_statuses: tuple[str, ...] = ("deleted", "spam", "merged")

    @field_validator("excluded_statuses")
    @classmethod
    def _statuses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(v.strip().lower() for v in value)
        if any(not v for v in cleaned):
            raise ValueError("statuses must not be empty strings")
        return cleaned


#: An email address as recipients take it: local@domain, no display name, no spaces or CR/LF.
EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")
_NUMERIC_WEEKDAY = re.compile(r"\d")


def parse_duration(text: str) -> timedelta:
    """A duration written like "12h", "1d", "90m" or "1d6h" (days, hours, minutes)."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f'{text!r} is not a duration like "12h", "90m" or "1d6h"')
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def cron_trigger(expression: str, zone: ZoneInfo) -> CronTrigger:
    """The APScheduler trigger of a digest schedule (five crontab fields, weekdays by name)."""
    return CronTrigger.from_crontab(expression, timezone=zone)


class DigestSettings(_Section):
    """One [digests.NAME] table: who gets which summary, when, in which language."""

    #: When to send: a crontab expression (minute hour day-of-month month day-of-week) read in
    #: ``timezone``; weekdays are written by name (mon-sun).
    schedule: str
    #: Local time of the schedule and of the period's boundaries; default service_level.timezone.
    timezone: TimeZoneName | None = None
    locale: Literal["ru", "en"] = "en"
    recipients: tuple[str, ...]
    #: Only complaints with these segment values (a manager of the billing queue sees billing).
    scope: dict[str, str] = Field(default_factory=dict)
    #: The segments of the breakdown.
    by: tuple[str, ...] = ("queue",)
    #: The previous complete day, ISO week or month (in ``timezone``) at the send instant.
    period: Literal["day", "week", "month"] = "week"
    trend_periods: int = Field(default=10, ge=8, le=12)
    #: Complaints shown in each list (oldest open, due soon); capped so the HTML stays small.
    list_limit: int = Field(default=10, ge=1, le=25)  # digest.context.LIST_ROWS
    #: How late a missed slot may still be sent (once, marked late), e.g. "12h".
    late_grace: str = "12h"
    subject: str | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        fields = value.split()
        if len(fields) == 5 and _NUMERIC_WEEKDAY.search(fields[4]):
            raise ValueError(
                f'{value!r}: write the day of week by name (mon-sun, e.g. "0 8 * * mon"):'
                " numbers are ambiguous (cron counts 0 as Sunday, APScheduler as Monday)"
            )
        try:
            cron_trigger(value, ZoneInfo("UTC"))
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a cron expression (minute hour day month weekday,"
                f' e.g. "0 8 * * mon"): {exc}'
            ) from None
        return " ".join(fields)

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one address")
        for address in value:
            if not EMAIL.fullmatch(address):
                raise ValueError(f"{address!r} is not an email address like name@example.com")
        if len({a.lower() for a in value}) != len(value):
            raise ValueError("an address is repeated")
        return value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key not in SEGMENT_FIELDS:
                raise PydanticCustomError(
                    "slamon",
                    "{key}: not a segment field (use one of {fields})",
                    {"key": key, "fields": ", ".join(SEGMENT_FIELDS)},
                )
        return value

    @field_validator("by")
    @classmethod
    def _by(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            if key not in SEGMENT_FIELDS:
                raise ValueError(
                    f"{key!r} is not a segment field (use {', '.join(SEGMENT_FIELDS)})"
                )
        if len(set(value)) != len(value):
            raise ValueError("a segment field is repeated")
        return value

    @field_validator("late_grace")
    @classmethod
    def _late_grace(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(ord(c) < 32 for c in value)):
            raise ValueError("must be one line of text")
        return value

    @property
    def late_grace_delta(self) -> timedelta:
        return parse_duration(self.late_grace)

    def zone(self, default: str) -> ZoneInfo:
        """The digest's time zone; ``default`` is service_level.timezone."""
        return ZoneInfo(self.timezone or default)

    def trigger(self, default_zone: str) -> CronTrigger:
        return cron_trigger(self.schedule, self.zone(default_zone))


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    service_level: ServiceLevelSettings = ServiceLevelSettings()
    calendar: CalendarSettings = CalendarSettings()
    import_: ImportSettings = Field(default=ImportSettings(), alias="import")
    #: [sources.NAME] tables, validated by their connector kind (see Config.sources).
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: [digests.NAME] tables: scheduled summaries mailed to managers.
    digests: dict[str, DigestSettings] = Field(default_factory=dict)

    @field_validator("digests")
    @classmethod
    def _digest_names(cls, value: dict[str, DigestSettings]) -> dict[str, DigestSettings]:
        for name in value:
            if not SOURCE_NAME.fullmatch(name):
                raise PydanticCustomError(
                    "slamon",
                    "{name}: digest names are 1-100 letters, digits, '_', '-' or '.'",
                    {"name": name},
                )
        return value

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in value:
            if not SOURCE_NAME.fullmatch(name):
                raise PydanticCustomError(
                    "slamon",
                    "{name}: source names are 1-100 letters, digits, '_', '-' or '.'",
                    {"name": name},
                )
        return value

    model_config = ConfigDict(extra="forbid", frozen=True)


SOURCE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _validate_sources(label: str, raw: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    from slamon.connectors.base import registry

    validated: dict[str, Any] = {}
    for name, table in raw.items():
        kind = table.get("kind")
        if not isinstance(kind, str):
            raise ConfigError(
                f"{label}: sources.{name}.kind: is required (one of {', '.join(registry.names())})"
            )
        cls = registry.get(kind)
        if cls is None:
            raise ConfigError(
                f"{label}: sources.{name}.kind: unknown connector {kind!r} (one of"
                f" {', '.join(registry.names())}, or a plugin in the slamon.connectors"
                " entry-point group)"
            )
        try:
            validated[name] = cls.Settings.model_validate(table)
        except ValidationError as exc:
            raise ConfigError(_errors_to_text(label, exc, prefix=("sources", name))) from exc
    return validated


class Config:
    """Validated settings plus where they came from (for messages and relative paths)."""

    def __init__(self, settings: Settings, path: Path | None, label: str | None = None) -> None:
        self.settings = settings
        self.path = path
        self._label = label
        self.sources = _validate_sources(self.label, settings.sources)

    def secret(self, key: str, env: str | None, file: Path | None) -> str | None:
        """A secret from an environment variable or a file; errors name the key path."""
        if env is not None:
            value = os.environ.get(env, "").strip()
            if not value:
                raise self.error(f"{key}_env", f"environment variable {env} is not set")
            return value
        if file is not None:
            target = self._relative(file)
            try:
                value = target.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise self.error(f"{key}_file", f"cannot read {target}: {exc.strerror}") from exc
            if not value:
                raise self.error(f"{key}_file", f"{target} is empty")
            return value
        return None

    def digest(self, name: str) -> DigestSettings:
        """The [digests.NAME] table ``name``; a UsageError lists the known ones."""
        found = self.settings.digests.get(name)
        if found is None:
            known = ", ".join(sorted(self.settings.digests)) or "none configured"
            raise UsageError(f"no digest {name!r} in {self.label} (digests: {known})")
        return found

    @property
    def label(self) -> str:
        if self._label is not None:
            return self._label
        return str(self.path) if self.path else "(defaults)"

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.label}: {key}: {message}")

    @cached_property
    def database_url(self) -> str:
        """The database URL, with secrets resolved (never print it: use masked_database_url)."""
        db = self.settings.database
        resolved = self.secret("database.url", db.url_env, db.url_file)
        return resolved or db.url or DEFAULT_DATABASE_URL

    @property
    def masked_database_url(self) -> str:
        db = self.settings.database
        if db.url_env is not None:
            return f"<from ${db.url_env}>"
        if db.url_file is not None:
            return f"<from file {db.url_file}>"
        return mask_url(db.url or DEFAULT_DATABASE_URL)

    def _relative(self, p: Path) -> Path:
        if p.is_absolute() or self.path is None:
            return p
        return self.path.parent / p

    def effective(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets masked, for `slamon config show`."""
        data = self.settings.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["database"] = {
            k: v for k, v in data["database"].items() if k in ("url_env", "url_file")
        }
        if self.settings.database.url_env is None and self.settings.database.url_file is None:
            data["database"]["url"] = self.masked_database_url
        data["sources"] = {
            name: src.model_dump(mode="json", exclude_none=True)
            for name, src in self.sources.items()
        }
        if not data["sources"]:
            del data["sources"]
        if not data["digests"]:
            del data["digests"]
        return data


def _format_location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("function-after[_valid_zone(), str]",)]
    return ".".join(parts) if parts else "(top level)"


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    if kind == "enum":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}"
    if kind in ("tuple_type", "list_type"):
        return "must be a list"
    if kind in ("dict_type", "model_type"):
        return "must be a table"
    if kind == "slamon":
        return f"{err['msg']}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    msg = str(err["msg"])
    return msg[0].lower() + msg[1:] if msg else kind


def _errors_to_text(label: str, exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    lines = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        # model_validator errors carry the section as location; messages may name a sub-key.
        where = _format_location(loc)
        message = _message(err)
        if err["type"] == "slamon" and ": " in message:
            sub, message = message.split(": ", 1)
            where = f"{where}.{sub}"
        lines.append(f"{label}: {where}: {message}")
    return "\n".join(lines)


def parse(text: str, label: str, path: Path | None = None) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_errors_to_text(label, exc)) from exc
    return Config(settings, path, label)


def load(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the configuration: ``path`` (from --config), else $SLAMON_CONFIG, else ./slamon.toml
    if it exists, else the defaults."""
    environ = os.environ if env is None else env
    explicit = path is not None
    if path is None and environ.get("SLAMON_CONFIG"):
        path, explicit = Path(environ["SLAMON_CONFIG"]), True
    if path is None:
        if not DEFAULT_PATH.is_file():
            return Config(Settings(), None)
        path = DEFAULT_PATH
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        how = "" if explicit else " (found as ./slamon.toml)"
        raise ConfigError(f"{path}: no such file{how}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return parse(text, str(path), path)


def defaults() -> Config:
    return Config(Settings(), None)
