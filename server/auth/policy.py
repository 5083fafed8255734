"""``SmartPolicy``: the access policy of ``--auth smart``, consulted by the repository facade.

The repository calls ``authorize`` before every interaction (and again with the resource
for writes, so a patient-context token cannot write outside its compartment), and
``can_see`` on every version it is about to hand out (read, vread, history, search
results and includes). Refusals never say more than the interaction and the type.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from server.auth.compartment import in_patient_compartment, matches_query, patient_references
from server.auth.scopes import UNRESTRICTED, Access, Condition
from server.errors import FhirError
from server.spec.resources import is_resource_type
from server.storage.port import SearchQuery, StoredVersion

if TYPE_CHECKING:
    from server.repository import RequestContext

log = logging.getLogger("billable.auth")

# Types only Billable itself writes (its engines, with ``system_context``).
SERVER_WRITTEN = frozenset({"Provenance", "AuditEvent"})
WRITES = frozenset({"create", "update", "patch", "delete"})


def forbidden(interaction: str, resource_type: str | None) -> FhirError:
    target = resource_type or "the whole server"
    return FhirError.of(
        403,
        "forbidden",
        f"The access token's scopes do not allow {interaction} on {target}",
        headers={"WWW-Authenticate": 'Bearer realm="billable", error="insufficient_scope"'},
    )


def satisfies(access: Access, resource_type: str, resource: dict[str, Any]) -> bool:
    return any(_meets(c, resource_type, resource) for c in access.conditions)


def _meets(condition: Condition, resource_type: str, resource: dict[str, Any]) -> bool:
    if condition.patients is not None and not in_patient_compartment(
        resource_type, resource, condition.patients
    ):
        return False
    return matches_query(resource, condition.query)


def may_write(access: Access, resource_type: str, resource: dict[str, Any]) -> bool:
    """Whether a restricted token may store ``resource``: in its compartment (and scope
    query) like a read, and, stricter than a read, naming no patient outside its context
    anywhere (``performer: Patient/B`` would write into B's compartment)."""
    for condition in access.conditions:
        if not _meets(condition, resource_type, resource):
            continue
        if condition.patients is None:
            return True
        named = patient_references(resource)
        if resource_type == "Patient" and isinstance(resource.get("id"), str):
            named.add(resource["id"])
        if named <= condition.patients:
            return True
    return False


class SmartPolicy:
    """Scopes as a union; patient/user context as compartment restrictions; fail closed."""

    def access(self, ctx: RequestContext, interaction: str, resource_type: str | None) -> Access:
        grants = ctx.grants
        if grants is None:
            raise FhirError.of(403, "forbidden", "No access token was validated for this request")
        access = grants.access(interaction, resource_type)
        if access is None:
            log.info(
                "denied client=%s interaction=%s type=%s",
                grants.client_id,
                interaction,
                resource_type,
            )
            raise forbidden(interaction, resource_type)
        return access

    def authorize(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str | None,
        resource: dict[str, Any] | None = None,
    ) -> None:
        if resource_type in SERVER_WRITTEN and interaction in WRITES and not ctx.system:
            # Provenance is the server's record of who wrote what: read-only through the
            # API like AuditEvent, so no client can forge, rewrite or remove an agent.
            raise forbidden(interaction, resource_type)
        access = self.access(ctx, interaction, resource_type)
        if resource is None or access.unrestricted:
            return
        rtype = resource_type or str(resource.get("resourceType"))
        if not may_write(access, rtype, resource):
            raise FhirError.of(
                403,
                "forbidden",
                f"The access token's scopes do not allow {interaction} of this {rtype}:"
                " it is outside the patient context or the scope's query",
            )

    def restriction(
        self, ctx: RequestContext, interaction: str, resource_type: str | None
    ) -> Access:
        """For the search layer: the conditions results must meet (raises 403 when none).

        ``Access.patients`` is the set of patient compartments to restrict the query to
        (``None``: unrestricted). Whatever the search layer renders, it must still pass
        every result and included resource through ``can_see``.
        """
        return self.access(ctx, interaction, resource_type)

    def restrict_search(self, ctx: RequestContext, query: SearchQuery) -> SearchQuery:
        """The search with the token's restrictions in its ``where`` (chains included)."""
        from server.auth.search_restriction import restrict_search

        return restrict_search(self, ctx, query)

    def may_choose_ids(self, ctx: RequestContext, resource_type: str) -> bool:
        """Only an unrestricted writer creates at ids of its choosing (update-as-create);
        see ``AccessPolicy.may_choose_ids``."""
        grants = ctx.grants
        access = grants.access("update", resource_type) if grants is not None else None
        return access is not None and access.unrestricted

    def can_see(self, ctx: RequestContext, interaction: str, version: StoredVersion) -> bool:
        if not is_resource_type(version.resource_type):
            return False  # internal records (clients, keys, chain head) are never served
        grants = ctx.grants
        if grants is None:
            return False
        access = grants.access(interaction, version.resource_type)
        if access is None:
            return False
        if access is UNRESTRICTED or access.unrestricted:
            return True
        if version.body is None:
            return False  # a delete marker shows nothing to check against
        return satisfies(access, version.resource_type, orjson.loads(version.body))
