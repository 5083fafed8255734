"""Terminology on the FHIR API: the terminology package's operations, behind the policy.

The operations ($lookup, $validate-code, $expand, $translate) run on the terminology
module (versioned tables loaded from official release files). CodeSystem, ValueSet and
ConceptMap stay ordinary resources of the store, so that clients can also keep their
own; the catalog of what the terminology module has loaded is *published* into the
store (``publish_catalog``, run by ``billable serve`` at start-up), which makes it
readable and searchable with every search feature (``url``, ``version``, ``name``,
``status``...). Large code systems are published without their concepts
(``content = not-present``); ``GET CodeSystem/{id}?_summary=false`` (or a ConceptMap)
inlines them straight from the terminology module.

Every route passes through the repository facade's access policy first, like every
other interaction (the security middleware has already authenticated the caller).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from server.api import read as read_interaction
from server.api.body import parse_body
from server.api.context import repository_of, request_context
from server.api.responses import json_response
from server.errors import FhirError
from server.repository import Repository, system_context
from server.validation import validate_resource
from terminology import fhir_api
from terminology.billable_systems import billable_codesystems
from terminology.service import TerminologyService, get_service

log = logging.getLogger("billable.terminology")

TERMINOLOGY_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
OPERATIONS = {
    "CodeSystem": ("lookup", "validate-code"),
    "ValueSet": ("expand", "validate-code"),
    "ConceptMap": ("translate",),
}
PUBLISHER_CLIENT = "billable-terminology"


def _interaction(request: Request) -> tuple[str, str]:
    """(interaction, resource type) of a request on one of the terminology routes."""
    parts = request.url.path.rstrip("/").split("/")
    rest = parts[parts.index("fhir") + 1 :] if "fhir" in parts else parts[1:]
    resource_type = rest[0] if rest else ""
    if len(rest) >= 2 and rest[1].startswith("$"):
        return "operation", resource_type
    return "read", resource_type


async def authorize_terminology(request: Request) -> None:
    interaction, resource_type = _interaction(request)
    repository_of(request).policy.authorize(request_context(request), interaction, resource_type)


async def check_operation_body(request: Request) -> None:
    """A POSTed operation input is a valid Parameters resource before the operation reads
    it (``terminology.fhir_api`` takes its elements as they come). The body is bounded by
    the app's body-limit middleware, and Starlette keeps it for the operation."""
    if request.method != "POST":
        return
    raw = await request.body()
    if not raw.strip():
        return  # the operation answers for a missing body itself
    value = await parse_body(raw, resource=True)
    if value.get("resourceType") != "Parameters":
        raise FhirError.of(400, "structure", "POST body must be a Parameters resource")
    await asyncio.to_thread(validate_resource, value)


router = APIRouter(dependencies=[Depends(authorize_terminology), Depends(check_operation_body)])
for _route in fhir_api.router.routes:
    if isinstance(_route, APIRoute) and "$" in _route.path:
        router.add_api_route(_route.path, _route.endpoint, methods=list(_route.methods or ()))


def _inlined(service: TerminologyService, resource_type: str, rid: str) -> dict[str, Any] | None:
    """The terminology module's full resource for ``rid``, concepts or map rows inlined."""
    kind = resource_type.lower()
    for entry in service.catalog(kind):
        if fhir_api._resource_id(entry) == rid:
            if resource_type == "CodeSystem":
                return fhir_api.codesystem_resource(entry, True)
            return fhir_api.conceptmap_resource(entry, True)
    return None


async def _read_with_content(request: Request, resource_type: str, rid: str) -> Response:
    if request.query_params.get("_summary") == "false":
        full = _inlined(get_service(), resource_type, rid)
        if full is not None:
            # Only for what the module publishes: the caller may read the published summary.
            await repository_of(request).read(request_context(request), resource_type, rid)
            return json_response(request, full)
    return await read_interaction.read(request, resource_type, rid)


@router.get("/CodeSystem/{rid}")
async def read_codesystem(request: Request, rid: str) -> Response:
    return await _read_with_content(request, "CodeSystem", rid)


@router.get("/ConceptMap/{rid}")
async def read_conceptmap(request: Request, rid: str) -> Response:
    return await _read_with_content(request, "ConceptMap", rid)


def catalog_resources(service: TerminologyService) -> list[dict[str, Any]]:
    """CodeSystem, ValueSet and ConceptMap resources describing every loaded table."""
    found: list[dict[str, Any]] = []
    for entry in service.catalog("codesystem"):
        found.append(fhir_api.codesystem_resource(entry, False))
    found.extend(fhir_api.valueset_resources(service))
    for entry in service.catalog("conceptmap"):
        found.append(fhir_api.conceptmap_resource(entry, False))
    found.extend(billable_codesystems())  # the codes Billable's own resources carry
    return found


def _content(body: bytes | None) -> dict[str, Any] | None:
    if body is None:
        return None
    value: dict[str, Any] = orjson.loads(body)
    value.pop("meta", None)
    return value


async def publish_catalog(repo: Repository, service: TerminologyService | None = None) -> int:
    """Write the catalog into the store (unchanged ones are skipped); returns how many."""
    service = service or get_service()
    ctx = system_context(PUBLISHER_CLIENT)
    written = 0
    for resource in catalog_resources(service):
        rtype, rid = resource["resourceType"], resource["id"]
        try:
            current = await repo.read(ctx, rtype, rid)
            if _content(current.body) == resource:
                continue
        except FhirError as exc:
            if exc.status not in (404, 410):
                raise
        await repo.update(ctx, rtype, rid, resource)
        written += 1
    return written


def capability_hook(statement: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Name the terminology operations on their resource types."""
    for rest in statement.get("rest", []):
        for entry in rest.get("resource", []):
            rtype = entry.get("type")
            if rtype in OPERATIONS:
                entry["operation"] = [
                    {
                        "name": op,
                        "definition": f"http://hl7.org/fhir/OperationDefinition/{rtype}-{op}",
                    }
                    for op in OPERATIONS[rtype]
                ]
                if rtype == "CodeSystem":  # Billable's listing of releases (docs/terminology.md)
                    entry["operation"].append(
                        {
                            "name": "versions",
                            "definition": "https://billable.dev/fhir/OperationDefinition/versions",
                        }
                    )
    return statement
