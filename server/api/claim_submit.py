"""POST /Claim/$submit: adjudicate a claim, answer with its ClaimResponse.

The body is a Claim, a Bundle whose first entry is the Claim (the Da Vinci PAS shape;
the answer is then a ``collection`` Bundle with the ClaimResponse first and the EOB
second), or a Parameters resource naming a stored Claim (``claim`` as a
``valueReference``) or carrying one (``claim`` as a ``resource``).

The Claim is stored first, through the repository like any write: a Claim whose ``id``
is stored with the same content is that stored version (resubmission, idempotent); with
other content it becomes a new version, adjudicated as a replacement of the previous
one; a Claim without an ``id`` but with an ``identifier`` is matched on it the same way.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from mappings.adjudication import adjudicate_claim
from mappings.adjudication.auto import AutoAdjudicator
from server.api.body import operation_input
from server.api.context import repository_of, request_context
from server.api.responses import json_bytes_response, json_response
from server.errors import FhirError
from server.repository import Repository, RequestContext
from server.storage.port import StoredVersion

router = APIRouter()
CAPABILITY: dict[str, Any] = {}
OPERATION = {"name": "submit", "definition": "http://hl7.org/fhir/OperationDefinition/Claim-submit"}


def install(app: FastAPI, auto: bool) -> AutoAdjudicator | None:
    """With ``auto``, adjudicate clean generated claims when committed (app.state.adjudication)."""
    adjudicator = AutoAdjudicator(app.state.repository) if auto else None
    app.state.adjudication = adjudicator
    return adjudicator


def _same_content(stored: StoredVersion, resource: dict[str, Any]) -> bool:
    assert stored.body is not None
    current = orjson.loads(stored.body)
    current.pop("meta", None)
    incoming = {k: v for k, v in resource.items() if k != "meta"}
    incoming["id"] = stored.id
    return bool(current == incoming)


async def store_claim(repo: Repository, ctx: RequestContext, claim: dict[str, Any]) -> str:
    """Store ``claim`` (or find it already stored) and return its id."""
    rid = claim.get("id")
    if isinstance(rid, str):
        try:
            current: StoredVersion | None = await repo.read(ctx, "Claim", rid)
        except FhirError as exc:
            if exc.status not in (404, 410):
                raise
            current = None
        if current is not None and _same_content(current, claim):
            return rid
        await repo.update(ctx, "Claim", rid, claim)
        return rid
    identifiers = [i for i in claim.get("identifier") or [] if i.get("system") and i.get("value")]
    if identifiers:
        criteria = f"identifier={identifiers[0]['system']}|{identifiers[0]['value']}"
        outcome = await repo.create(ctx, "Claim", claim, if_none_exist=criteria)
        assert outcome.version is not None
        if outcome.matched_existing and not _same_content(outcome.version, claim):
            await repo.update(ctx, "Claim", outcome.version.id, {**claim, "id": outcome.version.id})
        return outcome.version.id
    outcome = await repo.create(ctx, "Claim", claim)
    assert outcome.version is not None
    return outcome.version.id


async def _claim_id_from(repo: Repository, ctx: RequestContext, body: dict[str, Any]) -> str:
    rtype = body.get("resourceType")
    if rtype == "Claim":
        return await store_claim(repo, ctx, body)
    if rtype == "Bundle":
        entries = body.get("entry") or []
        first = entries[0].get("resource") if entries else None
        if not isinstance(first, dict) or first.get("resourceType") != "Claim":
            raise FhirError.of(
                400, "invalid", "Claim/$submit: the Bundle's first entry must be the Claim"
            )
        return await store_claim(repo, ctx, first)
    if rtype == "Parameters":
        for parameter in body.get("parameter") or []:
            if parameter.get("name") != "claim":
                continue
            if isinstance(parameter.get("resource"), dict):
                return await store_claim(repo, ctx, parameter["resource"])
            reference = (parameter.get("valueReference") or {}).get("reference", "")
            parts = str(reference).split("/")
            if len(parts) >= 2 and parts[-2] == "Claim":
                return parts[-1]
        raise FhirError.of(
            400,
            "required",
            "Claim/$submit: the Parameters need a 'claim' parameter (valueReference or resource)",
        )
    raise FhirError.of(
        400, "invalid", f"Claim/$submit takes a Claim, Bundle or Parameters, not {rtype}"
    )


@router.post("/Claim/$submit")
async def submit(request: Request) -> Response:
    body = await operation_input(request, ("Claim", "Bundle", "Parameters"))
    repo = repository_of(request)
    ctx = request_context(request)
    claim_id = await _claim_id_from(repo, ctx, body)
    result = await adjudicate_claim(repo, ctx, claim_id)
    response = result.claim_response
    assert response.body is not None
    if body.get("resourceType") != "Bundle":
        return json_bytes_response(request, response.body)
    entries = [
        {
            "fullUrl": f"{ctx.base_url}/{v.resource_type}/{v.id}",
            "resource": orjson.loads(v.body),
        }
        for v in (response, result.explanation_of_benefit)
        if v is not None and v.body is not None
    ]
    return json_response(
        request, {"resourceType": "Bundle", "type": "collection", "entry": entries}
    )


def capability_hook(statement: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Declare Claim/$submit on the Claim entry of the CapabilityStatement."""
    for rest in statement.get("rest", []):
        for entry in rest.get("resource", []):
            if entry.get("type") == "Claim":
                entry.setdefault("operation", []).append(OPERATION)
    return statement
