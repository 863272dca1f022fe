"""The digest's message catalogues, English and Russian: the same keys in both (a test checks).

A value is a str.format template with named fields, or a mapping of CLDR plural categories
(babel: English one / other; Russian one / few / many / other) to templates with {n}.
"""

from __future__ import annotations

from collections.abc import Mapping

Message = str | Mapping[str, str]


def _en(one: str, other: str) -> dict[str, str]:
    return {"one": one, "other": other}


def _ru(one: str, few: str, many: str, other: str | None = None) -> dict[str, str]:
    """Russian forms: 1, 21 (one); 2-4, 22 (few); 5-20, 25 (many); fractions (other)."""
    return {"one": one, "few": few, "many": many, "other": few if other is None else other}


EN: dict[str, Message] = {
    "title": "Complaint service level",
    "period.day": "{day}",
    "period.week": "week of {range}",
    "period.month": "{month}",
    "header.scope": "Scope: {scope}",
    "header.complaints": _en("{n} complaint created", "{n} complaints created"),
    "header.excluded": _en("{n} excluded", "{n} excluded"),
    "header.as_of": "as of {moment}",
    "late.banner": "Late digest: sent after its scheduled time; the figures are as of {moment}.",
    "level.within": _en("within {n} day", "within {n} days"),
    "level.short": "≤{n} d",
    "level.counts": "{judged} judged, {pending} pending",
    "level.interval": "{confidence} CI {low}–{high}",
    "verdict.met": "target {target} met",
    "verdict.missed": "below target {target}",
    "verdict.no_target": "no target set",
    "verdict.not_judged": "nothing judged yet",
    "change.previous.day": "the day before",
    "change.previous.week": "the week before",
    "change.previous.month": "the month before",
    "change.points": "{arrow} {points} vs {previous}",
    "change.none": "no figure for the period before to compare with",
    "unit.points": "{value} pts",
    "unit.days": _en("{n} day", "{n} days"),
    "unit.days_decimal": _en("{n} day", "{n} days"),
    "unit.complaints": _en("{n} complaint", "{n} complaints"),
    "mean.head": "Mean vs service level:",
    "mean.says": "the mean closure time is {mean}, but the service level says",
    "mean.level": "{share} closed {within}",
    "mean.target": "(target {target} {verdict})",
    "mean.p90": "The slowest {tail} took more than {p90}.",
    "mean.window": "Complaints created {range}: {complaints}.",
    "mean.nothing": "Mean vs service level: nothing closed or judged yet among the complaints"
    " created {since} – {until}.",
    "alerts.title": _en("{n} alert firing now", "{n} alerts firing now"),
    "alerts.since": "firing since {moment}",
    "alerts.everything": "all complaints",
    "alerts.rule.level": "Service level below target",
    "alerts.rule.trend": "Service level fell sharply",
    "alerts.rule.warning": "Complaints about to miss their deadline",
    "alerts.rule.stale": "A source has stopped syncing",
    "alerts.level": "{short}: {share}",
    "alerts.level_target": "{short}: {share} (target {target})",
    "trend.title.day": _en("Trend over the last {n} day", "Trend over the last {n} days"),
    "trend.title.week": _en("Trend over the last {n} week", "Trend over the last {n} weeks"),
    "trend.title.month": _en("Trend over the last {n} month", "Trend over the last {n} months"),
    "trend.target": "target {target} (dark mark)",
    "trend.legend": "Each bar: the share (%) of the complaints created in that period that closed"
    " in time, counted once their deadline passed; ✔ met, ✘ missed the target.",
    "trend.legend_text": "█ share closed in time, │ the target; ✔ met, ✘ missed.",
    "breakdown.title": "By {by}, worst first",
    "breakdown.open": "Open",
    "breakdown.more": _en("and {n} more segment", "and {n} more segments"),
    "breakdown.empty": "No complaints in this period.",
    "due.title": "Deadline within the next 24 hours",
    "due.none": "No open complaint reaches a deadline in the next 24 hours.",
    "due.when": "{short} in {hours} h",
    "due.at": "due {moment}",
    "oldest.title": "Oldest open complaints",
    "oldest.none": "No open complaints.",
    "complaint.no_subject": "(no subject)",
    "list.more": _en("and {n} more", "and {n} more"),
    "sources.title": "Data freshness",
    "sources.stale": "stale",
    "sources.error": "last error: {error}",
    "sources.rule": _en(
        "Stale: no successful sync for more than {n} hour.",
        "Stale: no successful sync for more than {n} hours.",
    ),
    "sources.none": "No sources yet.",
    "sources.never": "never synced",
    "sources.never_imported": "nothing imported yet",
    "sources.imported": "last import {moment}",
    "sources.synced": "last synced {moment}",
    "foot.definition": "Service level: the share of the complaints created in the period that"
    " closed within N days, counted over those whose deadline has passed; the others are pending"
    " and not counted yet. The mean is shown beside it, never instead of it.",
    "foot.cohorts": "Days are {mode} days in {zone}.",
    "foot.sent": "Digest “{name}” by slamon, as of {moment} ({zone}).",
    "mode.calendar": "calendar",
    "mode.working": "working",
    "mode.elapsed": "24-hour",
    "field.source": "source",
    "field.queue": "queue",
    "field.channel": "channel",
    "field.category": "category",
    "field.priority": "priority",
    "segment.empty": "(empty)",
    "subject.late": "[late]",
    "subject.nothing_judged": "nothing judged yet",
    "subject.figure": "{symbol} {share} closed {within}",
    "subject.with_target": "{figure}, target {target}",
    "subject.default": "Service level{where}, {period}: {figure}",
}

