"""Rendering a digest from fixed inputs: the words and figures each locale shows, the catalogues
(same keys, every plural form, no key a template lacks), email safety (hostile text inert, no
scripts or external resources, CSS inlined, light only) and the size cap."""

from __future__ import annotations

import re
import string
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel import Locale
from sqlalchemy import Engine

from helpers import make_config, ru_range_dash
from slamon.digest import (
    BreakdownRow,
    ComplaintItem,
    DigestAlert,
    DigestContext,
    Headline,
    LevelFigure,
    MeanVsLevel,
    SourceFreshness,
    Trend,
    TrendPoint,
    build_context,
    render,
)
from slamon.digest.catalog import CATALOGUES
from slamon.digest.i18n import Messages
from slamon.domain import ComplaintRecord, DayMode
from slamon.store.complaints import apply_batch, ensure_source
from slamon.store.engine import write_transaction
from slamon.templating import templates_dir

AS_OF = datetime(2026, 5, 18, 5, 0, tzinfo=UTC)  # Monday 08:00 in Moscow
MAX_HTML = 100 * 1024


def lv(
    n: int, share: float | None, target: float | None, matured: int, pending: int
) -> LevelFigure:
    met = None if share is None or target is None else share >= target
    return LevelFigure(n, share, target, met, matured, pending, None, None)


def small(
    n: int, share: float, target: float, matured: int, low: float, high: float
) -> LevelFigure:
    return LevelFigure(n, share, target, share >= target, matured, 0, low, high)


def fixed_context(locale: str = "en", **changes: Any) -> DigestContext:
    """A digest with every section filled: three thresholds (met, missed, no target), ten weeks
    of trend with one empty week, a small segment, one alert, three kinds of source."""
    weeks = [date(2026, 3, 9) + timedelta(weeks=i) for i in range(10)]
    shares3 = [0.74, 0.73, 0.71, None, 0.70, 0.69, 0.72, 0.66, 0.745, 0.725]

    def trend(n: int, target: float | None, shares: list[float | None]) -> Trend:
        return Trend(
            n,
            target,
            tuple(
                TrendPoint(
                    f"2026-W{w.isocalendar()[1]:02d}",
                    w,
                    w + timedelta(days=6),
                    lv(n, s, target, 0 if s is None else 400, 0),
                )
                for w, s in zip(weeks, shares, strict=True)
            ),
        )

    ctx = DigestContext(
        name="weekly",
        locale=locale,
        timezone="Europe/Moscow",
        as_of=AS_OF,
        late=False,
        period="week",
        period_start=date(2026, 5, 11),
        period_end=date(2026, 5, 17),
        previous_start=date(2026, 5, 4),
        previous_end=date(2026, 5, 10),
        scope=(),
        by=("queue",),
        thresholds=(3, 5, 10),
        day_mode=DayMode.CALENDAR,
        cohort_timezone="Europe/Moscow",
        complaints=1234,
        excluded=2,
        headline=(
            Headline(lv(3, 0.725, 0.7, 1000, 234), lv(3, 0.745, 0.7, 1100, 0)),
            Headline(lv(5, 0.781, 0.8, 900, 334), lv(5, 0.75, 0.8, 1100, 0)),
            Headline(lv(10, None, None, 0, 1234), lv(10, 0.9, None, 1100, 0)),
        ),
        trends=(
            trend(3, 0.7, shares3),
            trend(5, 0.8, [s and s + 0.05 for s in shares3]),
            trend(10, None, [s and s + 0.2 for s in shares3]),
        ),
        breakdown=(
            BreakdownRow(
                (("queue", "delivery"),),
                321,
                40,
                (lv(3, 0.542, 0.7, 300, 21), lv(5, 0.7, 0.8, 280, 41), lv(10, None, None, 0, 321)),
            ),
            BreakdownRow(
                (("queue", ""),),
                12,
                1,
                (
                    small(3, 0.5, 0.7, 10, 0.237, 0.763),
                    small(5, 0.9, 0.8, 10, 0.596, 0.982),
                    lv(10, None, None, 0, 12),
                ),
            ),
        ),
        breakdown_more=4,
        mean_vs_level=MeanVsLevel(
            since=date(2026, 3, 9),
            until=date(2026, 5, 17),
            complaints=12021,
            closed=11000,
            mean_days=3.14,
            median_days=1.9,
            p90_days=9.46,
            level=lv(3, 0.681, 0.7, 11500, 521),
        ),
        oldest=(
            ComplaintItem(
                "crm",
                "A-1",
                "Refund never arrived",
                "billing",
                "https://desk.example/A-1",
                AS_OF - timedelta(days=21, hours=3),
                21,
            ),
            ComplaintItem("crm", "A-2", "", "delivery", "", AS_OF - timedelta(days=2), 2),
        ),
        oldest_more=37,
        due_soon=(
            ComplaintItem(
                "crm",
                "B-7",
                "Курьер не приехал",
                "delivery",
                "https://desk.example/B-7",
                AS_OF - timedelta(days=2, hours=5),
                2,
                3,
                datetime(2026, 5, 18, 21, 0, tzinfo=UTC),
            ),
        ),
        due_soon_more=0,
        alerts=(
            DigestAlert(
                "Delivery below target",
                {"queue": "delivery"},
                3,
                0.542,
                0.7,
                datetime(2026, 5, 15, 9, 30, tzinfo=UTC),
            ),
        ),
        alerts_more=0,
        freshness=(
            SourceFreshness(
                "jira",
                "jira",
                datetime(2026, 5, 17, 1, 0, tzinfo=UTC),
                False,
                True,
                "HTTP 401: check the token",
            ),
            SourceFreshness(
                "crm", "redmine", datetime(2026, 5, 18, 4, 50, tzinfo=UTC), False, False, None
            ),
            SourceFreshness("new", "zendesk", None, False, True, None),
        ),
        freshness_more=0,
        stale_after=timedelta(hours=6),
        subject=None,
    )
    return replace(ctx, **changes)


