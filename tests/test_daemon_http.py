"""The HTTP endpoint against a real server: /healthz, /metrics, 404, loopback only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from slamon.daemon.http import HttpServer, is_loopback, start_http
from slamon.daemon.metrics import Metrics


class Health:
    def __init__(self) -> None:
        self.ok = True
        self.details: dict[str, Any] = {"leader": True, "sources": {"crm": {"lag_seconds": 12}}}
        self.raises = False

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        if self.raises:
            raise RuntimeError("database is gone")
        return self.ok, self.details


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def server(metrics: Metrics, health: Health) -> Iterator[HttpServer]:
    srv = start_http("127.0.0.1", 0, metrics, health)
    try:
        yield srv
    finally:
        srv.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_healthz(server: HttpServer, health: Health) -> None:
    assert server.port > 0
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"ok": True, "leader": True, "sources": {"crm": {"lag_seconds": 12}}}

    health.ok = False
    health.details = {"reason": "sync of crm failing"}
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 503
    assert r.json() == {"ok": False, "reason": "sync of crm failing"}

    health.raises = True
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 503
    assert r.json() == {"ok": False, "error": "RuntimeError: database is gone"}


def test_metrics(server: HttpServer, metrics: Metrics) -> None:
    metrics.sync_lag_seconds.labels(source="crm").set(42)
    metrics.complaints_synced_total.labels(source="crm").inc(100)
    metrics.notifications_total.labels(kind="firing", outcome="sent").inc()
    metrics.notifications_total.labels(kind="digest", outcome="failed").inc(2)
    metrics.job_duration_seconds.labels(job="sync:crm").observe(0.3)
    metrics.leader.set(1)
    metrics.outbox_backlog.set(3)
    metrics.alerts_firing.set(1)
    ticks = iter([10.0, 12.5])
    with pytest.raises(ValueError), metrics.time_job("alerts", monotonic=lambda: next(ticks)):
        raise ValueError("bad job")

    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert got[("slamon_sync_lag_seconds", (("source", "crm"),))] == 42
    assert got[("slamon_complaints_synced_total", (("source", "crm"),))] == 100
    assert got[("slamon_notifications_total", (("kind", "firing"), ("outcome", "sent")))] == 1
    assert got[("slamon_notifications_total", (("kind", "digest"), ("outcome", "failed")))] == 2
    assert got[("slamon_job_duration_seconds_count", (("job", "sync:crm"),))] == 1
    assert got[("slamon_job_duration_seconds_sum", (("job", "alerts"),))] == 2.5
    assert got[("slamon_job_failures_total", (("job", "alerts"),))] == 1
    assert got[("slamon_leader", ())] == 1
    assert got[("slamon_outbox_backlog", ())] == 3
    assert got[("slamon_alerts_firing", ())] == 1
    # Our own registry: nothing from the process-global one (python_gc_*, process_*).
    assert not any(name.startswith(("python_", "process_")) for name, _ in got)
    assert REGISTRY.get_sample_value("slamon_leader") is None


def test_two_metrics_objects_do_not_collide() -> None:
    a, b = Metrics(), Metrics()
    a.leader.set(1)
    assert b.registry.get_sample_value("slamon_leader") == 0


def test_elsewhere_404(server: HttpServer) -> None:
    for path in ("/", "/metrics/extra", "/health"):
        r = httpx.get(f"{server.url}{path}")
        assert r.status_code == 404, path
    assert httpx.get(f"{server.url}/healthz?verbose=1").status_code == 200


def test_loopback_only(metrics: Metrics, health: Health) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.1"):
        with pytest.raises(ValueError, match="loopback"):
            start_http(host, 0, metrics, health)
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("")


def test_allow_remote_binds_any_address(metrics: Metrics, health: Health) -> None:
    srv = start_http("0.0.0.0", 0, metrics, health, allow_remote=True)
    try:
        assert httpx.get(f"http://127.0.0.1:{srv.port}/healthz").status_code == 200
    finally:
        srv.close()


def test_localhost_by_name(metrics: Metrics, health: Health) -> None:
    srv = start_http("localhost", 0, metrics, health)
    try:
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
    finally:
        srv.close()


def test_close_frees_the_port(metrics: Metrics, health: Health) -> None:
    srv = start_http("127.0.0.1", 0, metrics, health)
    port = srv.port
    srv.close()
    srv.close()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    again = start_http("127.0.0.1", port, metrics, health)  # the port can be bound again
    again.close()


def test_port_in_use(server: HttpServer, metrics: Metrics, health: Health) -> None:
    with pytest.raises(OSError):
        start_http("127.0.0.1", server.port, metrics, health)
    assert httpx.get(f"{server.url}/healthz").status_code == 200
