"""A fake Zendesk Support incremental ticket export (cursor based), as Zendesk documents it and
as clients that read it observe it:

- ``GET /api/v2/incremental/tickets/cursor.json``, admins only: a bad API token or OAuth token is
  answered 401, an agent's token 403 (Zendesk: "Allowed for: Admins").
- ``start_time`` (Unix seconds) on the first request, at least one minute in the past (400
  otherwise); ``cursor`` (an ``after_cursor``) afterwards. The fake refuses both at once, which
  Zendesk leaves unspecified (zenpy refuses it on the client side).
- Tickets ordered by ``generated_timestamp`` then id; the cursor is a keyset on that pair
  (base64 of ``"<generated_timestamp>.0||<id>|"``, as real cursors decode). Changes of the last
  minute are held back (Zendesk, 2024-10-28).
- ``per_page`` up to 1000 (default 1000); ``end_of_stream`` true once the page reaches the
  present; ``after_cursor`` / ``after_url`` of the page's last ticket (the given cursor again,
  or null after a ``start_time``, when the page is empty); ``before_*`` null.
- ``include=metric_sets`` puts each ticket's metric set on it as ``metric_set`` (how the export
  returns it to tap-zendesk and Estuary); ``metric_layout = "top"`` serves a top-level
  ``metric_sets`` array instead, as the plain ticket lists do.
- Deleted tickets stay in the export with status ``deleted`` and no metric set (Estuary's probe
  of a live account, 2026-10); ``exclude_deleted=true`` leaves them out.
- ``solved_at`` is kept when a solved ticket is reopened (the harsher reading; Zendesk's field
  doc only says "when the ticket was solved").
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fakes.server import FakeAPI, Response, json_response

GROUPS = {360001: "Billing", 360002: "Delivery", 360003: "VIP"}
PATH = "/api/v2/incremental/tickets/cursor.json"


def _iso(value: datetime | str | None) -> str | None:
    """A time as Zendesk writes it (a string is served as it is: a test's broken value)."""
    if value is None or isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_cursor(generated: int, ticket_id: int) -> str:
    return base64.b64encode(f"{generated}.0||{ticket_id}|".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, int]:
    text = base64.b64decode(cursor).decode()
    stamp, _, rest = text.partition("||")
    return int(float(stamp)), int(rest.strip("|"))


class FakeZendesk(FakeAPI):
    def __init__(
        self,
        email: str = "admin@acme.test",
        token: str = "zd-s3cret-token",
        oauth_token: str = "zd-oauth-access",
        agent_token: str = "zd-agent-token",
    ) -> None:
        super().__init__()
        self.email = email
        self.token = token
        self.oauth_token = oauth_token
        self.agent_token = agent_token
        self.reset()

    def reset(self) -> None:
        """Back to an empty account (one server can serve many tests)."""
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.tickets: dict[int, dict[str, Any]] = {}
            self.clock = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
            #: The server's present; None: ten minutes after the last change.
            self.present: datetime | None = None
            self.metric_layout = "ticket"
            #: Answer every page with "more to come" and the same cursor (a broken server).
            self.stuck = False

    # --- the truth --------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.present or self.clock + timedelta(minutes=10)

    def tick(self, seconds: int = 1) -> datetime:
        with self.lock:
            self.clock += timedelta(seconds=seconds)
            return self.clock

    def _touch(self, ticket: dict[str, Any], *, event: bool = True) -> datetime:
        when = self.tick()
        ticket["generated"] = int(when.timestamp())
        if event:
            ticket["updated_at"] = when
        return when

    def create(
        self,
        ticket_id: int,
        created: datetime,
        *,
        group: int | None = 360001,
        channel: str = "email",
        kind: str = "incident",
        priority: str | None = "normal",
        status: str = "open",
        tags: list[str] | None = None,
    ) -> None:
        with self.lock:
            self.clock = max(self.clock, created)
            ticket: dict[str, Any] = {
                "id": ticket_id,
                "created_at": created,
                "status": "new",
                "group_id": group,
                "via": {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}},
                "type": kind,
                "priority": priority,
                "subject": f"Complaint {ticket_id}",
                "tags": list(tags or []),
                "custom_fields": [{"id": 900, "value": f"product-{ticket_id % 3}"}],
                "solved_at": None,
                "status_updated_at": created,
                "reopens": 0,
                "first_resolution": None,
            }
            self.tickets[ticket_id] = ticket
            self._touch(ticket)
            if status != "new":
                self.set_status(ticket_id, status)

    def set_status(self, ticket_id: int, status: str) -> None:
        with self.lock:
            ticket = self.tickets[ticket_id]
            was = ticket["status"]
            when = self._touch(ticket)
            ticket["status"] = status
            ticket["status_updated_at"] = when
            if status == "solved" or (status == "closed" and was != "solved"):
                ticket["solved_at"] = when
                if ticket["first_resolution"] is None:
                    ticket["first_resolution"] = int((when - ticket["created_at"]).total_seconds())
            if was in ("solved", "closed") and status not in ("solved", "closed", "deleted"):
                ticket["reopens"] += 1  # solved_at stays as it was

    def move(self, ticket_id: int, group: int | None) -> None:
        with self.lock:
            self.tickets[ticket_id]["group_id"] = group
            self._touch(self.tickets[ticket_id])

    def merge_away(self, ticket_id: int) -> None:
        """Merge the ticket into another one: Zendesk closes it and tags it closed_by_merge."""
        with self.lock:
            self.tickets[ticket_id]["tags"].append("closed_by_merge")
            self.set_status(ticket_id, "closed")

    def delete(self, ticket_id: int) -> None:
        self.set_status(ticket_id, "deleted")

    def system_update(self, ticket_id: int) -> None:
        """A change that makes no ticket event: generated_timestamp moves, updated_at does not."""
        with self.lock:
            self._touch(self.tickets[ticket_id], event=False)

    def truth(self, closed_from: str = "solved") -> dict[str, dict[str, Any]]:
        """What slamon should hold: id -> the fields a complaint keeps."""
        closing = {"solved": ("solved", "closed"), "closed": ("closed",)}[closed_from]
        with self.lock:
            out = {}
            for t in self.tickets.values():
                closed = None
                if t["status"] in closing:
                    closed = t["solved_at"] if closed_from == "solved" else t["status_updated_at"]
                reason = None
                if t["status"] == "deleted":
                    reason = "deleted"
                elif "closed_by_merge" in t["tags"]:
                    reason = "merged"
                out[str(t["id"])] = {
                    "created_at": t["created_at"],
                    "closed_at": closed,
                    "queue": GROUPS.get(t["group_id"], str(t["group_id"] or "")),
                    "status": t["status"],
                    "excluded_reason": reason,
                    "source_updated_at": datetime.fromtimestamp(t["generated"], UTC),
                }
            return out

    # --- the API ----------------------------------------------------------------------------

    def _metric_set(self, t: Mapping[str, Any]) -> dict[str, Any] | None:
        if t["status"] == "deleted":
            return None
        first = t["first_resolution"]
        return {
            "id": 7_000_000 + t["id"],
            "ticket_id": t["id"],
            "created_at": _iso(t["created_at"]),
            "updated_at": _iso(t["updated_at"]),
            "solved_at": _iso(t["solved_at"]),
            "status_updated_at": _iso(t["status_updated_at"]),
            "reopens": t["reopens"],
            "replies": 1,
            "first_resolution_time_in_minutes": {
                "calendar": None if first is None else first // 60,
                "business": None if first is None else first // 120,
            },
        }

    def _render(self, t: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": t["id"],
            "url": f"{self.url}/api/v2/tickets/{t['id']}.json",
            "created_at": _iso(t["created_at"]),
            "updated_at": _iso(t["updated_at"]),
            "generated_timestamp": t["generated"],
            "status": t["status"],
            "type": t["type"],
            "priority": t["priority"],
            "group_id": t["group_id"],
            "via": t["via"],
            "subject": t["subject"],
            "raw_subject": t["subject"],
            "tags": list(t["tags"]),
            "custom_fields": [dict(cf) for cf in t["custom_fields"]],
        }

    def _auth(self, headers: Mapping[str, str]) -> Response | None:
        value = headers.get("authorization", "")
        scheme, _, credential = value.partition(" ")
        who = None
        if scheme == "Basic":
            try:
                user, _, secret = base64.b64decode(credential).decode().partition(":")
            except ValueError:
                user, secret = "", ""
            if user == f"{self.email}/token" and secret == self.token:
                who = "admin"
            elif user == f"{self.email}/token" and secret == self.agent_token:
                who = "agent"
        elif scheme == "Bearer" and credential == self.oauth_token:
            who = "admin"
        if who is None:
            return json_response(401, {"error": "Couldn't authenticate you"})
        if who == "agent":
            return json_response(
                403, {"error": "Forbidden", "description": "You do not have access to this page."}
            )
        return None

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        refused = self._auth(headers)
        if refused is not None:
            return refused
        if path != PATH:
            return json_response(404, {"error": "InvalidEndpoint"})
        with self.lock:
            horizon = int((self.now - timedelta(minutes=1)).timestamp())
            if "cursor" in query and "start_time" in query:
                return json_response(400, {"error": "InvalidPaginationParameter"})
            if "cursor" in query:
                after: tuple[int, int] = _decode_cursor(query["cursor"])
            elif "start_time" in query:
                start = int(query["start_time"])
                if start > horizon:
                    return json_response(
                        400,
                        {"error": "InvalidValue", "description": "start_time is too recent"},
                    )
                after = (start, -1)  # start_time itself is included
            else:
                return json_response(400, {"error": "InvalidValue", "description": "start_time"})
            per_page = min(int(query.get("per_page", 1000)), 1000)
            include = set(query.get("include", "").split(","))
            skip_deleted = query.get("exclude_deleted") == "true"
            items = sorted(
                (
                    t
                    for t in self.tickets.values()
                    if (t["generated"], t["id"]) > after
                    and t["generated"] <= horizon
                    and not (skip_deleted and t["status"] == "deleted")
                ),
                key=lambda t: (t["generated"], t["id"]),
            )
            page, rest = items[:per_page], items[per_page:]
            tickets = [self._render(t) for t in page]
            out: dict[str, Any] = {"tickets": tickets}
            if "metric_sets" in include:
                if self.metric_layout == "top":
                    sets = [self._metric_set(t) for t in page]
                    out["metric_sets"] = [m for m in sets if m is not None]
                else:
                    for rendered, t in zip(tickets, page, strict=True):
                        rendered["metric_set"] = self._metric_set(t)
            if page:
                cursor: str | None = encode_cursor(page[-1]["generated"], page[-1]["id"])
            else:
                cursor = query.get("cursor")
            if self.stuck and len(self.requests) <= 20:  # a client that never stops fails
                cursor, rest = query.get("cursor") or encode_cursor(0, 0), [{}]
            out["after_cursor"] = cursor
            out["after_url"] = (
                None if cursor is None else f"{self.url}{PATH}?cursor={quote(cursor)}"
            )
            out["before_cursor"] = None
            out["before_url"] = None
            out["end_of_stream"] = not rest
            return json_response(200, out)
