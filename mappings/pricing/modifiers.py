"""Modifiers an EHR states on a Procedure, for the rules that read them.

FHIR R4 Procedure has no modifier element. Billable reads them from the extension
``https://billable.dev/fhir/StructureDefinition/procedure-modifier`` (``valueCoding`` or
``valueCodeableConcept``, CPT or HCPCS modifier codes such as 80, 62, 59, XS), which is how
an assistant surgeon (80/81/82/AS), co-surgeons (62) or a distinct service (59, X{EPSU})
reaches the claim; Billable never infers those itself.
"""

from __future__ import annotations

from typing import Any

MODIFIER_EXTENSION = "https://billable.dev/fhir/StructureDefinition/procedure-modifier"


def explicit_modifiers(procedure: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for ext in procedure.get("extension") or []:
        if not isinstance(ext, dict) or ext.get("url") != MODIFIER_EXTENSION:
            continue
        codings = []
        if isinstance(ext.get("valueCoding"), dict):
            codings.append(ext["valueCoding"])
        concept = ext.get("valueCodeableConcept")
        if isinstance(concept, dict):
            codings += [c for c in concept.get("coding") or [] if isinstance(c, dict)]
        for coding in codings:
            code = str(coding.get("code") or "").strip().upper()
            if code and code not in out:
                out.append(code)
    return out
