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
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
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


_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> timedelta:
    """ "90s", "30m", "6h", "2d", "1w", or several joined ("1h30m")."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError('must be a duration such as "30m", "6h" or "2d"')
    pos, seconds = 0, 0
    while pos < len(value):
        m = _DURATION.match(value, pos)
        if m is None:
            raise ValueError(f'{value!r} is not a duration such as "30m", "6h" or "2d"')
        seconds += int(m[1]) * _DURATION_UNITS[m[2]]
        pos = m.end()
    return timedelta(seconds=seconds)


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(lambda d: show_duration(d))
]


def show_duration(d: timedelta) -> str:
    """A duration as config text, largest units first ("1d6h")."""
    total, parts = int(d.total_seconds()), []
    for unit in ("w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts) or "0s"


_EMAIL = re.compile(r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+")


def _address(value: str) -> str:
    if not _EMAIL.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not an email address like name@example.com")
    return value.strip()


EmailAddress = Annotated[str, AfterValidator(_address)]


def _segment_match(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if name not in SEGMENT_FIELDS:
            raise PydanticCustomError(
                "slamon",
                "{name}: not a segment field (use {fields})",
                {"name": name, "fields": ", ".join(SEGMENT_FIELDS)},
            )
    return value


SegmentMatch = Annotated[dict[str, str], AfterValidator(_segment_match)]


class EmailSettings(_Section):
    """The SMTP server alerts and digests are sent through."""

    host: str = "localhost"
    port: int | None = Field(default=None, ge=1, le=65535)
    #: starttls (port 587), tls (implicit TLS, port 465) or none (a local relay only).
    security: Literal["starttls", "tls", "none"] = "starttls"
    verify_tls: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    sender: EmailAddress | None = None
    sender_name: str = "slamon"
    timeout: float = Field(default=30.0, gt=0, le=600)

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "tls": 465, "none": 25}[self.security]


class OutboxSettings(_Section):
    """How the outbox delivers."""

    #: A message claimed longer ago than this belongs to a sender that died: it is sent again
    #: (the one window where a duplicate is possible; it carries the same Message-ID).
    claim_timeout: Duration = timedelta(minutes=10)
    #: Attempts before a message is marked failed (with backoff from 30 s up to 1 h).
    max_attempts: int = Field(default=10, ge=1, le=100)
    #: Delivered and failed messages are deleted after this long (housekeeping).
    keep: Duration = timedelta(days=90)


class ChannelSettings(_Section):
    """Where notifications go: an email list or a webhook."""

    kind: Literal["email", "webhook", "slack", "teams", "telegram"]
    #: email: the addresses.
    recipients: tuple[EmailAddress, ...] = ()
    #: webhook, slack (also Mattermost, Rocket.Chat), teams: the URL, usually a secret.
    url: str | None = None
    url_env: str | None = None
    url_file: Path | None = None
    #: telegram: the bot token (a secret) and the chat to post in.
    token_env: str | None = None
    token_file: Path | None = None
    chat_id: str | None = None
    #: telegram: the Bot API address (a local Bot API server, or a test's)
    api_url: str = "https://api.telegram.org"
    #: webhook: signs the body with HMAC-SHA256 in the X-Slamon-Signature header.
    secret_env: str | None = None
    secret_file: Path | None = None
    timeout: float = Field(default=15.0, gt=0, le=600)
    verify_tls: bool = True

    @model_validator(mode="after")
    def _fits_kind(self) -> ChannelSettings:
        urls = [k for k in ("url", "url_env", "url_file") if getattr(self, k) is not None]
        if self.kind == "email":
            if not self.recipients:
                raise ValueError("an email channel needs recipients")
            if urls:
                raise ValueError("an email channel takes recipients, not a url")
        elif self.kind == "telegram":
            if self.token_env is None and self.token_file is None:
                raise ValueError("a telegram channel needs token_env or token_file")
            if not self.chat_id:
                raise ValueError("a telegram channel needs chat_id")
        else:
            if len(urls) != 1:
                raise ValueError(f"a {self.kind} channel needs one of url, url_env, url_file")
            if self.url is not None and not self.url.startswith(("https://", "http://")):
                raise ValueError("url must start with https:// (or http://)")
        if self.kind != "email" and self.recipients:
            raise ValueError(f"a {self.kind} channel has no recipients (that is for email)")
        return self


class AlertOverride(_Section):
    match: SegmentMatch
    targets: dict[str, float]


class AlertRoute(_Section):
    #: Segment values the alert must have (empty: every alert, the total and stale sources too).
    match: SegmentMatch = Field(default_factory=dict)
    channels: tuple[str, ...]


class AlertSettings(_Section):
    enabled: bool = True
    #: The cohort: complaints created in the last window_days local days (matured ones count).
    window_days: int = Field(default=28, ge=1, le=366)
    #: The segments judged one by one, besides the total.
    by: tuple[str, ...] = ("queue",)
    #: The thresholds alerted on (default: all of service_level.thresholds).
    thresholds: tuple[int, ...] | None = None
    #: No verdict under this many matured complaints in the window.
    min_matured: int = Field(default=30, ge=1)
    #: wilson: fire only when the whole 95 % interval lies below the target; point: share < target.
    significance: Literal["wilson", "point"] = "wilson"
    #: Breaching runs before an alert fires, and healthy runs before it resolves.
    pending_evaluations: int = Field(default=2, ge=1, le=100)
    recover_evaluations: int = Field(default=2, ge=1, le=100)
    #: Percentage points above the target the level must reach to count as healthy again.
    recovery_margin_points: float = Field(default=0.0, ge=0, le=50)
    repeat_every: Duration = timedelta(hours=24)
    #: Trend rule: the level dropped this many points against the previous window (0: off).
    drop_points: float = Field(default=10.0, ge=0, le=100)
    #: Early warning: open complaints whose deadline falls within this time (0s: off).
    warn_within: Duration = timedelta(hours=24)
    #: How many at-risk complaints a warning lists.
    warn_list: int = Field(default=10, ge=0, le=200)
    #: A configured source without a successful sync for this long raises its own alert.
    stale_after: Duration = timedelta(hours=6)
    overrides: tuple[AlertOverride, ...] = ()
    #: Which alerts go to which channels; with no routes every alert goes to every channel.
    routes: tuple[AlertRoute, ...] = ()

    @field_validator("by")
    @classmethod
    def _by(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in SEGMENT_FIELDS:
                raise ValueError(f"{name!r} is not a segment field ({', '.join(SEGMENT_FIELDS)})")
        return tuple(dict.fromkeys(value))


def _loopback(value: str) -> str:
    # The endpoint's own rule (it refuses to bind elsewhere), checked here to name the key.
    from slamon.daemon.http import is_loopback

    if not is_loopback(value):
        raise ValueError(
            f"{value!r}: the endpoint listens on a loopback address only (127.0.0.1 or ::1);"
            " put a reverse proxy in front to expose it"
        )
    return value


class DaemonSettings(_Section):
    """`slamon run`."""

    log_format: Literal["human", "json"] = "human"
    #: /healthz and /metrics; 0: off.
    http_port: int = Field(default=0, ge=0, le=65535)
    http_host: Annotated[str, AfterValidator(_loopback)] = "127.0.0.1"
    heartbeat_url: str | None = None
    heartbeat_url_env: str | None = None
    standby_poll: Duration = timedelta(seconds=30)
    deliver_every: Duration = timedelta(minutes=1)
    alerts_every: Duration = timedelta(minutes=15)
    housekeeping_every: Duration = timedelta(days=1)
    stop_timeout: Duration = timedelta(seconds=8)

    @field_validator("standby_poll", "deliver_every", "alerts_every", "housekeeping_every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("stop_timeout")
    @classmethod
    def _stop(cls, value: timedelta) -> timedelta:
        if value > timedelta(seconds=60):
            raise ValueError("must be at most 60s (systemd stops waiting long before)")
        return value

    @model_validator(mode="after")
    def _one_heartbeat(self) -> DaemonSettings:
        if self.heartbeat_url is not None and self.heartbeat_url_env is not None:
            raise ValueError("give heartbeat_url or heartbeat_url_env, not both")
        return self

    @field_validator("heartbeat_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http://)")
        return value


_NUMERIC_WEEKDAY = re.compile(r"\d")


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
    recipients: tuple[EmailAddress, ...]
    #: Only complaints with these segment values (a manager of the billing queue sees billing).
    scope: SegmentMatch = Field(default_factory=dict)
    #: The segments of the breakdown.
    by: tuple[str, ...] = ("queue",)
    #: The previous complete day, ISO week or month (in ``timezone``) at the send instant.
    period: Literal["day", "week", "month"] = "week"
    trend_periods: int = Field(default=10, ge=8, le=12)
    #: Complaints shown in each list (oldest open, due soon); capped so the HTML stays small.
    list_limit: int = Field(default=10, ge=1, le=25)  # digest.context.LIST_ROWS
    #: How late a missed slot may still be sent (once, marked late), e.g. "12h".
    late_grace: Duration = timedelta(hours=12)
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
        if len({a.lower() for a in value}) != len(value):
            raise ValueError("an address is repeated")
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

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(ord(c) < 32 for c in value)):
            raise ValueError("must be one line of text")
        return value

    def zone(self, default: str) -> ZoneInfo:
        """The digest's time zone; ``default`` is service_level.timezone."""
        return ZoneInfo(self.timezone or default)

    def trigger(self, default_zone: str) -> CronTrigger:
        return cron_trigger(self.schedule, self.zone(default_zone))


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
    email: EmailSettings = EmailSettings()
    outbox: OutboxSettings = OutboxSettings()
    #: [channels.NAME] tables: where alerts are sent.
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    alerts: AlertSettings = AlertSettings()
    rollup: RollupSettings = RollupSettings()
    daemon: DaemonSettings = DaemonSettings()
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

    @model_validator(mode="after")
    def _alerts_fit(self) -> Settings:
        thresholds = self.service_level.thresholds
        alerts = self.alerts
        for n in alerts.thresholds or ():
            if n not in thresholds:
                raise PydanticCustomError(
                    "slamon",
                    "alerts.thresholds: {n} is not one of service_level.thresholds",
                    {"n": n},
                )
        for i, override in enumerate(alerts.overrides):
            for key, target in override.targets.items():
                if not key.isdigit() or int(key) not in thresholds or not 0 < target <= 1:
                    raise PydanticCustomError(
                        "slamon",
                        "alerts.overrides.{i}.targets.{key}: a threshold of"
                        " service_level.thresholds with a share between 0 and 1",
                        {"i": i, "key": key},
                    )
        for i, route in enumerate(alerts.routes):
            for name in route.channels:
                if name not in self.channels:
                    raise PydanticCustomError(
                        "slamon",
                        "alerts.routes.{i}.channels: no [channels.{name}] table",
                        {"i": i, "name": name},
                    )
        if any(c.kind == "email" for c in self.channels.values()) and self.email.sender is None:
            raise PydanticCustomError(
                "slamon", "email.sender: is required when a channel sends email", {}
            )
        return self

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

    def known_secrets(self) -> list[str]:
        """Every secret the config names (``*_env`` and ``*_file`` keys, readable now), for
        logs to hide; one that cannot be read is skipped (its own use reports it)."""
        models: list[BaseModel] = [
            self.settings.database,
            self.settings.email,
            self.settings.daemon,
            *self.settings.channels.values(),
            *self.sources.values(),
        ]
        found: list[str] = []
        for model in models:
            for key, value in model:
                if value is None or not key.endswith(("_env", "_file")):
                    continue
                base = key.rsplit("_", 1)[0]
                env = value if key.endswith("_env") else None
                file = Path(value) if key.endswith("_file") else None
                try:
                    secret = self.secret(base, env, file)
                except ConfigError:
                    continue
                if secret:
                    found.append(secret)
        heartbeat = self.settings.daemon.heartbeat_url
        if heartbeat:
            found.append(heartbeat)
        return found

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
            where = sub if not loc else f"{where}.{sub}"
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
