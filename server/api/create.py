"""create, and conditional create with If-None-Exist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.body import resource_body
from server.api.conditional_header import relative_criteria
from server.api.context import known_type, repository_of, request_context
from server.api.responses import write_response

router = APIRouter()
CAPABILITY = {"type": ("create",), "conditionalCreate": True}


async def resource_from_request(request: Request) -> dict[str, Any]:
    """The resource in the request body: right media type, within the limits, parsed."""
    return await resource_body(request)


@router.post("/{resource_type}")
async def create(request: Request, resource_type: str) -> Response:
    known_type(resource_type)
    resource = await resource_from_request(request)
    ctx = request_context(request)
    criteria = request.headers.get("if-none-exist")
    if criteria is not None:
        criteria = relative_criteria(criteria, ctx.base_url, resource_type)
    outcome = await repository_of(request).create(ctx, resource_type, resource, criteria)
    assert outcome.version is not None
    return write_response(request, outcome.version, 201 if outcome.created else 200, ctx.base_url)
