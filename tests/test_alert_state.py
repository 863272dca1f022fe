"""The episode state machine, table-driven: a sequence of observations -> states and notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from slamon.alerts.rules import Figures, Thresholds, judge_level, judge_trend, judge_warning
from slamon.alerts.state import Notice, Observation, Policy, State, Status, step

B, H, M, N, X = (
    Observation.BREACH,
    Observation.HEALTHY,
    Observation.BETWEEN,
    Observation.NO_VERDICT,
    Observation.HELD,
)
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


def run(
    seen: list[Observation],
    *,
    pending: int = 2,
    recover: int = 2,
    repeat: timedelta = timedelta(hours=24),
    every: timedelta = HOUR,
    silenced: set[int] | None = None,
) -> list[tuple[str, str | None]]:
    policy = Policy(pending, recover, repeat)
    state, out = State(), []
    for i, obs in enumerate(seen):
        s = step(state, obs, T0 + i * every, policy, silenced=i in (silenced or set()))
        state = s.state
        out.append((state.status.value, s.notice.value if s.notice else None))
    return out


CASES = [
    # breach must persist pending_evaluations runs before it fires, once
    ([B, B, B], {}, [("pending", None), ("firing", "firing"), ("firing", None)]),
    # one breach then healthy: never fired, so nothing is said
    ([B, H, B, M], {}, [("pending", None), ("ok", None), ("pending", None), ("ok", None)]),
    # fires at once with pending_evaluations = 1
    ([B, H], {"pending": 1, "recover": 1}, [("firing", "firing"), ("resolved", "resolved")]),
    # recovery needs recover_evaluations healthy runs in a row; BETWEEN breaks the streak
    (
        [B, B, H, M, H, H, H],
        {},
        [
            ("pending", None),
            ("firing", "firing"),
            ("firing", None),
            ("firing", None),
            ("firing", None),
            ("resolved", "resolved"),
            ("ok", None),
        ],
    ),
    # no verdict and held never move a state, in either direction
    (
        [B, N, B, X, H, X, H],
        {},
        [
            ("pending", None),
            ("pending", None),
            ("firing", "firing"),
            ("firing", None),
            ("firing", None),
            ("firing", None),
            ("resolved", "resolved"),
        ],
    ),
    # a level hovering at its target does not flap: B M B M ... stays pending/ok, never fires
    ([B, M, B, M, B, M], {}, [("pending", None), ("ok", None)] * 3),
    # reminders every repeat_every while firing (runs every hour, repeat 3 h)
    (
        [B, B, B, B, B, B, B],
        {"repeat": 3 * HOUR},
        [
            ("pending", None),
            ("firing", "firing"),
            ("firing", None),
            ("firing", None),
            ("firing", "reminder"),
            ("firing", None),
            ("firing", None),
        ],
    ),
    # after resolving, a new breach is a new episode with its own firing notice
    (
        [B, H, B, H],
        {"pending": 1, "recover": 1},
        [
            ("firing", "firing"),
            ("resolved", "resolved"),
            ("firing", "firing"),
            ("resolved", "resolved"),
        ],
    ),
    # silenced when it fires: no notice; owed firing notice goes out when the silence ends
    (
        [B, B, B, B],
        {"silenced": {1, 2}},
        [("pending", None), ("firing", None), ("firing", None), ("firing", "firing")],
    ),
    # fired and resolved under a silence: nothing at all is said
    (
        [B, B, H, H],
        {"silenced": {1, 2, 3}},
        [("pending", None), ("firing", None), ("firing", None), ("resolved", None)],
    ),
    # fired and resolved while never notified (silence over before resolve): resolved is silent too
    ([B, H], {"pending": 1, "recover": 1, "silenced": {0}}, [("firing", None), ("resolved", None)]),
]


@pytest.mark.parametrize(("seen", "opts", "expected"), CASES)
def test_sequences(seen: list[Observation], opts: dict, expected: list) -> None:
    assert run(seen, **opts) == expected


def test_episode_flags() -> None:
    policy = Policy(1, 1, timedelta(hours=24))
    s = step(State(), B, T0, policy)
    assert s.opens_episode and s.changed and s.notice is Notice.FIRING
    s2 = step(s.state, H, T0 + HOUR, policy)
    assert s2.closes_episode and s2.state.status is Status.RESOLVED
    s3 = step(s2.state, H, T0 + 2 * HOUR, policy)
    assert not s3.changed and s3.state.status is Status.OK


T = Thresholds(min_matured=20, significance="wilson", recovery_margin_points=2.0, drop_points=10)


@pytest.mark.parametrize(
    ("hits", "matured", "significance", "expected"),
    [
        (19, 28, "wilson", M),  # 68 % but the interval reaches 82 %: no page for a small queue
        (19, 28, "point", B),
        (680, 1000, "wilson", B),  # 68 % of 1,000: the whole interval is below 80 %
        (801, 1000, "point", M),  # above the target, under target + 2 points: in between
        (820, 1000, "point", H),
        (10, 12, "point", N),  # under min_matured: no verdict
    ],
)
def test_level_rule(hits: int, matured: int, significance: str, expected: Observation) -> None:
    t = Thresholds(20, significance, 2.0, 10)  # type: ignore[arg-type]
    from slamon.servicelevel.stats import wilson_interval

    ci = wilson_interval(hits, matured)
    assert ci is not None
    assert judge_level(Figures(matured, hits, *ci), 0.8, t) is expected


def test_trend_and_warning_rules() -> None:
    assert judge_trend(Figures(100, 70), Figures(100, 85), T) == (B, pytest.approx(15.0))
    assert judge_trend(Figures(100, 80), Figures(100, 85), T)[0] is H
    assert judge_trend(Figures(100, 78), Figures(100, 85), T)[0] is M
    assert judge_trend(Figures(10, 7), Figures(100, 85), T)[0] is N
    # 85 of 100 now; 10 at risk: 85 / 110 = 77 % < 80 % -> warn
    obs, projected = judge_warning(Figures(100, 85), 10, 0.8, T)
    assert obs is B and projected == pytest.approx(85 / 110)
    assert judge_warning(Figures(100, 85), 2, 0.8, T)[0] is H
    # already below target: the level rule speaks, the warning holds its state
    assert judge_warning(Figures(100, 75), 10, 0.8, T)[0] is M
