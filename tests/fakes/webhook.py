"""A webhook receiver: a real HTTP server that keeps every body posted to it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fakes.server import FakeAPI, Response


class WebhookReceiver(FakeAPI):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[str, dict[str, str], Any]] = []

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        if method != "POST":
            return 405, {}, b""
        with self.lock:
            self.bodies.append((path, dict(headers), json.loads(body)))
        return 200, {"Content-Type": "text/plain"}, b"ok"
