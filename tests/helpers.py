"""Helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from slamon.config import Config, Settings


def make_config(url: str = "sqlite:///slamon.db", **sections: dict[str, Any]) -> Config:
    """A validated Config from plain section dicts, as a TOML file would give them."""
    data: dict[str, Any] = {"database": {"url": url}, **sections}
    return Config(Settings.model_validate(data), None)


def write_config(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def ru_range_dash() -> str:
    """The dash between the days of a Russian date range, as the installed babel's CLDR data
    writes it: an en dash up to babel 2.18, an em dash from 2.19. The digest takes CLDR's
    format as it is; the tests check where it goes, not which dash CLDR prefers."""
    from babel.dates import format_interval

    text = format_interval(date(2026, 5, 11), date(2026, 5, 17), "yMMMd", locale="ru")
    return "\u2014" if "\u2014" in text else "\u2013"
