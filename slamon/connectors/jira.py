"""Jira Cloud / Jira Service Management Cloud, and Jira (Service Management) Data Center.

Listing: a JQL search built from the configured base filter, a date bound and a fixed order:
``(<jql>) AND updated >= "yyyy/MM/dd HH:mm" ORDER BY updated ASC, key ASC``.

- Cloud (``flavor = "cloud"``): ``GET /rest/api/3/search/jql`` (the old ``/rest/api/*/search``
  is gone and answers 410). It returns only issue ids unless ``fields`` names what is wanted;
  pages hold ``maxResults`` at most (5000 for ids only, fewer when fields are asked for: the
  server decides), ``nextPageToken`` leads to the next page and is absent (or null) on the last
  one, where ``isLast`` is true. There is no ``total``. Auth: Basic, account email + API token.
- Data Center (``flavor = "datacenter"``): ``GET /rest/api/2/search`` with ``startAt`` /
  ``maxResults``; the server caps ``maxResults`` (``jira.search.views.default.max``) and answers
  with ``total``. Searches backed by OpenSearch/Lucene refuse to page past a result window
  (default 10 000, ``jira.search.platform.max.result.window``): ``startAt + maxResults`` beyond
  it is a 500 "Search limit exceeded". Auth: ``Authorization: Bearer <personal access token>``.

Pitfalls this module handles:

- A JQL date literal carries no zone and is read in the API user's *profile* timezone; several
  connectors lost data by sending UTC wall times. Literals are written in ``jql_timezone``
  (set it to the API user's profile zone). Around a DST fall-back a wall time means two instants:
  a lower bound is moved back until both readings are at or before the wanted instant (an upper
  bound forward), so the shift can only widen a search, never narrow it.
- Literals have minute precision. Every query starts at the floor minute and re-reads it;
  re-reading is harmless (records are upserted, duplicates within a run are dropped).
- Offset paging over a list ordered by ``updated`` skips an issue whenever an issue on an earlier
  page changes (it moves to the end and everything after it shifts down by one), and Atlassian
  does not say how ``nextPageToken`` behaves when results change. So every page is a fresh
  search anchored at the floor minute of the last issue read (keyset paging by minute); this
  also keeps Data Center's ``startAt`` far below the result window. Only when a whole page falls
  within one minute (a bulk edit) does the walk follow the server's own paging through it, and
  there it watches for shifts: on Data Center each page starts one back, at the previous page's
  last issue, and checks it is still there; on Cloud an issue of that minute turning up again
  with a newer ``updated`` gives a shift away, and until the walk ends the cursor stays at the
  minute. After a shift the cursor is held at the minute, so the next run reads it again. More
  issues in one minute than the Data Center result window is an error: no walk gets past them.
- The search is eventually consistent: each run starts ``overlap_minutes`` before the stored
  watermark, and the watermark never passes the moment the run started.
- The issue key changes when an issue moves to another project; the numeric ``id`` does not, so
  ``id`` is the external id and the key only builds the link.

Closure: ``closed_at`` is ``fields.resolutiondate``: the last time the Resolution field was set,
which is when Jira (and a contact center) considers the complaint resolved. Jira clears it only
when the reopening transition clears the Resolution, which is a workflow convention, not a rule:
an issue therefore counts as closed only while its status is done (status category ``done``, or
one of ``closed_statuses``); a done issue without a resolution date falls back to
``fields.statuscategorychangedate`` (Cloud), else ``fields.updated``. The search gives no first
resolution (that is in the changelog), so ``first_closed_at`` stays None.

Exclusions: a resolution in ``merged_resolutions`` (default "Duplicate") marks the complaint
merged; ``excluded_statuses`` maps status names to deleted / spam / merged. A deleted issue
simply vanishes from search (Jira keeps no tombstone): slamon keeps it as it was last seen.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slamon.connectors.base import (
    ConnectorError,
    Cursor,
    MalformedResponse,
    Page,
    SecretReader,
    SourceSettings,
    SyncWindow,
    lookup,
    registry,
)
from slamon.connectors.http import HttpClient
from slamon.domain import ComplaintRecord

#: The literal format this module writes (one of the four JQL accepts); minute precision.
JQL_FORMAT = "%Y/%m/%d %H:%M"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
#: Fields every search asks for, besides the roots of the segment map.
BASE_FIELDS = (
    "summary",
    "status",
    "created",
    "updated",
    "resolution",
    "resolutiondate",
)
ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


class JiraMap(BaseModel):
    """Which issue field fills each of slamon's segments: a dotted path inside ``fields``
    (``project.key``, ``issuetype.name``, ``customfield_10010.requestType.name``,
    ``customfield_10050.value``); empty for none. A path ending on an object takes its
    ``name``, else its ``value``; a list joins its items with ", "."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str = "project.key"
    channel: str = ""
    category: str = "issuetype.name"
    priority: str = "priority.name"


