"""A fake Jira search API, Cloud or Data Center, as Atlassian documents it.

Cloud (``GET /rest/api/3/search/jql``, per Atlassian's OpenAPI document for the Jira Cloud
platform REST API): Basic auth with email + API token (401 otherwise); ``jql`` must be bounded;
``fields`` defaults to ``id`` only; ``maxResults`` defaults to 50, at most 5000 when only ids or
keys are asked for and fewer (here ``page_cap``) when fields are; ``nextPageToken`` leads on and
is left out of the last page, where ``isLast`` is true; no ``total``. The removed
``/rest/api/{2,3}/search`` answer 410 Gone. How a token behaves when the results change is not
documented: this fake takes the least favourable reading, a token being an offset into the
results as they are when it is used.
Data Center (``GET /rest/api/2/search``): Bearer personal access token; ``startAt`` /
``maxResults`` (default 50, capped at ``page_cap`` like jira.search.views.default.max), ``total``;
``startAt + maxResults`` past ``result_window`` is a 500 "Search limit exceeded" (Atlassian KB
"Handling JQL REST API searching exceeding max_result_window").
Both: the search is eventually consistent (``unindexed`` issues are not found yet); JQL date
literals ``yyyy/MM/dd HH:mm``, ``yyyy-MM-dd HH:mm``, ``yyyy/MM/dd``,
``yyyy-MM-dd`` are read in the API user's profile timezone, an unquoted number as epoch
milliseconds; times are written like ``2026-03-01T09:00:00.250+0100`` in that zone;
``resolutiondate`` is set when a resolution is set and cleared with it; ``key`` sorts by project,
then number; moving an issue to another project gives it a new key, not a new id.
The JQL understood is a subset: clauses joined by AND, parentheses, ``=``, ``!=``, ``in``, and
``<``, ``<=``, ``>``, ``>=`` on dates; anything else is a 400, as Jira answers a bad query.
"""

from __future__ import annotations

import base64
import json
import re
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fakes.server import FakeAPI, Response, json_response

#: Status name -> status category key.
STATUSES = {
    "Open": "new",
    "In Progress": "indeterminate",
    "Waiting for customer": "indeterminate",
    "Resolved": "done",
    "Closed": "done",
    "Spam": "done",
}
CATEGORY_NAMES = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}
EMAIL = "agent@example.com"
TOKEN = "jira-api-t0ken"
PAT = "dc-pers0nal-t0ken"

TOKEN_RE = re.compile(
    r"""\s*(?:(?P<open>\()|(?P<close>\))|(?P<comma>,)|(?P<op>>=|<=|!=|=|<|>)"""
    r"""|"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<word>[^\s(),=<>!"']+))"""
)
DATE_RE = re.compile(r"(\d{4})([/-])(\d{2})\2(\d{2})(?: (\d{2}):(\d{2}))?")
DATE_FIELDS = ("created", "updated", "resolutiondate")
TEXT_FIELDS = ("project", "issuetype", "status", "resolution", "priority")

Predicate = Callable[[Mapping[str, Any]], bool]


class JqlError(ValueError):
    pass


