"""``POST /fhir/Encounter/{id}/$generate-claim``: code one Encounter now.

Answers a ``Parameters`` resource with ``claim`` (the stored Claim version) and
``outcome`` (an OperationOutcome listing every edit), and stores the Claim, its Task and
its Provenance (``mappings.coding.service``). The same service runs the automatic trigger
(``--coding auto``) when a finished Encounter is written.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from mappings.coding.model import CodingConfig
from mappings.coding.service import ClaimService
from server.api.context import repository_of, request_context
from server.api.negotiation import FHIR_JSON
from server.errors import FhirError

router = APIRouter()
CAPABILITY: dict[str, Any] = {}
OPERATION = "generate-claim"


def install(app: FastAPI, auto: bool, config: CodingConfig | None = None) -> ClaimService:
    """Create the app's claim service (``app.state.coding``); ``auto`` hooks the trigger."""
    service = ClaimService(app.state.repository, config, auto=auto)
    app.state.coding = service
    hooks = list(getattr(app.state, "capability_hooks", []))
    app.state.capability_hooks = [*hooks, capability_hook]
    return service


def service_of(request: Request) -> ClaimService:
    service = getattr(request.app.state, "coding", None)
    if service is None:
        service = install(request.app, auto=False)
    assert isinstance(service, ClaimService)
    return service


@router.post("/Encounter/{rid}/$generate-claim")
async def generate_claim(request: Request, rid: str) -> Response:
    ctx = request_context(request)
    # The Encounter must be readable by the caller; the service reads it again itself.
    await repository_of(request).read(ctx, "Encounter", rid)
    generated = await service_of(request).generate(ctx, rid)
    assert generated.claim.body is not None
    claim = orjson.loads(generated.claim.body)
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "claim", "resource": claim},
            {"name": "outcome", "resource": generated.result.outcome()},
        ],
    }
    return Response(orjson.dumps(parameters), status_code=200, media_type=FHIR_JSON)


@router.api_route("/Encounter/{rid}/$generate-claim", methods=["GET", "PUT", "DELETE", "PATCH"])
async def generate_claim_needs_post(request: Request, rid: str) -> Response:
    """$generate-claim writes a Claim, so it is POST only (R4 operations that change state
    are never invoked with GET); say so rather than 404 as an unknown path."""
    raise FhirError.of(
        405,
        "not-supported",
        f"Encounter/$generate-claim changes the server (it stores a Claim): invoke it with"
        f" POST, not {request.method}",
        headers={"Allow": "POST"},
    )


def capability_hook(statement: dict[str, Any], base_url: str) -> dict[str, Any]:
    for rest in statement.get("rest", []):
        for entry in rest.get("resource", []):
            if entry.get("type") == "Encounter":
                operations = entry.setdefault("operation", [])
                operations.append(
                    {
                        "name": OPERATION,
                        "definition": "https://billable.dev/fhir/OperationDefinition/"
                        "Encounter-generate-claim",
                    }
                )
    return statement
