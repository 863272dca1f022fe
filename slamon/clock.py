"""The one place slamon reads the wall clock.

Everything below the CLI and the daemon takes instants as arguments; only the edges call now().
"""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_now() -> datetime:
    """The current instant, timezone-aware UTC, truncated to the second (storage precision)."""
    return datetime.now(UTC).replace(microsecond=0)


now: Clock = system_now
