"""A fake Freshdesk API v2 ticket listing (GET /api/v2/tickets) that behaves as Freshdesk documents
it: Basic auth with the API key as user name (any password; 401 otherwise); ``updated_since``
(without it: only tickets created in the last 30 days); ``order_by`` created_at (default) /
updated_at / due_by / status and ``order_type`` desc (default) / asc; ``include=stats``; ``filter``
spam / deleted (the default listing leaves both out); ``per_page`` 30 by default, at most 100;
``page`` 1-based with a ``Link: <...>; rel="next"`` header while more pages exist, and HTTP 400
"You cannot access tickets beyond the 300th page" past the ceiling; a bare JSON array; the
X-Ratelimit-* headers, a list call with an include costing 3 credits.

Undocumented behaviour is a switch, so that tests can hold the connector to each reading:
``since_inclusive`` (does updated_since match a ticket updated at exactly that second?), and
whether deleting or marking spam touches ``updated_at`` (``touch=`` on delete() / mark_spam()).
Reopening keeps the old resolved_at / closed_at (the pessimistic reading).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fakes.server import FakeAPI, Response, json_response

STATUSES = {2: "Open", 3: "Pending", 4: "Resolved", 5: "Closed"}
PARAMS = {
    "filter",
    "requester_id",
    "email",
    "unique_external_id",
    "company_id",
    "updated_since",
    "order_by",
    "order_type",
    "include",
    "per_page",
    "page",
}
STATS = (
    "first_responded_at",
    "agent_responded_at",
    "requester_responded_at",
    "resolved_at",
    "closed_at",
    "reopened_at",
    "status_updated_at",
    "pending_since",
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(field: str, message: str, code: str = "invalid_value") -> Response:
    return json_response(
        400,
        {
            "description": "Validation failed",
            "errors": [{"field": field, "message": message, "code": code}],
        },
    )


class FakeFreshdesk(FakeAPI):
    def __init__(
        self, api_key: str = "fd-s3cret-key", *, since_inclusive: bool = True, page_cap: int = 300
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.since_inclusive = since_inclusive
        self.page_cap = page_cap
        self.tickets: dict[int, dict[str, Any]] = {}
        self.groups = {7001: "Billing", 7002: "Delivery", 7003: "VIP"}
        self.clock = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
        self.listed: list[dict[str, str]] = []  # the query of every listing served
        self.raw: dict[int, dict[str, Any]] = {}  # JSON values served in place of the truth

    # --- the truth --------------------------------------------------------------------------

    def tick(self, seconds: int = 1) -> datetime:
        with self.lock:
            self.clock += timedelta(seconds=seconds)
            return self.clock

    def create(
        self,
        ticket_id: int,
        created: datetime,
        *,
        group_id: int | None = 7001,
        source: int = 1,
        type_: str | None = "Complaint",
        priority: int = 2,
        status: int = 2,
        subject: str = "Complaint",
    ) -> None:
        with self.lock:
            now = self.tick()
            self.tickets[ticket_id] = {
                "id": ticket_id,
                "subject": subject,
                "status": 2,
                "priority": priority,
                "source": source,
                "group_id": group_id,
                "type": type_,
                "product_id": None,
                "tags": [],
                "custom_fields": {"cf_region": "EU"},
                "spam": False,
                "deleted": False,
                "created_at": created,
                "updated_at": now,
                "due_by": created + timedelta(days=3),
                "stats": dict.fromkeys(STATS) | {"status_updated_at": now},
            }
            if status != 2:
                self.set_status(ticket_id, status, at=now)

    def set_status(self, ticket_id: int, status: int, at: datetime | None = None) -> None:
        with self.lock:
            ticket = self.tickets[ticket_id]
            when = at or self.tick()
            self.clock = max(self.clock, when)
            stats = ticket["stats"]
            was = ticket["status"]
            if status == 4 and was != 4:
                stats["resolved_at"] = when
            if status == 5 and was != 5:
                stats["closed_at"] = when
                if was != 4:
                    stats["resolved_at"] = when
            if status in (2, 3) and was in (4, 5):
                stats["reopened_at"] = when  # resolved_at / closed_at are kept
            ticket["status"] = status
            stats["status_updated_at"] = when
            ticket["updated_at"] = when

    def move(self, ticket_id: int, group_id: int) -> None:
        with self.lock:
            self.tickets[ticket_id]["group_id"] = group_id
            self.tickets[ticket_id]["updated_at"] = self.tick()

    def delete(self, ticket_id: int, *, touch: bool = False) -> None:
        with self.lock:
            self.tickets[ticket_id]["deleted"] = True
            if touch:
                self.tickets[ticket_id]["updated_at"] = self.tick()

    def mark_spam(self, ticket_id: int, *, touch: bool = False) -> None:
        with self.lock:
            self.tickets[ticket_id]["spam"] = True
            if touch:
                self.tickets[ticket_id]["updated_at"] = self.tick()

    def truth(self) -> dict[str, dict[str, Any]]:
        """What slamon should hold with the default settings: id -> the fields it keeps."""
        with self.lock:
            out = {}
            for t in self.tickets.values():
                closed = t["stats"]["resolved_at"] if t["status"] in (4, 5) else None
                reason = "deleted" if t["deleted"] else "spam" if t["spam"] else None
                out[str(t["id"])] = {
                    "created_at": t["created_at"],
                    "closed_at": closed,
                    "queue": self.groups.get(t["group_id"], "") if t["group_id"] else "",
                    "status": STATUSES[t["status"]],
                    "source_updated_at": t["updated_at"],
                    "excluded_reason": reason,
                }
            return out

    # --- the API ----------------------------------------------------------------------------

    def _render(self, ticket: Mapping[str, Any], stats: bool) -> dict[str, Any]:
        out = {k: v for k, v in ticket.items() if k != "stats"}
        for key in ("created_at", "updated_at", "due_by"):
            out[key] = _iso(ticket[key])
        if stats:
            out["stats"] = {k: _iso(v) for k, v in ticket["stats"].items()}
        out.update(self.raw.get(ticket["id"], {}))
        return out

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user = base64.b64decode(value).decode().partition(":")[0]
        except ValueError:
            return False
        return user == self.api_key

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        if not self._authorized(headers):
            return json_response(
                401,
                {
                    "code": "invalid_credentials",
                    "message": "You have to be logged in to perform this action.",
                },
            )
        if method != "GET" or path != "/api/v2/tickets":
            return json_response(404, {"code": "not_found"})
        for key in query:
            if key not in PARAMS:
                return _invalid(key, "Unexpected/invalid field in request", "invalid_field")
        order_by = query.get("order_by", "created_at")
        if order_by not in ("created_at", "due_by", "updated_at", "status"):
            return _invalid("order_by", "It should be one of these values: created_at,...")
        order_type = query.get("order_type", "desc")
        if order_type not in ("asc", "desc"):
            return _invalid("order_type", "It should be one of these values: 'asc,desc'")
        includes = [i for i in query.get("include", "").split(",") if i]
        if any(i not in ("stats", "requester", "description") for i in includes):
            return _invalid("include", "It should be one of these values: 'requester,stats...'")
        listing = query.get("filter")
        if listing not in (None, "new_and_my_open", "watching", "spam", "deleted"):
            return _invalid("filter", "It should be one of these values: ...")
        try:
            per_page = int(query.get("per_page", 30))
            page = int(query.get("page", 1))
        except ValueError:
            return _invalid("per_page", "It should be a/an Positive Integer", "datatype_mismatch")
        if not 1 <= per_page <= 100:
            return _invalid("per_page", "It should be a Positive Integer less than or equal to 100")
        if page < 1:
            return _invalid("page", "It should be a Positive Integer")
        if page > self.page_cap:
            return _invalid(
                "page",
                f"You cannot access tickets beyond the {self.page_cap}th page. Please provide"
                " a smaller page number.",
            )
        with self.lock:
            self.listed.append(dict(query))
            since_raw = query.get("updated_since")
            since: datetime | None = None
            if since_raw:
                try:
                    since = datetime.fromisoformat(since_raw.replace("Z", "+00:00"))
                except ValueError:
                    return _invalid("updated_since", "It should be in the 'valid date' format")
            items = []
            for t in self.tickets.values():
                if listing == "deleted":
                    if not t["deleted"]:
                        continue
                elif listing == "spam":
                    if not t["spam"] or t["deleted"]:
                        continue
                elif t["deleted"] or t["spam"]:
                    continue
                if since is None:
                    if t["created_at"] < self.clock - timedelta(days=30):
                        continue
                elif t["updated_at"] < since or (
                    not self.since_inclusive and t["updated_at"] == since
                ):
                    continue
                items.append(t)
            items.sort(key=lambda t: (t[order_by], t["id"]), reverse=order_type == "desc")
            chunk = items[(page - 1) * per_page : page * per_page]
            out = [self._render(t, "stats" in includes) for t in chunk]
            cost = 1 + 2 * len(includes)
            reply = {
                "X-Ratelimit-Total": "200",
                "X-Ratelimit-Remaining": "180",
                "X-Ratelimit-Used-CurrentRequest": str(cost),
            }
            if page * per_page < len(items):
                nxt = urlencode({**query, "page": page + 1})
                reply["Link"] = f'<{self.url}{path}?{nxt}>; rel="next"'
            return json_response(200, out, reply)