def one_line(text: str) -> str:
    """Spaces as babel writes them (no-break, thin, narrow no-break) as plain spaces."""
    return re.sub(r"[\u00a0\u2009\u202f]", " ", text)


# --- words and figures ---------------------------------------------------------------------


def test_english_digest() -> None:
    out = render(fixed_context("en"))
    assert out.subject == (
        "Service level, week of May 11\u2009–\u200917, 2026: ✘ 78.1% closed within 5 days,"
        " target 80%"
    )
    assert out.images == {}
    for part in (one_line(out.text), one_line(unescape(out.html))):
        assert "Complaint service level · week of May 11 – 17, 2026" in part
        assert "1,234 complaints created (2 excluded)" in part
        assert "as of May 18, 8:00 AM" in part
        assert "72.5%" in part and "✔ target 70% met" in part
        assert "78.1%" in part and "✘ below target 80%" in part
        assert "▼ −2.0 pts vs the week before" in part  # 72.5 against 74.5
        assert "▲ +3.1 pts vs the week before" in part
        assert "no figure for the period before to compare with" in part
        assert "1,000 judged, 234 pending" in part
        assert (
            "the mean closure time is 3.1 days, but the service level says" in part
            and "68.1% closed within 3 days" in part
            and "The slowest 10% took more than 9.5 days." in part
        )
        assert "Trend over the last 10 weeks" in part
        assert "By queue, worst first" in part and "and 4 more segments" in part
        assert "(empty)" in part and "95% CI 24%–76%" in part
        assert "≤3 d in 16 h" in part and "due May 19, 12:00 AM" in part
        assert "21 days" in part and "2 days" in part and "(no subject)" in part
        assert "and 37 more" in part
        assert "1 alert firing now" in part and "Delivery below target" in part
        assert "≤3 d: 54.2% (target 70%)" in part and "firing since May 15, 12:30 PM" in part
        assert "stale" in part and "last error: HTTP 401: check the token" in part
        assert "never synced" in part and "last synced May 18, 7:50 AM" in part
        assert "Stale: no successful sync for more than 6 hours." in part
        assert "Days are calendar days in Europe/Moscow." in part
    assert "Within 10 days: — nothing judged yet\n" in out.text
    assert "late" not in out.subject.lower() and "Late digest" not in out.html


