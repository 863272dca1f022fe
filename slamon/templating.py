"""The Jinja2 environment for the templates in templates/ (shipped as slamon/_templates)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from slamon.errors import SlamonError


def templates_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise SlamonError("the templates are missing from this installation of slamon")


#: C0 and C1 controls, line and paragraph separators, and bidirectional overrides/isolates.
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def _finalize(value: Any) -> Any:
    """Every printed string loses its control and bidi characters (a ticket subject cannot
    break a line of the plain text or reorder the text around it)."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return UNSAFE.sub(" ", value)


@cache
def environment() -> Environment:
    """Autoescaping for .html templates (a ticket subject is text, never markup); every
    missing variable is an error, never an empty string."""
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=False),
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["upfirst"] = lambda text: text[:1].upper() + text[1:]
    return env
