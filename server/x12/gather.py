"""A Claim and everything an 837 needs from it, read through the repository.

The 837 names people and organizations the Claim only refers to: the patient, the
focal Coverage with its subscriber and payer, the billing provider, the care team, the
Encounter (institutional admission data) and the facility. Each is read with the
caller's ``RequestContext``, so the policy decides what an 837 may reveal; a reference
that cannot be read is simply absent and the builder reports the element it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from server.errors import FhirError
from server.repository import Repository, RequestContext

CLAIM_FOR_ENCOUNTER = "https://billable.dev/fhir/claim-for-encounter"


@dataclass(slots=True)
class ClaimParts:
    claim_id: str
    claim_version: int
    claim: dict[str, Any]
    patient: dict[str, Any] | None = None
    coverage: dict[str, Any] | None = None
    subscriber: dict[str, Any] | None = None  # Patient or RelatedPerson
    payer: dict[str, Any] | None = None  # Organization (None: only the payor reference)
    provider: dict[str, Any] | None = None
    care_team: dict[int, dict[str, Any]] = field(default_factory=dict)  # sequence -> Practitioner
    encounter: dict[str, Any] | None = None
    facility: dict[str, Any] | None = None

    @property
    def payor_reference(self) -> dict[str, Any]:
        payors = (self.coverage or {}).get("payor") or [{}]
        return dict(payors[0])

    @property
    def subscriber_is_patient(self) -> bool:
        rel = [
            c.get("code")
            for c in ((self.coverage or {}).get("relationship") or {}).get("coding") or []
        ]
        if rel and "self" not in rel:
            return False
        sub_ref = ((self.coverage or {}).get("subscriber") or {}).get("reference")
        pat_ref = (self.claim.get("patient") or {}).get("reference")
        return sub_ref is None or sub_ref == pat_ref or "self" in rel


def _id_of(reference: str | None, rtype: str | None = None) -> tuple[str, str] | None:
    if not reference or reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("/")
    if len(parts) < 2 or (rtype is not None and parts[-2] != rtype):
        return None
    return parts[-2], parts[-1]


async def read_reference(
    repo: Repository, ctx: RequestContext, ref: dict[str, Any] | None, rtype: str | None = None
) -> dict[str, Any] | None:
    """The resource a Reference points to, or None when it cannot be read."""
    target = _id_of((ref or {}).get("reference"), rtype)
    if target is None:
        return None
    try:
        version = await repo.read(ctx, target[0], target[1])
    except FhirError:
        return None
    if version.body is None:
        return None
    body: dict[str, Any] = orjson.loads(version.body)
    return body


async def gather(repo: Repository, ctx: RequestContext, claim_id: str) -> ClaimParts:
    """Read ``Claim/claim_id`` (404/410 as a read would) and what it refers to."""
    version = await repo.read(ctx, "Claim", claim_id)
    assert version.body is not None
    claim: dict[str, Any] = orjson.loads(version.body)
    parts = ClaimParts(claim_id, version.version, claim)
    parts.patient = await read_reference(repo, ctx, claim.get("patient"), "Patient")
    insurance = claim.get("insurance") or []
    focal = next((i for i in insurance if i.get("focal")), insurance[0] if insurance else {})
    parts.coverage = await read_reference(repo, ctx, focal.get("coverage"), "Coverage")
    if parts.coverage is not None:
        if parts.subscriber_is_patient:
            parts.subscriber = parts.patient
        else:
            parts.subscriber = await read_reference(repo, ctx, parts.coverage.get("subscriber"))
        parts.payer = await read_reference(repo, ctx, parts.payor_reference, "Organization")
    parts.provider = await read_reference(repo, ctx, claim.get("provider"))
    for member in claim.get("careTeam") or []:
        who = await read_reference(repo, ctx, member.get("provider"), "Practitioner")
        if who is not None:
            parts.care_team[int(member.get("sequence") or 0)] = who
    encounter_ref = next(
        (e for item in claim.get("item") or [] for e in item.get("encounter") or []), None
    )
    if encounter_ref is None:
        for ident in claim.get("identifier") or []:
            if ident.get("system") == CLAIM_FOR_ENCOUNTER and ident.get("value"):
                encounter_ref = {"reference": f"Encounter/{ident['value']}"}
    parts.encounter = await read_reference(repo, ctx, encounter_ref, "Encounter")
    parts.facility = await read_reference(repo, ctx, claim.get("facility"), "Location")
    return parts
