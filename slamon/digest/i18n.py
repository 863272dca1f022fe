"""Every word a digest shows, in Russian and English, and the numbers and dates formatted the
way each language writes them (babel: "72,5 %" and "11–17 мая 2026 г." in Russian,
"72.5%" and "May 11 – 17, 2026" in English).

A message is a str.format template with named fields, or, where it counts something, a table of
plural forms keyed by CLDR category (one, few, many, other), chosen with babel's plural rules.
Both catalogues have the same keys (a test checks it); a key that is missing raises KeyError,
so no template can render half translated.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from decimal import Decimal
from functools import cache

from babel import Locale
from babel.dates import format_date, format_interval, format_skeleton, format_time
from babel.numbers import format_decimal, format_percent

from slamon.digest.catalog import CATALOGUES, Message

LOCALES = tuple(CATALOGUES)
DASH = "—"


@cache
def _locale(code: str) -> Locale:
    return Locale.parse(code)


@cache
def _percent_pattern(code: str, decimals: int) -> str:
    """The locale's own percent pattern (with its spacing and sign position), with decimals."""
    pattern = str(_locale(code).percent_formats[None].pattern)
    if decimals:
        pattern = pattern.replace("0", "0." + "0" * decimals, 1)
    return pattern


class Messages:
    """A locale's catalogue and its number and date formats, as templates call them."""

    def __init__(self, locale: str) -> None:
        if locale not in CATALOGUES:
            raise ValueError(f"no catalogue for locale {locale!r} (have {', '.join(LOCALES)})")
        self.code = locale
        self.locale = _locale(locale)
        self.catalogue: Mapping[str, Message] = CATALOGUES[locale]

    # --- words ---

    def t(self, key: str, /, **values: object) -> str:
        message = self.catalogue[key]
        if not isinstance(message, str):
            raise TypeError(f"{self.code}: {key} has plural forms: use plural()")
        return message.format(**values) if values else message

    def plural(self, key: str, count: int, /, **values: object) -> str:
        """The form of ``key`` for ``count`` ({n} in the message is the formatted count)."""
        forms = self.catalogue[key]
        if isinstance(forms, str):
            raise TypeError(f"{self.code}: {key} has no plural forms: use t()")
        form = self.locale.plural_form(count)
        message = forms.get(form, forms["other"])
        return message.format(n=self.number(count), **values)

    def plural_decimal(self, key: str, value: float, /, **values: object) -> str:
        """The form of ``key`` for a count with one decimal ("3,1 дня", "1.0 days")."""
        forms = self.catalogue[key]
        if isinstance(forms, str):
            raise TypeError(f"{self.code}: {key} has no plural forms: use t()")
        shown = Decimal(f"{value:.1f}")
        message = forms.get(self.locale.plural_form(shown), forms["other"])
        return message.format(n=self.decimal(value), **values)

    # --- numbers ---

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def pct(self, share: float | None, decimals: int = 1) -> str:
        """A share as a percentage with ``decimals`` digits ("72,5 %"), or a dash."""
        if share is None:
            return DASH
        return format_percent(share, _percent_pattern(self.code, decimals), locale=self.locale)

    def target(self, share: float | None) -> str:
        """A target share: whole percent unless it has a tenth ("70 %", "72,5 %")."""
        if share is None:
            return DASH
        whole = round(share * 100, 1) == round(share * 100)
        return self.pct(share, 0 if whole else 1)

    def points(self, change: float) -> str:
        """A change in percentage points with its sign ("+2,1 п. п.", "−3.4 pts")."""
        rounded = round(change, 1)
        sign = "+" if rounded > 0 else ("−" if rounded < 0 else "±")
        value = format_decimal(abs(rounded), "#,##0.0", locale=self.locale)
        return self.t("unit.points", value=f"{sign}{value}")

    def decimal(self, value: float | None) -> str:
        if value is None:
            return DASH
        return format_decimal(value, "#,##0.0", locale=self.locale)

    # --- dates ---

    def day(self, value: date | datetime, skeleton: str = "yMMMd") -> str:
        return format_skeleton(skeleton, value, locale=self.locale)

    def date_range(self, start: date, end: date) -> str:
        if start == end:
            return self.day(start, "yMMMEd")
        return format_interval(start, end, "yMMMd", locale=self.locale)

    def month(self, day: date) -> str:
        return format_date(day, "LLLL y", locale=self.locale)

    def moment(self, instant: datetime, zone: tzinfo) -> str:
        """An instant as local day and time: "11 мая, 09:30", "May 11, 9:30 AM"."""
        local = instant.astimezone(zone)
        day = format_skeleton("MMMd", local, locale=self.locale)
        return f"{day}, {format_time(local, 'short', locale=self.locale)}"

    def moment_with_year(self, instant: datetime, zone: tzinfo) -> str:
        local = instant.astimezone(zone)
        day = format_skeleton("yMMMd", local, locale=self.locale)
        return f"{day}, {format_time(local, 'short', locale=self.locale)}"
