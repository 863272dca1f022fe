"""The heartbeat against a real local HTTP server: True on 2xx, False (and a warning with the
URL masked) on anything else, never an exception."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Mapping

import httpx
import pytest

from fakes.server import FakeAPI, Response, json_response
from slamon.daemon.heartbeat import mask_ping_url, ping

UUID = "5f1b0c8e-9d2a-4b7e-8f00-0123456789ab"


class Switch(FakeAPI):
    """A dead man's switch: /ping/<uuid> answers 200 (or what ``status`` says)."""

    def __init__(self) -> None:
        super().__init__()
        self.status = 200

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        if path == f"/ping/{UUID}":
            return (self.status, {"Content-Type": "text/plain"}, b"OK")
        return json_response(404, {"error": "no such check"})


@pytest.fixture
def switch() -> Iterator[Switch]:
    api = Switch()
    api.start()
    try:
        yield api
    finally:
        api.stop()


def test_ping_ok(switch: Switch) -> None:
    assert ping(f"{switch.url}/ping/{UUID}")
    method, path, headers = switch.requests[-1]
    assert (method, path) == ("GET", f"/ping/{UUID}")
    assert headers["user-agent"].startswith("slamon/")


def test_ping_with_a_client_of_our_own(switch: Switch) -> None:
    with httpx.Client() as client:
        assert ping(f"{switch.url}/ping/{UUID}", client=client)
        assert ping(f"{switch.url}/ping/{UUID}", client=client)
    assert len(switch.requests) == 2


@pytest.mark.parametrize("status", [404, 500, 301])
def test_non_2xx_is_false_and_masked(
    switch: Switch, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    switch.status = status
    url = f"{switch.url}/ping/{UUID}?token=abc"
    with caplog.at_level(logging.WARNING, logger="slamon.daemon.heartbeat"):
        assert not ping(url)
    assert f"HTTP {status}" in caplog.text
    assert UUID not in caplog.text and "abc" not in caplog.text
    assert f"{switch.url}/***" in caplog.text


def test_unreachable_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://user:pa55word@127.0.0.1:{port}/ping/{UUID}"
    with caplog.at_level(logging.WARNING):
        assert not ping(url, timeout=2)
    assert "ConnectError" in caplog.text
    assert UUID not in caplog.text and "pa55word" not in caplog.text and "user" not in caplog.text


def test_timeout_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # listening, never answering: the kernel accepts the connection
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with caplog.at_level(logging.WARNING):
            assert not ping(f"http://127.0.0.1:{port}/ping/{UUID}", timeout=0.2)
    assert "ReadTimeout" in caplog.text


@pytest.mark.parametrize("url", ["", "not a url", "ftp://example.com/x", "http://[::1/x"])
def test_bad_urls_never_raise(url: str) -> None:
    assert ping(url, timeout=1) is False


def test_mask_ping_url() -> None:
    assert mask_ping_url(f"https://hc-ping.com/{UUID}") == "https://hc-ping.com/***"
    assert mask_ping_url("https://u:p@example.com:8443/x?y=1") == "https://example.com:8443/***"
    assert mask_ping_url("http://example.com") == "http://example.com/"
    assert mask_ping_url("http://[::1]:9/a") == "http://[::1]:9/***"
    assert mask_ping_url("garbage") == "<unparseable URL>"
