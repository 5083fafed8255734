"""Reading FHIR values the coding rules share: dates, instants, codings, text, references.

Lenient on purpose: the engine codes what it can and reports the rest, so a malformed
value reads as missing (None, empty) instead of raising.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

# SNOMED CT laterality qualifiers (concept ids only) read from bodySite.
LEFT, RIGHT, BOTH = "7771000", "24028007", "51440002"


def day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def instant(text: str | None) -> datetime | None:
    if not text or len(text) <= 10:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")]


def text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    parts = [concept.get("text") or ""] + [c.get("display") or "" for c in codings(concept)]
    return " ".join(parts).lower()


def ref(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def status_code(concept: Any) -> str | None:
    codes = codings(concept)
    return str(codes[0]["code"]) if codes else None