def _format(value: datetime, zone: ZoneInfo) -> str:
    local = value.astimezone(zone)
    return (
        local.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{local.microsecond // 1000:03d}"
        + (local.strftime("%z"))
    )


def _seconds(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(microsecond=0)


class FakeJira(FakeAPI):
    def __init__(self, flavor: str = "cloud", **options: Any) -> None:
        super().__init__()
        self.flavor = flavor
        self.reset(**options)

    def reset(
        self, *, profile_tz: str = "UTC", page_cap: int | None = None, result_window: int = 10_000
    ) -> None:
        """Forget every issue, fault and request (one server can serve many tests)."""
        with self.lock:
            self.zone = ZoneInfo(profile_tz)
            self.page_cap = page_cap or (100 if self.flavor == "cloud" else 1000)
            self.result_window = result_window
            self.issues: dict[int, dict[str, Any]] = {}
            self.numbers: dict[str, int] = {}
            self.next_id = 10_000
            self.overrides: dict[int, dict[str, Any]] = {}
            #: Issues not searchable yet: the search is eventually consistent.
            self.unindexed: set[int] = set()
            self.overloads: deque[int] = deque()
            self.searches: list[dict[str, str]] = []
            self.window_errors = 0
            self.clock = datetime(2026, 3, 1, 8, 0, 0, 250_000, tzinfo=UTC)
            self.faults.clear()
            self.requests.clear()

    # --- the truth --------------------------------------------------------------------------

    def tick(self, seconds: float = 1) -> datetime:
        with self.lock:
            self.clock += timedelta(seconds=seconds)
            return self.clock

    def create(
        self,
        created: datetime,
        *,
        project: str = "SUP",
        channel: str = "Email",
        status: str = "Open",
        resolution: str | None = None,
        priority: str = "Medium",
        issuetype: str = "Complaint",
    ) -> int:
        with self.lock:
            issue_id = self.next_id
            self.next_id += 1
            self.numbers[project] = self.numbers.get(project, 0) + 1
            now = self.tick()
            done = STATUSES[status] == "done"
            self.issues[issue_id] = {
                "id": issue_id,
                "project": project,
                "number": self.numbers[project],
                "issuetype": issuetype,
                "status": status,
                "resolution": resolution if done else None,
                "resolutiondate": now if done and resolution else None,
                "catchange": now,
                "created": created,
                "updated": now,
                "priority": priority,
                "summary": f"Complaint {issue_id}",
                "channel": channel,
            }
            return issue_id

    def transition(
        self, issue_id: int, status: str, resolution: str | None = None, *, clear: bool = True
    ) -> None:
        """Move to ``status``; set ``resolution`` (resolutiondate = now); leaving for a status
        that is not done clears the resolution unless the workflow does not (``clear=False``)."""
        with self.lock:
            issue = self.issues[issue_id]
            now = self.tick()
            if STATUSES[status] != STATUSES[issue["status"]]:
                issue["catchange"] = now
            issue["status"] = status
            if resolution is not None:
                issue["resolution"], issue["resolutiondate"] = resolution, now
            elif clear and STATUSES[status] != "done":
                issue["resolution"], issue["resolutiondate"] = None, None
            issue["updated"] = now

    def move(self, issue_id: int, project: str) -> None:
        with self.lock:
            issue = self.issues[issue_id]
            self.numbers[project] = self.numbers.get(project, 0) + 1
            issue["project"], issue["number"] = project, self.numbers[project]
            issue["updated"] = self.tick()

    def touch(self, issue_id: int) -> None:
        with self.lock:
            self.issues[issue_id]["updated"] = self.tick()

    def delete(self, issue_id: int) -> None:
        with self.lock:
            del self.issues[issue_id]

    def key(self, issue_id: int) -> str:
        issue = self.issues[issue_id]
        return f"{issue['project']}-{issue['number']}"

    def truth(self) -> dict[str, dict[str, Any]]:
        """What slamon should hold (with excluded_statuses = {"Spam": "spam"})."""
        with self.lock:
            out = {}
            for issue in self.issues.values():
                closed = None
                if STATUSES[issue["status"]] == "done":
                    fallback = issue["catchange"] if self.flavor == "cloud" else issue["updated"]
                    closed = issue["resolutiondate"] or fallback
                excluded = None
                if issue["status"] == "Spam":
                    excluded = "spam"
                elif issue["resolution"] == "Duplicate":
                    excluded = "merged"
                out[str(issue["id"])] = {
                    "created_at": _seconds(issue["created"]),
                    "closed_at": _seconds(closed),
                    "queue": issue["project"],
                    "channel": issue["channel"],
                    "category": issue["issuetype"],
                    "priority": issue["priority"],
                    "status": issue["status"],
                    "excluded_reason": excluded,
                    "source_updated_at": _seconds(issue["updated"]),
                }
            return out

    # --- JQL --------------------------------------------------------------------------------

    def _instant(self, text: str, quoted: bool) -> datetime:
        if not quoted and text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        match = DATE_RE.fullmatch(text) if quoted else None
        if match is None:
            raise JqlError(
                f"Date value '{text}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm',"
                " 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d'."
            )
        y, _, mo, d, h, mi = match.groups()
        wall = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), tzinfo=self.zone)
        return wall.astimezone(UTC)

    def _parse(self, jql: str) -> tuple[Predicate, list[tuple[str, bool]]]:
        where, *rest = re.split(r"\s+order\s+by\s+", jql.strip(), maxsplit=1, flags=re.I)
        order: list[tuple[str, bool]] = []
        for part in rest[0].split(",") if rest else []:
            name, *direction = part.split()
            if name.lower() not in ("updated", "created", "key", "id"):
                raise JqlError(f"Not able to sort using field '{name}'.")
            order.append((name.lower(), bool(direction) and direction[0].upper() == "DESC"))
        tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(where.rstrip()):
            m = TOKEN_RE.match(where, pos)
            if m is None or m.end() == pos:
                raise JqlError(f"Error in the JQL Query: unexpected text at {pos}.")
            kind = m.lastgroup or ""
            tokens.append((kind, m.group(kind)))
            pos = m.end()
        clauses = 0

        def take(kind: str | None = None) -> tuple[str, str]:
            if not tokens:
                raise JqlError("Error in the JQL Query: the query ended too early.")
            token = tokens.pop(0)
            if kind is not None and token[0] != kind:
                raise JqlError(f"Error in the JQL Query: expecting {kind}, got {token[1]!r}.")
            return token

        def value() -> tuple[str, bool]:
            kind, text = take()
            if kind not in ("dq", "sq", "word"):
                raise JqlError(f"Error in the JQL Query: expecting a value, got {text!r}.")
            return text, kind != "word"

        def clause() -> Predicate:
            nonlocal clauses
            clauses += 1
            _, name = take("word")
            field = name.lower()
            kind, op = take()
            if kind == "word" and op.lower() == "in":
                take("open")
                wanted = {value()[0].lower()}
                while tokens and tokens[0][0] == "comma":
                    take("comma")
                    wanted.add(value()[0].lower())
                take("close")
                if field not in TEXT_FIELDS:
                    raise JqlError(f"Field '{name}' does not support IN here.")
                return lambda i: str(i.get(field) or "").lower() in wanted
            if kind != "op":
                raise JqlError(f"Error in the JQL Query: expecting an operator, got {op!r}.")
            text, quoted = value()
            if field in DATE_FIELDS:
                at = self._instant(text, quoted)
                compare = {
                    ">=": lambda v: v >= at,
                    ">": lambda v: v > at,
                    "<=": lambda v: v <= at,
                    "<": lambda v: v < at,
                    "=": lambda v: v == at,
                }.get(op)
                if compare is None:
                    raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
                return lambda i: i.get(field) is not None and compare(i[field])
            if field in TEXT_FIELDS and op in ("=", "!="):
                equal = op == "="
                return lambda i: (str(i.get(field) or "").lower() == text.lower()) == equal
            raise JqlError(
                f"Field '{name}' does not exist or you do not have permission to view it."
            )

        def term() -> Predicate:
            if tokens and tokens[0][0] == "open":
                take("open")
                inner = expr()
                take("close")
                return inner
            return clause()

        def expr() -> Predicate:
            parts = [term()]
            while tokens and tokens[0][0] == "word" and tokens[0][1].upper() in ("AND", "OR"):
                if take()[1].upper() == "OR":
                    raise JqlError("OR is beyond this fake.")
                parts.append(term())
            return lambda i: all(p(i) for p in parts)

        predicate = expr() if tokens else (lambda i: True)
        if tokens:
            raise JqlError(f"Error in the JQL Query: unexpected {tokens[0][1]!r}.")
        if self.flavor == "cloud" and clauses == 0:
            raise JqlError("Unbounded JQL queries are not allowed here. Please add a restriction.")
        return predicate, order

    def _sorted(self, jql: str) -> list[dict[str, Any]]:
        predicate, order = self._parse(jql)
        items = [i for i in self.issues.values() if i["id"] not in self.unindexed and predicate(i)]
        sort_keys: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "updated": lambda i: i["updated"],
            "created": lambda i: i["created"],
            "key": lambda i: (i["project"], i["number"]),
            "id": lambda i: i["id"],
        }
        for name, descending in reversed(order or [("key", True)]):
            items.sort(key=sort_keys[name], reverse=descending)
        return items

    # --- the API ----------------------------------------------------------------------------

    def _render(self, issue: Mapping[str, Any], wanted: set[str]) -> dict[str, Any]:
        category = STATUSES[issue["status"]]
        every: dict[str, Any] = {
            "summary": issue["summary"],
            "status": {
                "name": issue["status"],
                "statusCategory": {"key": category, "name": CATEGORY_NAMES[category]},
            },
            "created": _format(issue["created"], self.zone) if issue["created"] else None,
            "updated": _format(issue["updated"], self.zone),
            "resolution": {"name": issue["resolution"]} if issue["resolution"] else None,
            "resolutiondate": (
                _format(issue["resolutiondate"], self.zone) if issue["resolutiondate"] else None
            ),
            "priority": {"name": issue["priority"]},
            "issuetype": {"name": issue["issuetype"], "subtask": False},
            "project": {"key": issue["project"], "name": f"Project {issue['project']}"},
            "customfield_10050": {"value": issue["channel"], "id": "10101"},
        }
        if self.flavor == "cloud":
            every["statuscategorychangedate"] = _format(issue["catchange"], self.zone)
        every.update(self.overrides.get(issue["id"], {}))
        if not ({"*all", "*navigable"} & wanted):
            every = {k: v for k, v in every.items() if k in wanted}
        key = f"{issue['project']}-{issue['number']}"
        return {
            "id": str(issue["id"]),
            "key": key,
            "self": f"/issue/{issue['id']}",
            "fields": every,
        }

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        given = headers.get("authorization", "")
        if self.flavor == "cloud":
            return given == "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
        return given == f"Bearer {PAT}"

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
                401, {"errorMessages": ["You are not authenticated. Authentication required."]}
            )
        with self.lock:
            if self.overloads:
                wait = self.overloads.popleft()
                return json_response(503, {"message": "busy"}, {"Retry-After": str(wait)})
            self.searches.append(dict(query))
            try:
                if self.flavor == "cloud":
                    if path in ("/rest/api/2/search", "/rest/api/3/search"):
                        message = "The requested API has been removed. Please use /search/jql."
                        return json_response(410, {"errorMessages": [message]})
                    if path == "/rest/api/3/search/jql" and method == "GET":
                        return self._cloud(query)
                elif path == "/rest/api/2/search" and method == "GET":
                    return self._datacenter(query)
            except JqlError as exc:
                return json_response(400, {"errorMessages": [str(exc)], "errors": {}})
            return json_response(404, {"errorMessages": ["Not found"]})

    def _cloud(self, query: Mapping[str, str]) -> Response:
        jql = query.get("jql", "")
        wanted = set(filter(None, query.get("fields", "id").split(",")))
        cap = 5000 if wanted <= {"id", "key"} else self.page_cap
        size = min(int(query.get("maxResults", 50)), cap)
        offset = 0
        if query.get("nextPageToken"):
            try:
                state = json.loads(base64.urlsafe_b64decode(query["nextPageToken"]))
            except ValueError:
                raise JqlError("The nextPageToken is invalid.") from None
            if state.get("jql") != jql:
                raise JqlError("The nextPageToken does not belong to this query.")
            offset = int(state["offset"])
        items = self._sorted(jql)
        page = items[offset : offset + size]
        out: dict[str, Any] = {"issues": [self._render(i, wanted) for i in page]}
        if offset + size < len(items):
            state = {"jql": jql, "offset": offset + size}
            out["nextPageToken"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            out["isLast"] = False
        else:
            out["isLast"] = True
        return json_response(200, out)

    def _datacenter(self, query: Mapping[str, str]) -> Response:
        jql = query.get("jql", "")
        wanted = set(filter(None, query.get("fields", "*navigable").split(",")))
        start = int(query.get("startAt", 0))
        size = min(int(query.get("maxResults", 50)), self.page_cap)
        if start + size > self.result_window:
            self.window_errors += 1
            message = (
                f"Search limit exceeded. We couldn't complete your search because it requests"
                f" {start + size} results which exceeded the search platform limit of"
                f" {self.result_window}."
            )
            return json_response(500, {"errorMessages": [message]})
        items = self._sorted(jql)
        page = items[start : start + size]
        return json_response(
            200,
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(items),
                "issues": [self._render(i, wanted) for i in page],
            },
        )
