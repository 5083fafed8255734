"""An append-only, tamper-evident audit trail of FHIR AuditEvents.

Event ``n`` (id ``n`` zero-padded) carries two extensions: the hash of event ``n-1`` and
its own hash, SHA-256 over the previous hash and the canonical JSON of the event without
its own hash. A head record (``x-billable-audit-head``, version ``n``) names the last
event; appending commits the new events and the head's next version in one atomic commit
that expects the head's current version, so concurrent writers (in one process or
several) serialise and the chain never forks. Changing, removing or reordering any event
breaks every hash after it, which ``verify`` reports.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from server.instants import format_micros
from server.storage.port import Store, VersionConflict, Write
from terminology.billable_systems import AUDIT_SUBTYPE, AUDIT_SUBTYPES

log = logging.getLogger("billable.audit")

HEAD_TYPE = "x-billable-audit-head"
HEAD_ID = "head"
EVENT_TYPE = "AuditEvent"
GENESIS = "0" * 64
PREVIOUS_HASH_URL = "https://billable.dev/fhir/StructureDefinition/audit-previous-hash"
HASH_URL = "https://billable.dev/fhir/StructureDefinition/audit-hash"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
# What is no FHIR interaction (the OAuth endpoints, an unrecognised request) is coded in
# Billable's own audit-subtype code system, published in the terminology catalog.
# R4 4.0.1 CodeSystem restful-interaction.
R4_INTERACTIONS = frozenset(
    {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history",
        "history-instance",
        "history-type",
        "history-system",
        "create",
        "search",
        "search-type",
        "search-system",
        "capabilities",
        "transaction",
        "batch",
        "operation",
    }
)


def _subtype(interaction: str) -> dict[str, str]:
    if interaction in R4_INTERACTIONS:
        return {"system": RESTFUL_INTERACTION, "code": interaction}
    code = interaction if interaction in AUDIT_SUBTYPES else "other"
    return {"system": AUDIT_SUBTYPE, "code": code, "display": AUDIT_SUBTYPES[code]}


def event_id(seq: int) -> str:
    return f"{seq:012d}"


def _instant(seconds: float) -> str:
    return format_micros(int(seconds * 1_000_000))


def chain_hash(previous: str, event: dict[str, Any]) -> str:
    """Hash of an event whose extensions hold the previous hash but not its own."""
    canonical = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(previous.encode() + canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What one request did, as the middleware saw it."""

    action: str  # C R U D E
    interaction: str  # restful-interaction code, or an OAuth endpoint name
    status: int
    client_id: str | None
    user: str | None  # fhirUser reference or user name
    remote_addr: str | None
    entity: str | None = None  # Type/id reference
    query: str | None = None  # query string of a search
    description: str | None = None


def build_event(record: AuditRecord, recorded: str) -> dict[str, Any]:
    outcome = "0" if record.status < 400 else ("4" if record.status < 500 else "8")
    agents: list[dict[str, Any]] = [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://dicom.nema.org/resources/ontology/DCM",
                        "code": "110150",
                        "display": "Application",
                    }
                ]
            },
            "who": {
                "identifier": {
                    "system": "urn:billable:oauth-client",
                    "value": record.client_id or "anonymous",
                }
            },
            "requestor": record.user is None,
            "network": {"address": record.remote_addr or "unknown", "type": "2"},
        }
    ]
    if record.user:
        who: dict[str, Any] = (
            {"reference": record.user}
            if "/" in record.user
            else {"identifier": {"system": "urn:billable:user", "value": record.user}}
        )
        agents.append({"who": who, "requestor": True})
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [_subtype(record.interaction)],
        "action": record.action,
        "recorded": recorded,
        "outcome": outcome,
        "outcomeDesc": record.description or f"HTTP {record.status}",
        "agent": agents,
        "source": {
            "observer": {"display": "Billable FHIR server"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "3",
                    "display": "Web Server",
                }
            ],
        },
    }
    entities: list[dict[str, Any]] = []
    if record.entity:
        entities.append({"what": {"reference": record.entity}})
    if record.query:
        entities.append({"query": base64.b64encode(record.query.encode()).decode()})
    if entities:
        event["entity"] = entities
    return event