class JiraSettings(SourceSettings):
    kind: Literal["jira"] = "jira"
    url: str
    flavor: Literal["cloud", "datacenter"] = "cloud"
    #: Cloud: the Atlassian account email the API token belongs to.
    email: str | None = None
    #: Cloud: the API token.
    token_env: str | None = None
    token_file: Path | None = None
    #: Data Center: a personal access token.
    pat_env: str | None = None
    pat_file: Path | None = None
    #: The base filter, e.g. ``project = SUP AND issuetype = Complaint`` (no ORDER BY).
    jql: str = Field(min_length=1)
    #: The API user's profile timezone, in which Jira reads JQL date literals.
    jql_timezone: str = "UTC"
    #: Status names that count as closed; default: Jira's status category "done".
    closed_statuses: tuple[str, ...] | None = None
    #: Resolutions that mark a complaint merged into another (kept, excluded from metrics).
    merged_resolutions: tuple[str, ...] = ("Duplicate",)
    #: Status names that mark a complaint deleted / spam / merged (kept, excluded from metrics).
    excluded_statuses: dict[str, Literal["deleted", "spam", "merged"]] = Field(default_factory=dict)
    map: JiraMap = JiraMap()
    #: Issues asked for per page (Cloud returns at most 5000, fewer with many fields; Data
    #: Center caps at its jira.search.views.default.max, commonly 1000).
    page_size: int = Field(default=100, ge=1, le=5000)
    #: Data Center: how deep startAt + maxResults may go (jira.search.platform.max.result.window).
    max_result_window: int = Field(default=10_000, ge=2, le=10_000_000)
    #: Atlassian publishes no fixed number for API-token traffic (Cloud: per-second burst limits
    #: per endpoint; Data Center: whatever the admin set): 2 requests a second stays well clear.
    rate_limit: float = Field(default=120.0, gt=0, le=100_000)

    @field_validator("jql")
    @classmethod
    def _no_order(cls, value: str) -> str:
        if ORDER_BY.search(value):
            raise ValueError("leave out ORDER BY: slamon orders the search itself")
        if not value.strip():
            raise ValueError("give the filter that selects complaints, e.g. project = SUP")
        return value.strip()

    @field_validator("jql_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (an IANA name such as UTC)") from None
        return value

    @model_validator(mode="after")
    def _credentials(self) -> JiraSettings:
        if self.flavor == "cloud":
            if not self.email:
                raise ValueError("flavor cloud needs email (the account the API token is for)")
            if self.token_env is None and self.token_file is None:
                raise ValueError("flavor cloud needs token_env or token_file (an API token)")
        elif self.pat_env is None and self.pat_file is None:
            raise ValueError("flavor datacenter needs pat_env or pat_file (a personal token)")
        return self


# --- JQL date literals ----------------------------------------------------------------------


