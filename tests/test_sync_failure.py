"""When a source counts as failing (alerts hold its data; `slamon status` names the error)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slamon.domain import sync_failure

T1 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 1, 9, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "success", "attempt", "expected"),
    [
        (None, None, None, None),  # never tried
        (None, T1, T2, None),  # fine
        ("401", None, T1, "401"),  # never succeeded
        ("401", T1, T2, "401"),  # the latest attempt failed after the last success
        ("401", T2, T1, None),  # an old error, a later success
        ("401", T1, T1, None),  # the attempt that succeeded
        ("401", T1, None, None),  # no attempt recorded after the success
    ],
)
def test_sync_failure(
    error: str | None, success: datetime | None, attempt: datetime | None, expected: str | None
) -> None:
    assert sync_failure(error, success, attempt) == expected
