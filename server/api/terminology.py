"""Terminology on the FHIR API: the terminology package's operations and resources.

CodeSystem, ValueSet and ConceptMap are served by the terminology module (versioned,
loaded from official release files with ``billable terminology load``), not by the
generic resource store: reads and searches of those types describe what is loaded, and
the operations ($lookup, $validate-code, $expand, $translate) run on it. Writing those
types through the REST API is refused with a 405 that says how to load a release, so
that one source of truth answers both the operations and the reads.

Every route passes through the repository facade's access policy first, like every
other interaction (the security middleware has already authenticated the caller).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from server.api.context import repository_of, request_context
from server.errors import FhirError
from terminology.fhir_api import router as terminology_router

TERMINOLOGY_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
OPERATIONS = {
    "CodeSystem": ("lookup", "validate-code"),
    "ValueSet": ("expand", "validate-code"),
    "ConceptMap": ("translate",),
}
SEARCH_PARAMS = ("url", "version", "name", "status")


def _interaction(request: Request) -> tuple[str, str]:
    """(interaction, resource type) of a request on one of the terminology routes."""
    parts = request.url.path.rstrip("/").split("/")
    index = parts.index("fhir") if "fhir" in parts else 0
    rest = parts[index + 1 :]
    resource_type = rest[0] if rest else ""
    if len(rest) >= 2 and rest[1].startswith("$"):
        return "operation", resource_type
    if len(rest) >= 2:
        return "read", resource_type
    if request.method == "GET":
        return "search-type", resource_type
    return "operation", resource_type


async def authorize_terminology(request: Request) -> None:
    interaction, resource_type = _interaction(request)
    repository_of(request).policy.authorize(request_context(request), interaction, resource_type)


router = APIRouter(dependencies=[Depends(authorize_terminology)])
router.include_router(terminology_router)


async def refuse_write(request: Request) -> None:
    _, resource_type = _interaction(request)
    raise FhirError.of(
        405,
        "not-supported",
        f"{resource_type} resources are managed by the terminology module: load a release"
        " with `billable terminology load KIND PATH --version V --effective YYYY-MM-DD`",
    )


for _type in TERMINOLOGY_TYPES:
    router.add_api_route(f"/{_type}", refuse_write, methods=["POST", "PUT", "DELETE"])
    router.add_api_route(f"/{_type}/{{rid}}", refuse_write, methods=["PUT", "PATCH", "DELETE"])


def capability_hook(statement: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Describe the terminology types as what they are: read, search and operations."""
    for rest in statement.get("rest", []):
        for entry in rest.get("resource", []):
            if entry.get("type") not in TERMINOLOGY_TYPES:
                continue
            rtype = entry["type"]
            entry["interaction"] = [{"code": "read"}, {"code": "search-type"}]
            for flag in ("updateCreate", "conditionalCreate", "conditionalUpdate"):
                entry[flag] = False
            entry["conditionalDelete"] = "not-supported"
            entry["versioning"] = "no-version"
            entry["readHistory"] = False
            entry["searchParam"] = [{"name": p, "type": "token"} for p in SEARCH_PARAMS]
            entry["searchParam"][0]["type"] = "uri"
            entry["searchParam"][2]["type"] = "string"
            entry["operation"] = [
                {
                    "name": op,
                    "definition": f"http://hl7.org/fhir/OperationDefinition/{rtype}-{op}",
                }
                for op in OPERATIONS[rtype]
            ]
    return statement
