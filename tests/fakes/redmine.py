"""A fake Redmine REST API (GET /issues.json) that behaves as Redmine 5 documents it:
X-Redmine-API-Key auth, status_id (default: open issues only), updated_on / created_on filters
with >=, <= and >< operators, sort by up to several keys, offset/limit paging with limit clamped
to 100, total_count; is_closed on statuses; closed_on kept when an issue is reopened."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fakes.server import FakeAPI, Response, json_response

STATUSES = {
    1: ("New", False),
    2: ("In Progress", False),
    5: ("Closed", True),
    6: ("Rejected", True),
}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeRedmine(FakeAPI):
    def __init__(self, api_key: str = "s3cret-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.issues: dict[int, dict[str, Any]] = {}
        self.clock = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
        self._by_update: list[tuple[datetime, int]] | None = None  # sorted (updated_on, id)

    # --- the truth --------------------------------------------------------------------------

    def tick(self, seconds: int = 1) -> datetime:
        with self.lock:
            self._by_update = None
            self.clock += timedelta(seconds=seconds)
            return self.clock

    def create(
        self,
        issue_id: int,
        created: datetime,
        *,
        project: str = "Support",
        channel: str = "email",
        status: int = 1,
        subject: str = "Complaint",
    ) -> None:
        with self.lock:
            self.issues[issue_id] = {
                "id": issue_id,
                "project": {"id": 1, "name": project},
                "tracker": {"id": 4, "name": "Complaint"},
                "status_id": status,
                "priority": {"id": 2, "name": "Normal"},
                "subject": subject,
                "custom_fields": [{"id": 2, "name": "Channel", "value": channel}],
                "created_on": created,
                "updated_on": self.tick(),
                "closed_on": None,
            }
            if STATUSES[status][1]:
                self.issues[issue_id]["closed_on"] = self.issues[issue_id]["updated_on"]

    def set_status(self, issue_id: int, status: int, at: datetime | None = None) -> None:
        with self.lock:
            self._by_update = None
            issue = self.issues[issue_id]
            when = at or self.tick()
            if at is not None:
                self.clock = max(self.clock, at)
            was_closed = STATUSES[issue["status_id"]][1]
            issue["status_id"] = status
            issue["updated_on"] = when
            if STATUSES[status][1] and not was_closed:
                issue["closed_on"] = when  # Redmine: the last transition into a closed status

    def move(self, issue_id: int, project: str) -> None:
        with self.lock:
            self.issues[issue_id]["project"] = {"id": 9, "name": project}
            self.issues[issue_id]["updated_on"] = self.tick()

    def truth(self) -> dict[str, dict[str, Any]]:
        """What slamon should hold: id -> the fields a complaint keeps."""
        with self.lock:
            out = {}
            for issue in self.issues.values():
                closed = STATUSES[issue["status_id"]][1]
                out[str(issue["id"])] = {
                    "created_at": issue["created_on"],
                    "closed_at": issue["closed_on"] if closed else None,
                    "queue": issue["project"]["name"],
                    "status": STATUSES[issue["status_id"]][0],
                    "source_updated_at": issue["updated_on"],
                }
            return out

    # --- the API ----------------------------------------------------------------------------

    def _render(self, issue: Mapping[str, Any]) -> dict[str, Any]:
        name, closed = STATUSES[issue["status_id"]]
        out = {k: v for k, v in issue.items() if k != "status_id"}
        out["status"] = {"id": issue["status_id"], "name": name, "is_closed": closed}
        for key in ("created_on", "updated_on", "closed_on"):
            out[key] = _iso(issue[key])
        return out

    @staticmethod
    def _date_filter(value: str | None, field: str, issue: Mapping[str, Any]) -> bool:
        if not value:
            return True
        at = issue[field]
        if value.startswith(">="):
            return at >= _parse(value[2:])
        if value.startswith("<="):
            return at <= _parse(value[2:])
        if value.startswith("><"):
            lo, hi = value[2:].split("|")
            return _parse(lo) <= at <= _parse(hi)
        raise ValueError(value)

    def _incremental(self, query: dict[str, str]) -> Response | None:
        """The sync's own query (all statuses, updated_on >= X, sorted by updated_on, id),
        answered from a sorted index so that a large fake stays fast."""
        since = query.get("updated_on", "")
        if (
            query.get("status_id") != "*"
            or query.get("sort") != "updated_on,id"
            or not since.startswith(">=")
            or set(query) - {"status_id", "sort", "updated_on", "offset", "limit"}
        ):
            return None
        if self._by_update is None:
            self._by_update = sorted((i["updated_on"], i["id"]) for i in self.issues.values())
        keys = self._by_update
        start = bisect.bisect_left(keys, (_parse(since[2:]), -1))
        limit = min(int(query.get("limit", 25)), 100)
        offset = int(query.get("offset", 0))
        chosen = keys[start + offset : start + offset + limit]
        page = [self._render(self.issues[issue_id]) for _, issue_id in chosen]
        return json_response(
            200,
            {"issues": page, "total_count": len(keys) - start, "offset": offset, "limit": limit},
        )

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        if headers.get("x-redmine-api-key") != self.api_key:
            return 401, {"Content-Type": "text/plain"}, b"Unauthorized"
        if path != "/issues.json":
            return 404, {"Content-Type": "text/plain"}, b"Not Found"
        with self.lock:
            fast = self._incremental(query)
            if fast is not None:
                return fast
            status_filter = query.get("status_id", "open")
            items = []
            for issue in self.issues.values():
                closed = STATUSES[issue["status_id"]][1]
                if status_filter == "open" and closed:
                    continue
                if status_filter == "closed" and not closed:
                    continue
                if not self._date_filter(query.get("updated_on"), "updated_on", issue):
                    continue
                if not self._date_filter(query.get("created_on"), "created_on", issue):
                    continue
                items.append(issue)
            keys = [k for k in query.get("sort", "id:desc").split(",") if k]

            def sort_key(issue: Mapping[str, Any]) -> tuple[Any, ...]:
                return tuple(issue[k.split(":")[0]] for k in keys)

            items.sort(key=sort_key, reverse=keys[0].endswith(":desc"))
            limit = min(int(query.get("limit", 25)), 100)
            offset = int(query.get("offset", 0))
            page = [self._render(i) for i in items[offset : offset + limit]]
            return json_response(
                200,
                {"issues": page, "total_count": len(items), "offset": offset, "limit": limit},
            )
