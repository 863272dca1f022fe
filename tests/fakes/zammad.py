"""A fake Zammad REST API that behaves as Zammad 6 documents and implements it.

- Auth: ``Authorization: Token token=...``; a wrong token is 401 ("Can't find User for Token"),
  no credentials 403 ("Authentication required") (app/controllers/application_controller/
  authenticates.rb, handles_errors.rb).
- ``GET /api/v1/tickets/search``: ``query`` in Elasticsearch query-string syntax (this fake reads
  ``field:[A TO B]`` ranges, optionally ANDed to ``group.name:X``), ``page`` / ``per_page``
  (default 50, silently capped at 200: paginate_with(max: 200, default: 50)), ``sort_by`` /
  ``order_by`` (comma-separated lists; default updated_at desc), ``expand=true`` for a flat list
  of tickets with relation names (otherwise ``{tickets, tickets_count, assets}``).
  Zammad removes every ``*`` from the query (CanSearch.search_build_params), and an
  Elasticsearch error (a query it cannot parse, ``from + size`` beyond the result window) comes
  back as an empty list, not as an error (SearchIndexBackend.search_by_index).
- The search runs on an index that lags the database: hits are chosen and ordered by their
  indexed values but rendered from the database (where_ordered_ids). ``indexing = False``
  freezes the index until ``reindex()``.
- ``GET /api/v1/ticket_states?expand=true``: states with their ``state_type`` name.
- Close times as app/models/ticket/sets_close_time.rb sets them: ``close_at`` once, at the
  first transition into a state of type "closed"; ``last_close_at`` at every transition into
  one; both kept on reopen. Times are UTC with milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fakes.server import FakeAPI, Response, json_response

#: id -> (name, state type), Zammad's default states plus a custom "spam" one.
STATES: dict[int, tuple[str, str]] = {
    1: ("new", "new"),
    2: ("open", "open"),
    3: ("pending reminder", "pending reminder"),
    4: ("closed", "closed"),
    5: ("merged", "merged"),
    6: ("removed", "removed"),
    7: ("pending close", "pending action"),
    8: ("spam", "closed"),
}
STATE_IDS = {name: sid for sid, (name, _) in STATES.items()}
TYPE_IDS = {
    "new": 1,
    "open": 2,
    "pending reminder": 3,
    "pending action": 4,
    "closed": 5,
    "merged": 6,
    "removed": 7,
}
PRIORITIES = {1: "1 low", 2: "2 normal", 3: "3 high"}
ARTICLE_TYPES = {1: "email", 5: "phone", 11: "web"}
RANGE = re.compile(r"^(\w+):\[(\S+) TO (\S+)\]$")
GROUP = re.compile(r'^\(group\.name:("[^"]*"|\S+)\) AND (.*)$')


def _ms(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _secs(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(microsecond=0)


class FakeZammad(FakeAPI):
    def __init__(self, token: str = "zammad-s3cret", result_window: int = 10_000) -> None:
        super().__init__()
        self.token = token
        self.result_window = result_window
        self.tickets: dict[int, dict[str, Any]] = {}
        self.index: dict[int, dict[str, Any]] = {}
        self.indexing = True
        self.clock = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    # --- the truth --------------------------------------------------------------------------

    def tick(self, seconds: float = 37.25) -> datetime:
        with self.lock:
            self.clock += timedelta(seconds=seconds)
            return self.clock

    def _save(self, ticket: dict[str, Any]) -> None:
        if self.indexing:
            self.index[ticket["id"]] = {
                "created_at": ticket["created_at"],
                "updated_at": ticket["updated_at"],
                "group": ticket["group"],
            }

    def reindex(self) -> None:
        with self.lock:
            self.indexing = True
            for ticket in self.tickets.values():
                self._save(ticket)

    def create(
        self,
        ticket_id: int,
        created: datetime,
        *,
        group: str = "Complaints",
        channel: int = 1,
        state: str = "new",
        priority: int = 2,
        title: str = "Complaint",
    ) -> None:
        with self.lock:
            ticket = {
                "id": ticket_id,
                "number": str(31000000 + ticket_id),
                "title": title,
                "group": group,
                "state_id": STATE_IDS["new"],
                "priority_id": priority,
                "create_article_type_id": channel,
                "created_at": created,
                "updated_at": self.tick(),
                "close_at": None,
                "last_close_at": None,
            }
            self.tickets[ticket_id] = ticket
            if state != "new":
                self.set_state(ticket_id, state)
            else:
                self._save(ticket)

    def set_state(self, ticket_id: int, state: str) -> None:
        """A state change as an agent makes it (sets_close_time.rb)."""
        with self.lock:
            ticket = self.tickets[ticket_id]
            now = self.tick()
            changed = ticket["state_id"] != STATE_IDS[state]
            ticket["state_id"] = STATE_IDS[state]
            ticket["updated_at"] = now
            if STATES[ticket["state_id"]][1] == "closed":
                if changed or ticket["last_close_at"] is None:
                    ticket["last_close_at"] = now
                if ticket["close_at"] is None:
                    ticket["close_at"] = now
            self._save(ticket)

    def move(self, ticket_id: int, group: str) -> None:
        with self.lock:
            ticket = self.tickets[ticket_id]
            ticket["group"] = group
            ticket["updated_at"] = self.tick()
            self._save(ticket)

    def delete(self, ticket_id: int) -> None:
        """DELETE /api/v1/tickets/{id}: Zammad removes the ticket for good."""
        with self.lock:
            del self.tickets[ticket_id]
            self.index.pop(ticket_id, None)

    def truth(self, excluded_states: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
        """What slamon should hold: id -> the fields a complaint keeps."""
        excluded = {"merged": "merged", "removed": "deleted", **(excluded_states or {})}
        with self.lock:
            out = {}
            for t in self.tickets.values():
                name, kind = STATES[t["state_id"]]
                closed = kind in ("closed", "merged", "removed")
                closed_at = (
                    (t["last_close_at"] or t["close_at"] or t["updated_at"]) if closed else None
                )
                out[str(t["id"])] = {
                    "created_at": _secs(t["created_at"]),
                    "closed_at": _secs(closed_at),
                    # as stored: the source's first closure, else the earliest closed_at seen
                    "first_closed_at": _secs(t["close_at"] or closed_at),
                    "status": name,
                    "queue": t["group"],
                    "channel": ARTICLE_TYPES[t["create_article_type_id"]],
                    "priority": PRIORITIES[t["priority_id"]],
                    "excluded_reason": excluded.get(name) or excluded.get(kind),
                    "source_updated_at": _secs(t["updated_at"]),
                }
            return out

    # --- the API ----------------------------------------------------------------------------

    def _render(self, ticket: Mapping[str, Any], expand: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": ticket["id"],
            "number": ticket["number"],
            "title": ticket["title"],
            "group_id": 1,
            "state_id": ticket["state_id"],
            "priority_id": ticket["priority_id"],
            "create_article_type_id": ticket["create_article_type_id"],
            "customer_id": 301,
            "owner_id": 1,
            "type": None,
            "article_count": 1,
        }
        for key in ("created_at", "updated_at", "close_at", "last_close_at"):
            value = ticket[key]
            out[key] = value if isinstance(value, str) else _ms(value)
        if expand:
            out.update(
                group=ticket["group"],
                state=STATES[ticket["state_id"]][0],
                priority=PRIORITIES[ticket["priority_id"]],
                create_article_type=ARTICLE_TYPES[ticket["create_article_type_id"]],
                owner="-",
                customer="customer@example.com",
            )
        return out

    def _matches(self, query: str) -> list[int] | None:
        """Ids whose indexed values match the query, or None where Elasticsearch would fail."""
        group = None
        found = GROUP.match(query)
        if found:
            group, query = found.group(1).strip('"'), found.group(2)
        found = RANGE.match(query)
        if not found:
            return None
        field, lo, hi = found.groups()
        if field not in ("created_at", "updated_at"):
            return None
        try:
            low, high = _parse(lo), _parse(hi)
        except ValueError:
            return None
        return [
            tid
            for tid, doc in self.index.items()
            if low <= doc[field] <= high and (group is None or doc["group"] == group)
        ]

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        auth = headers.get("authorization")
        if not auth:
            return json_response(403, {"error": "Authentication required"})
        if auth not in (f"Token token={self.token}", f'Token token="{self.token}"'):
            return json_response(401, {"error": "Can't find User for Token"})
        expand = query.get("expand") == "true"
        with self.lock:
            if path == "/api/v1/ticket_states":
                return json_response(
                    200,
                    [
                        {
                            "id": sid,
                            "name": name,
                            "state_type_id": TYPE_IDS[kind],
                            "active": True,
                            **({"state_type": kind} if expand else {}),
                        }
                        for sid, (name, kind) in STATES.items()
                    ],
                )
            if path != "/api/v1/tickets/search":
                return json_response(404, {"error": "No route matches"})
            per_page = min(int(query.get("per_page") or query.get("limit") or 50), 200)
            page = int(query.get("page") or 1)
            offset = (page - 1) * per_page
            ids = self._matches(query.get("query", "").replace("*", "").strip())
            if ids is None or offset + per_page > self.result_window:
                ids = []  # Zammad logs the Elasticsearch error and answers no hits
            sort_by = (query.get("sort_by") or "updated_at").split(",")
            order_by = (query.get("order_by") or "desc").split(",")
            # Ties keep the index's own order (by id here), whatever the direction.
            ids.sort()
            for field, order in reversed(list(zip(sort_by, order_by, strict=False))):
                ids.sort(key=lambda tid: self.index[tid][field], reverse=order == "desc")
            hits = [self.tickets[tid] for tid in ids[offset : offset + per_page]]
            if expand:
                return json_response(200, [self._render(t, True) for t in hits])
            return json_response(
                200,
                {
                    "tickets": [t["id"] for t in hits],
                    "tickets_count": len(hits),
                    "assets": {"Ticket": {str(t["id"]): self._render(t, False) for t in hits}},
                },
            )
