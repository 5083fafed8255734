"""GET /metadata: a CapabilityStatement generated from the interaction modules mounted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server import __version__
from server.api.context import request_context
from server.api.responses import json_response
from server.auth.scopes import READ_ONLY_TYPES
from server.spec.resources import FHIR_VERSION, resource_types

router = APIRouter()
CAPABILITY: Mapping[str, Any] = {}


# Read interactions: all that a type nobody may change through the API offers.
READ_INTERACTIONS = ("read", "vread", "history-instance", "history-type", "search-type")


def _read_only(entry: dict[str, Any]) -> dict[str, Any]:
    """A resource entry cut down to what a read-only type allows (the audit trail)."""
    codes = [i for i in entry["interaction"] if i["code"] in READ_INTERACTIONS]
    return {
        **entry,
        "interaction": codes,
        "versioning": "versioned",
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
    }


def capability_statement(
    modules: Iterable[ModuleType],
    base_url: str,
    store_kind: str,
    read_only_types: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Merge the ``CAPABILITY`` declarations of the mounted modules into one statement.

    ``read_only_types`` (AuditEvent, when the security layer keeps an audit trail) are
    advertised with the read and search interactions only, as the policy enforces."""
    type_codes: list[str] = []
    system_codes: list[str] = []
    flags: dict[str, Any] = {}
    for module in modules:
        declared: Mapping[str, Any] = getattr(module, "CAPABILITY", {})
        type_codes.extend(declared.get("type", ()))
        system_codes.extend(declared.get("system", ()))
        flags.update({k: v for k, v in declared.items() if k not in ("type", "system")})
    resource_entry: dict[str, Any] = {
        "interaction": [{"code": code} for code in type_codes],
        "versioning": "versioned-update",
        "readHistory": "vread" in type_codes,
        "updateCreate": bool(flags.get("updateCreate")),
        "conditionalCreate": bool(flags.get("conditionalCreate")),
        "conditionalRead": "full-support",
        "conditionalUpdate": bool(flags.get("conditionalUpdate")),
        "conditionalDelete": flags.get("conditionalDelete", "not-supported"),
    }
    if flags.get("searchParam"):
        resource_entry["searchParam"] = flags["searchParam"]
    per_type = flags.get("searchParamsPerType")
    resources = []
    for rtype in sorted(resource_types()):
        entry = {"type": rtype, **resource_entry}
        if per_type is not None:
            entry["searchParam"] = [*resource_entry.get("searchParam", ()), *per_type(rtype)]
        if rtype in read_only_types:
            entry = _read_only(entry)
        resources.append(entry)
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": f"Billable FHIR R4 server on the {store_kind} store",
        "resource": resources,
        "interaction": [{"code": code} for code in system_codes],
    }
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-27",
        "kind": "instance",
        "software": {"name": "Billable", "version": __version__},
        "implementation": {"description": "Billable", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "application/json"],
        "patchFormat": ["application/json-patch+json", "application/merge-patch+json"],
        "rest": [rest],
    }


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    statement = request.app.state.capability_statement
    if statement is None:
        store_kind = request.app.state.repository.backend.kind
        base_url = request_context(request).base_url
        # With security on, the scopes make AuditEvent read-only (server.auth.scopes).
        secured = getattr(request.app.state, "security", None) is not None
        statement = capability_statement(
            request.app.state.interaction_modules,
            base_url,
            store_kind,
            READ_ONLY_TYPES if secured else frozenset(),
        )
        # Hooks add what other packages own, e.g. server.auth's rest.security section.
        for hook in getattr(request.app.state, "capability_hooks", ()):
            statement = hook(statement, base_url)
    return json_response(request, statement)
