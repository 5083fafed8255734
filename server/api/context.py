"""Per-request plumbing shared by the interaction modules."""

from __future__ import annotations

from fastapi import Request

from server.config import Settings
from server.errors import FhirError
from server.repository import Repository, RequestContext
from server.spec.resources import is_resource_type


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def repository_of(request: Request) -> Repository:
    repo: Repository = request.app.state.repository
    return repo


def fhir_base(request: Request) -> str:
    configured = settings_of(request).base_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def request_context(request: Request) -> RequestContext:
    client = request.client
    # Set by server.auth.middleware.SecurityMiddleware after validating the bearer token.
    grants = getattr(request.state, "grants", None)
    return RequestContext(
        base_url=fhir_base(request),
        client_id=grants.client_id if grants else None,
        user=(grants.fhir_user or grants.subject) if grants else None,
        remote_addr=client.host if client else None,
        grants=grants,
    )


def known_type(resource_type: str) -> str:
    """404 for a path segment that is not an R4 resource type."""
    if not is_resource_type(resource_type):
        raise FhirError.of(
            404, "not-supported", f"Unknown resource type {resource_type!r} in the URL"
        )
    return resource_type