RU: dict[str, Message] = {
    "title": "Уровень сервиса по жалобам",
    "period.day": "{day}",
    "period.week": "неделя {range}",
    "period.month": "{month}",
    "header.scope": "Срез: {scope}",
    "header.complaints": _ru(
        "создана {n} жалоба", "создано {n} жалобы", "создано {n} жалоб", "создано {n} жалобы"
    ),
    "header.excluded": _ru("исключена {n}", "исключено {n}", "исключено {n}"),
    "header.as_of": "данные на {moment}",
    "late.banner": "Дайджест с опозданием: отправлен позже расписания; данные на {moment}.",
    "level.within": _ru("за {n} день", "за {n} дня", "за {n} дней"),
    "level.short": "≤{n} дн.",
    "level.counts": "оценено {judged}, ждут срока {pending}",
    "level.interval": "ДИ {confidence}: {low}–{high}",
    "verdict.met": "цель {target} достигнута",
    "verdict.missed": "ниже цели {target}",
    "verdict.no_target": "цель не задана",
    "verdict.not_judged": "оценивать пока нечего",
    "change.previous.day": "предыдущим днём",
    "change.previous.week": "предыдущей неделей",
    "change.previous.month": "предыдущим месяцем",
    "change.points": "{arrow} {points} по сравнению с {previous}",
    "change.none": "не с чем сравнить: за период перед этим оценки нет",
    "unit.points": "{value} п. п.",
    "unit.days": _ru("{n} день", "{n} дня", "{n} дней"),
    "unit.days_decimal": _ru("{n} день", "{n} дня", "{n} дней"),
    "unit.complaints": _ru("{n} жалоба", "{n} жалобы", "{n} жалоб"),
    "mean.head": "Среднее и уровень сервиса:",
    "mean.says": "среднее время закрытия — {mean}, а уровень сервиса показывает:",
    "mean.level": "{within} закрыто {share}",
    "mean.target": "(цель {target} {verdict})",
    "mean.p90": "Самые медленные {tail} жалоб закрывались дольше {p90}.",
    "mean.window": "Жалобы, созданные {range}: {complaints}.",
    "mean.nothing": "Среднее и уровень сервиса: среди жалоб, созданных {since} – {until},"
    " пока нет ни закрытых, ни оценённых.",
    "alerts.title": _ru(
        "{n} активное оповещение",
        "{n} активных оповещения",
        "{n} активных оповещений",
        "{n} активного оповещения",
    ),
    "alerts.since": "с {moment}",
    "alerts.everything": "все жалобы",
    "alerts.rule.level": "Уровень сервиса ниже цели",
    "alerts.rule.trend": "Уровень сервиса резко упал",
    "alerts.rule.warning": "Жалобы вот-вот просрочат срок",
    "alerts.rule.stale": "Источник перестал синхронизироваться",
    "alerts.level": "{short}: {share}",
    "alerts.level_target": "{short}: {share} (цель {target})",
    "trend.title.day": _ru("Динамика за {n} день", "Динамика за {n} дня", "Динамика за {n} дней"),
    "trend.title.week": _ru(
        "Динамика за {n} неделю", "Динамика за {n} недели", "Динамика за {n} недель"
    ),
    "trend.title.month": _ru(
        "Динамика за {n} месяц", "Динамика за {n} месяца", "Динамика за {n} месяцев"
    ),
    "trend.target": "цель {target} (тёмная черта)",
    "trend.legend": "Столбик — доля (%) жалоб, созданных в этот период и закрытых в срок, среди"
    " тех, чей срок уже истёк; ✔ цель достигнута, ✘ нет.",
    "trend.legend_text": "█ доля закрытых в срок, │ цель; ✔ достигнута, ✘ нет.",
    "breakdown.title": "Разбивка: {by} (сначала худшие)",
    "breakdown.open": "Открыто",
    "breakdown.more": _ru("и ещё {n} срез", "и ещё {n} среза", "и ещё {n} срезов"),
    "breakdown.empty": "За период жалоб нет.",
    "due.title": "Срок истекает в ближайшие 24 часа",
    "due.none": "Ни у одной открытой жалобы срок не истекает в ближайшие 24 часа.",
    "due.when": "{short} через {hours} ч",
    "due.at": "срок {moment}",
    "oldest.title": "Самые старые открытые жалобы",
    "oldest.none": "Открытых жалоб нет.",
    "complaint.no_subject": "(без темы)",
    "list.more": _ru("и ещё {n}", "и ещё {n}", "и ещё {n}"),
    "sources.title": "Свежесть данных",
    "sources.stale": "устарели",
    "sources.error": "последняя ошибка: {error}",
    "sources.rule": _ru(
        "Устаревшие: успешной синхронизации не было больше {n} часа.",
        "Устаревшие: успешной синхронизации не было больше {n} часов.",
        "Устаревшие: успешной синхронизации не было больше {n} часов.",
    ),
    "sources.none": "Источников пока нет.",
    "sources.never": "ни разу не синхронизирован",
    "sources.never_imported": "ещё ничего не импортировано",
    "sources.imported": "последний импорт {moment}",
    "sources.synced": "последняя синхронизация {moment}",
    "foot.definition": "Уровень сервиса — доля жалоб, созданных в период и закрытых за N дней,"
    " среди тех, чей срок уже истёк; остальные ждут срока и пока не учитываются. Среднее"
    " показано рядом с ним, но не вместо него.",
    "foot.cohorts": "Дни: {mode}, часовой пояс {zone}.",
    "foot.sent": "Дайджест «{name}» от slamon, данные на {moment} ({zone}).",
    "mode.calendar": "календарные",
    "mode.working": "рабочие",
    "mode.elapsed": "по 24 часа",
    "field.source": "источник",
    "field.queue": "очередь",
    "field.channel": "канал",
    "field.category": "категория",
    "field.priority": "приоритет",
    "segment.empty": "(пусто)",
    "subject.late": "[с опозданием]",
    "subject.nothing_judged": "оценивать пока нечего",
    "subject.figure": "{symbol} {within} закрыто {share}",
    "subject.with_target": "{figure}, цель {target}",
    "subject.default": "Уровень сервиса{where}, {period}: {figure}",
}

CATALOGUES: dict[str, dict[str, Message]] = {"en": EN, "ru": RU}
