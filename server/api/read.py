"""read and vread: serve stored bytes; conditional read (If-None-Match, If-Modified-Since).

``_summary`` and ``_elements`` work on a read as on a search (R4 3.1.1.5.x): the stored
resource is trimmed the same way and tagged SUBSETTED.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.context import known_type, repository_of, request_context
from server.api.responses import json_bytes_response, parse_instant, version_headers
from server.errors import FhirError
from server.repository import parse_version_tag
from server.search.shape import shape
from server.storage.port import StoredVersion

router = APIRouter()
CAPABILITY = {"type": ("read", "vread")}


def _not_modified(request: Request, version: StoredVersion) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        if "*" in tags:
            return True
        try:
            return any(parse_version_tag(t) == version.version for t in tags)
        except Exception:
            return False
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        # HTTP dates have whole seconds; compare at that precision.
        modified = parse_instant(version.last_updated).replace(microsecond=0)
        return modified <= since
    return False


def _serve(request: Request, version: StoredVersion) -> Response:
    headers = version_headers(version, request_context(request).base_url)
    headers.pop("Location")
    if _not_modified(request, version):
        return Response(status_code=304, headers=headers)
    assert version.body is not None
    return json_bytes_response(request, _shaped(request, version.body), 200, headers)


SUMMARY_VALUES = ("true", "text", "data", "count", "false")


def _shaped(request: Request, body: bytes) -> bytes:
    """The body trimmed by ``_summary`` / ``_elements``, or the stored bytes untouched."""
    summary = request.query_params.get("_summary")
    elements_raw = request.query_params.get("_elements")
    if summary is not None and summary not in SUMMARY_VALUES:
        raise FhirError.of(
            400, "invalid", f"_summary: {summary!r} is not one of {', '.join(SUMMARY_VALUES)}"
        )
    elements = tuple(e.strip() for e in (elements_raw or "").split(",") if e.strip())
    if summary in ("true", "text", "data") or (elements and summary in (None, "false")):
        mode = summary if summary in ("true", "text", "data") else None
        return orjson.dumps(shape(orjson.loads(body), mode, elements))
    return body


@router.get("/{resource_type}/{rid}")
async def read(request: Request, resource_type: str, rid: str) -> Response:
    repo = repository_of(request)
    version = await repo.read(request_context(request), known_type(resource_type), rid)
    return _serve(request, version)


@router.get("/{resource_type}/{rid}/_history/{vid}")
async def vread(request: Request, resource_type: str, rid: str, vid: str) -> Response:
    repo = repository_of(request)
    version = await repo.vread(request_context(request), known_type(resource_type), rid, vid)
    return _serve(request, version)
