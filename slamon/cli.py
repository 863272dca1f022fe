"""The command line: parse, call one service function, print. The only module that prints."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import tomli_w
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from slamon import __version__, clock, importer
from slamon import config as config_mod
from slamon import report as report_mod
from slamon import sources as sources_mod
from slamon import sync as sync_mod
from slamon.config import Config
from slamon.connectors.base import Page, SyncWindow
from slamon.errors import SlamonError, UsageError
from slamon.instants import parse_instant
from slamon.render import curve_table, report_table
from slamon.servicelevel.deadlines import start_of_local_day
from slamon.store import migrate
from slamon.store.engine import make_engine, mask_url

P = ParamSpec("P")
R = TypeVar("R")

# emoji=False: ":fire:" in a subject, a queue or a bad value is shown as written.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class State:
    def __init__(self, config_path: Path | None, debug: bool) -> None:
        self.config_path = config_path
        self.debug = debug
        self._config: Config | None = None
        self._engine: Engine | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = config_mod.load(self.config_path)
        return self._config

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.config.database_url)
        return self._engine

    def migrated_engine(self) -> Engine:
        migrate.require_current(self.engine)
        return self.engine


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    sys.exit(code)


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn slamon's own errors into one line on stderr and their exit code."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except SlamonError as exc:
            if debug:
                raise
            _fail(_escape(str(exc)), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:
            if debug:
                raise
            _fail(f"{type(exc).__name__}: {_escape(str(exc))} (run with --debug for details)", 1)

    return wrapper


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def state() -> State:
    obj = click.get_current_context().find_root().obj
    assert isinstance(obj, State)
    return obj


def _parse_as_of(value: str | None, cfg: Config) -> datetime:
    if value is None:
        return clock.now()
    try:
        return parse_instant(value, cfg.settings.service_level.zone)
    except ValueError:
        raise UsageError(f"--as-of: cannot read {value!r} as an ISO 8601 instant") from None


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option}: cannot read {value!r} as a date (YYYY-MM-DD)") from None


@contextmanager
def _atomic_output(path: Path | None) -> Iterator[Any]:
    """Write to ``path`` through a temporary file renamed into place (never half a file)."""
    if path is None:
        yield sys.stdout
        return
    target = path.resolve()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Configuration file (default: $SLAMON_CONFIG, else ./slamon.toml, else defaults).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="slamon")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """slamon: the share of complaints closed within N days, not the flattering mean.

    Start with `slamon demo`; then write a slamon.toml (see config.example.toml),
    `slamon db upgrade`, `slamon import FILE --source NAME` and `slamon report`.
    """
    ctx.obj = State(config_path, debug)


# --- config -------------------------------------------------------------------------------


@cli.group("config")
def config_group() -> None:
    """Check or show the configuration."""


@config_group.command("check")
@handled
def config_check() -> None:
    """Validate the configuration file; exit 2 with the key at fault when it is wrong."""
    cfg = state().config
    _ = cfg.database_url  # resolves *_env / *_file secrets, so that a missing one is reported
    out.print(f"{cfg.label}: OK (database {cfg.masked_database_url})", markup=False)


@config_group.command("show")
@handled
def config_show() -> None:
    """Print the effective configuration as TOML, secrets masked."""
    cfg = state().config
    out.print(f"# effective configuration from {cfg.label}", markup=False)
    out.print(tomli_w.dumps(cfg.effective()), markup=False, end="")


# --- db -----------------------------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """Create or upgrade the database schema."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@handled
def db_upgrade(revision: str) -> None:
    """Migrate the database to the schema this slamon needs (creates it if empty)."""
    st = state()
    migrate.upgrade(st.engine, revision)
    out.print(
        f"{mask_url(st.engine.url)}: at revision {migrate.current_revision(st.engine)}",
        markup=False,
    )


