"""The coders' queue: open review Tasks as one FHIR search, and the rows a page shows.

Every filter is a Task search parameter (the coding service writes the facts, see
``mappings.coding.worklist``), so one search with ``_count`` answers a page however long
the queue is, and paging follows the server's own ``next`` cursor:

| filter | search |
| --- | --- |
| payer | ``group-identifier=https://billable.dev/fhir/claim-payer|{Organization id}`` |
| edit | ``business-status=https://billable.dev/fhir/CodeSystem/coding-edit|{code}`` |
| date of service | ``encounter.date=ge{from}`` / ``le{to}`` (chain to the Encounter) |
| age in queue | ``authored-on=le{today - days}`` |
| assignee | ``owner:identifier=https://billable.dev/fhir/user|{me}``, ``owner:missing=true`` |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mappings.coding.model import EDIT_SYSTEM
from mappings.coding.service import TASK_CODE
from mappings.coding.worklist import PAYER_GROUP, SELF_PAY
from server.webapp.fhir import included, matches

ACTIVE_STATUSES = "requested,received,accepted,ready,in-progress"
USER_SYSTEM = "https://billable.dev/fhir/user"
PAGE_SIZE = 25
SORTS = {
    "age": ("authored-on", "Oldest first"),
    "-age": ("-authored-on", "Newest first"),
    "modified": ("-modified", "Recently changed"),
    "priority": ("priority,authored-on", "Priority"),
}


@dataclass(frozen=True, slots=True)
class QueueFilter:
    payer: str = ""
    edit: str = ""
    dos_from: str = ""
    dos_to: str = ""
    min_age_days: str = ""
    assignee: str = "any"  # any | me | none
    sort: str = "age"

    @classmethod
    def from_query(cls, query: Any) -> QueueFilter:
        def text(name: str, default: str = "") -> str:
            return str(query.get(name) or default).strip()[:80]

        sort = text("sort", "age")
        assignee = text("assignee", "any")
        return cls(
            payer=text("payer"),
            edit=text("edit"),
            dos_from=_iso_day(text("dos_from")),
            dos_to=_iso_day(text("dos_to")),
            min_age_days=text("min_age") if text("min_age").isdigit() else "",
            assignee=assignee if assignee in ("any", "me", "none") else "any",
            sort=sort if sort in SORTS else "age",
        )

    def as_query(self) -> dict[str, str]:
        values = {
            "payer": self.payer,
            "edit": self.edit,
            "dos_from": self.dos_from,
            "dos_to": self.dos_to,
            "min_age": self.min_age_days,
            "assignee": "" if self.assignee == "any" else self.assignee,
            "sort": "" if self.sort == "age" else self.sort,
        }
        return {k: v for k, v in values.items() if v}


def _iso_day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat() if text else ""
    except ValueError:
        return ""


def task_search(
    f: QueueFilter, username: str, statuses: str = ACTIVE_STATUSES, count: int = PAGE_SIZE
) -> list[tuple[str, str]]:
    """The Task search of a queue page (its first page; later pages follow ``next``)."""
    params = [("code", f"{TASK_CODE}|review-claim"), ("status", statuses)]
    if f.payer:
        params.append(("group-identifier", f"{PAYER_GROUP}|{f.payer}"))
    if f.edit:
        params.append(("business-status", f"{EDIT_SYSTEM}|{f.edit}"))
    if f.dos_from:
        params.append(("encounter.date", f"ge{f.dos_from}"))
    if f.dos_to:
        params.append(("encounter.date", f"le{f.dos_to}"))
    if f.min_age_days:
        cutoff = datetime.now(UTC) - timedelta(days=int(f.min_age_days))
        params.append(("authored-on", f"le{cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')}"))
    if f.assignee == "me":
        params.append(("owner:identifier", f"{USER_SYSTEM}|{username}"))
    elif f.assignee == "none":
        params.append(("owner:missing", "true"))
    params += [
        ("_sort", SORTS[f.sort][0]),
        ("_count", str(count)),
        ("_include", "Task:focus"),
        ("_include", "Task:patient"),
    ]
    return params


def count_search(f: QueueFilter, username: str) -> list[tuple[str, str]]:
    """How many Tasks the queue holds with these filters (``_summary=count``)."""
    kept = [(k, v) for k, v in task_search(f, username) if k not in ("_sort", "_count", "_include")]
    return [*kept, ("_summary", "count")]


@dataclass(frozen=True, slots=True)
class Row:
    task_id: str
    task_version: str
    claim_id: str
    patient: str
    date_of_service: str
    payer: str
    edits: tuple[str, ...]
    age_days: int
    assignee: str
    total: str
    status: str
    description: str


def patient_name(patient: dict[str, Any] | None) -> str:
    if not patient:
        return "unknown patient"
    for name in patient.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        given = " ".join(name.get("given") or [])
        family = name.get("family") or ""
        if given or family:
            return f"{given} {family}".strip()
    return f"Patient/{patient.get('id')}"


def _age_days(authored: str | None, now: datetime) -> int:
    try:
        moment = datetime.fromisoformat(str(authored).replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, (now - moment).days)


def money(value: Any) -> str:
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return "–"


def rows_of(bundle: dict[str, Any], payer_names: dict[str, str]) -> list[Row]:
    """The rows of one page of the Task search (its Claims and Patients included)."""
    by_ref = included(bundle)
    now = datetime.now(UTC)
    out: list[Row] = []
    for task in matches(bundle, "Task"):
        claim_ref = str((task.get("focus") or {}).get("reference") or "")
        claim = by_ref.get(claim_ref) or {}
        patient = by_ref.get(str((task.get("for") or {}).get("reference") or ""))
        payer_id = str((task.get("groupIdentifier") or {}).get("value") or "")
        edits = tuple(
            str(c.get("code"))
            for c in (task.get("businessStatus") or {}).get("coding") or []
            if c.get("system") == EDIT_SYSTEM
        )
        out.append(
            Row(
                task_id=str(task["id"]),
                task_version=str((task.get("meta") or {}).get("versionId") or ""),
                claim_id=claim_ref.split("/", 1)[-1],
                patient=patient_name(patient),
                date_of_service=str((claim.get("billablePeriod") or {}).get("start") or "")[:10],
                payer=payer_label(payer_id, payer_names),
                edits=edits,
                age_days=_age_days(task.get("authoredOn"), now),
                assignee=str((task.get("owner") or {}).get("display") or ""),
                total=money((claim.get("total") or {}).get("value")),
                status=str(task.get("status")),
                description=str(task.get("description") or ""),
            )
        )
    return out


def payer_label(payer_id: str, names: dict[str, str]) -> str:
    if not payer_id:
        return "–"
    if payer_id == SELF_PAY:
        return "Self-pay"
    return names.get(payer_id, payer_id)