def _readings(wall: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants a naive wall time can mean in ``zone`` (two only in a DST fall-back)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return min(first, second), max(first, second)


def floor_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The latest minute wall time in ``zone`` that means ``instant`` or earlier, however Jira
    reads it: a lower bound that never cuts off ``instant``."""
    wall = instant.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
    while _readings(wall, zone)[1] > instant:
        wall -= MINUTE
    return wall


def ceil_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The earliest minute wall time in ``zone`` that means ``instant`` or later, however Jira
    reads it: an exclusive upper bound that never cuts off anything before ``instant``."""
    local = instant.astimezone(zone).replace(tzinfo=None)
    wall = local.replace(second=0, microsecond=0)
    if wall < local:
        wall += MINUTE
    while _readings(wall, zone)[0] < instant:
        wall += MINUTE
    return wall


# --- reading issues -------------------------------------------------------------------------


def _label(issue: Mapping[str, Any]) -> str:
    key, ident = issue.get("key"), issue.get("id")
    return f"issue {key} (id {ident})" if key else f"issue {ident}"


def _instant(
    issue: Mapping[str, Any], name: str, where: str, url: str, *, required: bool
) -> datetime | None:
    """``fields.<name>`` as an aware UTC instant in whole seconds (Jira writes
    ``2025-03-05T14:07:31.123+0000``, the offset being the server's or the user's)."""
    fields = issue.get("fields")
    raw = fields.get(name) if isinstance(fields, Mapping) else None
    if raw is None or raw == "":
        if required:
            raise MalformedResponse(f"{where}: {_label(issue)}: fields.{name} is missing", url=url)
        return None
    try:
        parsed: datetime | None = datetime.fromisoformat(str(raw))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise MalformedResponse(
            f"{where}: {_label(issue)}: fields.{name}: cannot read {str(raw)[:40]!r} as a time",
            url=url,
        )
    return parsed.astimezone(UTC).replace(microsecond=0)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        for key in ("name", "value", "displayName", "key"):
            if value.get(key) not in (None, ""):
                return str(value[key])
        return ""
    if isinstance(value, list):
        return ", ".join(t for t in (_text(v) for v in value) if t)
    return str(value)


@dataclass(frozen=True, slots=True)
class _Batch:
    """Issues of one search response and what the cursor needs to know about them."""

    issues: Sequence[Mapping[str, Any]]
    url: str
    #: Each issue's value of the order field (updated or created), in order.
    values: Sequence[datetime]
    total: int | None
    #: The cursor must not pass this instant (a dense minute that may have shifted).
    hold: datetime | None


@registry.register
class JiraConnector:
    kind: ClassVar[str] = "jira"
    Settings: ClassVar[type[JiraSettings]] = JiraSettings

    def __init__(self, name: str, settings: JiraSettings, http: HttpClient, now: datetime):
        self.name = name
        self.settings = settings
        self.http = http
        self.now = _aware(now).replace(microsecond=0)
        self.base = settings.url.rstrip("/")
        self.zone = ZoneInfo(settings.jql_timezone)
        self.cloud = settings.flavor == "cloud"
        self.path = "/rest/api/3/search/jql" if self.cloud else "/rest/api/2/search"
        wanted = [*BASE_FIELDS, "statuscategorychangedate"] if self.cloud else [*BASE_FIELDS]
        wanted += [p.split(".", 1)[0] for p in settings.map.model_dump().values() if p]
        self.fields = ",".join(dict.fromkeys(wanted))

    @classmethod
    def http_options(cls, settings: JiraSettings, secret: SecretReader) -> dict[str, Any]:
        if settings.flavor == "cloud":
            token = secret("token")
            if not token or not settings.email:
                return {"base_url": settings.url}
            basic = base64.b64encode(f"{settings.email}:{token}".encode()).decode()
            return {
                "base_url": settings.url,
                "auth": (settings.email, token),
                "secrets": [token, basic],
            }
        pat = secret("pat")
        return {
            "base_url": settings.url,
            "headers": {"Authorization": f"Bearer {pat}"} if pat else {},
            "secrets": [pat] if pat else [],
        }

    # --- one issue ----------------------------------------------------------------------------

    def record(self, issue: Mapping[str, Any], url: str) -> ComplaintRecord:
        where = f"{self.name}: {url}"
        if not isinstance(issue, Mapping) or issue.get("id") in (None, ""):
            raise MalformedResponse(f"{where}: an issue without an id", url=url)
        fields = issue.get("fields")
        if not isinstance(fields, Mapping):
            raise MalformedResponse(f"{where}: {_label(issue)}: no fields", url=url)
        created = _instant(issue, "created", where, url, required=True)
        updated = _instant(issue, "updated", where, url, required=True)
        assert created is not None and updated is not None
        s = self.settings
        status = fields.get("status")
        status_name = _text(status.get("name")) if isinstance(status, Mapping) else ""
        if s.closed_statuses is not None:
            done = status_name in s.closed_statuses
        else:
            done = lookup(fields, "status.statusCategory.key") == "done"
        closed = None
        if done:
            closed = (
                _instant(issue, "resolutiondate", where, url, required=False)
                or _instant(issue, "statuscategorychangedate", where, url, required=False)
                or updated
            )
        excluded: str | None = s.excluded_statuses.get(status_name)
        resolution = _text(fields.get("resolution"))
        if excluded is None and resolution and resolution in s.merged_resolutions:
            excluded = "merged"
        m = s.map
        return ComplaintRecord(
            external_id=str(issue["id"]),
            created_at=created,
            closed_at=closed,
            status=status_name,
            queue=_text(lookup(fields, m.queue)) if m.queue else "",
            channel=_text(lookup(fields, m.channel)) if m.channel else "",
            category=_text(lookup(fields, m.category)) if m.category else "",
            priority=_text(lookup(fields, m.priority)) if m.priority else "",
            subject=_text(fields.get("summary")),
            url=f"{self.base}/browse/{issue.get('key') or issue['id']}",
            source_updated_at=updated,
            excluded_reason=excluded,
        )

    # --- searching ----------------------------------------------------------------------------

    def _jql(self, field: str, low: datetime, high: datetime | None) -> str:
        jql = f'({self.settings.jql}) AND {field} >= "{low.strftime(JQL_FORMAT)}"'
        if high is not None:
            jql += f' AND {field} < "{high.strftime(JQL_FORMAT)}"'
        return f"{jql} ORDER BY {field} ASC, key ASC"

    def _request(self, params: dict[str, Any]) -> tuple[list[Any], str, Mapping[str, Any]]:
        params = {"jql": params.pop("jql"), "fields": self.fields, **params}
        data, url = self.http.get_json(f"{self.base}{self.path}", params=params)
        if not isinstance(data, Mapping) or not isinstance(data.get("issues"), list):
            raise MalformedResponse(
                f"{self.name}: {url}: no 'issues' list in the response", url=url
            )
        return data["issues"], url, data

    def _values(self, issues: Sequence[Any], field: str, url: str) -> list[datetime]:
        out = []
        for issue in issues:
            if not isinstance(issue, Mapping):
                raise MalformedResponse(f"{self.name}: {url}: an issue is not an object", url=url)
            value = _instant(issue, field, f"{self.name}: {url}", url, required=True)
            assert value is not None
            out.append(value)
        return out

    def _search(self, field: str, low: datetime, high: datetime | None) -> Iterator[_Batch]:
        """Issues with ``low <= field < high`` ordered by (field, key): each page a fresh search
        anchored at the floor minute of the last issue read; within a dense minute, the server's
        own paging, watched for shifts (see the module docstring)."""
        anchor = floor_wall(low, self.zone)
        upper = ceil_wall(high, self.zone) if high is not None else None
        window = self.settings.max_result_window
        shifted: datetime | None = None  # a shift was seen: the cursor stays at or before this
        walked: datetime | None = None  # Cloud: earliest dense minute walked by token
        total: int | None = None
        token: str | None = None
        start = 0  # Data Center: where the next unread issue sits in the anchored search
        last_id: str | None = None  # Data Center: the last issue read, expected at start - 1
        last_wall, last_at = anchor, _readings(anchor, self.zone)[0]  # ...and its minute
        dense: dict[str, tuple[datetime, datetime]] = {}  # Cloud: id -> (value, dense minute)
        while True:
            jql = self._jql(field, anchor, upper)
            if self.cloud:
                params: dict[str, Any] = {"jql": jql, "maxResults": self.settings.page_size}
                if token:
                    params["nextPageToken"] = token
                issues, url, data = self._request(params)
                values = self._values(issues, field, url)
                for issue, value in zip(issues, values, strict=True):
                    before = dense.get(str(issue.get("id")))
                    if before is not None and before[0] != value:
                        # An issue read in a dense minute changed, so later token pages may
                        # have shifted past an issue of that minute: read it again next run.
                        shifted = before[1] if shifted is None else min(shifted, before[1])
                following = data.get("nextPageToken") or None
                if following is not None and following == token:
                    raise MalformedResponse(
                        f"{self.name}: {url}: the server gave the same nextPageToken again",
                        url=url,
                    )
                token = following
                finished = data.get("isLast") is True or token is None
            else:
                overlap = 1 if last_id is not None else 0
                first = start - overlap
                size = min(self.settings.page_size + overlap, window - first)
                if size <= overlap:
                    raise ConnectorError(
                        f"{self.name}: more than {window} issues have {field} within the minute"
                        f" {last_wall.strftime(JQL_FORMAT)} ({self.zone.key}): Data Center search"
                        " cannot page past its result window (jira.search.platform.max.result"
                        ".window); raise it together with max_result_window, or narrow the jql",
                        permanent=True,
                    )
                issues, url, data = self._request(
                    {"jql": jql, "startAt": first, "maxResults": size}
                )
                reported = data.get("total")
                if not isinstance(reported, int):
                    raise MalformedResponse(
                        f"{self.name}: {url}: no 'total' in the response", url=url
                    )
                total = reported if total is None else total
                finished = not issues or first + len(issues) >= reported
                start = first + len(issues)
                if overlap:
                    if issues and str(lookup(issues[0], "id")) == last_id:
                        issues = issues[1:]
                    else:  # the list moved under the offsets: something may have been skipped
                        shifted = last_at if shifted is None else min(shifted, last_at)
                    if not issues and not finished:
                        raise MalformedResponse(
                            f"{self.name}: {url}: no new issues though total is {reported}",
                            url=url,
                        )
                values = self._values(issues, field, url)
            hold = shifted
            if walked is not None and not finished:
                # Until the walk ends, a changed issue of a dense minute may still turn up.
                hold = walked if hold is None else min(hold, walked)
            if issues or finished:
                yield _Batch(issues, url, values, total, hold)
            if finished:
                return
            if not values:
                continue  # Cloud: an empty page that still points further
            first_minute = floor_wall(values[0], self.zone)
            last_minute = floor_wall(values[-1], self.zone)
            if first_minute < last_minute:
                # The page spans minutes: a fresh search from the last one re-reads less than a
                # page, so it always gets further.
                anchor, token, start, last_id = last_minute, None, 0, None
                continue
            # The whole page lies in one minute (a bulk edit): follow the server's own paging.
            minute_at = _readings(last_minute, self.zone)[0]
            if self.cloud:
                walked = minute_at if walked is None else min(walked, minute_at)
                for issue, value in zip(issues, values, strict=True):
                    dense.setdefault(str(issue.get("id")), (value, minute_at))
            else:
                last_id, last_at, last_wall = str(lookup(issues[-1], "id")), minute_at, last_minute

    def _pages(
        self,
        field: str,
        low: datetime,
        high: datetime | None,
        mark: datetime | None,
        keep: Callable[[ComplaintRecord], bool] | None = None,
    ) -> Iterator[Page]:
        seen: set[tuple[str, datetime | None]] = set()
        for batch in self._search(field, low, high):
            records: list[ComplaintRecord] = []
            skipped = 0
            for issue in batch.issues:
                rec = self.record(issue, batch.url)
                if (rec.external_id, rec.source_updated_at) in seen:
                    continue  # read again at the anchor minute of a following search
                seen.add((rec.external_id, rec.source_updated_at))
                if keep is not None and not keep(rec):
                    skipped += 1
                    continue
                records.append(rec)
            if batch.values:
                newest = max(batch.values)
                if field == "updated":
                    newest = min(newest, self.now)  # changes still being indexed come next run
                mark = newest if mark is None else max(mark, newest)
            if mark is None:
                continue
            since = mark if batch.hold is None else min(mark, batch.hold)
            yield Page(
                records, {"since": since.isoformat()}, batch.url, skipped=skipped, total=batch.total
            )

    # --- the protocol -------------------------------------------------------------------------

    def changes(self, cursor: Cursor | None) -> Iterator[Page]:
        mark: datetime | None = None
        if cursor and cursor.get("since"):
            mark = _aware(datetime.fromisoformat(str(cursor["since"])))
            since = mark - timedelta(minutes=self.settings.overlap_minutes)
        elif self.settings.initial_since is not None:
            since = _aware(self.settings.initial_since)
        else:
            since = EPOCH
        return self._pages("updated", since, None, mark)

    def history(self, window: SyncWindow, checkpoint: Cursor | None) -> Iterator[Page]:
        lo, hi = _aware(window.since), _aware(window.until)
        mark: datetime | None = None
        if checkpoint and checkpoint.get("since"):
            mark = _aware(datetime.fromisoformat(str(checkpoint["since"])))
        low = max(lo, mark) if mark is not None else lo

        def within(rec: ComplaintRecord) -> bool:
            return lo <= rec.created_at < hi

        return self._pages("created", low, hi, mark, within)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
