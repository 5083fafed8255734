"""batch and transaction: ``POST [base]`` with a Bundle (the processing is server.bundles)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.context import repository_of, request_context, settings_of
from server.api.negotiation import (
    FHIR_JSON,
    PLAIN_JSON,
    preferences,
    read_body,
    require_content_type,
)
from server.api.responses import json_bytes_response
from server.bundles import process_bundle, response_bundle
from server.validation import parse_json

router = APIRouter()
CAPABILITY = {"system": ("transaction", "batch")}


# ``POST [base]`` itself is mounted by the app factory (a router cannot hold an empty
# path); this route takes ``POST [base]/``.
@router.post("/", include_in_schema=False)
async def transaction_or_batch(request: Request) -> Response:
    require_content_type(request, (FHIR_JSON, PLAIN_JSON))
    bundle = parse_json(await read_body(request, settings_of(request).max_body_bytes))
    ctx = request_context(request)
    kind, results = await process_bundle(repository_of(request), ctx, bundle)
    del bundle
    body = response_bundle(kind, results, ctx.base_url, preferences(request).return_)
    return json_bytes_response(request, body, 200)
