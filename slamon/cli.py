"""The command line: parse, call one service function, print. The only module that prints."""

from __future__ import annotations

import json
import logging
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
    if migrate.current_revision(st.engine) == migrate.head_revision(st.engine):
        report_mod.adopt_rollup(st.engine, st.config, clock.now())
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


# --- digest -------------------------------------------------------------------------------


@cli.group("digest")
def digest_group() -> None:
    """Manager digests: the service level summary configured as [digests.NAME]."""


@digest_group.command("preview")
@click.argument("name")
@click.option("--as-of", "as_of", help="Build it as of this instant (ISO 8601). Default: now.")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The HTML file to write (replaced atomically; nothing else is written).",
)
@handled
def digest_preview(name: str, as_of: str | None, out_path: Path) -> None:
    """Write digest NAME as the HTML part of its email, without sending anything."""
    from slamon.digest import deliver

    st = state()
    cfg = st.config
    cfg.digest(name)  # an unknown name fails before the database is opened
    when = _parse_as_of(as_of, cfg)
    engine = st.migrated_engine()
    rendered = deliver.compose(engine, cfg, name, when)
    with _atomic_output(out_path) as fh:
        fh.write(rendered.html)
    size = len(rendered.html.encode("utf-8"))
    out.print(f"{out_path}: {size / 1024:.1f} KB, subject: {rendered.subject}", markup=False)


@digest_group.command("send")
@click.argument("name")
@click.option(
    "--to",
    "to",
    multiple=True,
    metavar="ADDRESS",
    help="Send to this address instead of the digest's recipients (repeatable).",
)
@click.option("--as-of", "as_of", help="Build it as of this instant (ISO 8601). Default: now.")
@click.option(
    "--scheduled",
    is_flag=True,
    help="Send the latest scheduled slot if it is due and not sent yet (what `slamon run`"
    " does; for cron).",
)
@handled
def digest_send(name: str, to: tuple[str, ...], as_of: str | None, scheduled: bool) -> None:
    """Send digest NAME now, through the outbox, and deliver it."""
    from pydantic import TypeAdapter, ValidationError

    from slamon.config import EmailAddress
    from slamon.digest import deliver
    from slamon.notify import outbox

    st = state()
    cfg = st.config
    settings = cfg.digest(name)
    if scheduled and (to or as_of):
        raise UsageError("--scheduled sends the slot to the digest's recipients: no --to, --as-of")
    checked = TypeAdapter(EmailAddress)
    for address in to:
        try:
            checked.validate_python(address)
        except ValidationError:
            raise UsageError(f"--to: {address!r} is not an email address") from None
    when = _parse_as_of(as_of, cfg) if as_of else None
    engine = st.migrated_engine()
    now = clock.now()
    if scheduled:
        result = deliver.run_slot(engine, cfg, name, now)
        if result.status != "queued":
            why = (
                f"no slot of {settings.schedule!r} is due within late_grace"
                if result.status == "none"
                else f"the slot {_local(result.slot, cfg)} was claimed before"
            )
            d = outbox.deliver(engine, cfg, clock.now)  # what an earlier run left due
            out.print(
                f"digest {name}: {why}; nothing new to send"
                + (f" (delivered {d.sent} due from before)" if d.sent else ""),
                markup=False,
            )
            for line in d.errors:
                err.print(f"delivery: {line}", markup=False)
            return
        d = outbox.deliver(engine, cfg, clock.now)
    else:
        result = deliver.send_now(engine, cfg, name, now, to=to, as_of=when)
        d = outbox.deliver(engine, cfg, clock.now, only=result.outbox_ids)
    late = " (late)" if result.late else ""
    out.print(
        f"digest {name}{late}: {result.subject} ({result.size / 1024:.1f} KB HTML);"
        f" sent {d.sent} of {result.queued}",
        markup=False,
    )
    for line in d.errors:
        err.print(f"delivery: {line}", markup=False)
    if d.sent < result.queued:
        _fail(
            f"{result.queued - d.sent} not delivered yet: they stay in the outbox and are"
            " retried (slamon run, or slamon alerts check)",
            1,
        )


# --- daemon -------------------------------------------------------------------------------


