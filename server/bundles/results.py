"""The outcome of one bundle entry, and the response Bundle built from all of them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

from server.errors import Issue, operation_outcome
from server.storage.port import StoredVersion


@dataclass(slots=True)
class EntryResult:
    """What ``Bundle.entry[i].response`` (and ``.resource``) will say.

    ``body`` is the JSON bytes of the resource to return (the stored version, or a
    searchset Bundle for a search), embedded in the response without being parsed again.
    """

    status: int
    version: StoredVersion | None = None
    body: bytes | None = None
    issues: list[Issue] = field(default_factory=list)
    with_location: bool = True


def status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def response_bundle(
    kind: str, results: list[EntryResult], base_url: str, return_pref: str = "representation"
) -> bytes:
    """The ``transaction-response``/``batch-response`` bytes, entries in request order.

    Resources are stored bytes spliced in with ``orjson.Fragment``: a 5,000-entry
    response costs one ``dumps`` of small dicts, not a parse and re-serialisation.
    """
    entries: list[dict[str, Any]] = []
    for result in results:
        response: dict[str, Any] = {"status": status_line(result.status)}
        entry: dict[str, Any] = {}
        version = result.version
        if version is not None:
            if result.with_location:
                response["location"] = (
                    f"{version.resource_type}/{version.id}/_history/{version.version}"
                )
            response["etag"] = f'W/"{version.version}"'
            response["lastModified"] = version.last_updated
        if result.issues:
            response["outcome"] = operation_outcome(result.issues)
        elif return_pref == "OperationOutcome" and version is not None:
            response["outcome"] = operation_outcome(
                [
                    Issue(
                        "information",
                        "informational",
                        f"{version.resource_type}/{version.id} version {version.version}",
                    )
                ]
            )
        if result.body is not None and return_pref == "representation":
            if version is not None and not version.deleted:
                entry["fullUrl"] = f"{base_url}/{version.resource_type}/{version.id}"
            entry["resource"] = orjson.Fragment(result.body)
        entry["response"] = response
        entries.append(entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": kind,
    }
    if entries:
        bundle["entry"] = entries
    return orjson.dumps(bundle)
