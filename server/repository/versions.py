"""What the repository owns about versions: instants, version tags, the stored bytes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from server.errors import FhirError, Issue
from server.instants import format_micros
from server.storage.port import StoredVersion, Write


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """The version a write produced (``None`` when a delete found nothing to delete)."""

    version: StoredVersion | None
    created: bool = False
    matched_existing: bool = False


class InstantClock:
    """FHIR instants in UTC, strictly increasing within this process."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._last = 0

    def next(self) -> str:
        micros = int(self._now() * 1_000_000)
        if micros <= self._last:
            micros = self._last + 1
        self._last = micros
        return format_micros(micros)


def parse_version_tag(etag: str) -> int:
    """``W/"3"`` or ``"3"`` or ``3`` → 3; anything else is a 400."""
    text = etag.strip()
    text = text.removeprefix("W/").strip('"')
    if not text.isdigit():
        raise FhirError.of(400, "invalid", f'Malformed version tag {etag!r} (expected W/"n")')
    return int(text)


def serialise_with_meta(
    resource: dict[str, Any], rid: str, version: int, last_updated: str
) -> bytes:
    """The stored bytes: the client's JSON with server-owned ``id`` and ``meta`` set.

    Client-supplied ``meta`` elements that are the client's to set (profile, security,
    tag, source) are kept; ``versionId`` and ``lastUpdated`` are always the server's.
    """
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = last_updated
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    ordered = {"resourceType": resource["resourceType"], "id": rid, "meta": meta, **rest}
    # A copy of exactly its size: the bytes orjson returns keep its growth buffer (a 2 KB
    # body costs ~8 KB of memory), and a body is held until its write commits (all of a
    # 40,000-entry transaction at once) and again by every read that returns it.
    return memoryview(orjson.dumps(ordered)).tobytes()


def with_id(resource: dict[str, Any], rid: str) -> dict[str, Any]:
    """``resource`` as it will be stored: under ``rid``, whatever id the body claims."""
    if resource.get("id") == rid:
        return resource
    return {**resource, "id": rid}


def as_stored(write: Write) -> StoredVersion:
    return StoredVersion(
        write.resource_type, write.id, write.version, write.last_updated, write.deleted, write.body
    )


def check_type(resource: dict[str, Any], resource_type: str) -> None:
    if resource.get("resourceType") != resource_type:
        raise FhirError.of(
            400,
            "invalid",
            f"The body is a {resource.get('resourceType')!r}, but the URL is for {resource_type}",
            ("resourceType",),
        )


def not_known(resource_type: str, rid: str) -> FhirError:
    return FhirError.of(404, "not-found", f"{resource_type}/{rid} is not known")


def precondition_failed(rtype: str, rid: str, expected: int, actual: int) -> FhirError:
    return FhirError(
        412,
        [
            Issue(
                "error",
                "conflict",
                f"If-Match: {rtype}/{rid} is at version {actual}, not {expected}",
            )
        ],
    )


def conflict(rtype: str, rid: str) -> FhirError:
    return FhirError.of(409, "conflict", f"{rtype}/{rid} is being changed concurrently; try again")
