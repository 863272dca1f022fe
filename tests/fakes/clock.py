"""A fake clock for the HTTP client: sleeping advances it instantly and is recorded."""

from __future__ import annotations


class Sleeper:
    """Pass as ``sleep`` and its ``monotonic`` as ``monotonic``: request budgets, backoff and
    Retry-After waits then take no time, and ``calls`` says how long each wait would have been."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.now = 1000.0

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now
