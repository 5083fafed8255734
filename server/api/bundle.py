"""batch and transaction: ``POST [base]`` with a Bundle (the processing is server.bundles)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.body import bundle_body
from server.api.context import repository_of, request_context
from server.api.negotiation import preferences
from server.api.responses import json_bytes_response
from server.bundles import process_bundle, response_bundle

router = APIRouter()
CAPABILITY = {"system": ("transaction", "batch")}


# ``POST [base]`` itself is mounted by the app factory (a router cannot hold an empty
# path); this route takes ``POST [base]/``.
@router.post("/", include_in_schema=False)
async def transaction_or_batch(request: Request) -> Response:
    bundle = await bundle_body(request)
    ctx = request_context(request)
    kind, results = await process_bundle(repository_of(request), ctx, bundle)
    del bundle
    body = response_bundle(kind, results, ctx.base_url, preferences(request).return_)
    return json_bytes_response(request, body, 200)
