"""[digests.NAME] tables: what they may say, the exact error for each mistake, and the
commented example in config.example.toml (every key documented, and it loads)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from slamon.config import DigestSettings, parse, parse_duration
from slamon.errors import ConfigError, UsageError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"

MINIMAL = '[digests.weekly]\nschedule = "0 8 * * mon"\nrecipients = ["head@example.com"]\n'


def error_of(body: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(body, "slamon.toml")
    assert caught.value.exit_code == 2
    return str(caught.value)


def test_minimal_digest_takes_the_defaults() -> None:
    cfg = parse('[service_level]\ntimezone = "Europe/Moscow"\n' + MINIMAL, "x")
    d = cfg.settings.digests["weekly"]
    assert d == DigestSettings(schedule="0 8 * * mon", recipients=("head@example.com",))
    assert (d.locale, d.period, d.by, d.scope) == ("en", "week", ("queue",), {})
    assert (d.trend_periods, d.list_limit, d.late_grace, d.subject) == (
        10,
        10,
        timedelta(hours=12),
        None,
    )
    assert d.zone(cfg.settings.service_level.timezone) == ZoneInfo("Europe/Moscow")
    assert cfg.digest("weekly") is d


def test_the_trigger_fires_in_the_digest_timezone() -> None:
    cfg = parse(MINIMAL + 'timezone = "Asia/Tokyo"\n', "x")
    trigger = cfg.digest("weekly").trigger(cfg.settings.service_level.timezone)
    # Wednesday 2026-05-13: the next Monday 08:00 in Tokyo is 2026-05-17 23:00 UTC.
    fire = trigger.get_next_fire_time(None, datetime(2026, 5, 13, tzinfo=UTC))
    assert fire.astimezone(UTC) == datetime(2026, 5, 17, 23, 0, tzinfo=UTC)


def test_unknown_digest_name_lists_the_known_ones() -> None:
    cfg = parse(MINIMAL, "slamon.toml")
    with pytest.raises(UsageError, match=r"no digest 'daily' in slamon.toml \(digests: weekly\)"):
        cfg.digest("daily")


@pytest.mark.parametrize(
    ("duration", "expected"),
    [("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90)), ("1d6h", timedelta(hours=30))],
)
def test_durations(duration: str, expected: timedelta) -> None:
    assert parse_duration(duration) == expected


W = "slamon.toml: digests.weekly."
BASE = '[digests.weekly]\nschedule = "0 8 * * mon"\nrecipients = ["a@example.com"]\n'

ERRORS = [
    pytest.param(
        '[digests.weekly]\nrecipients = ["a@example.com"]\n',
        W + "schedule: is required",
        id="schedule-missing",
    ),
    pytest.param(
        '[digests.weekly]\nschedule = "0 8 * *"\nrecipients = ["a@example.com"]\n',
        W + "schedule: '0 8 * *' is not a cron expression (minute hour day month weekday,"
        ' e.g. "0 8 * * mon"): Wrong number of fields; got 4, expected 5',
        id="schedule-fields",
    ),
    pytest.param(
        '[digests.weekly]\nschedule = "61 8 * * *"\nrecipients = ["a@example.com"]\n',
        W + "schedule: '61 8 * * *' is not a cron expression (minute hour day month weekday,"
        " e.g. \"0 8 * * mon\"): Error validating expression '61': the last value (61) is"
        " higher than the maximum value (59)",
        id="schedule-range",
    ),
    pytest.param(
        '[digests.weekly]\nschedule = "0 8 * * 1"\nrecipients = ["a@example.com"]\n',
        W + "schedule: '0 8 * * 1': write the day of week by name (mon-sun, e.g."
        ' "0 8 * * mon"): numbers are ambiguous (cron counts 0 as Sunday, APScheduler as'
        " Monday)",
        id="schedule-numeric-weekday",
    ),
    pytest.param(
        '[digests.weekly]\nschedule = "0 8 * * mon"\n',
        W + "recipients: is required",
        id="recipients-missing",
    ),
    pytest.param(
        '[digests.weekly]\nschedule = "0 8 * * mon"\nrecipients = []\n',
        W + "recipients: needs at least one address",
        id="recipients-empty",
    ),
    pytest.param(
        '[digests.weekly]\nschedule = "0 8 * * mon"\nrecipients = ["Boss <boss@example.com>"]\n',
        W + "recipients.0: 'Boss <boss@example.com>' is not an email address like name@example.com",
        id="recipients-display-name",
    ),
    pytest.param(
        '[digests.weekly]\nschedule = "0 8 * * mon"\n'
        'recipients = ["a@example.com\\r\\nBcc: x@y.z"]\n',
        W + "recipients.0: 'a@example.com\\r\\nBcc: x@y.z' is not an email address like"
        " name@example.com",
        id="recipients-crlf",
    ),
    pytest.param(
        '[digests.weekly]\nschedule = "0 8 * * mon"\n'
        'recipients = ["a@example.com", "A@example.com"]\n',
        W + "recipients: an address is repeated",
        id="recipients-repeated",
    ),
    pytest.param(
        BASE + 'timezone = "Mars/Olympus"\n',
        W + "timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Moscow)",
        id="timezone",
    ),
    pytest.param(BASE + 'locale = "de"\n', W + "locale: must be one of ru, en", id="locale"),
    pytest.param(
        BASE + 'scope = { team = "billing" }\n',
        W + "scope.team: not a segment field (use source, queue, channel, category, priority)",
        id="scope-field",
    ),
    pytest.param(
        BASE + 'by = ["queue", "team"]\n',
        W + "by: 'team' is not a segment field (use source, queue, channel, category, priority)",
        id="by-field",
    ),
    pytest.param(
        BASE + 'by = ["queue", "queue"]\n', W + "by: a segment field is repeated", id="by-repeated"
    ),
    pytest.param(
        BASE + 'period = "year"\n', W + "period: must be one of day, week, month", id="period"
    ),
    pytest.param(
        BASE + "trend_periods = 7\n",
        W + "trend_periods: input should be greater than or equal to 8",
        id="trend-low",
    ),
    pytest.param(
        BASE + "trend_periods = 13\n",
        W + "trend_periods: input should be less than or equal to 12",
        id="trend-high",
    ),
    pytest.param(
        BASE + "list_limit = 0\n",
        W + "list_limit: input should be greater than or equal to 1",
        id="list-low",
    ),
    pytest.param(
        BASE + "list_limit = 26\n",
        W + "list_limit: input should be less than or equal to 25",
        id="list-high",
    ),
    pytest.param(
        BASE + 'late_grace = "soon"\n',
        W + 'late_grace: \'soon\' is not a duration such as "30m", "6h" or "2d"',
        id="late-grace",
    ),
    pytest.param(
        BASE + 'subject = "Hi\\r\\nBcc: x@y.z"\n',
        W + "subject: must be one line of text",
        id="subject-crlf",
    ),
    pytest.param(BASE + "colour = 1\n", W + "colour: unknown key", id="unknown-key"),
    pytest.param(
        BASE.replace("[digests.weekly]", '[digests."week ly"]'),
        "slamon.toml: digests.week ly: digest names are 1-100 letters, digits, '_', '-' or '.'",
        id="name",
    ),
    pytest.param(
        "[digests]\nweekly = 3\n", "slamon.toml: digests.weekly: must be a table", id="not-a-table"
    ),
]


@pytest.mark.parametrize(("body", "message"), ERRORS)
def test_digest_errors_name_the_key(body: str, message: str) -> None:
    assert error_of(body) == message


def test_every_mistake_is_reported_at_once() -> None:
    body = (
        '[digests.a]\nschedule = "nope"\nrecipients = ["x"]\n'
        '[digests.b]\nschedule = "0 8 * * mon"\nrecipients = ["b@example.com"]\nlocale = "fr"\n'
    )
    lines = error_of(body).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "digests.a.schedule",
        "digests.a.recipients.0",
        "digests.b.locale",
    ]


# --- config.example.toml -----------------------------------------------------------------


def _digest_example() -> str:
    """The commented [digests.weekly] example, uncommented: the table line and its keys."""
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index("# [digests.weekly]") :]
    keep = [line[2:] for line in block.splitlines() if re.match(r"^# (\[digests\.|\w+ = )", line)]
    return "\n".join(keep) + "\n"


def test_example_digest_loads() -> None:
    cfg = parse(_digest_example(), "example")
    d = cfg.digest("weekly")
    assert d.recipients and d.schedule == "0 8 * * mon"
    assert d.scope == {"queue": "billing"}


def test_example_documents_every_digest_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index("# [digests.weekly]") :].splitlines()
    for key in DigestSettings.model_fields:
        found = [i for i, line in enumerate(block) if line.startswith(f"# {key} = ")]
        assert found, f"[digests.NAME] {key} is not in config.example.toml"
        above = block[found[0] - 1]
        assert above.startswith("# ") and " = " not in above, f"{key} has no comment above it"
