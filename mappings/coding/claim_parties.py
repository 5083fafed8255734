"""Who is on the Claim: the care team, the billing provider and the insurance.

* Care team: the Encounter's practitioner participant (primary performer, attender or
  performer first, else the first practitioner) as the one responsible member.
* Billing provider: ``Encounter.serviceProvider``, else that practitioner; with neither
  the claim has an error.
* Insurance: the patient's Coverages active on the date of service, in ``Coverage.order``;
  with none the claim is self-pay (an information issue).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from mappings.coding.fhir_values import codings as _codings
from mappings.coding.fhir_values import day as _day
from mappings.coding.fhir_values import ref as _ref
from mappings.coding.model import SourceData

SELF_PAY_SYSTEM = "http://terminology.hl7.org/CodeSystem/coverage-selfpay"


class CoderLike(Protocol):
    """What the claim's parties need from the engine (``engine._Coder``)."""

    src: SourceData
    dos: date

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...


def participant(c: CoderLike) -> dict[str, Any] | None:
    """The practitioner who performed the encounter (``Encounter.participant.individual``)."""
    chosen = None
    for p in c.src.encounter.get("participant") or []:
        ref = (p.get("individual") or {}).get("reference") or ""
        if not ref.startswith("Practitioner"):
            continue
        types = {str(cd["code"]) for t in p.get("type") or [] for cd in _codings(t)}
        if types & {"PPRF", "ATND", "PRF"}:
            return dict(p["individual"])
        chosen = chosen or dict(p["individual"])
    return chosen


def care_team_seq(c: CoderLike) -> list[int]:
    """The care team sequences a line refers to (``Claim.item.careTeamSequence``)."""
    return [1] if participant(c) else []


def care_team(c: CoderLike) -> list[dict[str, Any]]:
    """``Claim.careTeam``: the performing practitioner as the primary, responsible member."""
    who = participant(c)
    if who is None:
        return []
    return [
        {
            "sequence": 1,
            "provider": who,
            "responsible": True,
            "role": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/claimcareteamrole",
                        "code": "primary",
                    }
                ]
            },
        }
    ]


def provider(c: CoderLike) -> dict[str, Any]:
    """``Claim.provider``: the service provider, else the performing practitioner."""
    org = c.src.encounter.get("serviceProvider")
    if org and org.get("reference"):
        return dict(org)
    who = participant(c)
    if who is not None:
        return who
    c.problem(
        "error",
        "missing-provider",
        "No billing provider: the Encounter has neither serviceProvider nor a"
        " practitioner participant",
        "Claim.provider",
    )
    return {"display": "unknown provider (missing on the Encounter)"}


def insurance(c: CoderLike) -> list[dict[str, Any]]:
    """``Claim.insurance``: the Coverages active on the date of service, else self-pay."""
    active = []
    for cov in c.src.coverages:
        if cov.get("status") != "active":
            continue
        period = cov.get("period") or {}
        start, end = _day(period.get("start")), _day(period.get("end"))
        if (start and start > c.dos) or (end and end < c.dos):
            continue
        active.append(cov)
    active.sort(key=lambda cov: (cov.get("order") or 999, str(cov.get("id"))))
    if active:
        return [
            {"sequence": n + 1, "focal": n == 0, "coverage": {"reference": _ref(cov)}}
            for n, cov in enumerate(active)
        ]
    c.problem(
        "information",
        "self-pay",
        f"No Coverage of the patient is active on {c.dos}: the claim is self-pay",
        "Claim.insurance[0]",
    )
    return [
        {
            "sequence": 1,
            "focal": True,
            "coverage": {
                "type": "Coverage",
                "identifier": {"system": SELF_PAY_SYSTEM, "value": "pay"},
                "display": "Self-pay (no active coverage on the date of service)",
            },
        }
    ]
