"""Helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

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
