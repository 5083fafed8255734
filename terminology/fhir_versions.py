"""``GET [base]/CodeSystem/$versions``: every release Billable codes, edits and prices with.

A payer (or an auditor) reads a claim's Provenance to see which releases coded it: each
table is an entity whose ``what.identifier`` is the table's URL and release
(``https://billable.dev/fhir/mpfs-rvu|RVU26C``, ``http://hl7.org/fhir/sid/icd-10-cm|2027``).
This operation says what those are: for each loaded release, its kind, URL, release,
the dates Billable applies it, the publisher's own window when it differs, the source file
it was read from, that file's SHA-256 and its row count. ``date`` keeps only the releases
in force on a date of service; ``url`` one table.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from server.api.responses import json_response
from server.errors import bad_request
from terminology.catalog import Entry
from terminology.service import TerminologyService, get_service


def release_parameter(entry: Entry) -> dict[str, Any]:
    m = entry.meta
    parts: list[dict[str, Any]] = [
        {"name": "kind", "valueCode": entry.kind},
        {"name": "url", "valueUri": m.url},
        {"name": "version", "valueString": m.version},
        {"name": "title", "valueString": m.title or m.name},
        {"name": "effectiveFrom", "valueDate": m.effective_from.isoformat()},
    ]
    if m.effective_to:
        parts.append({"name": "effectiveTo", "valueDate": m.effective_to.isoformat()})
    if m.official_from:
        parts.append({"name": "publisherFrom", "valueDate": m.official_from.isoformat()})
        if m.official_to:
            parts.append({"name": "publisherTo", "valueDate": m.official_to.isoformat()})
    if m.source:
        parts.append({"name": "source", "valueString": m.source})
    for key, kind in (("source_file", "valueString"), ("sha256", "valueString")):
        if entry.extra.get(key):
            parts.append({"name": key.replace("_file", "File"), kind: str(entry.extra[key])})
    if entry.extra.get("rows"):
        parts.append({"name": "rows", "valueInteger": int(entry.extra["rows"])})
    return {"name": "release", "part": parts}


def versions_parameters(
    service: TerminologyService, day: date | None, url: str | None
) -> dict[str, Any]:
    entries = service.catalog()
    if url:
        entries = [e for e in entries if e.meta.url == url]
    if day is not None:
        entries = [e for e in entries if e.meta.covers(day)]
    return {"resourceType": "Parameters", "parameter": [release_parameter(e) for e in entries]}


async def versions(request: Request) -> Response:
    service = getattr(request.app.state, "terminology", None)
    if not isinstance(service, TerminologyService):
        service = get_service()
    raw = request.query_params.get("date")
    try:
        day = date.fromisoformat(raw[:10]) if raw else None
    except ValueError:
        raise bad_request(f"date {raw!r} is not a date (YYYY-MM-DD)") from None
    body = versions_parameters(service, day, request.query_params.get("url"))
    return json_response(request, body)
