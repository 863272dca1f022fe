"""The one HTTP client every connector uses.

- connect / read timeouts from the source's settings; TLS verified (or against ``ca_file``);
- a request budget: requests are spaced to stay under ``rate_limit`` per minute;
- retries with exponential backoff and full jitter on timeouts, connection errors and 5xx;
- 429 (and 503 with Retry-After) waits as long as the server asks, up to 15 minutes;
- 401 / 403 / 404 and other 4xx are permanent errors: retrying cannot help;
- URLs in errors and logs have their secrets masked; headers are never logged.

Time is injected (``sleep``, ``monotonic``) so tests run retries and budgets without waiting.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from slamon import __version__
from slamon.connectors.base import ConnectorError, MalformedResponse, SourceSettings

log = logging.getLogger("slamon.http")

SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "token", "api_token", "access_token"})
MAX_RETRY_AFTER = 900.0
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


def redact(url: str, secrets: Sequence[str] = ()) -> str:
    """The URL with secret query parameters and any known secret value masked."""
    parts = urlsplit(url)
    query = [(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in parse_qsl(parts.query)]
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.split("@", 1)[1]
    text = urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*:,>=<|"), ""))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class HttpClient:
    def __init__(
        self,
        *,
        source: str,
        base_url: str,
        settings: SourceSettings,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        secrets: Sequence[str] = (),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.settings = settings
        self.secrets = tuple(s for s in secrets if s)
        self._sleep = sleep
        self._monotonic = monotonic
        self._jitter = jitter
        self._wall_clock = wall_clock
        self._interval = 60.0 / settings.rate_limit
        self._last_request: float | None = None
        self.requests = 0
        #: The latest successful response (its headers: Link paging, rate-limit hints).
        self.last_response: httpx.Response | None = None
        verify: Any = settings.ca_file or settings.verify_tls
        self._client = httpx.Client(
            base_url=base_url,
            headers={
                "User-Agent": f"slamon/{__version__}",
                "Accept": "application/json",
                **(headers or {}),
            },
            auth=auth,
            timeout=httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout)),
            verify=verify,
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def shown(self, url: str | httpx.URL) -> str:
        return redact(str(url), self.secrets)

    def _throttle(self) -> None:
        now = self._monotonic()
        if self._last_request is not None:
            wait = self._last_request + self._interval - now
            if wait > 0:
                self._sleep(wait)
                now += wait
        self._last_request = now

    def _backoff(self, attempt: int) -> float:
        return float(self._jitter()) * min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)

    def request_json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> tuple[Any, str]:
        """Send a request with the budget and retries; returns the decoded JSON and the URL as
        it may be shown (secrets masked)."""
        retries = self.settings.max_retries
        attempt = 0
        while True:
            self._throttle()
            self.requests += 1
            request = self._client.build_request(method, url, params=params, json=json)
            shown = self.shown(request.url)
            try:
                response = self._client.send(request)
            except httpx.TimeoutException as exc:
                problem = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                problem = f"connection failed: {type(exc).__name__}: {exc}"
            else:
                code = response.status_code
                log.debug("%s %s -> %s", method, shown, code)
                if code < 400:
                    self.last_response = response
                    return self._decode(response, shown), shown
                if code == 429 or (code == 503 and "retry-after" in response.headers):
                    if attempt >= max(retries, 3):
                        raise ConnectorError(
                            f"{self.source}: {shown}: still rate limited (HTTP {code}) after"
                            f" {attempt + 1} tries",
                            permanent=False,
                            url=shown,
                        )
                    wait = retry_after_seconds(
                        response.headers.get("retry-after"), self._wall_clock()
                    )
                    wait = self._backoff(attempt) if wait is None else wait
                    log.info("%s: rate limited by %s, waiting %.1f s", self.source, shown, wait)
                    self._sleep(min(wait, MAX_RETRY_AFTER))
                    attempt += 1
                    continue
                if code in TRANSIENT_STATUS:
                    problem = f"HTTP {code} {response.reason_phrase}"
                else:
                    hint = {
                        401: "check the source's credentials",
                        403: "the account lacks permission for this listing",
                        404: "check the source's url",
                    }.get(code, "the request was refused")
                    raise ConnectorError(
                        f"{self.source}: {shown}: HTTP {code} {response.reason_phrase}: {hint}",
                        permanent=True,
                        url=shown,
                    )
            if attempt >= retries:
                raise ConnectorError(
                    f"{self.source}: {shown}: {problem} (gave up after {attempt + 1} tries)",
                    permanent=False,
                    url=shown,
                )
            wait = self._backoff(attempt)
            log.info("%s: %s: %s; retrying in %.1f s", self.source, shown, problem, wait)
            self._sleep(wait)
            attempt += 1

    def get_json(self, url: str, params: Mapping[str, Any] | None = None) -> tuple[Any, str]:
        return self.request_json("GET", url, params=params)

    def _decode(self, response: httpx.Response, shown: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise MalformedResponse(
                f"{self.source}: {shown}: the response is not JSON ({exc})", url=shown
            ) from exc
