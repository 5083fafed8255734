"""What the patient picker shows for each patient a user may open: name and birth date.

Read through the repository, as the picker's own system identity (the user has no token
yet at this point of the flow), and only for the patients the user's record lists.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.errors import FhirError
from server.repository import Repository, system_context


def patient_label(patient: dict[str, Any]) -> str:
    """``Jessie Foster Glover, born 2009-03-23`` (official name first, else the first)."""
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    text = name.get("text") or " ".join(
        [*(name.get("given") or []), *([name["family"]] if name.get("family") else [])]
    )
    born = patient.get("birthDate")
    text = str(text).strip() or "(no name recorded)"
    return f"{text}, born {born}" if born else f"{text}, birth date not recorded"


async def patient_labels(repo: Repository, patient_ids: list[str]) -> dict[str, str]:
    """Label per id; a patient that is not stored (yet) gets no label (the id shows)."""
    ctx = system_context("billable-patient-picker")
    labels: dict[str, str] = {}
    for pid in patient_ids:
        try:
            version = await repo.read(ctx, "Patient", pid)
        except FhirError:
            continue
        if version.body is not None:
            labels[pid] = patient_label(orjson.loads(version.body))
    return labels
