"""Freshdesk (API v2): GET /api/v2/tickets, HTTP Basic with the API key as user name and "X" as
password (Freshdesk ignores the password when the user name is an API key).

Listing. ``updated_since`` is always sent: without it Freshdesk lists only the tickets created in
the last 30 days. Tickets come ``order_by=updated_at&order_type=asc`` with ``include=stats`` (the
resolved and closed times live in ``stats``), ``per_page`` up to 100.

Paging. Freshdesk refuses any ``page`` beyond 300 (HTTP 400, "You cannot access tickets beyond the
300th page"), and numbered pages over a list sorted by ``updated_at`` shift whenever a ticket
already read is updated and jumps to the end. So this connector walks by watermark, not by page
number: after each page it asks page 1 again with ``updated_since`` one second before the newest
``updated_at`` it has read. That second of overlap keeps the walk right whether Freshdesk compares
``updated_since`` inclusively or not (its documentation does not say); the few tickets read again
are harmless (upsert, newest wins). Only when a whole page lies within the second after
``updated_since`` (a bulk update) can the watermark not move; the walk then numbers pages within
that second, up to the 300-page ceiling, and past it stops with an error rather than skip or loop.
There is no Link header to follow: a page shorter than ``per_page`` ends the listing.

Closure. ``closed_field = "resolved"`` (the default) takes ``stats.resolved_at``: the moment the
agent marked the complaint solved, which is what a contact centre means by "closed"; Freshdesk's
``closed_at`` comes later, when a resolved ticket is closed (often by automation some days on).
``closed_field = "closed"`` takes ``stats.closed_at`` (pair it with ``closed_statuses = [5]``).
Either falls back to the other time, then ``stats.status_updated_at``, then ``updated_at``.
Whether Freshdesk clears these times on reopen is not documented, so a ticket counts as closed only
while its status is in ``closed_statuses`` (4 Resolved, 5 Closed by default). Freshdesk gives no
first-resolution time: ``first_closed_at`` stays None (slamon keeps the earliest it saw).

Deleted and spam tickets are left out of the default listing. They are listed with
``filter=deleted`` / ``filter=spam`` (each ticket also carries ``deleted`` / ``spam`` flags). It is
not documented whether deleting or marking spam touches ``updated_at``, so those listings are swept
in full (from ``initial_since``) every ``excluded_pass_hours`` rather than by watermark; their
tickets are stored with ``excluded_reason`` "deleted" / "spam". Freshdesk exposes no "merged" flag
on a ticket: a merged secondary ticket is a closed ticket to this connector.

Rate limits are per account, shared by every key and app (Freshdesk support article 225439):
Growth 200 calls/min with "Tickets List" at 20/min, Pro 400 (list 100), Enterprise 700 (list 200),
trial accounts 50/min; newer plans count per hour. Each ``include`` costs two extra credits, so a
list call with stats counts three. The default budget, 10 requests a minute, stays under every one
of these with room for the account's other integrations; a 429 waits for its Retry-After.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from slamon.connectors.base import (
    ConnectorError,
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

#: Freshdesk answers HTTP 400 to a ticket listing asked for a page beyond this one.
PAGE_CEILING = 300
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATUSES = {2: "Open", 3: "Pending", 4: "Resolved", 5: "Closed"}
PRIORITIES = {1: "Low", 2: "Medium", 3: "High", 4: "Urgent"}
#: Ticket ``source`` codes: 1, 2, 3, 7, 9 and 10 as the API documents them for new tickets;
#: 4, 5 and 6 are older channels still found on old tickets.
SOURCES = {
    1: "Email",
    2: "Portal",
    3: "Phone",
    4: "Forum",
    5: "Twitter",
    6: "Facebook",
    7: "Chat",
    9: "Feedback widget",
    10: "Outbound email",
}
SEGMENT_FIELDS = frozenset({"", "group", "source", "type", "priority", "status", "product"})
ExcludedListing = Literal["spam", "deleted"]


class FreshdeskMap(BaseModel):
    """Which ticket field fills each of slamon's segments: ``group`` (through ``groups``),
    ``source`` (channel names), ``type``, ``priority``, ``status``, ``product`` (its id), or a
    custom field as ``cf:cf_name``; empty for none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str = "group"
    channel: str = "source"
    category: str = "type"
    priority: str = "priority"

    @field_validator("queue", "channel", "category", "priority")
    @classmethod
    def _known(cls, value: str) -> str:
        if value in SEGMENT_FIELDS or (value.startswith("cf:") and len(value) > 3):
            return value
        known = ", ".join(sorted(f for f in SEGMENT_FIELDS if f))
        raise ValueError(f"unknown ticket field {value!r} (one of {known}, or cf:<name>)")


