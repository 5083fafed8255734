"""A Provenance naming the client (and user) for every write, committed with the write.

The store given to the repository is wrapped: each ``commit`` of FHIR resources gains
one Provenance listing the versions written, in the same atomic commit, so a write and
its Provenance exist together or not at all (bundles included). The agent comes from the
request being served, which the security middleware records in ``current_grants``.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from server.auth.scopes import Grants
from server.search.extract import extract_index_values
from server.spec.resources import is_resource_type
from server.storage.port import Store, Write

current_grants: contextvars.ContextVar[Grants | None] = contextvars.ContextVar(
    "billable_current_grants", default=None
)

_NOT_TRACED = frozenset({"Provenance", "AuditEvent"})


def provenance_for(writes: Sequence[Write], grants: Grants) -> Write | None:
    targets = [
        w
        for w in writes
        if w.body is not None
        and is_resource_type(w.resource_type)
        and w.resource_type not in _NOT_TRACED
    ]
    deletes = [w for w in writes if w.body is None and is_resource_type(w.resource_type)]
    if not targets and not deletes:
        return None
    recorded = max(w.last_updated for w in writes)
    created = all(w.expected_version == 0 for w in targets) and not deletes
    activity = "CREATE" if created else ("DELETE" if not targets else "UPDATE")
    agents: list[dict[str, Any]] = [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "code": "author" if grants.fhir_user is None else "enterer",
                    }
                ]
            },
            "who": {
                "identifier": {"system": "urn:billable:oauth-client", "value": grants.client_id}
            },
        }
    ]
    if grants.fhir_user:
        agents.insert(0, {"who": {"reference": grants.fhir_user}})
    rid = str(uuid.uuid4())
    body = {
        "resourceType": "Provenance",
        "id": rid,
        "meta": {"versionId": "1", "lastUpdated": recorded},
        "target": [
            {"reference": f"{w.resource_type}/{w.id}/_history/{w.version}"}
            for w in [*targets, *deletes]
        ],
        "recorded": recorded,
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": activity,
                }
            ]
        },
        "agent": agents,
    }
    return Write(
        "Provenance",
        rid,
        expected_version=0,
        version=1,
        last_updated=recorded,
        body=orjson.dumps(body),
        # Indexed like every resource, so that `Provenance?target=`, `_lastUpdated` and
        # `$export?_since=` find it.
        index=extract_index_values(body, recorded),
    )


class ProvenanceStore:
    """The storage port, plus a Provenance in every commit made on behalf of a client."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.info = inner.info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit(self, writes: Sequence[Write]) -> None:
        grants = current_grants.get()
        extra = provenance_for(writes, grants) if grants is not None else None
        await self._inner.commit([*writes, extra] if extra is not None else writes)