def test_russian_digest() -> None:
    out = render(fixed_context("ru"))
    assert out.subject == (
        f"Уровень сервиса, неделя 11{ru_range_dash()}17 мая 2026\u202fг.: ✘ за 5 дней закрыто"
        " 78,1\xa0%,"
        " цель 80\xa0%"
    )
    for part in (out.text, unescape(out.html)):
        assert "72,5\xa0%" in part  # babel's Russian percent: comma, no-break space
        assert "создано 1\xa0234 жалобы" in part  # plural: few
        assert f"Уровень сервиса по жалобам · неделя 11{ru_range_dash()}17 мая 2026\u202fг." in part
        assert "данные на 18 мая, 08:00" in part
        assert "✔ цель 70\xa0% достигнута" in part and "✘ ниже цели 80\xa0%" in part
        assert "▼ −2,0 п. п. по сравнению с предыдущей неделей" in part
        assert "оценено 1\xa0000, ждут срока 234" in part
        assert "среднее время закрытия — 3,1 дня" in part  # a fraction takes "дня"
        assert "за 3 дня закрыто 68,1\xa0%" in part
        assert "Динамика за 10 недель" in part
        assert "Разбивка: очередь (сначала худшие)" in part and "и ещё 4 среза" in part
        assert "ДИ 95\xa0%: 24\xa0%–76\xa0%" in part and "(пусто)" in part
        assert "21 день" in part and "2 дня" in part and "(без темы)" in part  # one, few
        assert "≤3 дн. через 16 ч" in part and "срок 19 мая, 00:00" in part
        assert "и ещё 37" in part
        assert "1 активное оповещение" in part and "≤3 дн.: 54,2\xa0% (цель 70\xa0%)" in part
        assert "устарели" in part and "ни разу не синхронизирован" in part
        assert "Устаревшие: успешной синхронизации не было больше 6 часов." in part
        assert "Дни: календарные, часовой пояс Europe/Moscow." in part
    # No English word in the Russian digest but the data's own (names, subjects, zone).
    text = out.text
    for data in (
        "Europe/Moscow",
        "delivery",
        "billing",
        "Refund never arrived",
        "weekly",
        "jira",
        "crm",
        "new",
        "HTTP 401: check the token",
        "Delivery below target",
        "https://desk.example/A-1",
        "https://desk.example/B-7",
        "slamon",
    ):
        text = text.replace(data, "")
    assert re.findall(r"[A-Za-z]{2,}", text) == []


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_month_and_day_periods(locale: str) -> None:
    month = render(
        fixed_context(
            locale, period="month", period_start=date(2026, 4, 1), period_end=date(2026, 4, 30)
        )
    )
    day = render(
        fixed_context(
            locale, period="day", period_start=date(2026, 5, 17), period_end=date(2026, 5, 17)
        )
    )
    if locale == "en":
        assert "Service level, April 2026:" in month.subject
        assert "Trend over the last 10 months" in month.text and "▼" in month.text
        assert "vs the month before" in month.text
        assert "Service level, Sun, May 17, 2026:" in day.subject
        assert "Trend over the last 10 days" in day.text and "vs the day before" in day.text
    else:
        assert "Уровень сервиса, апрель 2026:" in month.subject
        assert "Динамика за 10 месяцев" in month.text and "предыдущим месяцем" in month.text
        assert "вс, 17 мая 2026" in day.subject
        assert "Динамика за 10 дней" in day.text and "предыдущим днём" in day.text


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_late_digest_is_marked_late(locale: str) -> None:
    out = render(fixed_context(locale, late=True))
    mark = {"en": "[late] ", "ru": "[с опозданием] "}[locale]
    banner = {"en": "Late digest: sent after its scheduled time", "ru": "Дайджест с опозданием"}
    assert out.subject.startswith(mark)
    assert banner[locale] in out.text.splitlines()[0]
    assert banner[locale] in out.html


def test_subject_override_and_scope() -> None:
    out = render(fixed_context("en", subject="Billing: weekly", late=True))
    assert out.subject == "[late] Billing: weekly"
    scoped = render(fixed_context("en", scope=(("queue", "billing"),)))
    assert scoped.subject.startswith("Service level (billing), week of")
    assert "Scope: queue: billing" in scoped.text


