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
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
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
from slamon.errors import ConfigError
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


#: The roll-up's dimensions unless configured: every segment field, queue first.
DEFAULT_ROLLUP_DIMENSIONS = ("queue", "channel", "category", "priority", "source")


class RollupSettings(_Section):
    #: The segment fields the roll-up keeps a grain for: reports grouped by one of them (or
    #: filtered on it) are answered from the roll-up; the others from raw rows.
    dimensions: tuple[str, ...] = DEFAULT_ROLLUP_DIMENSIONS

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        allowed = ", ".join(DEFAULT_ROLLUP_DIMENSIONS)
        for name in value:
            if name not in SEGMENT_FIELDS:
                raise ValueError(f"{name!r} is not a segment field (use {allowed})")
        if len(set(value)) != len(value):
            raise ValueError("dimensions must not repeat")
        return value


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    service_level: ServiceLevelSettings = ServiceLevelSettings()
    calendar: CalendarSettings = CalendarSettings()
    import_: ImportSettings = Field(default=ImportSettings(), alias="import")
    rollup: RollupSettings = RollupSettings()
    #: [sources.NAME] tables, validated by their connector kind (see Config.sources).
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)

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
