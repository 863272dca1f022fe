"""Redmine: GET /issues.json with the REST API key.

Incremental: ``status_id=*`` (otherwise closed issues are silently left out) and
``updated_on=>=W``, sorted by (updated_on, id), ``limit`` 100 (Redmine's maximum). The cursor is
the last page's newest ``updated_on`` plus how many issues with exactly that time were already
read, so a run never loops on many issues sharing one second and never skips one; each run starts
``overlap_minutes`` before the stored time to catch late commits (re-reading is harmless).
Backfill: ``created_on=><since|until`` sorted by id, walking ``offset``.

Redmine keeps ``closed_on`` (the last transition into a closed status) when an issue is reopened,
so an issue counts as closed only while its status is closed (``status.is_closed``, Redmine 5+,
or ``closed_statuses`` from the config).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from slamon.connectors.base import (
    Cursor,
    MalformedResponse,
    Page,
    SecretReader,
    SourceSettings,
    SyncWindow,
    registry,
)
from slamon.connectors.http import HttpClient
from slamon.domain import ComplaintRecord


class RedmineMap(BaseModel):
    """Which Redmine field fills each of slamon's segments: an issue attribute (project,
    tracker, category, assigned_to, priority, status, author, fixed_version) or a custom field
    as ``cf:ID`` or ``cf:Name``; empty for none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str = "project"
    channel: str = ""
    category: str = "tracker"
    priority: str = "priority"


class RedmineSettings(SourceSettings):
    kind: Literal["redmine"] = "redmine"
    url: str
    api_key_env: str | None = None
    api_key_file: Path | None = None
    #: Extra /issues.json filters, passed as query parameters (project_id, tracker_id, cf_N ...).
    filter: dict[str, str | int] = Field(default_factory=dict)
    #: Status names that count as closed; default: Redmine's own is_closed flag.
    closed_statuses: tuple[str, ...] | None = None
    #: Status names that mark a complaint deleted / spam / merged (name -> reason): such
    #: complaints are kept but excluded from every metric.
    excluded_statuses: dict[str, Literal["deleted", "spam", "merged"]] = Field(default_factory=dict)
    map: RedmineMap = RedmineMap()
    page_size: int = Field(default=100, ge=1, le=100)
    rate_limit: float = Field(default=120.0, gt=0, le=100_000)


