"""The heartbeat: a GET to a dead man's switch URL (healthchecks.io and alike) after each
successful cycle. Whoever runs the switch is told when the pings stop.

Such URLs are secrets (the path of ``https://hc-ping.com/<uuid>`` is the credential), so the URL
is only ever shown as ``scheme://host/***``.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx

from slamon import __version__

log = logging.getLogger("slamon.daemon.heartbeat")


def mask_ping_url(url: str) -> str:
    """The URL reduced to scheme and host (no user, password, path or query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if not parts.scheme or not host:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    rest = "/***" if (parts.path not in ("", "/") or parts.query or parts.fragment) else "/"
    return f"{parts.scheme}://{netloc}{rest}"


def ping(url: str, *, timeout: float = 10.0, client: httpx.Client | None = None) -> bool:
    """GET ``url``: True on a 2xx answer. Never raises: a failure is logged as a warning with
    the URL masked, and False is returned (a missed ping is the switch's business)."""
    shown = mask_ping_url(url)
    try:
        if client is not None:
            response = client.get(url, timeout=timeout)
        else:
            with httpx.Client(
                timeout=timeout,
                follow_redirects=True,
                headers={"User-Agent": f"slamon/{__version__}"},
            ) as own:
                response = own.get(url)
    except Exception as exc:
        # The exception's text may carry the URL itself: show its type only.
        log.warning("heartbeat to %s failed: %s", shown, type(exc).__name__)
        return False
    if 200 <= response.status_code < 300:
        log.debug("heartbeat to %s: %d", shown, response.status_code)
        return True
    log.warning("heartbeat to %s failed: HTTP %d", shown, response.status_code)
    return False
