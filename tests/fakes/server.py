"""A real HTTP server on 127.0.0.1 in a thread, with scripted faults.

Each fake API subclasses FakeAPI and implements ``handle(method, path, query, headers, body)``
returning (status, headers, body). Faults queued with ``fail_next`` are served before the real
answer, one per request: ("ok",) serves the real answer, ("429", retry_after), ("500",),
("malformed",), ("hang", seconds) waits, then serves the real answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Response = tuple[int, dict[str, str], bytes]


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(data).encode(),
    )


class FakeAPI:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults: deque[tuple[Any, ...]] = deque()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting ------------------------------------------------------------------------

    def fail_next(self, *fault: Any) -> None:
        with self.lock:
            self.faults.append(fault)

    # --- to implement ---------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        raise NotImplementedError

    # --- serving --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query, keep_blank_values=True))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with api.lock:
                    api.requests.append((method, self.path, headers))
                    fault = api.faults.popleft() if api.faults else None
                if fault is not None and fault[0] == "hang":
                    time.sleep(fault[1])
                    fault = None
                if fault is not None and fault[0] == "ok":
                    fault = None
                if fault is None:
                    status, out_headers, payload = api.handle(
                        method, parts.path, query, headers, body
                    )
                elif fault[0] == "429":
                    status, out_headers, payload = json_response(
                        429, {"error": "slow down"}, {"Retry-After": str(fault[1])}
                    )
                elif fault[0] == "500":
                    status, out_headers, payload = json_response(500, {"error": "boom"})
                elif fault[0] == "malformed":
                    status, out_headers, payload = (
                        200,
                        {"Content-Type": "application/json"},
                        (b'{"issues": [ {"id": 1, '),
                    )
                else:
                    raise AssertionError(f"unknown fault {fault}")
                self.send_response(status)
                for key, value in out_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
