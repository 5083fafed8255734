"""Who is asking (``RequestContext``) and what decides what they may do (``AccessPolicy``).

The repository is handed a ``RequestContext`` explicitly by every caller, HTTP handler
and internal engine alike; nothing about the caller travels in a context variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from server.spec.resources import is_resource_type
from server.storage.port import SearchQuery, StoredVersion

if TYPE_CHECKING:
    from server.auth.scopes import Grants


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, from where: what access control, Provenance and audit need to know."""

    base_url: str
    client_id: str | None = None
    user: str | None = None
    remote_addr: str | None = None
    # The validated access token (``server.auth.scopes.Grants``); None with --auth off.
    grants: Grants | None = None
    # One of Billable's own engines (``system_context``), not a client's request: it may
    # write what clients may only read (Provenance), and its writes are audited by the
    # repository itself (a client's requests are audited by the security middleware).
    system: bool = False


class AccessPolicy(Protocol):
    """Decides whether ``ctx`` may perform ``interaction`` on ``resource_type``.

    ``authorize`` is asked before every interaction, and again with the resource a write
    would store; ``can_see`` is asked for every version before it leaves the repository
    (read, vread, history, search results, includes, conditional matches).
    """

    def authorize(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str | None,
        resource: dict[str, Any] | None = None,
    ) -> None:
        """Raise ``FhirError`` (403) to refuse."""

    def can_see(self, ctx: RequestContext, interaction: str, version: StoredVersion) -> bool:
        """Whether ``version`` may be shown; hidden versions look like missing ones."""

    def restrict_search(self, ctx: RequestContext, query: SearchQuery) -> SearchQuery:
        """``query`` limited to what ``ctx`` may see (patient compartment, scope queries)."""

    def may_choose_ids(self, ctx: RequestContext, resource_type: str) -> bool:
        """Whether ``ctx`` may create ``resource_type`` at an id of its choosing (PUT).

        Ids are one namespace shared with resources the caller may not see, so whether an
        id is free is itself information about them: a restricted caller only updates
        what it can see and creates with server-assigned ids.
        """


def system_context(client_id: str, base_url: str = "urn:billable:system") -> RequestContext:
    """The identity of one of Billable's own engines (coding, adjudication, terminology
    publisher): a system client with every scope, so its work is authorised, traced and
    audited like any other client's, under its own name."""
    from server.auth.scopes import Grants

    grants = Grants.from_scope_string("system/*.cruds", client_id)
    return RequestContext(base_url=base_url, client_id=client_id, grants=grants, system=True)


class OpenAccess:
    """The policy of ``--auth off``: everything is allowed (loopback development only)."""

    def authorize(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str | None,
        resource: dict[str, Any] | None = None,
    ) -> None:
        return None

    def can_see(self, ctx: RequestContext, interaction: str, version: StoredVersion) -> bool:
        # Internal records (OAuth clients, signing keys) share the store; never serve them.
        return is_resource_type(version.resource_type)

    def restrict_search(self, ctx: RequestContext, query: SearchQuery) -> SearchQuery:
        return query

    def may_choose_ids(self, ctx: RequestContext, resource_type: str) -> bool:
        return True
