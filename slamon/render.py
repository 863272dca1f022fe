"""Human-readable renderings (rich renderables); printing them is the CLI's job."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from slamon.report import Level, Report, Row


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
