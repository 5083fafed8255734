"""New or established patient (CPT E/M guidelines, "New and Established Patients").

An established patient received professional services within the past three years from
the same physician, or from another physician of the exact same specialty and
subspecialty who belongs to the same group practice. Billable reads:

* the rendering practitioner: the Encounter participant of type PPRF/ATND/PRF (else the
  first Practitioner);
* its PractitionerRoles: ``specialty`` (NUCC taxonomy codes carry the subspecialty, so an
  exact code match is "same specialty and subspecialty") and ``organization`` (the group,
  together with the Encounter's ``serviceProvider``);
* the patient's finished Encounters of the three years before, with their participants.

When the rendering practitioner's specialty is unknown, the organization decides (an
earlier visit with the same ``serviceProvider``), and an information issue says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

PERFORMER_TYPES = {"PPRF", "ATND", "PRF"}


@dataclass(frozen=True, slots=True)
class Status:
    established: bool
    reason: str
    fallback: bool  # decided by organization because the specialty is unknown


def rendering_practitioner(encounter: dict[str, Any]) -> str | None:
    chosen = None
    for p in encounter.get("participant") or []:
        ref = (p.get("individual") or {}).get("reference") or ""
        if not ref.startswith("Practitioner/"):
            continue
        types = {
            str(c.get("code"))
            for t in p.get("type") or []
            for c in (t.get("coding") or [])
            if isinstance(c, dict)
        }
        if types & PERFORMER_TYPES:
            return ref
        chosen = chosen or ref
    return chosen


def _practitioners(encounter: dict[str, Any]) -> set[str]:
    return {
        (p.get("individual") or {}).get("reference") or ""
        for p in encounter.get("participant") or []
        if ((p.get("individual") or {}).get("reference") or "").startswith("Practitioner/")
    }


def _identifiers(practitioners: list[dict[str, Any]]) -> dict[str, str]:
    """system|value -> Practitioner/id: roles may name their practitioner by identifier
    (Synthea's name the NPI), encounters by reference."""
    out = {}
    for pr in practitioners:
        for ident in pr.get("identifier") or []:
            if ident.get("value"):
                out[f"{ident.get('system') or ''}|{ident['value']}"] = (
                    f"Practitioner/{pr.get('id')}"
                )
    return out


def _roles(
    roles: list[dict[str, Any]], practitioners: list[dict[str, Any]]
) -> dict[str, tuple[set[str], set[str]]]:
    """practitioner reference -> (specialty system|code set, organization reference set)."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    by_identifier = _identifiers(practitioners)
    for role in roles:
        ref = role.get("practitioner") or {}
        who = ref.get("reference") or ""
        ident = ref.get("identifier") or {}
        if not who and ident.get("value"):
            who = by_identifier.get(f"{ident.get('system') or ''}|{ident['value']}", "")
        if not who or role.get("active") is False:
            continue
        specialties, orgs = out.setdefault(who, (set(), set()))
        for concept in role.get("specialty") or []:
            for c in concept.get("coding") or []:
                if isinstance(c, dict) and c.get("code"):
                    specialties.add(f"{c.get('system') or ''}|{c['code']}")
        org = (role.get("organization") or {}).get("reference")
        if org:
            orgs.add(org)
    return out


def _three_years_before(dos: date) -> date:
    try:
        return dos.replace(year=dos.year - 3)
    except ValueError:  # 29 February
        return dos.replace(year=dos.year - 3, day=28)


def _start(encounter: dict[str, Any]) -> str:
    return str((encounter.get("period") or {}).get("start") or "")


def patient_status(
    encounter: dict[str, Any],
    prior: list[dict[str, Any]],
    roles: list[dict[str, Any]],
    dos: date,
    practitioners: list[dict[str, Any]] | None = None,
) -> Status:
    since = _three_years_before(dos).isoformat()
    this_start = _start(encounter)
    this_id = encounter.get("id")
    window = []
    for p in prior:
        start = _start(p)
        if since <= start[:10] and start < this_start and p.get("id") != this_id:
            if p.get("status") == "finished":
                window.append(p)
    if not window:
        return Status(False, "no professional service in the past three years", False)
    org = (encounter.get("serviceProvider") or {}).get("reference")
    rendering = rendering_practitioner(encounter)
    by_practitioner = _roles(roles, practitioners or [])
    if rendering is not None:
        for p in window:
            if rendering in _practitioners(p):
                when = _start(p)[:10]
                return Status(True, f"seen by the same physician on {when}", False)
    specialties, groups = by_practitioner.get(rendering or "", (set(), set()))
    if rendering is not None and specialties:
        groups = groups | ({org} if org else set())
        for p in window:
            p_org = (p.get("serviceProvider") or {}).get("reference")
            for other in _practitioners(p):
                o_spec, o_orgs = by_practitioner.get(other, (set(), set()))
                same_group = bool((o_orgs | ({p_org} if p_org else set())) & groups)
                if o_spec & specialties and same_group:
                    return Status(
                        True,
                        f"seen on {_start(p)[:10]} by {other}, same specialty and group",
                        False,
                    )
        return Status(False, "no professional service by the same physician or specialty", False)
    if org:
        for p in window:
            if (p.get("serviceProvider") or {}).get("reference") == org:
                return Status(True, f"seen at {org} on {_start(p)[:10]}", True)
    return Status(False, "no earlier visit at the organization", True)
