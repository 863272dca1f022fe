"""The daemon's HTTP endpoint: ``GET /healthz`` and ``GET /metrics``, nothing else.

It serves from daemon threads (``ThreadingHTTPServer``) and binds to a loopback address unless
``allow_remote=True``: the figures are not secret, but nobody outside should reach the daemon by
accident.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from slamon.daemon.metrics import CONTENT_TYPE_LATEST, Metrics

log = logging.getLogger("slamon.daemon.http")

Health = Callable[[], tuple[bool, dict[str, Any]]]


class HttpServer:
    """A running endpoint; ``port`` is the real port (when 0 was asked, the one given)."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stops serving and frees the port; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%", 1)[0]).is_loopback for a in addresses
    )


def start_http(
    host: str,
    port: int,
    metrics: Metrics,
    health: Health,
    *,
    allow_remote: bool = False,
) -> HttpServer:
    """Serve /healthz and /metrics on ``host``:``port`` in a daemon thread.

    Raises ValueError for a non-loopback ``host`` without ``allow_remote``, OSError when the
    address cannot be bound."""
    if not allow_remote and not is_loopback(host):
        raise ValueError(
            f"the HTTP endpoint binds to loopback addresses only, not {host!r} "
            "(allow_remote=True to bind elsewhere)"
        )
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    server = Server((host, port), _handler(metrics, health))
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.2},
        name="slamon-http",
        daemon=True,
    )
    thread.start()
    result = HttpServer(server, thread)
    log.info("HTTP endpoint on %s (/healthz, /metrics)", result.url)
    return result


def _handler(metrics: Metrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "slamon"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: dict[str, Any]) -> None:
            body = json.dumps(data, default=str, ensure_ascii=False).encode()
            self._send(status, "application/json; charset=utf-8", body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/healthz":
                try:
                    ok, details = health()
                except Exception as exc:  # the check itself failed: unhealthy, say why
                    log.warning("health check raised", exc_info=True)
                    ok, details = False, {"error": f"{type(exc).__name__}: {exc}"}
                self._json(200 if ok else 503, {**details, "ok": bool(ok)})
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.exposition())
            else:
                self._json(404, {"error": "not found", "paths": ["/healthz", "/metrics"]})

        do_HEAD = do_GET

    return Handler
