"""`slamon run`: the daemon. It only wires: the lead (daemon.lock), the schedule (APScheduler 3,
in memory, rebuilt from the config on every start and reload; slamon's own tables are the
truth), and the jobs, each of which calls what the one-off commands call.

Jobs (stable ids):
- ``sync:NAME`` every ``sources.NAME.sync_every``, then the alert evaluation (one at a time);
- ``alerts`` every ``daemon.alerts_every`` when no source is configured (imports only);
- ``deliver`` every ``daemon.deliver_every``: the outbox;
- ``digest:NAME`` on the digest's cron schedule in its timezone, and once at start (a slot
  missed while down is sent late within its grace, once: digest.deliver);
- ``housekeeping`` every ``daemon.housekeeping_every``: old outbox rows, alert runs, slots.

A job that raises is logged with its traceback, recorded as failed (``slamon status``) and runs
again at its next time; the others go on. Only the daemon holding the lead runs jobs; another
waits as standby and takes over when the lead is free. SIGTERM/SIGINT: a sync stops after the
page it is storing (each page is one transaction), the daemon exits 0 within
``daemon.stop_timeout``. SIGHUP: the config is read again; an invalid one is refused (logged)
and the old one kept.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
    BackgroundScheduler,
)
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from sqlalchemy import Engine

from slamon import config as config_mod
from slamon import sources as sources_mod
from slamon import sync as sync_mod
from slamon.alerts import engine as alerts_engine
from slamon.config import Config
from slamon.connectors.base import Page
from slamon.daemon.heartbeat import ping
from slamon.daemon.http import HttpServer, start_http
from slamon.daemon.lock import LeaderLock, leader_lock
from slamon.daemon.metrics import Metrics
from slamon.digest import deliver as digest_deliver
from slamon.errors import SlamonError
from slamon.notify import outbox
from slamon.store import alerts as alerts_store
from slamon.store import daemon as daemon_store
from slamon.store import migrate
from slamon.store.engine import make_engine, write_transaction

log = logging.getLogger("slamon.daemon")

Clock = Callable[[], datetime]


class Stopping(Exception):
    """Raised inside a job when the daemon stops: between pages, never inside one."""


def identity() -> str:
    return f"slamon run {socket.gethostname()}:{os.getpid()}"


@dataclass
class JobSpec:
    id: str
    func: Callable[..., None]
    trigger: Any
    misfire_grace: int
    first_run: datetime | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


class Daemon:
    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        *,
        clock: Clock,
        name: str | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock
        self.name = name or identity()
        self.engine: Engine = make_engine(config.database_url)
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.scheduler: BackgroundScheduler | None = None
        self.lock: LeaderLock | None = None
        self.http: HttpServer | None = None
        self._alerts_lock = threading.Lock()
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        #: jobs still running when the daemon stopped (the caller exits without waiting)
        self.unfinished: list[str] = []

    # --- lifecycle ------------------------------------------------------------------------

    def install_signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("%s received: stopping", signal.Signals(signum).name)
            self.stop_event.set()

        def reload(signum: int, frame: FrameType | None) -> None:
            self.reload_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def run(self) -> int:
        """Run until stopped; the exit code."""
        migrate.require_current(self.engine)
        daemon = self.config.settings.daemon
        if daemon.http_port:
            self.http = start_http(daemon.http_host, daemon.http_port, self.metrics, self.health)
        self.lock = leader_lock(self.engine, self.name)
        announced = False
        try:
            while not self.stop_event.is_set():
                try:
                    announced = self._tick(announced)
                except Exception:  # the database away for a while: try again next time
                    log.exception("the main loop failed; trying again")
                self.stop_event.wait(self.config.settings.daemon.standby_poll.total_seconds())
        finally:
            self._shutdown()
        return 0

    def _tick(self, announced: bool) -> bool:
        """One turn of the main loop: reload, take or keep the lead; whether standby was said."""
        assert self.lock is not None
        if self.reload_event.is_set():
            self.reload_event.clear()
            self._reload()
        if self.lock.held and self.scheduler is None:  # took the lock; the start failed
            self._lead()
            return False
        if not self.lock.held:
            if self.lock.try_acquire():
                self._lead()
                return False
            if not announced:
                log.info(
                    "standby: another daemon holds the lead; trying every %s",
                    config_mod.show_duration(self.config.settings.daemon.standby_poll),
                )
            return True
        if not self.lock.still_held():
            log.error("the lead was lost (database connection gone): jobs stop")
            self._step_down()
            return False
        self._seen()
        return announced

    def _lead(self) -> None:
        now = self.clock()
        log.info("took the lead as %s", self.name)
        self.metrics.leader.set(1)
        with write_transaction(self.engine) as conn:
            daemon_store.take_lead(conn, self.name, now)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        )
        for spec in self.jobs(self.config, now):
            self._add(spec)
        self.scheduler.start()
        self._record_next_runs()

    def _seen(self) -> None:
        with write_transaction(self.engine) as conn:
            daemon_store.mark_leader(conn, self.name, seen_at=self.clock())

    def _step_down(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        self.metrics.leader.set(0)
        if self.lock is not None:
            self.lock.release()

    def _shutdown(self) -> None:
        self.stop_event.set()
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)
            deadline = time.monotonic() + self.config.settings.daemon.stop_timeout.total_seconds()
            while self._running and time.monotonic() < deadline:
                time.sleep(0.05)
            self.unfinished = sorted(self._running)
            if self.unfinished:
                log.warning(
                    "stopping with %s still running: its open transaction is rolled back",
                    ", ".join(self.unfinished),
                )
        if self.lock is not None and self.lock.held:
            try:
                with write_transaction(self.engine) as conn:
                    daemon_store.mark_leader(conn, self.name, stopped_at=self.clock())
            except Exception:
                log.exception("could not record the stop")
            self.lock.release()
        if self.http is not None:
            self.http.close()
        log.info("stopped")

    def _reload(self) -> None:
        try:
            fresh = config_mod.load(self.config_path)
        except SlamonError as exc:
            log.error("SIGHUP: the new config is refused, the old one stays: %s", exc)
            return
        if fresh.database_url != self.config.database_url:
            log.error("SIGHUP: database.url changed: restart slamon run to apply; config kept")
            return
        self.config = fresh
        log.info("SIGHUP: config reloaded from %s", fresh.label)
        if self.scheduler is not None:
            self.scheduler.remove_all_jobs()
            for spec in self.jobs(fresh, self.clock()):
                self._add(spec)
            self._record_next_runs()

    # --- the schedule ---------------------------------------------------------------------

    def jobs(self, cfg: Config, now: datetime) -> list[JobSpec]:
        d = cfg.settings.daemon
        specs: list[JobSpec] = []
        for name in sorted(cfg.sources):
            every = cfg.sources[name].sync_every
            specs.append(
                JobSpec(
                    f"sync:{name}",
                    self._sync_job,
                    IntervalTrigger(seconds=every.total_seconds(), timezone=UTC),
                    misfire_grace=int(every.total_seconds()),
                    first_run=now,
                    kwargs={"name": name},
                )
            )
        if not cfg.sources:
            specs.append(
                JobSpec(
                    "alerts",
                    self._alerts_job,
                    IntervalTrigger(seconds=d.alerts_every.total_seconds(), timezone=UTC),
                    misfire_grace=int(d.alerts_every.total_seconds()),
                    first_run=now,
                )
            )
        specs.append(
            JobSpec(
                "deliver",
                self._deliver_job,
                IntervalTrigger(seconds=d.deliver_every.total_seconds(), timezone=UTC),
                misfire_grace=int(d.deliver_every.total_seconds()),
                first_run=now,
            )
        )
        for name in sorted(cfg.settings.digests):
            settings = cfg.digest(name)
            specs.append(
                JobSpec(
                    f"digest:{name}",
                    self._digest_job,
                    settings.trigger(cfg.settings.service_level.timezone),
                    misfire_grace=int(settings.late_grace.total_seconds()),
                    first_run=now,  # a slot missed while down: once, late, within grace
                    kwargs={"name": name},
                )
            )
        specs.append(
            JobSpec(
                "housekeeping",
                self._housekeeping_job,
                IntervalTrigger(seconds=d.housekeeping_every.total_seconds(), timezone=UTC),
                misfire_grace=3600,
                first_run=now + timedelta(minutes=1),
            )
        )
        return specs

    def _add(self, spec: JobSpec) -> None:
        assert self.scheduler is not None
        self.scheduler.add_job(
            self._wrapped,
            spec.trigger,
            id=spec.id,
            name=spec.id,
            args=(spec.id, spec.func, spec.kwargs),
            misfire_grace_time=max(spec.misfire_grace, 1),
            next_run_time=spec.first_run,
            replace_existing=True,
        )

    def _record_next_runs(self) -> None:
        scheduler = self.scheduler
        if scheduler is None:
            return
        rows = {job.id: job.next_run_time for job in scheduler.get_jobs()}
        with write_transaction(self.engine) as conn:
            daemon_store.keep_jobs(conn, list(rows))
            for job_id, next_run in rows.items():
                daemon_store.record_job(conn, job_id, next_run_at=_utc(next_run))

    def _wrapped(self, job_id: str, func: Callable[..., None], kwargs: dict[str, Any]) -> None:
        if self.stop_event.is_set():
            return
        with self._running_lock:
            self._running.add(job_id)
        started = self.clock()
        t0 = time.monotonic()
        status, error = "ok", None
        try:
            with write_transaction(self.engine) as conn:
                daemon_store.record_job(conn, job_id, last_started_at=started)
            func(**kwargs)
        except Stopping:
            status, error = "stopped", "stopped by SIGTERM between pages"
            log.info("%s: stopped between pages", job_id)
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("job %s failed; it runs again at its next time", job_id)
            self.metrics.job_failures_total.labels(job=job_id).inc()
        finally:
            self.metrics.job_duration_seconds.labels(job=job_id).observe(time.monotonic() - t0)
            try:
                job = self.scheduler.get_job(job_id) if self.scheduler is not None else None
                with write_transaction(self.engine) as conn:
                    daemon_store.record_job(
                        conn,
                        job_id,
                        finished=True,
                        failed=status == "failed",
                        last_finished_at=self.clock(),
                        last_status=status,
                        last_error=error,
                        next_run_at=_utc(job.next_run_time) if job is not None else None,
                    )
            except Exception:
                log.exception("could not record the outcome of job %s", job_id)
            with self._running_lock:
                self._running.discard(job_id)

    # --- the jobs -------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        """A connector's wait (rate limit, backoff) that a stop interrupts."""
        if self.stop_event.wait(seconds):
            raise Stopping

    def _sync_job(self, name: str) -> None:
        cfg = self.config
        if name not in cfg.sources:
            return
        kind, connector, http = sources_mod.open_connector(
            cfg, name, now=self.clock(), sleep=self._sleep
        )

        def on_page(result: sync_mod.SyncResult, page: Page) -> None:
            self.metrics.complaints_synced_total.labels(source=name).inc(len(page.records))
            if self.stop_event.is_set():
                raise Stopping  # the page is stored; the cursor moved with it

        with http:
            result = sync_mod.sync(self.engine, name, kind, connector, self.clock, on_page)
        if result.ok:
            self.metrics.sync_lag_seconds.labels(source=name).set(0)
            log.info(
                "sync %s: %d pages, %d new, %d changed",
                name,
                result.pages,
                result.counts.new,
                result.counts.changed,
            )
        else:
            log.warning("sync %s failed: %s", name, result.error)
        ok = self._evaluate_alerts()
        if result.ok and ok:
            self._heartbeat()
        if not result.ok:
            raise SyncFailed(f"sync {name}: {result.error}")

    def _alerts_job(self) -> None:
        if self._evaluate_alerts():
            self._heartbeat()

    def _evaluate_alerts(self) -> bool:
        cfg = self.config
        if not cfg.settings.alerts.enabled:
            return True
        with self._alerts_lock:
            result = alerts_engine.check(self.engine, cfg, self.clock(), self.clock)
        if result.delivery is not None:
            self._count(result.delivery)
        with self.engine.connect() as conn:
            firing = len(alerts_store.firing_keys(conn))
        self.metrics.alerts_firing.set(firing)
        if result.transitions:
            log.info(
                "alerts: %d changes, %d messages queued",
                len(result.transitions),
                len(result.queued),
            )
        return True

    def _deliver_job(self) -> None:
        cfg = self.config
        self._count(outbox.deliver(self.engine, cfg, self.clock))
        with self.engine.connect() as conn:
            backlog = outbox.backlog(conn)
            synced = daemon_store.last_successes(conn)
        self.metrics.outbox_backlog.set(backlog.get("pending", 0) + backlog.get("sending", 0))
        now = self.clock()
        for name, last in synced:  # the sources table only: no count over the complaints
            if name in cfg.sources and last is not None:
                self.metrics.sync_lag_seconds.labels(source=name).set((now - last).total_seconds())

    def _digest_job(self, name: str) -> None:
        cfg = self.config
        if name not in cfg.settings.digests:
            return
        result = digest_deliver.run_slot(self.engine, cfg, name, self.clock())
        if result.status == "queued":
            log.info(
                "digest %s: slot %s%s queued for %d recipients",
                name,
                result.slot.isoformat() if result.slot else "-",
                " (late)" if result.late else "",
                result.queued,
            )
            self._count(outbox.deliver(self.engine, cfg, self.clock))

    def _housekeeping_job(self) -> None:
        cfg = self.config
        before = self.clock() - cfg.settings.outbox.keep
        with write_transaction(self.engine) as conn:
            purged = outbox.purge(conn, before)
            runs, slots = daemon_store.purge_history(conn, before)
        log.info(
            "housekeeping: %d outbox rows, %d alert runs, %d digest slots older than %s deleted",
            purged,
            runs,
            slots,
            before.date().isoformat(),
        )

    def _count(self, delivery: outbox.Delivery) -> None:
        if delivery.sent:
            self.metrics.notifications_total.labels(kind="any", outcome="sent").inc(delivery.sent)
        if delivery.failed:
            self.metrics.notifications_total.labels(kind="any", outcome="failed").inc(
                delivery.failed
            )

    def _heartbeat(self) -> None:
        d = self.config.settings.daemon
        url = d.heartbeat_url
        if d.heartbeat_url_env:
            url = os.environ.get(d.heartbeat_url_env) or None
        if url:
            ping(url)

    # --- health ---------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        lead = self.lock is not None and self.lock.held
        body: dict[str, Any] = {
            "holder": self.name,
            "leader": lead,
            "running": sorted(self._running),
        }
        try:
            with self.engine.connect() as conn:
                failed = daemon_store.failed_jobs(conn)
                pending = outbox.backlog(conn).get("pending", 0)
        except Exception as exc:
            return False, {**body, "error": f"database: {type(exc).__name__}"}
        body.update(failed_jobs=list(failed), outbox_pending=pending)
        return True, body


class SyncFailed(Exception):
    """A source could not be synced (the sync recorded why); the job is marked failed."""


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)