class FreshdeskSettings(SourceSettings):
    kind: Literal["freshdesk"] = "freshdesk"
    #: The helpdesk's root, e.g. https://acme.freshdesk.com (the API works only on that domain).
    url: str
    api_key_env: str | None = None
    api_key_file: Path | None = None
    #: Ticket types that are complaints (the list API cannot filter by type, so this is applied
    #: to each page); empty: every ticket.
    types: tuple[str, ...] = ()
    #: "resolved": stats.resolved_at (default); "closed": stats.closed_at.
    closed_field: Literal["resolved", "closed"] = "resolved"
    #: Status ids that count as closed (custom statuses have their own ids).
    closed_statuses: tuple[int, ...] = (4, 5)
    #: Listings swept for excluded tickets, and how often (0: on every run).
    excluded_listings: tuple[ExcludedListing, ...] = ("spam", "deleted")
    excluded_pass_hours: float = Field(default=24.0, ge=0, le=24 * 31)
    #: Group id -> name for the queue segment (the API gives only ids).
    groups: dict[int, str] = Field(default_factory=dict)
    #: Source code -> channel name, over the built-in table (for custom sources).
    source_names: dict[int, str] = Field(default_factory=dict)
    map: FreshdeskMap = FreshdeskMap()
    page_size: int = Field(default=100, ge=1, le=100)
    rate_limit: float = Field(default=10.0, gt=0, le=100_000)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(
    data: Mapping[str, Any], key: str, ticket_id: object, url: str, *, required: bool
) -> datetime | None:
    raw = data.get(key)
    if raw is None or raw == "":
        if required:
            raise MalformedResponse(f"{url}: ticket {ticket_id}: {key} is missing", url=url)
        return None
    try:
        parsed = datetime.fromisoformat(str(raw))
    except ValueError:
        raise MalformedResponse(
            f"{url}: ticket {ticket_id}: {key}: cannot read {str(raw)[:40]!r} as a time", url=url
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Freshdesk's API times are UTC
    return parsed.astimezone(UTC).replace(microsecond=0)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@registry.register
class FreshdeskConnector:
    kind: ClassVar[str] = "freshdesk"
    Settings: ClassVar[type[FreshdeskSettings]] = FreshdeskSettings

    def __init__(self, name: str, settings: FreshdeskSettings, http: HttpClient, now: datetime):
        self.name = name
        self.settings = settings
        self.http = http
        self.now = now
        base = settings.url.rstrip("/")
        self.base = base.removesuffix("/api/v2")
        self.sources = {**SOURCES, **settings.source_names}

    @classmethod
    def http_options(cls, settings: FreshdeskSettings, secret: SecretReader) -> dict[str, Any]:
        key = secret("api_key")
        return {
            "base_url": settings.url,
            "auth": (key, "X") if key else None,
            "secrets": [key] if key else [],
        }

    # --- reading tickets --------------------------------------------------------------------

    def _segment(self, ticket: Mapping[str, Any], field: str, status: int) -> str:
        if not field:
            return ""
        if field.startswith("cf:"):
            custom = ticket.get("custom_fields")
            return _text(custom.get(field[3:])) if isinstance(custom, Mapping) else ""
        if field == "status":
            return STATUSES.get(status, str(status))
        key = {"group": "group_id", "product": "product_id"}.get(field, field)
        value = ticket.get(key)
        if value is None or value == "":
            return ""
        table: Mapping[Any, str] = {
            "group": self.settings.groups,
            "source": self.sources,
            "priority": PRIORITIES,
        }.get(field, {})
        return table.get(value, _text(value))

    def record(
        self, ticket: Mapping[str, Any], url: str, listing: str | None = None
    ) -> ComplaintRecord:
        if not isinstance(ticket, Mapping) or "id" not in ticket:
            raise MalformedResponse(f"{url}: a ticket without an id", url=url)
        tid = ticket["id"]
        status = ticket.get("status")
        if not isinstance(status, int) or isinstance(status, bool):
            raise MalformedResponse(
                f"{url}: ticket {tid}: status is missing or not a number", url=url
            )
        created = _instant(ticket, "created_at", tid, url, required=True)
        updated = _instant(ticket, "updated_at", tid, url, required=True)
        assert created is not None and updated is not None
        closed: datetime | None = None
        if status in self.settings.closed_statuses:
            stats = ticket.get("stats")
            if not isinstance(stats, Mapping):
                raise MalformedResponse(
                    f"{url}: ticket {tid}: stats is missing (asked with include=stats)", url=url
                )
            first, second = ("resolved_at", "closed_at")
            if self.settings.closed_field == "closed":
                first, second = second, first
            for key in (first, second, "status_updated_at"):
                closed = _instant(stats, key, tid, url, required=False)
                if closed is not None:
                    break
            closed = closed or updated
        if ticket.get("deleted") is True:
            excluded: str | None = "deleted"
        elif ticket.get("spam") is True:
            excluded = "spam"
        else:
            excluded = listing
        m = self.settings.map
        return ComplaintRecord(
            external_id=str(tid),
            created_at=created,
            closed_at=closed,
            status=STATUSES.get(status, str(status)),
            queue=self._segment(ticket, m.queue, status),
            channel=self._segment(ticket, m.channel, status),
            category=self._segment(ticket, m.category, status),
            priority=self._segment(ticket, m.priority, status),
            subject=_text(ticket.get("subject")),
            url=f"{self.base}/a/tickets/{tid}",
            source_updated_at=updated,
            excluded_reason=excluded,
        )

    def _is_complaint(self, ticket: Mapping[str, Any]) -> bool:
        return not self.settings.types or ticket.get("type") in self.settings.types

    def _list(
        self, listing: str | None, since: datetime, page: int
    ) -> tuple[list[Mapping[str, Any]], str]:
        params: dict[str, Any] = {
            "updated_since": _stamp(since),
            "order_by": "updated_at",
            "order_type": "asc",
            "include": "stats",
            "per_page": self.settings.page_size,
            "page": page,
        }
        if listing:
            params["filter"] = listing
        data, url = self.http.get_json(f"{self.base}/api/v2/tickets", params=params)
        if not isinstance(data, list):
            raise MalformedResponse(f"{url}: the ticket listing is not a JSON array", url=url)
        return data, url

    def _walk(
        self,
        listing: str | None,
        since: datetime,
        page: int,
        keep: Callable[[ComplaintRecord], bool] = lambda r: True,
    ) -> Iterator[tuple[Page, datetime, int]]:
        """Pages of one listing from ``since`` on, each with the (since, page) to resume after it.

        Each page's newest updated_at, less a second, becomes the next ``updated_since`` (page 1);
        a full page within two seconds cannot move it, so the walk numbers pages there instead.
        """
        size = self.settings.page_size
        while True:
            if page > PAGE_CEILING:
                raise ConnectorError(
                    f"{self.name}: more than {PAGE_CEILING * size} tickets of the"
                    f" {listing or 'ticket'} listing were updated within two seconds of"
                    f" {_stamp(since)}; Freshdesk lists no page past {PAGE_CEILING}",
                    permanent=False,
                )
            tickets, url = self._list(listing, since, page)
            if not tickets:
                return
            records = [self.record(t, url, listing) for t in tickets]
            newest = max(r.source_updated_at for r in records if r.source_updated_at)
            step = newest - timedelta(seconds=1)
            short = len(tickets) < size  # the listing ends here
            next_since, next_page = (step, 1) if step > since else (since, 1 if short else page + 1)
            kept = [r for t, r in zip(tickets, records, strict=True) if self._is_complaint(t)]
            kept = [r for r in kept if keep(r)]
            yield Page(kept, {}, url, skipped=len(records) - len(kept)), next_since, next_page
            if short:
                return
            since, page = next_since, next_page

    def _start(self) -> datetime:
        start = self.settings.initial_since or EPOCH
        return start if start.tzinfo else start.replace(tzinfo=UTC)

    # --- the protocol -----------------------------------------------------------------------

    def changes(self, cursor: Cursor | None) -> Iterator[Page]:
        state: Cursor = dict(cursor or {})
        if state.get("since"):
            since = datetime.fromisoformat(state["since"])
            overlap = timedelta(minutes=self.settings.overlap_minutes)
            page = int(state.get("page", 1)) if not overlap else 1
            since -= overlap
        else:
            since, page = self._start(), 1
        for found, next_since, next_page in self._walk(None, since, page):
            state.update(since=next_since.isoformat(), page=next_page)
            yield replace(found, cursor=dict(state))
        yield from self._excluded_pass(state)

    def _excluded_pass(self, state: Cursor) -> Iterator[Page]:
        """Sweep the spam and deleted listings in full when a sweep is due or was interrupted;
        a last, empty page records the sweep's completion."""
        listings = list(self.settings.excluded_listings)
        sweep = state.get("sweep")
        if not listings:
            return
        if not isinstance(sweep, dict) or sweep.get("listing") not in listings:
            done = state.get("swept_at")
            due = timedelta(hours=self.settings.excluded_pass_hours)
            if done and self.now - datetime.fromisoformat(done) < due:
                return
            sweep = {"listing": listings[0], "since": self._start().isoformat(), "page": 1}
        url = ""
        for listing in listings[listings.index(sweep["listing"]) :]:
            if listing == sweep["listing"]:
                since, page = datetime.fromisoformat(sweep["since"]), int(sweep["page"])
            else:
                since, page = self._start(), 1
            for found, next_since, next_page in self._walk(listing, since, page):
                state["sweep"] = {
                    "listing": listing,
                    "since": next_since.isoformat(),
                    "page": next_page,
                }
                url = found.url
                yield replace(found, cursor=dict(state))
        state.pop("sweep", None)
        state["swept_at"] = self.now.isoformat()
        yield Page([], dict(state), url)

    def history(self, window: SyncWindow, checkpoint: Cursor | None) -> Iterator[Page]:
        """Freshdesk cannot list by creation time: walk everything updated since the window
        opened (a ticket is updated no earlier than it is created) and keep the tickets created
        within it, the excluded listings included."""
        cp = checkpoint or {}
        listings: list[str | None] = [None, *self.settings.excluded_listings]
        current = cp.get("listing") or None
        if current not in listings:
            current, cp = None, {}

        def created_within(r: ComplaintRecord) -> bool:
            return window.since <= r.created_at <= window.until

        for listing in listings[listings.index(current) :]:
            if listing == current and cp.get("since"):
                since, page = datetime.fromisoformat(cp["since"]), int(cp.get("page", 1))
            else:
                since, page = window.since, 1
            for found, next_since, next_page in self._walk(listing, since, page, created_within):
                cursor = {"listing": listing or "", "since": next_since.isoformat()}
                yield replace(found, cursor={**cursor, "page": next_page})
