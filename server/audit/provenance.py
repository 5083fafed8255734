"""A Provenance naming the client (and user) for every write, committed with the write.

The repository's one write path (``server.repository.base``) adds the Provenance this
module builds to every commit of FHIR resources, in the same atomic commit, so a write
and its Provenance exist together or not at all (bundles included). The agent comes
from the ``RequestContext`` the caller passed explicitly: the validated token, never
anything the client wrote. Clients cannot write Provenance themselves (the policy makes
it read-only through the API, like AuditEvent).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from server.auth.scopes import Grants
from server.search.extract import extract_index_values
from server.spec.resources import is_resource_type
from server.storage.port import Write

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
