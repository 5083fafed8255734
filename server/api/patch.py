"""patch with JSON Patch (RFC 6902) or JSON Merge Patch (RFC 7386, ``server.merge_patch``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.context import known_type, repository_of, request_context, settings_of
from server.api.negotiation import (
    JSON_PATCH,
    PLAIN_JSON,
    read_body,
    require_content_type,
)
from server.api.responses import write_response
from server.errors import FhirError
from server.merge_patch import MERGE_PATCH
from server.validation import parse_json

router = APIRouter()
CAPABILITY = {"type": ("patch",)}


@router.patch("/{resource_type}/{rid}")
async def patch(request: Request, resource_type: str, rid: str) -> Response:
    known_type(resource_type)
    require_content_type(request, (JSON_PATCH, MERGE_PATCH, PLAIN_JSON))
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    operations = parse_json(await read_body(request, settings_of(request).max_body_bytes))
    if media == PLAIN_JSON:
        # fhirpy (and other JSON clients) PATCH a partial resource as plain JSON: that is a
        # merge patch. A JSON Patch document must say so with its own media type.
        if not isinstance(operations, dict) or operations.get("resourceType") == "Parameters":
            raise FhirError.of(
                415,
                "not-supported",
                "PATCH with application/json takes a partial resource (a merge patch); send"
                " JSON Patch as application/json-patch+json (FHIRPath Patch is not supported)",
            )
        media = MERGE_PATCH
    ctx = request_context(request)
    outcome = await repository_of(request).patch(
        ctx,
        resource_type,
        rid,
        operations,
        request.headers.get("if-match"),
        merge=media == MERGE_PATCH,
    )
    assert outcome.version is not None
    return write_response(request, outcome.version, 200, ctx.base_url)
