"""An append-only, tamper-evident audit trail of FHIR AuditEvents.

Each process appends to a chain of its own, a *lane* (``server.audit.lanes``): lane 0
is the one chain of every release before lanes, with the same ids and head record. Event
``n`` of a lane carries three extensions: the hash of event ``n-1``, the id of the key
that sealed it, and its own hash: HMAC-SHA256, with a key kept outside the store
(``server.audit.seal``), over the previous hash and the canonical JSON of the event
without its own hash. A head record per lane (``x-billable-audit-head``, version ``n``)
names its last event; appending commits the new events and the head's next version in
one atomic commit that expects the head's current version, so two writers that ever
share a lane serialise and it never forks. After each commit the seal's anchor file
(outside the store too) records the lane's last event, in the lane's slot.

``verify`` (``server.audit.verify``) walks every lane and reports any event changed (no
one without the key can recompute its hash), missing, reordered or damaged, and a lane
cut short or removed (it ends before its anchor). Events written by releases before
keying (plain SHA-256, no key extension) still verify, but only as lane 0's first
``keyed_after`` events, a number the anchor keeps.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from server.audit.lanes import LaneClaim, event_id, head_id
from server.audit.prepared import PreparedEvents
from server.audit.seal import AuditSeal
from server.instants import format_micros
from server.storage.port import StoredVersion, VersionConflict, Write
from terminology.billable_systems import AUDIT_SUBTYPE, AUDIT_SUBTYPES

if TYPE_CHECKING:
    from server.audit.verify import ChainReport
    from server.repository import Repository

log = logging.getLogger("billable.audit")

HEAD_TYPE = "x-billable-audit-head"
HEAD_ID = head_id(0)  # lane 0's head; lane k has head_id(k)
EVENT_TYPE = "AuditEvent"
GENESIS = "0" * 64
PREVIOUS_HASH_URL = "https://billable.dev/fhir/StructureDefinition/audit-previous-hash"
HASH_URL = "https://billable.dev/fhir/StructureDefinition/audit-hash"
KEY_URL = "https://billable.dev/fhir/StructureDefinition/audit-hash-key"
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


def _instant(seconds: float) -> str:
    return format_micros(int(seconds * 1_000_000))


def canonical(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def chain_hash(previous: str, event: dict[str, Any]) -> str:
    """The unkeyed hash of releases before keying (such events still verify)."""
    return hashlib.sha256(previous.encode() + canonical(event)).hexdigest()


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
    caller still returns only once its own event is durable.

    Like PostgreSQL's ``commit_delay``/``commit_siblings``, a commit waits a moment
    (``GATHER_S`` at most) for the requests already in flight (``expect``) to bring their
    own record, when there are any: one commit then carries the events of every
    concurrent request instead of one or two, and the cost of reaching the store's
    writer is paid once for all. A lone request never waits.

    The events go to this trail's own lane, claimed at the first append and held until
    ``close``: no other process appends to it, so the head this trail last committed is
    the lane's head, and no lock across processes is taken.
    """

    GATHER_S = 0.001

    def __init__(self, repository: Repository, seal: AuditSeal) -> None:
        self.records = repository.records  # the repository's records API
        self.seal = seal
        self._claim = LaneClaim(repository.backend)
        self._lock = asyncio.Lock()  # this trail's commits, one at a time
        self._pending: list[tuple[AuditRecord, asyncio.Future[str]]] = []
        self._prepared = PreparedEvents()
        # The lane's head as this trail last committed it: the next commit expects its
        # version; only a conflict (a writer sharing the lane) makes it read it again.
        self._head: StoredVersion | None = None
        self._in_flight = 0  # requests begun (``expect``) that have not appended yet
        self._arrived: asyncio.Event | None = None  # set when one of them appends

    @property
    def lane(self) -> int | None:
        """The lane this trail appends to (None until its first append)."""
        return self._claim.lane

    def claim_lane(self) -> int:
        """Claim this trail's lane now (the first append does it otherwise)."""
        return self._claim.claim()

    def expect(self) -> None:
        """A request has begun that will append a record (the middleware calls this)."""
        self._in_flight += 1

    def unexpect(self) -> None:
        """A request that called ``expect`` ended without appending (or has appended)."""
        self._in_flight = max(0, self._in_flight - 1)
        if self._arrived is not None:
            self._arrived.set()

    async def append(self, record: AuditRecord, expected: bool = False) -> str:
        """Write one event at the end of the lane; returns its id. ``expected``: the
        caller announced the request with ``expect``."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if expected:
            self.unexpect()
        async with self._lock:
            if not future.done():
                await self._gather()
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

    async def _gather(self) -> None:
        """Wait (briefly) for the records of the requests in flight."""
        if self._in_flight <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.GATHER_S
        if self._arrived is None:
            self._arrived = asyncio.Event()
        while self._in_flight > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    journaled = False  # records are committed before ``append`` returns

    async def flushed(self) -> None:
        """Return once every appended record is in the store (always, here)."""

    async def close(self) -> None:
        """Let the lane go (nothing is queued here; see ``server.audit.queue``)."""
        async with self._lock:
            self._claim.release()
            self._head = None

    async def _commit(
        self,
        records: list[AuditRecord],
        instants: list[str] | None = None,
        journal_mark: tuple[str, int] | None = None,
    ) -> list[str]:
        """Seal and commit ``records`` after the lane's head; ``instants``: when each
        happened (default: now); ``journal_mark``: (journal id, last line number) to
        record in the head in the same commit, so a journal is never replayed twice.
        The caller holds ``_lock``."""
        key_id = self.seal.key_id
        lane = self._claim.claim()
        lane_head = head_id(lane)
        for _attempt in range(50):
            head = self._head or await self.records.read(HEAD_TYPE, lane_head)
            self._head = None  # read again after any failure
            head_value = orjson.loads(head.body) if head and head.body else None
            seq = int(head_value["seq"]) if head_value else 0
            previous = head_value["hash"] if head_value else GENESIS
            # The first keyed commit on a chain of an older release (lane 0) marks where
            # keying began; the anchor (outside the store) keeps that number from then
            # on. Every other lane began keyed.
            keyed_after = 0
            if lane == 0 and head_value:
                keyed_after = int(head_value.get("keyed_after", seq))
            stored_at = _instant(time.time())
            writes: list[Write] = []
            ids: list[str] = []
            for index_in_batch, record in enumerate(records):
                seq += 1
                rid = event_id(seq, lane)
                recorded = instants[index_in_batch] if instants else stored_at
                event = build_event(record, recorded)
                event["id"] = rid
                event["meta"] = {"versionId": "1", "lastUpdated": stored_at}
                event["extension"] = [
                    {"url": PREVIOUS_HASH_URL, "valueString": previous},
                    {"url": KEY_URL, "valueString": key_id},
                ]
                previous = self.seal.mac(previous, canonical(event))
                event["extension"].append({"url": HASH_URL, "valueString": previous})
                # Validated and indexed through the template of its kind (prepared.py).
                index = self._prepared.index(record, event, recorded, stored_at)
                body = orjson.dumps(event)
                writes.append(Write(EVENT_TYPE, rid, 0, 1, stored_at, body, index))
                ids.append(rid)
            head_version = head.version if head is not None else 0
            new_head: dict[str, Any] = {"seq": seq, "hash": previous, "keyed_after": keyed_after}
            journals = dict(head_value.get("journals", {})) if head_value else {}
            if journal_mark is not None:
                journals[journal_mark[0]] = journal_mark[1]
            if journals:
                new_head["journals"] = journals
            writes.insert(
                0, self.records.write(HEAD_TYPE, lane_head, head_version, new_head, stored_at)
            )
            try:
                await self.records.commit(writes)
            except VersionConflict:  # a writer sharing the lane appended first: rebuild
                await asyncio.sleep(0.001)
                continue
            head_write = writes[0]
            self._head = StoredVersion(
                HEAD_TYPE,
                lane_head,
                head_write.version,
                head_write.last_updated,
                False,
                head_write.body,
            )
            self.seal.write_anchor(seq, previous, keyed_after, lane)
            return ids
        raise RuntimeError("audit trail: too many concurrent appends")

    async def verify(self) -> list[str]:
        """Problems found walking every lane from its first event; empty when intact."""
        return (await self.check()).problems

    async def check(self) -> ChainReport:
        """Walk every lane; every problem is one readable line naming the record."""
        from server.audit.verify import check_trail

        return await check_trail(self.records, self.seal)
