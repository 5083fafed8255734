"""update (also update-as-create with the client's id) and conditional update."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.context import known_type, repository_of, request_context
from server.api.create import resource_from_request
from server.api.responses import write_response
from server.repository import WriteOutcome

router = APIRouter()
CAPABILITY = {"type": ("update",), "updateCreate": True, "conditionalUpdate": True}


def _answer(request: Request, outcome: WriteOutcome, base_url: str) -> Response:
    assert outcome.version is not None
    return write_response(request, outcome.version, 201 if outcome.created else 200, base_url)


@router.put("/{resource_type}/{rid}")
async def update(request: Request, resource_type: str, rid: str) -> Response:
    known_type(resource_type)
    resource = await resource_from_request(request)
    ctx = request_context(request)
    outcome = await repository_of(request).update(
        ctx, resource_type, rid, resource, request.headers.get("if-match")
    )
    return _answer(request, outcome, ctx.base_url)


@router.put("/{resource_type}")
async def conditional_update(request: Request, resource_type: str) -> Response:
    known_type(resource_type)
    resource = await resource_from_request(request)
    ctx = request_context(request)
    outcome = await repository_of(request).conditional_update(
        ctx, resource_type, request.url.query, resource, request.headers.get("if-match")
    )
    return _answer(request, outcome, ctx.base_url)
