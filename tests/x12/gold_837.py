"""The coding gold set (tests/coding) as 837 input: each case coded in process, with the
parties an 837 needs and the gold fixtures do not carry (NPIs, addresses, member and
payer ids) added as an EHR and a practice-management system would hold them."""

from __future__ import annotations

import copy
from typing import Any

from mappings.coding.engine import code_encounter
from mappings.coding.model import SourceData
from server.x12.elements import NPI_SYSTEM
from server.x12.gather import ClaimParts
from terminology.service import get_service
from tests.coding.cases import CASES as BASE_CASES
from tests.coding.cases import Case
from tests.coding.cases_cms import CASES_CMS
from tests.coding.cases_coder import CODER_CASES
from tests.coding.gold import resources, slug, source_lists

CASES = BASE_CASES + CASES_CMS + CODER_CASES
# Valid NPIs (check digit per the CMS rule); synthetic.
PRACTICE_NPI = "1234567893"
DOCTOR_NPI = "1245319599"

ORGANIZATION: dict[str, Any] = {
    "resourceType": "Organization",
    "id": "org1",
    "name": "Gold Street Clinic",
    "identifier": [
        {"system": NPI_SYSTEM, "value": PRACTICE_NPI},
        {"system": "urn:oid:2.16.840.1.113883.4.4", "value": "04-1234567"},
    ],
    "address": [
        {"line": ["100 Gold Street"], "city": "Boston", "state": "MA", "postalCode": "02110-1234"}
    ],
}
PRACTITIONER: dict[str, Any] = {
    "resourceType": "Practitioner",
    "id": "dr1",
    "identifier": [{"system": NPI_SYSTEM, "value": DOCTOR_NPI}],
    "name": [{"family": "Coder", "given": ["Goldie"]}],
}


def with_x12_parties(r: dict[str, Any]) -> dict[str, Any]:
    """The case's resources with an address on the patient, member ids on the Coverages
    and payer ids on their payors."""
    r = copy.deepcopy(r)
    if not r["coverages"]:  # a self-pay case: insured here, so that it makes an 837
        r["coverages"] = [
            {
                "resourceType": "Coverage",
                "id": f"{r['patient']['id']}-x12cov",
                "status": "active",
                "order": 1,
                "period": {"start": "2020-01-01"},
                "beneficiary": {"reference": f"Patient/{r['patient']['id']}"},
                "payor": [{"display": "Gold Payer"}],
            }
        ]
    r["patient"]["address"] = [
        {"line": ["1 Patient Way"], "city": "Boston", "state": "MA", "postalCode": "02111"}
    ]
    for n, cov in enumerate(r["coverages"]):
        cov["subscriberId"] = f"MEM{n}{cov['id'][-6:]}".replace("-", "")
        for payor in cov.get("payor") or []:
            payor.setdefault("identifier", {"value": f"PAYER{n + 1}"})
    return r


def coded(case: Case) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resources with parties, the engine's Claim with an id)."""
    r = with_x12_parties(resources(case))
    source = SourceData(
        r["encounter"],
        r["patient"],
        r["conditions"],
        r["procedures"],
        r["coverages"],
        established=case.established,
        **source_lists(r),  # type: ignore[arg-type]
    )
    claim = code_encounter(source, get_service()).claim
    claim["id"] = f"{slug(case)}-c"
    return r, claim


def parts_of(r: dict[str, Any], claim: dict[str, Any]) -> ClaimParts:
    """What ``gather`` would read from the store for this claim."""
    coverages = {f"Coverage/{c['id']}": c for c in r["coverages"]}
    focal = next((i for i in claim["insurance"] if i.get("focal")), claim["insurance"][0])
    coverage = coverages.get(focal["coverage"].get("reference", ""))
    return ClaimParts(
        claim_id=claim["id"],
        claim_version=1,
        claim=claim,
        patient=r["patient"],
        coverage=coverage,
        subscriber=r["patient"] if coverage is not None else None,
        payer=None,
        provider=ORGANIZATION,
        care_team={1: PRACTITIONER} if claim.get("careTeam") else {},
        encounter=r["encounter"],
    )


def billable(claim: dict[str, Any]) -> bool:
    """A clean claim with insurance: what a batch sends (self-pay and drafts are not)."""
    insured = any("reference" in i["coverage"] for i in claim.get("insurance") or [])
    return claim.get("status") == "active" and insured
