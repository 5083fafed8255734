"""What a review Task carries so that the coders' queue can be searched by it.

The queue is a FHIR search on Task (``Task?code=review-claim&status=requested,...``);
filters by payer, edit and date of service must be search parameters of Task (R4), or
a queue of 10,000 Tasks would have to be read whole to filter it. The coding service
writes these facts on every review Task it creates or updates:

* ``Task.encounter``: the Encounter coded (``Task?encounter.date=ge2026-01-01``, the
  date of service, through a chain);
* ``Task.groupIdentifier``: the payer the claim is billed to (``system`` PAYER_GROUP,
  ``value`` the payer Organization's id, or ``self-pay``): claims grouped per payer the
  way a billing office batches them (``Task?group-identifier=...``);
* ``Task.businessStatus``: one coding per error edit the claim is waiting on (system
  ``EDIT_SYSTEM``), so ``Task?business-status=...|ncci-review`` finds claims held by an
  edit.
"""

from __future__ import annotations

from typing import Any

from mappings.coding.model import EDIT_SYSTEM, CodingResult

PAYER_GROUP = "https://billable.dev/fhir/claim-payer"
SELF_PAY = "self-pay"


def claim_payer(claim: dict[str, Any], coverages: list[dict[str, Any]]) -> str:
    """The id of the payer Organization of the claim's focal Coverage, or ``self-pay``."""
    insurance = claim.get("insurance") or []
    focal = next((i for i in insurance if i.get("focal")), insurance[0] if insurance else {})
    reference = str((focal.get("coverage") or {}).get("reference") or "")
    coverage = next((c for c in coverages if f"Coverage/{c.get('id')}" == reference), None)
    if coverage is None:
        return SELF_PAY
    payor = str(((coverage.get("payor") or [{}])[0]).get("reference") or "")
    return payor.split("/", 1)[1] if payor.startswith("Organization/") else SELF_PAY


def add_queue_facts(
    task: dict[str, Any],
    claim: dict[str, Any],
    encounter_id: str,
    coverages: list[dict[str, Any]],
    result: CodingResult,
) -> None:
    """Write the searchable queue facts on an open review ``task`` (in place)."""
    task["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    task["groupIdentifier"] = {"system": PAYER_GROUP, "value": claim_payer(claim, coverages)}
    edits = list(dict.fromkeys(p.code for p in result.problems if p.severity == "error"))
    task["businessStatus"] = {
        "coding": [{"system": EDIT_SYSTEM, "code": code} for code in edits],
        "text": "Waiting on: " + ", ".join(edits) if edits else "Waiting on a coder",
    }
    task.pop("statusReason", None)  # a regenerated claim is no longer waiting on a query
