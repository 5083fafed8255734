"""instance, type and system history, newest first, with _since, _count and paging links."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.context import known_type, repository_of, request_context, settings_of
from server.api.responses import json_response
from server.errors import FhirError
from server.instants import format_datetime, restore_plus
from server.storage.port import HistoryPage, HistoryQuery, StoredVersion

router = APIRouter()
CAPABILITY = {"type": ("history-instance", "history-type"), "system": ("history-system",)}

_INSTANT = re.compile(
    r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$"
)


def normalise_instant(value: str, name: str) -> str:
    """A FHIR date/dateTime/instant → the store's UTC ``...Z`` form (its earliest moment)."""
    text = restore_plus(value.strip())
    if not _INSTANT.match(text):
        raise FhirError.of(
            400, "invalid", f"{name}: {value!r} is not a valid instant (e.g. 2024-01-31T10:00:00Z)"
        )
    parts = text.split("-")
    if len(text) == 4:
        text += "-01-01"
    elif len(parts) == 2:
        text += "-01"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FhirError.of(400, "invalid", f"{name}: {value!r} is not a valid date") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment)


def _count(request: Request) -> int:
    settings = settings_of(request)
    raw = request.query_params.get("_count")
    if raw is None:
        return settings.default_count
    if not raw.isdigit():
        raise FhirError.of(400, "invalid", f"_count: {raw!r} is not a non-negative integer")
    return min(int(raw), settings.max_count)


def _entry(version: StoredVersion, base_url: str) -> dict[str, object]:
    url = f"{version.resource_type}/{version.id}"
    if version.deleted:
        method, status = "DELETE", "204 No Content"
    elif version.version == 1:
        method, status = "POST", "201 Created"
    else:
        method, status = "PUT", "200 OK"
    entry: dict[str, object] = {"fullUrl": f"{base_url}/{url}"}
    if version.body is not None:
        entry["resource"] = orjson.Fragment(version.body)
    entry["request"] = {"method": method, "url": url if method != "POST" else version.resource_type}
    entry["response"] = {
        "status": status,
        "etag": f'W/"{version.version}"',
        "lastModified": version.last_updated,
    }
    return entry


async def _history(
    request: Request, resource_type: str | None, rid: str | None, path: str
) -> Response:
    since_raw = request.query_params.get("_since")
    since = normalise_instant(since_raw, "_since") if since_raw else None
    count = _count(request)
    cursor = request.query_params.get("_cursor")
    ctx = request_context(request)
    query = HistoryQuery(resource_type, rid, since, count, cursor)
    page: HistoryPage = await repository_of(request).history(ctx, query)
    base = ctx.base_url
    params = {"_count": str(count)}
    if since_raw:
        params["_since"] = since_raw
    links = [{"relation": "self", "url": f"{base}/{path}?{urlencode(params)}"}]
    if cursor:
        links[0]["url"] += "&" + urlencode({"_cursor": cursor})
    if page.next_cursor:
        links.append(
            {
                "relation": "next",
                "url": f"{base}/{path}?{urlencode({**params, '_cursor': page.next_cursor})}",
            }
        )
    bundle: dict[str, object] = {
        "resourceType": "Bundle",
        "type": "history",
        "link": links,
        "entry": [_entry(v, base) for v in page.versions],
    }
    if page.total is not None:
        bundle["total"] = page.total
    if not page.versions:
        del bundle["entry"]
    return json_response(request, bundle)


@router.get("/_history")
async def system_history(request: Request) -> Response:
    return await _history(request, None, None, "_history")


@router.get("/{resource_type}/_history")
async def type_history(request: Request, resource_type: str) -> Response:
    known_type(resource_type)
    return await _history(request, resource_type, None, f"{resource_type}/_history")


@router.get("/{resource_type}/{rid}/_history")
async def instance_history(request: Request, resource_type: str, rid: str) -> Response:
    known_type(resource_type)
    return await _history(request, resource_type, rid, f"{resource_type}/{rid}/_history")
