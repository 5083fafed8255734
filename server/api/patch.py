"""patch with JSON Patch (RFC 6902) or JSON Merge Patch (RFC 7386, ``server.merge_patch``).

The document is checked here, completely, before the repository applies it: RFC 6902
operations are objects with a known ``op``, a ``path`` (and for move/copy a ``from``)
that is a JSON Pointer (RFC 6901: empty, or ``/`` segments with only ``~0``/``~1``
escapes), and a ``value`` where the op needs one. A path such as ``gender`` made the
patch library raise an error nothing caught (a 500).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.body import json_body
from server.api.context import known_type, repository_of, request_context
from server.api.negotiation import JSON_PATCH, PLAIN_JSON
from server.api.responses import write_response
from server.errors import FhirError, Issue
from server.merge_patch import MERGE_PATCH

router = APIRouter()
CAPABILITY = {"type": ("patch",)}

OPS = ("add", "remove", "replace", "move", "copy", "test")
_NEEDS_VALUE = ("add", "replace", "test")
_NEEDS_FROM = ("move", "copy")
_POINTER = re.compile(r"(/([^~/]|~[01])*)*")
MAX_OPERATIONS = 1000


def _pointer_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string (a JSON Pointer)"
    if not _POINTER.fullmatch(value):
        return f"{value[:80]!r} is not a JSON Pointer (RFC 6901: '' or '/a/0/b', escapes ~0 ~1)"
    return None


def check_patch_document(operations: Any) -> list[dict[str, Any]]:
    """Every problem of a JSON Patch document as one 400, or the operations."""
    if not isinstance(operations, list):
        raise FhirError.of(400, "structure", "A JSON Patch document must be a JSON array")
    if len(operations) > MAX_OPERATIONS:
        raise FhirError.of(
            400, "too-costly", f"A JSON Patch may hold at most {MAX_OPERATIONS} operations"
        )
    issues: list[Issue] = []

    def problem(i: int, message: str) -> None:
        issues.append(Issue("error", "structure", f"Operation {i}: {message}"))

    for i, op in enumerate(operations):
        if not isinstance(op, dict):
            problem(i, "must be a JSON object")
            continue
        name = op.get("op")
        if name not in OPS:
            problem(i, f"op {name!r} is not one of {', '.join(OPS)}")
            continue
        if "path" not in op:
            problem(i, "has no path")
        elif (why := _pointer_problem(op["path"])) is not None:
            problem(i, f"path {why}")
        if name in _NEEDS_FROM:
            if "from" not in op:
                problem(i, f"{name} needs from")
            elif (why := _pointer_problem(op["from"])) is not None:
                problem(i, f"from {why}")
        if name in _NEEDS_VALUE and "value" not in op:
            problem(i, f"{name} needs a value")
    if issues:
        raise FhirError(400, issues[:100])
    return operations


@router.patch("/{resource_type}/{rid}")
async def patch(request: Request, resource_type: str, rid: str) -> Response:
    known_type(resource_type)
    document = await json_body(request, (JSON_PATCH, MERGE_PATCH, PLAIN_JSON))
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == PLAIN_JSON:
        # fhirpy (and other JSON clients) PATCH a partial resource as plain JSON: that is a
        # merge patch. A JSON Patch document must say so with its own media type.
        if not isinstance(document, dict) or document.get("resourceType") == "Parameters":
            raise FhirError.of(
                415,
                "not-supported",
                "PATCH with application/json takes a partial resource (a merge patch); send"
                " JSON Patch as application/json-patch+json (FHIRPath Patch is not supported)",
            )
        media = MERGE_PATCH
    if media == MERGE_PATCH:
        if not isinstance(document, dict):
            raise FhirError.of(400, "structure", "A JSON Merge Patch must be a JSON object")
        operations: Any = document
    else:
        operations = check_patch_document(document)
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