@cli.command("run")
@click.option(
    "--log-format",
    type=click.Choice(["human", "json"]),
    help="Log lines as text or as one JSON object per line. Default: daemon.log_format.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="The least important messages logged.",
)
@handled
def run_cmd(log_format: str | None, log_level: str) -> None:
    """Run the daemon: sync, alerts, delivery and digests on schedule, until SIGTERM."""
    from slamon.daemon.runner import Daemon
    from slamon.logs import setup_logging

    st = state()
    cfg = st.config
    setup_logging(
        log_format or cfg.settings.daemon.log_format,  # type: ignore[arg-type]
        log_level.upper(),
        secrets=cfg.known_secrets(),
    )
    if log_level.upper() != "DEBUG":  # each run of each job; slamon logs what they did
        for noisy in ("apscheduler", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    daemon = Daemon(cfg, st.config_path, clock=clock.now)
    daemon.install_signals()
    code = daemon.run()
    if daemon.unfinished:  # a job past stop_timeout: exit without joining its thread
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@handled
def status_cmd(as_json: bool) -> None:
    """The daemon, the sources, alerts and the outbox; exit 1 when something needs attention."""
    from slamon.daemon import status as status_mod

    st = state()
    cfg = st.config
    now = clock.now()
    result = status_mod.collect(st.migrated_engine(), cfg, now)
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        leader = result.holder or "none (slamon run is not running)"
        out.print(f"lead: {leader}", markup=False)
        # a pipe or a file: wide enough that no name or instant is cut
        wide = out if out.is_terminal else Console(width=160, highlight=False, emoji=False)
        table = Table(box=box.SIMPLE_HEAD, title="sources")
        for col in ("source", "last sync", "lag", "state"):
            table.add_column(col, no_wrap=True)
        for s in result.sources:
            lag = "-" if s.lag is None else config_mod.show_duration(s.lag)
            state_text = "error" if s.error else ("stale" if s.stale else "ok")
            table.add_row(
                Text(s.name), Text(_local(s.last_success_at, cfg)), Text(lag), Text(state_text)
            )
        if result.sources:
            wide.print(table)
        jobs = Table(box=box.SIMPLE_HEAD, title="jobs")
        for col in ("job", "last run", "result", "next run", "runs", "failures"):
            jobs.add_column(col, no_wrap=True)
        for j in result.jobs:
            jobs.add_row(
                Text(j.job),
                Text(_local(j.last_finished_at, cfg)),
                Text(j.last_status or "-"),
                Text(_local(j.next_run_at, cfg)),
                Text(str(j.runs)),
                Text(str(j.failures)),
            )
        if result.jobs:
            wide.print(jobs)
        pending = result.outbox.get("pending", 0) + result.outbox.get("sending", 0)
        out.print(
            f"alerts firing: {len(result.firing)}; outbox: {pending} waiting,"
            f" {result.outbox.get('failed', 0)} failed, {result.outbox.get('sent', 0)} sent",
            markup=False,
        )
        if result.attention:
            out.print("needs attention:", markup=False)
            for line in result.attention:
                out.print(f"  - {line}", markup=False)
        else:
            out.print("all well", markup=False)
    if result.attention:
        sys.exit(1)


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
    _demo_alerts(run.config, when.astimezone(UTC), db_path)
    out.print(f"Digest preview: {run.digest_path} (subject: {run.digest_subject})", markup=False)
    out.print()
    out.print(run.next_steps, markup=False)


def _demo_alerts(cfg: Config, at: datetime, db_path: Path) -> None:
    """The alerts the demo's data raises now (judged, not recorded: nothing is sent)."""
    from slamon.alerts import engine as alerts_engine
    from slamon.alerts import messages
    from slamon.alerts.state import Observation

    engine = make_engine(cfg.database_url)
    try:
        findings, _ = alerts_engine.gather(engine, cfg, at)
    finally:
        engine.dispose()
    tz = cfg.settings.service_level.zone
    breaching = [f for f in findings if f.observation is Observation.BREACH]
    if not breaching:
        out.print("Alerts: every level is within its target (Wilson rule).", markup=False)
    else:
        out.print(
            "Alerts these levels would raise (the whole 95 % interval below the target):",
            markup=False,
        )
    for f in breaching:
        item = messages.Item(
            key=f.key,
            rule=f.rule,
            notice=messages.Notice.FIRING,
            threshold=f.threshold,
            segment=f.segment,
            since=at,
            episode_id=0,
            reminder=0,
            share=f.share,
            target=f.target,
            matured=f.matured,
            detail=f.detail,
        )
        out.print(f"  {f.rule.value}: {messages.title(item, tz)}", markup=False)
    config_file = db_path.with_suffix(".toml")
    out.print(
        f"  record and send them: slamon --config {config_file.name} alerts check"
        " (add [email] and [channels.NAME] to the demo config)\n",
        markup=False,
    )


# --- alerts -------------------------------------------------------------------------------


@cli.group("alerts")
def alerts_group() -> None:
    """Alerts when a service level slips: evaluate, list, history, silences."""


def _local(value: datetime | None, cfg: Config) -> str:
    if value is None:
        return "-"
    return value.astimezone(cfg.settings.service_level.zone).strftime("%Y-%m-%d %H:%M")


@alerts_group.command("check")
@click.option("--as-of", "as_of", help="Evaluate as of this instant (ISO 8601). Default: now.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; write and send nothing.")
@click.option("--no-deliver", is_flag=True, help="Record and queue, but leave sending for later.")
@handled
def alerts_check(as_of: str | None, dry_run: bool, no_deliver: bool) -> None:
    """Evaluate the rules, record what changed and deliver the notifications."""
    from slamon.alerts import engine as alerts_engine

    st = state()
    cfg = st.config
    at = _parse_as_of(as_of, cfg)
    result = alerts_engine.check(
        st.migrated_engine(), cfg, at, clock.now, dry_run=dry_run, deliver=not no_deliver
    )
    firing = sum(1 for f in result.findings if f.observation.value == "breach")
    out.print(
        f"{'[dry run] ' if dry_run else ''}evaluated {len(result.findings)} alerts as of"
        f" {_local(at, cfg)}: {firing} breaching, {len(result.transitions)} changed,"
        f" {len(result.queued)} messages queued",
        markup=False,
    )
    for reason in result.held:
        out.print(f"held (alerts keep their state): {reason}", markup=False)
    for key, before, after in result.transitions:
        out.print(f"  {key}: {before} -> {after}", markup=False)
    for msg in result.queued:
        to = msg.recipient or f"[{msg.channel}]"
        out.print(f"  {'would send' if dry_run else 'queued'} to {to}: {msg.subject}", markup=False)
        if dry_run:
            text = msg.body.get("text") if isinstance(msg.body.get("text"), str) else None
            out.print(text or json.dumps(msg.body, ensure_ascii=False, indent=2), markup=False)
    d = result.delivery
    if d is not None:
        out.print(f"delivered {d.sent}, retrying {d.retrying}, failed {d.failed}", markup=False)
        for line in d.errors:
            err.print(f"delivery: {line}", markup=False)
        if d.failed:
            raise SystemExit(1)


@alerts_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also the alerts that are ok.")
@handled
def alerts_list(show_all: bool) -> None:
    """Current alert states: firing and pending first."""
    from slamon.store import alerts as alerts_store

    st = state()
    cfg = st.config
    order = {"firing": 0, "pending": 1, "resolved": 2, "ok": 3}
    with st.migrated_engine().connect() as conn:
        rows = list(alerts_store.states(conn))
    rows = [r for r in rows if show_all or r.status in ("firing", "pending")]
    rows.sort(key=lambda r: (order.get(r.status, 9), r.key))
    if not rows:
        out.print("no alerts firing or pending" if not show_all else "no alerts evaluated yet")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for col in ("status", "alert", "level", "target", "matured", "since", "seen"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            Text(r.status),
            Text(r.key),
            Text("-" if r.share is None else f"{r.share * 100:.1f} %"),
            Text("-" if r.target is None else f"{r.target * 100:.0f} %"),
            Text("-" if r.matured is None else str(r.matured)),
            Text(_local(r.since, cfg)),
            Text(r.observation),
        )
    out.print(table)


@alerts_group.command("history")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="How many changes to show.",
)
@handled
def alerts_history(limit: int) -> None:
    """The latest status changes, newest first."""
    from slamon.store import alerts as alerts_store

    st = state()
    cfg = st.config
    with st.migrated_engine().connect() as conn:
        rows = list(alerts_store.transitions(conn, limit))
    if not rows:
        out.print("no alert has changed state yet")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for col in ("at", "alert", "from", "to", "level", "episode"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            Text(_local(r.at, cfg)),
            Text(r.key),
            Text(r.from_status),
            Text(r.to_status),
            Text("-" if r.share is None else f"{r.share * 100:.1f} %"),
            Text(str(r.episode_id or "-")),
        )
    out.print(table)


