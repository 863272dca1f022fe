"""Pure service-level logic (SERVICE-LEVEL.md): deadlines, verdicts, Wilson interval, quantiles.

Nothing here does I/O or reads a clock: every instant is an argument.
"""

from slamon.servicelevel.deadlines import (
    WorkCalendar,
    deadline,
    deadline_day,
    local_date,
    start_of_local_day,
)
from slamon.servicelevel.stats import quantile_linear, wilson_interval
from slamon.servicelevel.verdict import Verdict, verdict

__all__ = [
    "Verdict",
    "WorkCalendar",
    "deadline",
    "deadline_day",
    "local_date",
    "quantile_linear",
    "start_of_local_day",
    "verdict",
    "wilson_interval",
]
