"""CoverageEligibilityRequest: ``$submit`` and plain create answer with the response.

Both store the request (through the repository, validated like any create), build the
CoverageEligibilityResponse (``mappings.adjudication.eligibility``), store it, and answer
with it. A plain create answers 201 with ``Location`` of the request it created (the
resource the POST names) and ``Content-Location`` of the response in the body.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from mappings.adjudication.eligibility import eligibility_response
from server.api.body import operation_input
from server.api.conditional_header import relative_criteria
from server.api.context import repository_of, request_context
from server.api.responses import json_bytes_response, version_headers
from server.errors import FhirError

router = APIRouter()
CAPABILITY: dict[str, Any] = {}
OPERATION = {
    "name": "submit",
    "definition": "http://hl7.org/fhir/OperationDefinition/CoverageEligibilityRequest-submit",
}


async def _answer(request: Request, status: int) -> Response:
    body = await operation_input(request, ("CoverageEligibilityRequest", "Parameters"))
    if body.get("resourceType") == "Parameters":
        found = [
            p.get("resource")
            for p in body.get("parameter") or []
            if isinstance(p.get("resource"), dict)
        ]
        body = found[0] if found else {}
    if body.get("resourceType") != "CoverageEligibilityRequest":
        raise FhirError.of(
            400, "invalid", "Expected a CoverageEligibilityRequest (or Parameters carrying one)"
        )
    repo = repository_of(request)
    ctx = request_context(request)
    criteria = request.headers.get("if-none-exist")
    if criteria is not None:
        criteria = relative_criteria(criteria, ctx.base_url, "CoverageEligibilityRequest")
    created = await repo.create(ctx, "CoverageEligibilityRequest", body, criteria)
    assert created.version is not None and created.version.body is not None

    stored_request = orjson.loads(created.version.body)
    answer = await eligibility_response(
        repo, ctx, stored_request, f"CoverageEligibilityRequest/{created.version.id}"
    )
    outcome = await repo.create(ctx, "CoverageEligibilityResponse", answer)
    assert outcome.version is not None and outcome.version.body is not None
    response_headers = version_headers(outcome.version, ctx.base_url)
    headers = {"Content-Location": response_headers["Location"]}
    if status == 201:
        headers.update(version_headers(created.version, ctx.base_url))
    return json_bytes_response(request, outcome.version.body, status, headers)


@router.post("/CoverageEligibilityRequest/$submit")
async def submit(request: Request) -> Response:
    return await _answer(request, 200)


@router.post("/CoverageEligibilityRequest")
async def create(request: Request) -> Response:
    return await _answer(request, 201)


def capability_hook(statement: dict[str, Any], base_url: str) -> dict[str, Any]:
    for rest in statement.get("rest", []):
        for entry in rest.get("resource", []):
            if entry.get("type") == "CoverageEligibilityRequest":
                entry.setdefault("operation", []).append(OPERATION)
    return statement
