"""Verifying the audit trail: every lane, every event, against the key and the anchor.

The trail is one hash chain per lane (``server.audit.lanes``). ``check_trail`` finds the
lanes (lane 0 always; a lane ``k`` when the store has its head or its first event, or
the anchor has its slot), walks each from its first event, and reports, one readable
line naming the record:

- an event changed (its keyed hash no longer matches), missing, out of order, sealed
  with another key, unkeyed where it must be keyed, damaged;
- a damaged or missing head;
- a lane that ends before its anchor (events were removed) or whose anchored event has
  another hash, and a lane the anchor knows that is gone from the store altogether;
- a lane with events but no anchor (this machine never wrote it, or the anchor was
  lost): it cannot be told whether it was cut short.

The anchors are read before the heads: a writer updates its anchor after its commit, so
an anchor never runs ahead of a head read later, and a trail being appended to while it
is verified verifies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from server.audit.chain import (
    EVENT_TYPE,
    GENESIS,
    HASH_URL,
    HEAD_TYPE,
    KEY_URL,
    PREVIOUS_HASH_URL,
    canonical,
    chain_hash,
)
from server.audit.lanes import MAX_LANES, event_id, head_id, lane_name
from server.audit.seal import Anchor, AuditSeal

if TYPE_CHECKING:
    from server.repository.records import InternalRecords
    from server.storage.port import StoredVersion


@dataclass(slots=True)
class ChainReport:
    """What ``verify`` found: problems (empty when intact), one line per record."""

    events: int = 0  # in every lane
    unkeyed: list[int] = field(default_factory=list)  # lane 0's plain SHA-256 events
    problems: list[str] = field(default_factory=list)
    lanes: dict[str, int] = field(default_factory=dict)  # lane name -> its events


async def lanes_in_store(records: InternalRecords) -> dict[int, StoredVersion | None]:
    """Every lane the store holds: lane -> its head (None: the head is gone but the
    lane's first event is there). Lane 0 is always listed."""

    async def probe(lane: int) -> tuple[int, StoredVersion | None, bool]:
        head = await records.read(HEAD_TYPE, head_id(lane))
        if head is not None or lane == 0:
            return lane, head, True
        first = await records.read(EVENT_TYPE, event_id(1, lane))
        return lane, None, first is not None

    found = await asyncio.gather(*(probe(lane) for lane in range(MAX_LANES)))
    return {lane: head for lane, head, present in found if present}


async def check_trail(records: InternalRecords, seal: AuditSeal) -> ChainReport:
    """Walk every lane; the report of all of them (problems name the lane's records)."""
    report = ChainReport()
    anchors = seal.read_anchors()
    heads = await lanes_in_store(records)
    for lane in sorted(set(heads) | set(anchors)):
        await _check_lane(records, seal, lane, heads.get(lane), anchors.get(lane), report)
    return report


async def _check_lane(
    records: InternalRecords,
    seal: AuditSeal,
    lane: int,
    head: StoredVersion | None,
    anchor: Anchor | None,
    report: ChainReport,
) -> None:
    problems = report.problems
    name = lane_name(lane)
    head_ref = f"{HEAD_TYPE}/{head_id(lane)}"
    head_seq, head_hash, head_keyed_after = 0, GENESIS, None
    if head is not None and head.body is not None:
        try:
            value = orjson.loads(head.body)
            head_seq, head_hash = int(value["seq"]), str(value["hash"])
            head_keyed_after = value.get("keyed_after")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            label = "the chain head" if lane == 0 else f"the head of lane {name}"
            problems.append(f"{head_ref} ({label}) is damaged")
            return
    elif lane > 0 and await records.read(EVENT_TYPE, event_id(1, lane)) is not None:
        problems.append(f"{head_ref} (the head of lane {name}) is missing")
    if anchor is not None and anchor.seq < 0:
        where = "" if lane == 0 else f" (lane {name})"
        problems.append(f"the audit anchor {seal.anchor_file} is unreadable{where}")
        anchor = None
    # Unkeyed events are allowed only in lane 0, where the anchor (outside the store)
    # says so; every other lane began keyed.
    if lane > 0:
        keyed_after = 0
    elif anchor is not None:
        keyed_after = anchor.keyed_after
    elif head_keyed_after is not None:
        keyed_after = int(head_keyed_after)
    else:
        keyed_after = head_seq  # a chain no keyed release has written to yet
    previous = GENESIS
    hashes: dict[int, str] = {}
    unkeyed: list[int] = []
    for seq in range(1, head_seq + 1):
        stored = await records.read(EVENT_TYPE, event_id(seq, lane))
        own = _check_event(seal, seq, lane, stored, previous, problems, unkeyed)
        hashes[seq] = own
        previous = own
    report.events += head_seq
    report.lanes[name] = head_seq
    if lane == 0:
        report.unkeyed.extend(unkeyed)
    if head_seq and previous != head_hash:
        problems.append(f"{head_ref} does not match the last event")
    if anchor is not None:
        if anchor.seq > head_seq and head_seq == 0:
            problems.append(
                f"lane {name} has no events in the store but AuditEvent/"
                f"{event_id(anchor.seq, lane)} was written (anchor {seal.anchor_file}):"
                " the lane was removed"
            )
        elif anchor.seq > head_seq:
            problems.append(
                f"the chain ends at AuditEvent/{event_id(head_seq, lane)} but"
                f" AuditEvent/{event_id(anchor.seq, lane)} was written (anchor"
                f" {seal.anchor_file}): events were removed"
            )
        elif anchor.seq > 0 and hashes.get(anchor.seq) != anchor.hash:
            problems.append(
                f"AuditEvent/{event_id(anchor.seq, lane)} differs from the hash anchored in"
                f" {seal.anchor_file}"
            )
    elif head_seq > keyed_after:
        where = "" if lane == 0 else f" for lane {name}"
        problems.append(
            f"no audit anchor{where} at {seal.anchor_file}: cannot tell whether the"
            f" {'chain' if lane == 0 else 'lane'} was cut short"
        )
    for seq in unkeyed:
        if seq > keyed_after:
            problems.append(
                f"AuditEvent/{event_id(seq, lane)} has no keyed hash, but only the first"
                f" {keyed_after} events may predate keying"
            )


def _check_event(
    seal: AuditSeal,
    seq: int,
    lane: int,
    stored: StoredVersion | None,
    previous: str,
    problems: list[str],
    unkeyed: list[int],
) -> str:
    """Check one stored event; its own hash (``"?"`` if it has none) for the next."""
    rid = event_id(seq, lane)
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
        found: Any = next((e.get("valueString") for e in extensions if e.get("url") == url), None)
        return found if isinstance(found, str) else None

    own, prev, key_id = value(HASH_URL), value(PREVIOUS_HASH_URL), value(KEY_URL)
    if own is None or prev is None:
        problems.append(f"AuditEvent/{rid} is damaged: a hash extension is missing")
        return own or "?"
    if prev != previous:
        problems.append(f"AuditEvent/{rid} does not follow the event before it")
    event["extension"] = [e for e in extensions if e.get("url") != HASH_URL]
    if key_id is None:
        unkeyed.append(seq)
        if chain_hash(prev, event) != own:
            problems.append(f"AuditEvent/{rid} does not match its hash")
    elif seal.key is None:
        problems.append(f"AuditEvent/{rid} is keyed but no audit key is configured")
    elif key_id != seal.key_id:
        problems.append(f"AuditEvent/{rid} was sealed with another key ({key_id})")
    elif seal.mac(prev, canonical(event)) != own:
        problems.append(f"AuditEvent/{rid} does not match its hash")
    return own
