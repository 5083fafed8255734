"""delete and conditional delete (single match)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.context import known_type, repository_of, request_context
from server.api.responses import http_date
from server.repository import WriteOutcome

router = APIRouter()
CAPABILITY = {"type": ("delete",), "conditionalDelete": "single"}


def _answer(outcome: WriteOutcome) -> Response:
    headers = {}
    if outcome.version is not None:
        headers["ETag"] = f'W/"{outcome.version.version}"'
        headers["Last-Modified"] = http_date(outcome.version.last_updated)
    return Response(status_code=204, headers=headers)


@router.delete("/{resource_type}/{rid}")
async def delete(request: Request, resource_type: str, rid: str) -> Response:
    known_type(resource_type)
    outcome = await repository_of(request).delete(
        request_context(request), resource_type, rid, request.headers.get("if-match")
    )
    return _answer(outcome)


@router.delete("/{resource_type}")
async def conditional_delete(request: Request, resource_type: str) -> Response:
    known_type(resource_type)
    outcome = await repository_of(request).conditional_delete(
        request_context(request), resource_type, request.url.query
    )
    return _answer(outcome)