def _parse_match(values: tuple[str, ...], everything: bool) -> dict[str, str]:
    from slamon.domain import SEGMENT_FIELDS

    if everything and values:
        raise UsageError("give --match or --all, not both")
    if not everything and not values:
        raise UsageError("say what to silence: --match FIELD=VALUE (repeatable) or --all")
    match: dict[str, str] = {}
    for value in values:
        name, sep, wanted = value.partition("=")
        if not sep or name not in SEGMENT_FIELDS:
            raise UsageError(
                f"--match {value!r}: use FIELD=VALUE with FIELD one of {', '.join(SEGMENT_FIELDS)}"
            )
        match[name] = wanted
    return match


@alerts_group.command("silence")
@click.option("--match", "matches", multiple=True, help="FIELD=VALUE an alert must have.")
@click.option("--all", "everything", is_flag=True, help="Silence every alert.")
@click.option("--for", "duration", required=True, help='How long, e.g. "4h", "2d".')
@click.option("--reason", required=True, help="Why (shown in `alerts silences`).")
@handled
def alerts_silence(matches: tuple[str, ...], everything: bool, duration: str, reason: str) -> None:
    """Hold back notifications of matching alerts for a while (states still change)."""
    from slamon.config import parse_duration
    from slamon.store import alerts as alerts_store
    from slamon.store.engine import write_transaction

    match = _parse_match(matches, everything)
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(f"--for: {exc}") from None
    if length <= timedelta(0):
        raise UsageError("--for must be longer than 0s")
    st = state()
    now = clock.now()
    with write_transaction(st.migrated_engine()) as conn:
        silence_id = alerts_store.add_silence(
            conn, match, now, now + length, reason, os.environ.get("USER", "")
        )
    what = ", ".join(f"{k}={v}" for k, v in match.items()) or "every alert"
    out.print(f"silence {silence_id}: {what} until {_local(now + length, st.config)}", markup=False)