class AuditTrail:
    """Appends with group commit: requests that arrive while a commit is running are
    written together by the next one (one store transaction for many events), and each
    caller still returns only once its own event is durable."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = asyncio.Lock()
        self._pending: list[tuple[AuditRecord, asyncio.Future[str]]] = []

    async def append(self, record: AuditRecord) -> str:
        """Write one event at the end of the chain; returns its id."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        async with self._lock:
            if not future.done():
                batch, self._pending = self._pending, []
                try:
                    ids = await self._commit([r for r, _ in batch])
                except Exception as exc:
                    for _, waiting in batch:
                        if not waiting.done():
                            waiting.set_exception(exc)
                else:
                    for (_, waiting), rid in zip(batch, ids, strict=True):
                        waiting.set_result(rid)
        return await future

    async def _commit(self, records: list[AuditRecord]) -> list[str]:
        for _attempt in range(50):
            head = await self.store.read(HEAD_TYPE, HEAD_ID)
            head_value = orjson.loads(head.body) if head and head.body else None
            seq = int(head_value["seq"]) if head_value else 0
            previous = head_value["hash"] if head_value else GENESIS
            recorded = _instant(time.time())
            writes: list[Write] = []
            ids: list[str] = []
            for record in records:
                seq += 1
                rid = event_id(seq)
                event = build_event(record, recorded)
                event["id"] = rid
                event["meta"] = {"versionId": "1", "lastUpdated": recorded}
                event["extension"] = [{"url": PREVIOUS_HASH_URL, "valueString": previous}]
                previous = chain_hash(previous, event)
                event["extension"].append({"url": HASH_URL, "valueString": previous})
                writes.append(Write(EVENT_TYPE, rid, 0, 1, recorded, orjson.dumps(event)))
                ids.append(rid)
            head_version = head.version if head is not None else 0
            writes.insert(
                0,
                Write(
                    HEAD_TYPE,
                    HEAD_ID,
                    expected_version=head_version,
                    version=head_version + 1,
                    last_updated=recorded,
                    body=orjson.dumps({"seq": seq, "hash": previous}),
                ),
            )
            try:
                await self.store.commit(writes)
            except VersionConflict:  # another process appended first: rebuild on its head
                await asyncio.sleep(0.001)
                continue
            return ids
        raise RuntimeError("audit trail: too many concurrent appends")

    async def verify(self) -> list[str]:
        """Problems found walking the chain from the first event; empty when intact."""
        problems: list[str] = []
        head = await self.store.read(HEAD_TYPE, HEAD_ID)
        if head is None or head.body is None:
            return problems
        head_value = orjson.loads(head.body)
        previous = GENESIS
        for seq in range(1, int(head_value["seq"]) + 1):
            rid = event_id(seq)
            stored = await self.store.read(EVENT_TYPE, rid)
            if stored is None or stored.body is None:
                problems.append(f"AuditEvent/{rid} is missing")
                previous = "?"
                continue
            if stored.version != 1:
                problems.append(f"AuditEvent/{rid} was changed after it was written")
            event = orjson.loads(stored.body)
            extensions = event.get("extension", [])
            own = next((e.get("valueString") for e in extensions if e.get("url") == HASH_URL), "")
            prev = next(
                (e.get("valueString") for e in extensions if e.get("url") == PREVIOUS_HASH_URL), ""
            )
            if prev != previous:
                problems.append(f"AuditEvent/{rid} does not follow the event before it")
            event["extension"] = [e for e in extensions if e.get("url") != HASH_URL]
            if chain_hash(prev, event) != own:
                problems.append(f"AuditEvent/{rid} does not match its hash")
            previous = own
        if previous != head_value["hash"]:
            problems.append("the chain head does not match the last event")
        return problems
