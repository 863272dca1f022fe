"""The Jinja2 environment for the templates in templates/ (shipped as slamon/_templates)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from slamon.errors import SlamonError


def templates_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise SlamonError("the templates are missing from this installation of slamon")


@cache
def environment() -> Environment:
    """Autoescaping for .html templates (a ticket subject is text, never markup); every
    missing variable is an error, never an empty string."""
    return Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
