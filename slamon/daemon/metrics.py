"""The daemon's Prometheus metrics, on a registry of their own (never the process-global one,
so that tests and several daemons in one process do not collide)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """Every metric the daemon exports, all named ``slamon_*``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sync_lag_seconds = Gauge(
            "slamon_sync_lag_seconds",
            "Seconds since the source's last successful sync.",
            ["source"],
            registry=r,
        )
        self.complaints_synced_total = Counter(
            "slamon_complaints_synced",  # exposed as slamon_complaints_synced_total
            "Complaints received from the source and stored.",
            ["source"],
            registry=r,
        )
        self.notifications_total = Counter(
            "slamon_notifications",
            "Notifications delivered from the outbox, by kind and outcome (sent or failed).",
            ["kind", "outcome"],
            registry=r,
        )
        self.job_duration_seconds = Histogram(
            "slamon_job_duration_seconds",
            "How long each scheduled job ran.",
            ["job"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.job_failures_total = Counter(
            "slamon_job_failures",
            "Scheduled job runs that raised.",
            ["job"],
            registry=r,
        )
        self.leader = Gauge(
            "slamon_leader", "1 while this daemon holds the lead, 0 as standby.", registry=r
        )
        self.outbox_backlog = Gauge(
            "slamon_outbox_backlog", "Outbox messages waiting to be delivered.", registry=r
        )
        self.alerts_firing = Gauge("slamon_alerts_firing", "Alerts firing now.", registry=r)

    @contextmanager
    def time_job(
        self, job: str, *, monotonic: Callable[[], float] = time.monotonic
    ) -> Iterator[None]:
        """Observes the block's duration under ``job``; counts a failure when it raises (and
        lets the exception go on)."""
        start = monotonic()
        try:
            yield
        except Exception:
            self.job_failures_total.labels(job=job).inc()
            raise
        finally:
            self.job_duration_seconds.labels(job=job).observe(monotonic() - start)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