@db_group.command("current")
@handled
def db_current() -> None:
    """Show the database's schema revision and whether it is current."""
    st = state()
    current = migrate.current_revision(st.engine)
    head = migrate.head_revision(st.engine)
    where = mask_url(st.engine.url)
    if current == head:
        out.print(f"{where}: {current} (current)", markup=False)
        return
    out.print(f"{where}: {current or 'empty'} (this slamon needs {head})", markup=False)
    sys.exit(1)


@db_group.command("rebuild-rollup")
@handled
def db_rebuild_rollup() -> None:
    """Rebuild the roll-up that reports read, from the stored complaints, under the configured
    timezone, closure rule and [rollup] dimensions (one transaction; syncs wait for it).

    Needed after changing service_level.timezone, service_level.closure or rollup.dimensions,
    and when a report says the roll-up is stale. Thresholds, targets, holidays and --as-of
    need no rebuild.
    """
    st = state()
    engine = st.migrated_engine()
    with Progress(
        TextColumn("rebuilding the roll-up"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.description}"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        result = report_mod.rebuild_rollup(engine, st.config, clock.now(), progress)
    out.print(
        f"roll-up rebuilt in {result.seconds:.1f} s from {result.complaints} complaints:"
        f" {result.day_rows} day rows, {result.closure_rows} closure rows"
        f" ({result.basis.describe()})",
        markup=False,
    )


# --- import -------------------------------------------------------------------------------


@cli.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--source", required=True, help="Name of the source the complaints belong to.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by extension.")
@click.option("--strict", is_flag=True, help="Write nothing when any row is bad.")
@handled
def import_cmd(file: Path, source: str, fmt: str | None, strict: bool) -> None:
    """Import complaints from a CSV or JSONL export (upsert by source and id).

    CSV columns: id, created_at (required); closed_at, first_closed_at, status, queue, channel,
    category, priority, subject, url, updated_at, excluded (optional); others are ignored.
    """
    st = state()
    source = source.strip()
    if not source or len(source) > 100:
        raise UsageError("--source must be a name of 1 to 100 characters")
    engine = st.migrated_engine()
    cfg = st.config
    size = file.stat().st_size
    show = err.is_terminal
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task("import", total=size)
        result = importer.import_file(
            engine,
            file,
            source=source,
            tz=cfg.settings.service_level.zone,
            now=clock.now(),
            fmt=fmt,
            strict=strict,
            batch_size=cfg.settings.import_.batch_size,
            excluded_statuses=frozenset(cfg.settings.import_.excluded_statuses),
            progress=lambda pos: bar.update(task, completed=pos),
        )
    for line in result.error_lines():
        err.print(line, markup=False)
    if result.bad_rows > len(result.errors):
        err.print(f"... and {result.bad_rows - len(result.errors)} more bad rows", markup=False)
    c = result.counts
    if not result.written:
        err.print(
            f"{file}: {result.bad_rows} bad rows of {result.rows}; --strict: nothing imported",
            markup=False,
        )
        sys.exit(1)
    summary = (
        f"{file}: {result.rows} rows: {c.new} new, {c.changed} changed, {c.unchanged} unchanged"
    )
    if c.stale:
        summary += f", {c.stale} older than stored (kept the stored)"
    if result.bad_rows:
        summary += f", {result.bad_rows} bad (skipped)"
    out.print(summary, markup=False)
    if c.repeated:
        out.print(
            f"{c.repeated} rows repeated an id seen shortly before in the file: applied in file"
            " order (the newest by updated_at wins)",
            markup=False,
        )
    if result.closed_before_created:
        out.print(
            f"{result.closed_before_created} complaints closed before they were created: stored,"
            " and excluded from every metric",
            markup=False,
        )
    if result.bad_rows:
        sys.exit(1)


# --- report -------------------------------------------------------------------------------


@cli.command("report")
@click.option(
    "--since", help="First local creation date (YYYY-MM-DD). Default: 27 days before --until."
)
@click.option("--until", help="Last local creation date, inclusive. Default: the day of --as-of.")
@click.option(
    "--period",
    type=click.Choice(["none", "day", "week", "month"]),
    default="none",
    show_default=True,
    help="Cohorts by local creation day, ISO week or month.",
)
@click.option(
    "--by",
    multiple=True,
    help="Group by a segment field: queue, channel, category, priority, source (repeatable).",
)
@click.option("--as-of", "as_of", help="Judge as of this instant (ISO 8601). Default: now.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    help="Default: table on a terminal, else json.",
)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to FILE.")
@click.option(
    "--curve",
    is_flag=True,
    help="Instead: the share closed by day d = 0..30 (Kaplan-Meier, young complaints censored).",
)
@handled
def report_cmd(
    since: str | None,
    until: str | None,
    period: str,
    by: tuple[str, ...],
    as_of: str | None,
    fmt: str | None,
    output: Path | None,
    curve: bool,
) -> None:
    """Print the service level: the share closed within each threshold, with the mean beside it."""
    st = state()
    cfg = st.config
    request = report_mod.make_request(
        as_of=_parse_as_of(as_of, cfg),
        tz=cfg.settings.service_level.zone,
        since=_parse_date(since, "--since"),
        until=_parse_date(until, "--until"),
        period=period,
        by=by,
    )
    engine = st.migrated_engine()
    if fmt is None:
        fmt = "table" if output is None and out.is_terminal else "json"
    result = (
        report_mod.run_curve(engine, cfg, request)
        if curve
        else report_mod.run(engine, cfg, request)
    )
    if fmt == "table":
        renderable = (
            curve_table(result)
            if isinstance(result, report_mod.CurveReport)
            else report_table(result)
        )
        if output is not None:
            with _atomic_output(output) as fh:
                Console(file=fh, width=160, no_color=True).print(renderable)
        else:
            out.print(renderable)
        return
    if fmt == "json":
        text = json.dumps(result.as_json(), ensure_ascii=False, indent=2) + "\n"
    elif isinstance(result, report_mod.CurveReport):
        text = report_mod.curve_to_csv(result)
    else:
        text = report_mod.to_csv(result)
    with _atomic_output(output) as fh:
        fh.write(text)


# --- sync -------------------------------------------------------------------------------


def _sync_line(result: sync_mod.SyncResult, elapsed: float) -> str:
    c = result.counts
    rate = result.received / elapsed if elapsed > 0 else 0.0
    line = (
        f"{result.source}: {result.pages} pages, {result.received} complaints"
        f" ({c.new} new, {c.changed} changed, {c.unchanged} unchanged"
        + (f", {c.stale} older than stored" if c.stale else "")
        + f"), {rate:.0f}/s"
    )
    if result.error:
        kind = "permanent, fix the source's config" if result.permanent else "will retry"
        line += f"; FAILED ({kind}): {result.error}"
    return line


@cli.command("sync")
@click.option("--source", "names", multiple=True, help="Only this source (repeatable).")
@handled
def sync_cmd(names: tuple[str, ...]) -> None:
    """Fetch what changed in each configured source since its cursor, and store it."""
    st = state()
    cfg = st.config
    engine = st.migrated_engine()
    chosen = list(names) or sorted(cfg.sources)
    if not chosen:
        raise UsageError(f"no [sources.NAME] tables in {cfg.label}: nothing to sync")
    failed = 0
    for name in chosen:
        started = time.monotonic()
        kind, connector, http = sources_mod.open_connector(cfg, name, now=clock.now())
        with http:
            result = sync_mod.sync(engine, name, kind, connector, clock.now)
        failed += not result.ok
        (err if result.error else out).print(
            _sync_line(result, time.monotonic() - started), markup=False
        )
    if failed:
        sys.exit(1)


@cli.command("backfill")
@click.option("--source", "name", required=True, help="The source to pull history from.")
@click.option("--since", required=True, help="First local creation date (YYYY-MM-DD).")
@click.option("--until", help="Last local creation date, inclusive. Default: today.")
@handled
def backfill_cmd(name: str, since: str, until: str | None) -> None:
    """Pull a source's history over a date range; resumable, never sends notifications."""
    st = state()
    cfg = st.config
    engine = st.migrated_engine()
    tz = cfg.settings.service_level.zone
    first = _parse_date(since, "--since")
    assert first is not None
    last = _parse_date(until, "--until") or clock.now().astimezone(tz).date()
    if first > last:
        raise UsageError(f"--since {first} is after --until {last}")
    window = SyncWindow(
        start_of_local_day(first, tz), start_of_local_day(last + timedelta(days=1), tz)
    )
    started = time.monotonic()
    kind, connector, http = sources_mod.open_connector(cfg, name, now=clock.now())
    with (
        http,
        Progress(
            TextColumn("backfill {task.fields[source]}"),
            BarColumn(),
            TextColumn("{task.completed} complaints, {task.fields[pages]} pages"),
            TextColumn("{task.fields[rate]:.0f}/s"),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("backfill", total=None, source=name, pages=0, rate=0.0)

        def on_page(result: sync_mod.SyncResult, page: Page) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            bar.update(
                task,
                completed=result.received,
                total=page.total,
                pages=result.pages,
                rate=result.received / elapsed,
            )

        result = sync_mod.backfill(engine, name, kind, connector, window, clock.now, on_page)
    line = _sync_line(result, time.monotonic() - started)
    if result.error:
        err.print(line + " (run the same command again to resume)", markup=False)
        sys.exit(1)
    out.print(line, markup=False)


@cli.command("sources")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@handled
def sources_cmd(fmt: str) -> None:
    """List each source: last successful sync, cursor, complaints held, last error."""
    st = state()
    rows = sources_mod.statuses(st.migrated_engine(), st.config)
    if fmt == "json":
        data = [
            {
                "name": r.name,
                "kind": r.kind,
                "configured": r.configured,
                "complaints": r.complaints,
                "last_success_at": r.last_success_at.isoformat() if r.last_success_at else None,
                "last_attempt_at": r.last_attempt_at.isoformat() if r.last_attempt_at else None,
                "last_error": r.last_error,
                "cursor": r.cursor,
                "backfill": r.backfill,
            }
            for r in rows
        ]
        out.print(json.dumps(data, ensure_ascii=False, indent=2), markup=False)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Source", "Kind", "Complaints", "Last success", "Cursor", "Last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r.name + ("" if r.configured else " (not in config)"),
            r.kind,
            str(r.complaints),
            r.last_success_at.isoformat() if r.last_success_at else "never",
            json.dumps(r.cursor, ensure_ascii=False) if r.cursor else "",
            Text(r.last_error or "", style="red"),
        )
    out.print(table)


# --- demo ---------------------------------------------------------------------------------


@cli.command("demo")
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("slamon-demo.db"),
    show_default=True,
    help="The SQLite file to create (replaced if it exists).",
)
@click.option("--as-of", "as_of", help="The demo's 'now' (ISO 8601). Default: now.")
@handled
def demo_cmd(db_path: Path, as_of: str | None) -> None:
    """Build a synthetic contact center in an SQLite file and show its service levels."""
    from slamon import demo

    when = _parse_as_of(as_of, config_mod.defaults()) if as_of else clock.now()
    with err.status("generating 6 months of complaints and importing them..."):
        run = demo.build(db_path, as_of=when.astimezone(UTC))
    out.print(
        f"Demo contact center: {run.imported} complaints over 6 months in {db_path}"
        f" (timezone {run.config.settings.service_level.timezone}).\n",
        markup=False,
    )
    out.print(report_table(run.overall))
    out.print()
    out.print(report_table(run.by_queue))
    out.print()
    for line in run.findings:
        out.print(line, markup=False)
    out.print()
    out.print(run.next_steps, markup=False)


def main() -> None:
    cli(prog_name="slamon")


if __name__ == "__main__":
    main()