def test_trend_is_drawn_as_table_bars() -> None:
    html = render(fixed_context("en")).html
    # Each bar is a column of cells whose heights add up to 56 px; the target is a dark mark.
    bars = re.findall(r'<td class="barcell".*?</table>', html, flags=re.S)
    assert len(bars) == 30
    for bar in bars:
        heights = [int(h) for h in re.findall(r'<td height="(\d+)"', bar)]
        assert sum(heights) == 56
    first = bars[0]  # 74 % against a 70 % target: a green fill through the mark
    assert re.findall(r'bgcolor="(#[0-9a-f]+)"', first) == [
        "#eaeef2",
        "#1a7f37",
        "#24292f",
        "#1a7f37",
    ]
    assert ">✔74.0</div>" in first
    empty = bars[3]  # the week with nothing judged: no fill, a dash
    assert "—" in empty and "#1a7f37" not in empty and "#c62828" not in empty
    text = render(fixed_context("en")).text
    assert "     3/9  █████████████│█░░░░░    74.0% ✔\n" in text
    assert "    3/30  ····················        —\n" in text


# --- catalogues ------------------------------------------------------------------------------


def _fields(message: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(message) if f}


def test_catalogues_have_the_same_keys_and_fields() -> None:
    en, ru = CATALOGUES["en"], CATALOGUES["ru"]
    assert set(en) == set(ru)
    for key in en:
        assert isinstance(en[key], str) == isinstance(ru[key], str), key
        en_msgs = [en[key]] if isinstance(en[key], str) else list(en[key].values())
        ru_msgs = [ru[key]] if isinstance(ru[key], str) else list(ru[key].values())
        fields = {frozenset(_fields(m)) for m in en_msgs + ru_msgs}  # type: ignore[arg-type]
        assert len(fields) == 1, f"{key}: the locales ask for different fields {fields}"


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_plural_messages_have_every_form_of_their_language(locale: str) -> None:
    needed = set(Locale.parse(locale).plural_form.tags) | {"other"}
    for key, message in CATALOGUES[locale].items():
        if not isinstance(message, str):
            assert set(message) == needed, f"{locale}: {key}"


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, "1 жалоба"),
        (3, "3 жалобы"),
        (5, "5 жалоб"),
        (11, "11 жалоб"),
        (21, "21 жалоба"),
        (22, "22 жалобы"),
        (111, "111 жалоб"),
        (1001, "1\xa0001 жалоба"),
    ],
)
def test_russian_plural_forms(count: int, expected: str) -> None:
    assert Messages("ru").plural("unit.complaints", count) == expected


_KEY = re.compile(r"""['"]([a-z0-9_]+(?:\.[a-z0-9_]+)*\.?)['"]""")
_DYNAMIC = re.compile(r"""['"]((?:[a-z_]+\.)+)['"]\s*~|f["']((?:[a-z_]+\.)+)\{""")


def test_templates_and_views_use_only_catalogue_keys() -> None:
    """Every key a template or the view names literally exists; every catalogue key is named
    somewhere (literally, or under a prefix completed at run time)."""
    sources = [p.read_text(encoding="utf-8") for p in templates_dir().glob("digest.*.j2")]
    package = Path(__file__).parent.parent / "slamon" / "digest"
    sources += [(package / name).read_text(encoding="utf-8") for name in ("render.py", "i18n.py")]
    used: set[str] = set()
    prefixes: set[str] = set()
    for text in sources:
        used |= {k for k in _KEY.findall(text) if not k.endswith(".")}
        prefixes |= {a or b for a, b in _DYNAMIC.findall(text)}
    catalogue = set(CATALOGUES["en"])
    namespaces = {k.split(".")[0] for k in catalogue}
    used = {k for k in used if k.split(".")[0] in namespaces}
    assert {k for k in used - catalogue if "." in k} == set()
    unused = {k for k in catalogue - used if not any(k.startswith(p) for p in prefixes)}
    assert unused == set()
    assert {"trend.title.", "mode.", "field.", "change.previous."} <= prefixes


