"""Log lines: human or JSON on stderr, and secrets never written."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from slamon.logs import mask_text, setup_logging

SECRET = "s3cr3t-T0ken-value"
PASSWORD = "hunter2pw"


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_human_line(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("human")
    logging.getLogger("slamon.sync").info("synced %d complaints from %s", 12, "crm")
    logging.getLogger("slamon.sync").debug("not shown at INFO")
    err = capsys.readouterr().err
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO slamon\.sync: synced 12 complaints from crm\n", err
    ), err


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json", level="debug")
    log = logging.getLogger("slamon.alerts")
    log.debug("evaluated", extra={"source": "crm", "firing": 2, "ids": [1, 2], "obj": object()})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("job %s failed", "sync")
    first, second = json_lines(capsys.readouterr().err)

    assert first["level"] == "DEBUG"
    assert first["logger"] == "slamon.alerts"
    assert first["message"] == "evaluated"
    assert first["source"] == "crm" and first["firing"] == 2 and first["ids"] == [1, 2]
    assert "obj" not in first  # not JSON-safe: left out
    assert "exc_info" not in first
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["ts"])

    assert second["level"] == "ERROR"
    assert second["message"] == "job sync failed"
    assert second["exc_info"].startswith("Traceback (most recent call last):")
    assert second["exc_info"].rstrip().endswith("ValueError: boom")


@pytest.mark.parametrize("fmt", ["human", "json"])
def test_secrets_never_written(fmt: Any, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(fmt, secrets=[SECRET, ""])
    log = logging.getLogger("slamon.connectors")
    url = f"postgresql://slamon:{PASSWORD}@db.example.com/slamon"
    log.warning("token %s rejected", SECRET)
    log.warning(f"cannot open {url}")
    log.info("with extra", extra={"header": f"Bearer {SECRET}", "url": url})
    try:
        raise RuntimeError(f"401 for key={SECRET} at https://bot:{PASSWORD}@api.example.com/x")
    except RuntimeError:
        log.exception("request failed with %s", SECRET)
    err = capsys.readouterr().err

    assert SECRET not in err
    assert PASSWORD not in err
    assert "***" in err
    assert "postgresql://slamon:***@db.example.com/slamon" in err
    assert "RuntimeError: 401 for key=*** at https://bot:***@api.example.com/x" in err
    if fmt == "json":
        lines = json_lines(err)
        assert len(lines) == 4
        assert lines[0]["message"] == "token *** rejected"
        assert lines[2]["header"] == "Bearer ***"
        assert lines[3]["message"] == "request failed with ***"


def test_secret_in_an_exception_logged_by_an_unconfigured_child(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The filter sits on the handler, so records propagated from any logger are masked."""
    setup_logging("json", secrets=[SECRET])
    child = logging.getLogger("apscheduler.executors.default")
    try:
        raise KeyError(SECRET)
    except KeyError:
        child.error("Job raised an exception", exc_info=True)
    err = capsys.readouterr().err
    assert SECRET not in err
    assert "KeyError: '***'" in json_lines(err)[0]["exc_info"]


def test_reconfigure_replaces_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("human")
    setup_logging("json", level="WARNING")
    logging.getLogger("slamon").info("quiet")
    logging.getLogger("slamon").warning("once")
    lines = json_lines(capsys.readouterr().err)
    assert [line["message"] for line in lines] == ["once"]


def test_noisy_http_loggers_quiet_unless_debug(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("human")
    logging.getLogger("httpx").info("HTTP Request: GET https://x.example/?api_key=abc")
    assert capsys.readouterr().err == ""
    setup_logging("human", level="DEBUG")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="log level"):
        setup_logging("human", level="LOUD")
    with pytest.raises(ValueError, match="log format"):
        setup_logging("xml")  # type: ignore[arg-type]


def test_mask_text() -> None:
    assert mask_text("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_text("https://example.com/a:b") == "https://example.com/a:b"
    assert mask_text("nothing to hide", ["secret"]) == "nothing to hide"
    assert mask_text("a-secret-b", ["secret", "a-secret"]) == "***-b"
