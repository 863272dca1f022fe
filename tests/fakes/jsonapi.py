"""A fake homegrown complaints API (GET /api/v2/complaints), the kind a contact center's own
developers write, with the choices such APIs differ in made configurable:

- ``paging``: "page" (?page=&per_page=, 1-based), "offset" (?offset=&limit=), "cursor"
  (?cursor=&limit=, the next token at ``data.next``, null on the last page) or "link" (a
  ``Link: <url>; rel="next"`` header);
- ``max_page_size``: what the server silently caps the page size at;
- ``time_format``: "iso_local" (naive local times in ``zone``), "iso" (UTC with Z) or
  "epoch_ms"; the ``updated_since`` / ``created_from`` / ``created_to`` filters take the same;
- ``exclusive_since``: ``updated_since`` as ``>`` rather than ``>=``;
- ``sortable``: whether ``sort=updated_at&order=asc`` is honoured (else: id order);
- ``auth``: ("bearer", token), ("api_key", key) in X-API-Key, or ("basic", "user:password");
  anything else is 401.

Items have a ``type`` ("complaint" or "question", filtered by ``?type=``). A reopened complaint
keeps its old ``resolved_at`` (as many homegrown systems do), so only its status says it is
open; a soft-deleted one gets ``deleted_at``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fakes.server import FakeAPI, Response, json_response

CLOSED = ("resolved", "closed")


class FakeHomegrown(FakeAPI):
    def __init__(
        self,
        *,
        paging: str = "page",
        auth: tuple[str, str] = ("bearer", "crm-t0ken"),
        time_format: str = "iso_local",
        zone: str = "Europe/Moscow",
        max_page_size: int = 100,
        exclusive_since: bool = False,
        sortable: bool = True,
    ) -> None:
        super().__init__()
        self.paging = paging
        self.auth = auth
        self.time_format = time_format
        self.zone = ZoneInfo(zone)
        self.max_page_size = max_page_size
        self.exclusive_since = exclusive_since
        self.sortable = sortable
        self.ignore_paging = False
        #: Where Link headers point (default: this server).
        self.link_base: str | None = None
        self.items: dict[int, dict[str, Any]] = {}
        self.clock = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    # --- the truth --------------------------------------------------------------------------

    def tick(self, seconds: int = 29) -> datetime:
        with self.lock:
            self.clock += timedelta(seconds=seconds)
            return self.clock

    def create(
        self,
        item_id: int,
        created: datetime,
        *,
        team: str = "Billing",
        channel: str = "email",
        status: str = "open",
        priority: str = "normal",
        kind: str = "complaint",
    ) -> None:
        with self.lock:
            now = self.tick()
            self.items[item_id] = {
                "id": item_id,
                "type": kind,
                "created": created,
                "updated": now,
                "resolved": now if status in CLOSED else None,
                "status": status,
                "team": team,
                "channel": channel,
                "topic": "refund",
                "priority": priority,
                "title": f"Complaint {item_id}",
                "deleted_at": None,
            }

    def set_status(self, item_id: int, status: str) -> None:
        with self.lock:
            item = self.items[item_id]
            now = self.tick()
            if status in CLOSED and item["status"] not in CLOSED:
                item["resolved"] = now  # reopening leaves the old time in place
            item["status"] = status
            item["updated"] = now

    def move(self, item_id: int, team: str) -> None:
        with self.lock:
            self.items[item_id]["team"] = team
            self.items[item_id]["updated"] = self.tick()

    def soft_delete(self, item_id: int) -> None:
        with self.lock:
            now = self.tick()
            self.items[item_id]["deleted_at"] = now
            self.items[item_id]["updated"] = now

    def truth(self) -> dict[str, dict[str, Any]]:
        reasons = {"spam": "spam", "merged": "merged"}
        with self.lock:
            out = {}
            for item in self.items.values():
                if item["type"] != "complaint":
                    continue
                closed = item["resolved"] if item["status"] in CLOSED else None
                out[_ref(item["id"])] = {
                    "created_at": item["created"],
                    "closed_at": closed,
                    "status": item["status"],
                    "queue": item["team"],
                    "channel": item["channel"],
                    "category": item["topic"],
                    "excluded_reason": "deleted"
                    if item["deleted_at"]
                    else reasons.get(item["status"]),
                    "source_updated_at": item["updated"],
                }
            return out

    # --- the API ----------------------------------------------------------------------------

    def _time_out(self, value: datetime | str | None) -> Any:
        if value is None or isinstance(value, str):  # a string: broken on purpose by a test
            return value
        if self.time_format == "epoch_ms":
            return int(value.timestamp()) * 1000
        if self.time_format == "iso":
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def _time_in(self, raw: str) -> datetime:
        if self.time_format == "epoch_ms":
            return datetime.fromtimestamp(int(raw) / 1000, UTC)
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.zone if self.time_format == "iso_local" else UTC)
        return parsed.astimezone(UTC)

    def _render(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "ref": _ref(item["id"]),
            "type": item["type"],
            "title": item["title"],
            "created": self._time_out(item["created"]),
            "meta": {"updated_at": self._time_out(item["updated"])},
            "resolved_at": self._time_out(item["resolved"]),
            "state": {"name": item["status"]},
            "team": item["team"],
            "source": item["channel"],
            "topics": [{"title": item["topic"]}],
            "priority": item["priority"],
            "deleted_at": self._time_out(item["deleted_at"]),
        }

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        how, secret = self.auth
        if how == "bearer":
            return headers.get("authorization") == f"Bearer {secret}"
        if how == "api_key":
            return headers.get("x-api-key") == secret
        expected = "Basic " + base64.b64encode(secret.encode()).decode()
        return headers.get("authorization") == expected

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        if not self._authorized(headers):
            return json_response(401, {"message": "Bad credentials"})
        if path != "/api/v2/complaints":
            return json_response(404, {"message": "Not found"})
        try:
            since = self._time_in(query["updated_since"])
            lo = self._time_in(query["created_from"]) if "created_from" in query else None
            hi = self._time_in(query["created_to"]) if "created_to" in query else None
        except (KeyError, ValueError) as exc:
            return json_response(400, {"message": f"bad filter: {exc}"})
        with self.lock:
            rows = [
                item
                for item in self.items.values()
                if (item["updated"] > since if self.exclusive_since else item["updated"] >= since)
                and (lo is None or item["created"] >= lo)
                and (hi is None or item["created"] <= hi)
                and item["type"] == query.get("type", item["type"])
            ]
            if self.sortable and query.get("sort") == "updated_at":
                rows.sort(
                    key=lambda i: (i["updated"], i["id"]), reverse=query.get("order") == "desc"
                )
            else:
                rows.sort(key=lambda i: i["id"])
            if self.paging == "page":
                size = min(int(query.get("per_page", 20)), self.max_page_size)
                page = 1 if self.ignore_paging else int(query.get("page", 1))
                start = (page - 1) * size
            elif self.paging == "offset":
                size = min(int(query.get("limit", 20)), self.max_page_size)
                start = int(query.get("offset", 0))
            else:
                size = min(int(query.get("limit", 20)), self.max_page_size)
                token = query.get("cursor")
                start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
            chunk = rows[start : start + size]
            more = start + size < len(rows)
            data: dict[str, Any] = {
                "items": [self._render(i) for i in chunk],
                "total": len(rows),
            }
            out_headers: dict[str, str] = {}
            if self.paging == "cursor":
                data["next"] = (
                    base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None
                )
            if self.paging == "link" and more:
                following = {
                    **query,
                    "cursor": base64.urlsafe_b64encode(str(start + size).encode()).decode(),
                }
                out_headers["Link"] = (
                    f"<{self.link_base or self.url}/api/v2/complaints?{urlencode(following)}>;"
                    ' rel="next"'
                )
            return json_response(200, {"data": data}, out_headers)


def _ref(item_id: int) -> str:
    return f"C-{item_id:05d}"
