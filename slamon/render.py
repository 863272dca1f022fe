"""Human-readable renderings (rich renderables); printing them is the CLI's job."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from slamon.report import CURVE_MARKS, CurveReport, CurveRow, Level, Report, Row
from slamon.servicelevel.curve import days_to


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _days(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def level_cell(level: Level) -> Text:
    """The share against its target, marked by a symbol as well as colour, over the matured and
    pending counts it stands on."""
    if level.share is None:
        cell = Text("—", style="dim")
    elif level.met is None:
        cell = Text(_pct(level.share))
    elif level.met:
        cell = Text(f"✔ {_pct(level.share)}", style="green")
    else:
        cell = Text(f"✘ {_pct(level.share)}", style="bold red")
    cell.append(f"\n{level.matured}/{level.pending}", style="dim")
    return cell


def report_table(report: Report) -> Table:
    by = report.request.by
    title = (
        f"Service level: share of complaints closed within N {report.day_mode.value} days"
        f" ({report.request.since} – {report.request.until}, created, {report.timezone})"
    )
    table = Table(
        title=title,
        title_justify="left",
        caption=_caption(report),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    if report.request.period.value != "none":
        table.add_column("Period", no_wrap=True)
    for name in by:
        table.add_column(name.capitalize(), overflow="fold")
    table.add_column("Compl.", justify="right")
    table.add_column("Open", justify="right")
    for n in report.thresholds:
        target = next(lv.target for lv in report.total.levels if lv.threshold == n)
        header = f"≤{n}d" + (f"\n≥{target * 100:g}%" if target is not None else "")
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("Mean\ndays", justify="right")
    table.add_column("Med.\ndays", justify="right")

    show_period = report.request.period.value != "none"

    def add(row: Row, is_total: bool = False) -> None:
        cells: list[str | Text] = []
        if show_period:
            cells.append("TOTAL" if is_total else (row.period or ""))
        for i, name in enumerate(by):
            if is_total:
                cells.append("TOTAL" if i == 0 and not show_period else "")
            else:
                cells.append(row.segment.get(name) or "∅")
        cells += [str(row.complaints), str(row.open)]
        cells += [level_cell(lv) for lv in row.levels]
        cells += [_days(row.mean_days), _days(row.median_days)]
        table.add_row(*cells, style="bold" if is_total else None)

    if by or show_period:
        for row in report.rows:
            add(row)
        if report.rows:
            table.add_section()
            add(report.total, is_total=True)
    else:
        add(report.total)
    return table


def _caption(report: Report) -> str:
    total = report.total
    parts = [f"as of {report.as_of.isoformat()}"]
    if total.excluded:
        parts.append(f"{total.excluded} excluded (deleted, spam, merged, or closed before created)")
    parts.append(
        "≤Nd: share closed within N days, ✔ met / ✘ missed its target;"
        " below it: matured/pending complaints (pending: deadline still ahead)"
    )
    first = total.levels[0] if total.levels else None
    if first is not None and first.share is not None and total.mean_days is not None:
        parts.append(
            f"the mean says {total.mean_days:.1f} days; only {_pct(first.share)}"
            f" closed within {first.threshold} days"
        )
    return " · ".join(parts)


CURVE_COLUMNS = (1, 2, 3, 5, 7, 10, 14, 21, 30)


def curve_table(curve: CurveReport) -> Table:
    """Share closed by day d (Kaplan-Meier), a few days as columns, and the day marks."""
    unit = {"calendar": "days", "working": "working days", "elapsed": "x 24 h"}[curve.day_mode]
    table = Table(
        title=(
            f"Closure curve: share closed within d {unit} (Kaplan-Meier; young complaints"
            f" censored), created {curve.request.since} – {curve.request.until}, {curve.timezone}"
        ),
        title_justify="left",
        caption=f"as of {curve.as_of.isoformat()}",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    show_period = curve.request.period.value != "none"
    if show_period:
        table.add_column("Period", no_wrap=True)
    for name in curve.request.by:
        table.add_column(name.capitalize(), overflow="fold")
    table.add_column("Compl.", justify="right")
    for d in CURVE_COLUMNS:
        table.add_column(f"{d}d", justify="right")
    for mark in CURVE_MARKS:
        table.add_column(f"{mark * 100:g}% by", justify="right")

    def add(row: CurveRow, label: str | None) -> None:
        cells: list[str] = []
        if show_period:
            cells.append(label or row.period or "")
        for i, name in enumerate(curve.request.by):
            if label is not None:
                cells.append(label if i == 0 and not show_period else "")
            else:
                cells.append(row.segment.get(name) or "∅")
        cells.append(str(row.complaints))
        for d in CURVE_COLUMNS:
            share = row.points[d].closed_share if d < len(row.points) else None
            cells.append("—" if share is None else f"{share * 100:.0f}%")
        for mark in CURVE_MARKS:
            day = days_to(row.points, mark)
            cells.append("> 30" if day is None else f"day {day}")
        table.add_row(*cells, style="bold" if label else None)

    grouped = bool(curve.request.by) or show_period
    if grouped:
        for row in curve.rows:
            add(row, None)
        if curve.rows:
            table.add_section()
    add(curve.total, "TOTAL" if grouped else None)
    return table
