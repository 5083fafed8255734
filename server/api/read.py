"""read and vread: serve stored bytes; conditional read (If-None-Match, If-Modified-Since)."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.context import known_type, repository_of, request_context
from server.api.responses import json_bytes_response, parse_instant, version_headers
from server.repository import parse_version_tag
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
    return json_bytes_response(request, version.body, 200, headers)


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