@alerts_group.command("silences")
@click.option("--expired", is_flag=True, help="Also the silences that have ended.")
@handled
def alerts_silences(expired: bool) -> None:
    """The silences in force (and, with --expired, the ended ones)."""
    from slamon.store import alerts as alerts_store

    st = state()
    now = clock.now()
    with st.migrated_engine().connect() as conn:
        rows = list(alerts_store.all_silences(conn))
    table = Table(box=box.SIMPLE_HEAD)
    for col in ("id", "match", "until", "reason", "by", "state"):
        table.add_column(col)
    shown = 0
    for r in rows:
        active = r.cancelled_at is None and r.starts_at <= now < r.ends_at
        if not active and not expired:
            continue
        shown += 1
        label = "active" if active else ("lifted" if r.cancelled_at else "expired")
        match = json.loads(r.match)
        table.add_row(
            Text(str(r.id)),
            Text(", ".join(f"{k}={v}" for k, v in match.items()) or "(all)"),
            Text(_local(r.ends_at, st.config)),
            Text(r.reason),
            Text(r.created_by),
            Text(label),
        )
    if not shown:
        out.print("no silences in force")
        return
    out.print(table)


@alerts_group.command("unsilence")
@click.argument("silence_id", type=int)
@handled
def alerts_unsilence(silence_id: int) -> None:
    """Lift a silence before it ends."""
    from slamon.store import alerts as alerts_store
    from slamon.store.engine import write_transaction

    st = state()
    with write_transaction(st.migrated_engine()) as conn:
        done = alerts_store.lift_silence(conn, silence_id, clock.now())
    if not done:
        raise UsageError(f"no silence {silence_id} in force")
    out.print(f"silence {silence_id} lifted")


def main() -> None:
    cli(prog_name="slamon")


if __name__ == "__main__":
    main()
