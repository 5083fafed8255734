"""An append-only, tamper-evident audit trail of FHIR AuditEvents.

Event ``n`` (id ``n`` zero-padded) carries three extensions: the hash of event ``n-1``,
the id of the key that sealed it, and its own hash: HMAC-SHA256, with a key kept outside
the store (``server.audit.seal``), over the previous hash and the canonical JSON of the
event without its own hash. A head record (``x-billable-audit-head``, version ``n``)
names the last event; appending commits the new events and the head's next version in
one atomic commit that expects the head's current version, so concurrent writers (in
one process or several) serialise and the chain never forks. After each commit the
seal's anchor file (outside the store too) records the last event.

``verify`` reports any event changed (no one without the key can recompute its hash),
missing, reordered or damaged, and a chain cut short (it ends before the anchor). Events
written by releases before keying (plain SHA-256, no key extension) still verify, but
only as the chain's first ``keyed_after`` events, a number the anchor keeps.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from server.audit.prepared import PreparedEvents
from server.audit.seal import AuditSeal
from server.instants import format_micros
from server.storage.port import StoredVersion, VersionConflict, Write
from terminology.billable_systems import AUDIT_SUBTYPE, AUDIT_SUBTYPES

if TYPE_CHECKING:
    from server.repository import Repository

log = logging.getLogger("billable.audit")

HEAD_TYPE = "x-billable-audit-head"
HEAD_ID = "head"
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


def event_id(seq: int) -> str:
    return f"{seq:012d}"


def _instant(seconds: float) -> str:
    return format_micros(int(seconds * 1_000_000))


def canonical(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def chain_hash(previous: str, event: dict[str, Any]) -> str:
    """The unkeyed hash of releases before keying (such events still verify)."""
    return hashlib.sha256(previous.encode() + canonical(event)).hexdigest()


@dataclass(slots=True)
class ChainReport:
    """What ``verify`` found: problems (empty when intact), one line per record."""

    events: int = 0
    unkeyed: list[int] = field(default_factory=list)  # plain SHA-256 (before keying)
    problems: list[str] = field(default_factory=list)


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
    """

    GATHER_S = 0.001

    def __init__(self, repository: Repository, seal: AuditSeal) -> None:
        self.records = repository.records  # the repository's records API
        self.seal = seal
        # Held across the processes appending to this store's chain (``--workers``,
        # ``billable load`` beside a server): their commits take turns instead of racing
        # for the head and rebuilding on every lost race; the lock file carries the
        # head's version, so a process rereads the head only after another appended.
        self._lock = repository.process_lock("audit-chain")
        self._pending: list[tuple[AuditRecord, asyncio.Future[str]]] = []
        self._prepared = PreparedEvents()
        # The head as this trail last committed it: the next commit expects its version,
        # and only a conflict (another process appended) makes it read the head again.
        self._head: StoredVersion | None = None
        self._in_flight = 0  # requests begun (``expect``) that have not appended yet
        self._arrived: asyncio.Event | None = None  # set when one of them appends

    def expect(self) -> None:
        """A request has begun that will append a record (the middleware calls this)."""
        self._in_flight += 1

    def unexpect(self) -> None:
        """A request that called ``expect`` ended without appending (or has appended)."""
        self._in_flight = max(0, self._in_flight - 1)
        if self._arrived is not None:
            self._arrived.set()

    async def append(self, record: AuditRecord, expected: bool = False) -> str:
        """Write one event at the end of the chain; returns its id. ``expected``: the
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
        """Nothing is queued here (see ``server.audit.queue`` for the journal)."""

    async def _commit(
        self,
        records: list[AuditRecord],
        instants: list[str] | None = None,
        journal_mark: tuple[str, int] | None = None,
    ) -> list[str]:
        """Seal and commit ``records`` after the head; ``instants``: when each happened
        (default: now); ``journal_mark``: (journal id, last line number) to record in
        the head in the same commit, so a journal is never replayed twice."""
        key_id = self.seal.key_id
        written = self._lock.read_note()  # the head version the last holder committed
        if written is not None and self._head is not None:
            if written != str(self._head.version).encode():
                self._head = None  # another process appended since: read the head
        for _attempt in range(50):
            head = self._head or await self.records.read(HEAD_TYPE, HEAD_ID)
            self._head = None  # read again after any failure
            head_value = orjson.loads(head.body) if head and head.body else None
            seq = int(head_value["seq"]) if head_value else 0
            previous = head_value["hash"] if head_value else GENESIS
            # The first keyed commit on a chain of an older release marks where keying
            # began; the anchor (outside the store) keeps that number from then on.
            keyed_after = int(head_value.get("keyed_after", seq)) if head_value else 0
            stored_at = _instant(time.time())
            writes: list[Write] = []
            ids: list[str] = []
            for index_in_batch, record in enumerate(records):
                seq += 1
                rid = event_id(seq)
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
                0, self.records.write(HEAD_TYPE, HEAD_ID, head_version, new_head, stored_at)
            )
            try:
                await self.records.commit(writes)
            except VersionConflict:  # another process appended first: rebuild on its head
                await asyncio.sleep(0.001)
                continue
            head_write = writes[0]
            self._head = StoredVersion(
                HEAD_TYPE,
                HEAD_ID,
                head_write.version,
                head_write.last_updated,
                False,
                head_write.body,
            )
            self._lock.write_note(str(head_write.version).encode())
            self.seal.write_anchor(seq, previous, keyed_after)
            return ids
        raise RuntimeError("audit trail: too many concurrent appends")

    async def verify(self) -> list[str]:
        """Problems found walking the chain from the first event; empty when intact."""
        return (await self.check()).problems

    async def check(self) -> ChainReport:
        """Walk the whole chain; every problem is one readable line naming the record."""
        report = ChainReport()
        problems = report.problems
        anchor = self.seal.read_anchor()
        head = await self.records.read(HEAD_TYPE, HEAD_ID)
        head_seq, head_hash, head_keyed_after = 0, GENESIS, None
        if head is not None and head.body is not None:
            try:
                value = orjson.loads(head.body)
                head_seq, head_hash = int(value["seq"]), str(value["hash"])
                head_keyed_after = value.get("keyed_after")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                problems.append(f"{HEAD_TYPE}/{HEAD_ID} (the chain head) is damaged")
                return report
        if anchor is not None and anchor.seq < 0:
            problems.append(f"the audit anchor {self.seal.anchor_file} is unreadable")
            anchor = None
        # Unkeyed events are allowed only where the anchor (outside the store) says so.
        if anchor is not None:
            keyed_after = anchor.keyed_after
        elif head_keyed_after is not None:
            keyed_after = int(head_keyed_after)
        else:
            keyed_after = head_seq  # a chain no keyed release has written to yet
        previous = GENESIS
        hashes: dict[int, str] = {}
        for seq in range(1, head_seq + 1):
            rid = event_id(seq)
            own = self._check_event(seq, await self.records.read(EVENT_TYPE, rid), previous, report)
            hashes[seq] = own
            previous = own
        report.events = head_seq
        if head_seq and previous != head_hash:
            problems.append(f"{HEAD_TYPE}/{HEAD_ID} does not match the last event")
        if anchor is not None:
            if anchor.seq > head_seq:
                problems.append(
                    f"the chain ends at AuditEvent/{event_id(head_seq)} but"
                    f" AuditEvent/{event_id(anchor.seq)} was written (anchor"
                    f" {self.seal.anchor_file}): events were removed"
                )
            elif anchor.seq > 0 and hashes.get(anchor.seq) != anchor.hash:
                problems.append(
                    f"AuditEvent/{event_id(anchor.seq)} differs from the hash anchored in"
                    f" {self.seal.anchor_file}"
                )
        elif head_seq > keyed_after:
            problems.append(
                f"no audit anchor at {self.seal.anchor_file}: cannot tell whether the"
                " chain was cut short"
            )
        for seq in report.unkeyed:
            if seq > keyed_after:
                problems.append(
                    f"AuditEvent/{event_id(seq)} has no keyed hash, but only the first"
                    f" {keyed_after} events may predate keying"
                )
        return report

    def _check_event(self, seq: int, stored: Any, previous: str, report: ChainReport) -> str:
        """Check one stored event; its own hash (``"?"`` if it has none) for the next."""
        rid = event_id(seq)
        problems = report.problems
        if stored is None or stored.body is None:
            problems.append(f"AuditEvent/{rid} is missing")
            return "?"
        if stored.version != 1:
            problems.append(f"AuditEvent/{rid} was changed after it was written")
        try:
            event = orjson.loads(stored.body)
        except orjson.JSONDecodeError:
            problems.append(f"AuditEvent/{rid} is not valid JSON")
            return "?"
        extensions = event.get("extension") if isinstance(event, dict) else None
        if not isinstance(extensions, list) or not all(isinstance(e, dict) for e in extensions):
            problems.append(f"AuditEvent/{rid} is damaged: it has no hash extensions")
            return "?"

        def value(url: str) -> str | None:
            found = next((e.get("valueString") for e in extensions if e.get("url") == url), None)
            return found if isinstance(found, str) else None

        own, prev, key_id = value(HASH_URL), value(PREVIOUS_HASH_URL), value(KEY_URL)
        if own is None or prev is None:
            problems.append(f"AuditEvent/{rid} is damaged: a hash extension is missing")
            return own or "?"
        if prev != previous:
            problems.append(f"AuditEvent/{rid} does not follow the event before it")
        event["extension"] = [e for e in extensions if e.get("url") != HASH_URL]
        if key_id is None:
            report.unkeyed.append(seq)
            if chain_hash(prev, event) != own:
                problems.append(f"AuditEvent/{rid} does not match its hash")
        elif self.seal.key is None:
            problems.append(f"AuditEvent/{rid} is keyed but no audit key is configured")
        elif key_id != self.seal.key_id:
            problems.append(f"AuditEvent/{rid} was sealed with another key ({key_id})")
        elif self.seal.mac(prev, canonical(event)) != own:
            problems.append(f"AuditEvent/{rid} does not match its hash")
        return own