@pytest.mark.parametrize("locale", ["en", "ru"])
@pytest.mark.parametrize("period", ["day", "week", "month"])
@pytest.mark.parametrize("mode", list(DayMode))
def test_every_branch_renders(locale: str, period: str, mode: DayMode) -> None:
    """Lists full and empty, late or not, with and without alerts: StrictUndefined and the
    catalogue would raise on anything missing."""
    full = fixed_context(
        locale,
        period=period,
        day_mode=mode,
        late=True,
        alerts_more=2,
        due_soon_more=3,
        freshness_more=1,
        scope=(("queue", "billing"), ("channel", "")),
    )
    empty = fixed_context(
        locale,
        period=period,
        day_mode=mode,
        breakdown=(),
        breakdown_more=0,
        oldest=(),
        oldest_more=0,
        due_soon=(),
        alerts=(),
        freshness=(),
        by=(),
        excluded=0,
        mean_vs_level=replace(fixed_context().mean_vs_level, mean_days=None),
    )
    for ctx in (full, empty):
        out = render(ctx)
        assert out.subject and out.text.strip() and "</html>" in out.html


# --- email safety ----------------------------------------------------------------------------

HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "Refund\r\nBcc: victim@example.com\r\n\r\nInjected body",
    "bidi \u202eevil\u202c and \x00nul\x1b[31m",
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


SAFE_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "table",
    "tbody",
    "tr",
    "td",
    "th",
    "div",
    "span",
    "b",
    "br",
    "h1",
    "h2",
    "a",
}


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_hostile_text_is_inert(locale: str) -> None:
    items = tuple(
        ComplaintItem("crm", f"X-{i}<b>", text, text, url, AS_OF - timedelta(days=9), 9)
        for i, (text, url) in enumerate(
            zip(
                HOSTILE,
                (
                    "javascript:alert(1)",
                    'https://x.example/"onmouseover="a',
                    "https://desk.example/ok",
                    "data:text/html,x",
                ),
                strict=True,
            )
        )
    )
    ctx = fixed_context(
        locale,
        oldest=items,
        due_soon=(),
        breakdown=tuple(
            BreakdownRow((("queue", text),), 3, 1, (lv(3, 0.5, 0.7, 2, 1),)) for text in HOSTILE
        ),
        alerts=tuple(DigestAlert(text, {"queue": text}, 3, 0.1, 0.7, AS_OF) for text in HOSTILE),
        freshness=(SourceFreshness(HOSTILE[0], "x", None, False, True, HOSTILE[2]),),
        scope=(("queue", HOSTILE[2]),),
    )
    out = render(ctx)
    # HTML: only our own tags and attributes, no handler, no script, only web links.
    for tag, attrs in _tags(out.html):
        assert tag in SAFE_TAGS, tag
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            if name == "href":
                assert value is not None and value.startswith("https://"), value
    assert "<script" not in out.html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out.html
    assert "https://desk.example/ok" in out.html
    assert "javascript:" not in out.html and "data:text" not in out.html
    # Text and subject: no line forged by the data, no control or bidi character at all.
    assert "\r" not in out.text and "\r" not in out.subject and "\n" not in out.subject
    for line in out.text.splitlines():
        assert not line.startswith(("Bcc:", "Injected"))
    for part in (out.text, out.html, out.subject):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]", part)
    assert "<script>alert(1)</script>" in out.text  # shown as written, inert in plain text
    assert "Refund Bcc: victim@example.com Injected body" in out.text


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_html_is_email_safe(locale: str) -> None:
    html = render(fixed_context(locale)).html
    assert html.startswith("<!DOCTYPE html>")
    assert f'<html lang="{locale}">' in html
    assert '<meta name="color-scheme" content="light only">' in html
    tags = _tags(html)
    assert {t for t, _ in tags} <= SAFE_TAGS
    assert not any(t in ("script", "img", "link", "iframe", "object") for t, _ in tags)
    assert "@import" not in html and "url(" not in html and "@font-face" not in html
    # CSS is inlined: what is left in <style> is the phone layout (@media) only.
    styles = re.findall(r"<style>(.*?)</style>", html, flags=re.S)
    assert all(s.strip().startswith("@media") for s in styles)
    assert 'style="' in html
    h1 = next(attrs for t, attrs in tags if t == "h1")
    assert any(n == "style" and v and "font-size: 20px" in v for n, v in h1)


