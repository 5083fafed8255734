"""GET /healthz: 200 when the store answers, 503 otherwise."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.responses import error_response, json_response
from server.errors import Issue
from server.storage.port import StoreUnavailable

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    repo = request.app.state.repository
    try:
        await repo.ping()
    except StoreUnavailable:
        return error_response(503, [Issue("fatal", "transient", "The data store is unreachable")])
    return json_response(request, {"status": "ok", "store": repo.backend.kind})
