"""Export files as configured sources, and third-party connectors from entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from helpers import make_config
from slamon import sources as sources_mod
from slamon import sync as sync_mod
from slamon.config import parse
from slamon.errors import ConfigError
from slamon.store.models import complaints, sources

HEADER = "id,created_at,closed_at,status,queue\n"


def sync(engine: Engine, cfg, name: str = "exp") -> sync_mod.SyncResult:
    kind, connector, http = sources_mod.open_connector(cfg, name, now=datetime.now(UTC))
    with http:
        return sync_mod.sync(engine, name, kind, connector, lambda: datetime.now(UTC))


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(complaints)).scalar_one())


def test_csv_source_reads_only_a_changed_file(engine: Engine, tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    rows = [f"{i},2026-03-0{1 + i % 5}T10:00:00+03:00,,open,billing\n" for i in range(1, 12)]
    export.write_text(HEADER + "".join(rows), encoding="utf-8")
    cfg = make_config(
        str(engine.url), sources={"exp": {"kind": "csv", "path": str(export), "page_size": 4}}
    )
    first = sync(engine, cfg)
    assert first.ok and first.pages == 3 and first.counts.new == 11
    again = sync(engine, cfg)
    assert again.ok and again.pages == 0  # unchanged file: nothing read
    export.write_text(
        HEADER + "".join(rows) + "12,2026-03-06T10:00:00Z,2026-03-07T10:00:00Z,closed,vip\n",
        encoding="utf-8",
    )
    third = sync(engine, cfg)
    assert third.ok and third.counts.new == 1 and third.counts.unchanged == 11
    assert count(engine) == 12


def test_a_bad_row_stops_the_file_sync_and_names_the_line(engine: Engine, tmp_path: Path):
    export = tmp_path / "export.jsonl"
    export.write_text(
        '{"id": 1, "created_at": "2026-03-01T10:00:00Z"}\n'
        '{"id": 2, "created_at": "2026-03-01T10:00:00Z"}\n'
        '{"id": 3, "created_at": "last tuesday"}\n',
        encoding="utf-8",
    )
    cfg = make_config(
        str(engine.url), sources={"exp": {"kind": "jsonl", "path": str(export), "page_size": 1}}
    )
    result = sync(engine, cfg)
    assert not result.ok
    assert f"{export}:3: created_at: cannot read 'last tuesday'" in result.error
    assert count(engine) == 2  # the good pages before it are kept
    with engine.connect() as conn:
        cursor = json.loads(
            conn.execute(select(sources.c.cursor).where(sources.c.name == "exp")).scalar_one()
        )
    assert cursor["line"] == 2 and "complete" not in cursor


def test_unknown_kind_and_bad_source_keys_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse('[sources.crm]\nkind = "bugzilla"\n', "slamon.toml")
    assert str(err.value).startswith("slamon.toml: sources.crm.kind: unknown connector 'bugzilla'")
    with pytest.raises(ConfigError) as err:
        parse('[sources.crm]\nkind = "redmine"\nurl = "http://x"\napi_key = "plain"\n', "s.toml")
    assert str(err.value) == "s.toml: sources.crm.api_key: unknown key"
    with pytest.raises(ConfigError) as err:
        parse('[sources.crm]\nkind = "redmine"\n', "s.toml")
    assert str(err.value) == "s.toml: sources.crm.url: is required"
    with pytest.raises(ConfigError) as err:
        parse('[sources."no spaces"]\nkind = "csv"\npath = "x.csv"\n', "s.toml")
    assert "sources.no spaces: source names are" in str(err.value)


PLUGIN = '''
"""A tiny third-party connector: three complaints, one page."""

from datetime import UTC, datetime
from typing import ClassVar, Literal

from slamon.connectors.base import Page, SourceSettings
from slamon.domain import ComplaintRecord


class TinySettings(SourceSettings):
    kind: Literal["tiny"] = "tiny"
    queue: str = "tiny-queue"


class TinyConnector:
    kind: ClassVar[str] = "tiny"
    Settings: ClassVar[type[TinySettings]] = TinySettings

    def __init__(self, name, settings, http, now):
        self.settings = settings

    @classmethod
    def http_options(cls, settings, secret):
        return {"base_url": "http://localhost"}

    def changes(self, cursor):
        created = datetime(2026, 3, 1, 10, tzinfo=UTC)
        records = [
            ComplaintRecord(external_id=str(i), created_at=created, queue=self.settings.queue)
            for i in range(3)
        ]
        yield Page(records, {"done": True})

    def history(self, window, checkpoint):
        return self.changes(None)
'''


@pytest.mark.slow
def test_a_plugin_installed_with_pip_is_found_through_its_entry_point(tmp_path: Path) -> None:
    project = tmp_path / "tinyplug"
    project.mkdir()
    (project / "tinyplug.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "tinyplug"
            version = "0.1"

            [project.entry-points."slamon.connectors"]
            tiny = "tinyplug:TinyConnector"

            [tool.hatch.build.targets.wheel]
            include = ["tinyplug.py"]
            """
        ),
        encoding="utf-8",
    )
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(project),
        ],
        check=True,
        timeout=300,
    )
    conf = tmp_path / "slamon.toml"
    conf.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
        '[sources.mine]\nkind = "tiny"\nqueue = "from-plugin"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    base = [sys.executable, "-m", "slamon", "--config", str(conf)]
    subprocess.run([*base, "db", "upgrade"], check=True, env=env, capture_output=True, timeout=120)
    proc = subprocess.run([*base, "sync"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mine: 1 pages, 3 complaints (3 new" in proc.stdout
    report = subprocess.run(
        [*base, "report", "--by", "queue", "--as-of", "2026-03-10T00:00:00Z", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert [r["segment"]["queue"] for r in json.loads(report.stdout)["rows"]] == ["from-plugin"]
    # Without the plugin on the path, the same config is an error naming the key.
    plain = subprocess.run([*base, "config", "check"], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 2
    assert "sources.mine.kind: unknown connector 'tiny'" in plain.stderr