# --- size ------------------------------------------------------------------------------------


def test_two_hundred_segments_stay_under_100_kb(sqlite_engine: Engine) -> None:
    long = "Очень длинная тема жалобы, которую клиент написал целиком " * 10
    created = datetime(2026, 5, 12, 9, 0, tzinfo=UTC)
    records = [
        ComplaintRecord(
            external_id=f"{q}-{k}",
            created_at=created - timedelta(days=k * 3),
            closed_at=None if k % 2 else created - timedelta(days=k * 3) + timedelta(days=k),
            queue=f"очередь номер {q:03d} с длинным названием",
            channel=("phone", "email", "chat")[k % 3],
            subject=long,
            url=f"https://desk.example/tickets/{q}-{k}?view=full&from=digest",
        )
        for q in range(200)
        for k in range(4)
    ]
    with write_transaction(sqlite_engine) as conn:
        for s in range(30):
            ensure_source(conn, f"source-{s:02d}", "redmine", AS_OF)
        apply_batch(conn, "source-00", records, AS_OF)
    cfg = make_config(
        str(sqlite_engine.url),
        service_level={"timezone": "Europe/Moscow"},
        digests={
            "big": {
                "schedule": "0 8 * * mon",
                "recipients": ["a@example.com"],
                "by": ["queue", "channel"],
                "trend_periods": 12,
                "list_limit": 25,
            }
        },
    )
    alerts = [
        DigestAlert(f"Alert {i} " + long[:80], {"queue": "q"}, 3, 0.1, 0.7, AS_OF)
        for i in range(40)
    ]
    ctx = build_context(sqlite_engine, cfg, "big", AS_OF, alerts=alerts)
    assert len(ctx.breakdown) == 15 and ctx.breakdown_more == 185
    assert len(ctx.oldest) == 25 and ctx.oldest_more > 25
    for locale in ("en", "ru"):
        out = render(replace(ctx, locale=locale))
        size = len(out.html.encode("utf-8"))
        assert size < MAX_HTML, f"{locale}: {size} bytes"
        assert ("and 185 more segments" if locale == "en" else "и ещё 185 срезов") in out.html
        assert ("and 30 more" if locale == "en" else "и ещё 30") in out.html  # alerts


def test_an_oversized_digest_is_shortened_to_fit() -> None:
    """Nine thresholds over twelve periods and every list full: over budget as configured, so
    the lists shrink (their "N more" grows) until the HTML fits."""
    ns = (1, 2, 3, 5, 7, 10, 14, 21, 30)
    base = fixed_context("ru")
    weeks = [date(2026, 2, 23) + timedelta(weeks=i) for i in range(12)]
    long = "очень длинное название сегмента " * 3
    item = base.oldest[0]
    ctx = replace(
        base,
        thresholds=ns,
        headline=tuple(Headline(lv(n, 0.7, 0.8, 100, 5), lv(n, 0.75, 0.8, 100, 0)) for n in ns),
        trends=tuple(
            Trend(n, 0.8, tuple(TrendPoint("x", w, w, lv(n, 0.77, 0.8, 50, 0)) for w in weeks))
            for n in ns
        ),
        breakdown=tuple(
            BreakdownRow(
                (("queue", f"{long}{i}"),),
                50,
                5,
                tuple(small(n, 0.5, 0.8, 20, 0.3, 0.7) for n in ns),
            )
            for i in range(15)
        ),
        oldest=tuple(replace(item, external_id=f"A-{i}", subject=long * 3) for i in range(25)),
        oldest_more=0,
        due_soon=tuple(replace(base.due_soon[0], external_id=f"B-{i}") for i in range(25)),
    )
    out = render(ctx)
    assert len(out.html.encode("utf-8")) <= 96 * 1024
    shown = len(re.findall(r"#A-\d+", out.html))
    assert shown < 25
    more = f"и ещё {25 - shown}"
    assert more in out.html and more in out.text
    assert len(re.findall(r"#A-\d+", out.text)) == shown