def _instant(issue: Mapping[str, Any], key: str, url: str, required: bool) -> datetime | None:
    raw = issue.get(key)
    if raw is None or raw == "":
        if required:
            raise MalformedResponse(f"{url}: issue {issue.get('id')}: {key} is missing", url=url)
        return None
    try:
        parsed = datetime.fromisoformat(str(raw))
    except ValueError:
        raise MalformedResponse(
            f"{url}: issue {issue.get('id')}: {key}: cannot read {str(raw)[:40]!r} as a time",
            url=url,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Redmine's API times are UTC
    return parsed.astimezone(UTC).replace(microsecond=0)


def _field(issue: Mapping[str, Any], path: str) -> str:
    if not path:
        return ""
    if path.startswith("cf:"):
        wanted = path[3:]
        for cf in issue.get("custom_fields") or ():
            if str(cf.get("id")) == wanted or cf.get("name") == wanted:
                value = cf.get("value")
                if isinstance(value, list):
                    return ", ".join(str(v) for v in value)
                return "" if value is None else str(value)
        return ""
    value = issue.get(path)
    if isinstance(value, Mapping):
        return str(value.get("name") or "")
    return "" if value is None else str(value)


@registry.register
class RedmineConnector:
    kind: ClassVar[str] = "redmine"
    Settings: ClassVar[type[RedmineSettings]] = RedmineSettings

    def __init__(self, name: str, settings: RedmineSettings, http: HttpClient, now: datetime):
        self.name = name
        self.settings = settings
        self.http = http
        self.now = now
        self.base = settings.url.rstrip("/")

    @classmethod
    def http_options(cls, settings: RedmineSettings, secret: SecretReader) -> dict[str, Any]:
        key = secret("api_key")
        return {
            "base_url": settings.url,
            "headers": {"X-Redmine-API-Key": key} if key else {},
            "secrets": [key] if key else [],
        }

    # --- reading issues ---------------------------------------------------------------------

    def record(self, issue: Mapping[str, Any], url: str) -> ComplaintRecord:
        if not isinstance(issue, Mapping) or "id" not in issue:
            raise MalformedResponse(f"{url}: an issue without an id", url=url)
        status = issue.get("status") or {}
        status_name = str(status.get("name") or "") if isinstance(status, Mapping) else ""
        if self.settings.closed_statuses is not None:
            is_closed = status_name in self.settings.closed_statuses
        elif isinstance(status, Mapping) and "is_closed" in status:
            is_closed = bool(status["is_closed"])
        else:
            is_closed = issue.get("closed_on") is not None
        updated = _instant(issue, "updated_on", url, required=True)
        closed = _instant(issue, "closed_on", url, required=False) if is_closed else None
        if is_closed and closed is None:
            closed = updated
        m = self.settings.map
        return ComplaintRecord(
            external_id=str(issue["id"]),
            created_at=_instant(issue, "created_on", url, required=True),  # type: ignore[arg-type]
            closed_at=closed,
            status=status_name,
            queue=_field(issue, m.queue),
            channel=_field(issue, m.channel),
            category=_field(issue, m.category),
            priority=_field(issue, m.priority),
            subject=str(issue.get("subject") or ""),
            url=f"{self.base}/issues/{issue['id']}",
            source_updated_at=updated,
            excluded_reason=self.settings.excluded_statuses.get(status_name),
        )

    def _page(self, params: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], int | None, str]:
        query = {"status_id": "*", "limit": self.settings.page_size, **self.settings.filter}
        query.update(params)
        data, url = self.http.get_json(f"{self.base}/issues.json", params=query)
        if not isinstance(data, Mapping) or not isinstance(data.get("issues"), list):
            raise MalformedResponse(f"{url}: no 'issues' list in the response", url=url)
        total = data.get("total_count")
        return data["issues"], total if isinstance(total, int) else None, url

    # --- the protocol -----------------------------------------------------------------------

    def changes(self, cursor: Cursor | None) -> Iterator[Page]:
        if cursor and cursor.get("since"):
            since = datetime.fromisoformat(cursor["since"]) - timedelta(
                minutes=self.settings.overlap_minutes
            )
        elif self.settings.initial_since is not None:
            since = self.settings.initial_since
        else:
            since = datetime(1970, 1, 1, tzinfo=UTC)
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        skip = 0
        while True:
            stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            issues, total, url = self._page(
                {"updated_on": f">={stamp}", "sort": "updated_on,id", "offset": skip}
            )
            records = [self.record(i, url) for i in issues]
            if not records:
                return
            last = max(r.source_updated_at for r in records if r.source_updated_at)
            same = sum(1 for r in records if r.source_updated_at == last)
            next_skip = skip + same if last == since else same
            yield Page(
                records, {"since": last.isoformat(), "skip": next_skip}, url=url, total=total
            )
            if len(issues) < self.settings.page_size:
                return
            since, skip = last, next_skip

    def history(self, window: SyncWindow, checkpoint: Cursor | None) -> Iterator[Page]:
        offset = int((checkpoint or {}).get("offset", 0))
        lo = window.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        hi = window.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        while True:
            issues, total, url = self._page(
                {"created_on": f"><{lo}|{hi}", "sort": "id", "offset": offset}
            )
            if not issues:
                return
            offset += len(issues)
            yield Page([self.record(i, url) for i in issues], {"offset": offset}, url, total=total)
            if len(issues) < self.settings.page_size:
                return
