"""Values an 837 needs from FHIR resources, and the report of what is missing.

Each getter answers a value or ``None``; ``Report.need`` records a missing required
element with its loop, segment and element (``2010AA NM109``) and the FHIRPath of the
resource element that would supply it, so a biller knows exactly what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from server.errors import FhirError, Issue

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
EIN_SYSTEM = "urn:oid:2.16.840.1.113883.4.4"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Missing:
    loop: str
    segment: str
    element: str
    what: str
    expression: str  # where in FHIR the value would come from

    def message(self) -> str:
        return f"{self.loop} {self.segment}{self.element} ({self.what}): {self.expression}"


@dataclass(slots=True)
class Report:
    """What one claim lacks for a valid 837 (empty: it can be sent)."""

    claim_id: str
    missing: list[Missing] = field(default_factory=list)
    # Explicit fallbacks taken (a default code where the resource had none), for the biller.
    notes: list[str] = field(default_factory=list)

    def need(
        self, value: T | None, loop: str, segment: str, element: str, what: str, where: str
    ) -> T | None:
        if value is None or value == "":
            self.missing.append(Missing(loop, segment, element, what, where))
        return value

    def error(self) -> FhirError:
        issues = [
            Issue(
                "error",
                "required",
                f"Claim/{self.claim_id} cannot make a valid 837: missing {m.message()}",
                (m.expression.split(" ")[0],),
            )
            for m in self.missing
        ]
        return FhirError(422, issues)


def identifier(resource: dict[str, Any] | None, system: str) -> str | None:
    for ident in (resource or {}).get("identifier") or []:
        if ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def tax_id(resource: dict[str, Any] | None) -> str | None:
    """An EIN: the EIN system, or an identifier typed TAX."""
    found = identifier(resource, EIN_SYSTEM)
    if found:
        return found.replace("-", "")
    for ident in (resource or {}).get("identifier") or []:
        codes = {c.get("code") for c in (ident.get("type") or {}).get("coding") or []}
        if "TAX" in codes and ident.get("value"):
            return str(ident["value"]).replace("-", "")
    return None


def npi_is_valid(npi: str) -> bool:
    """Ten digits whose last is the Luhn check digit of ``80840`` + the first nine (CMS
    NPI check digit rule)."""
    if len(npi) != 10 or not npi.isdigit():
        return False
    digits = [int(d) for d in "80840" + npi[:9]]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


def human_name(resource: dict[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """(last, first, middle) of the official (or first) HumanName."""
    names = (resource or {}).get("name") or []
    if not isinstance(names, list) or not names:
        return None, None, None
    name = next((n for n in names if n.get("use") == "official"), names[0])
    given = name.get("given") or []
    return (
        name.get("family"),
        given[0] if given else None,
        given[1] if len(given) > 1 else None,
    )


@dataclass(frozen=True, slots=True)
class Address:
    line1: str | None
    line2: str | None
    city: str | None
    state: str | None
    zip: str | None


def address(resource: dict[str, Any] | None) -> Address:
    addresses = (resource or {}).get("address") or []
    if isinstance(addresses, dict):
        addresses = [addresses]
    if not addresses:
        return Address(None, None, None, None, None)
    a = next((x for x in addresses if x.get("use") in ("work", "billing")), None) or next(
        (x for x in addresses if x.get("use") == "home"), addresses[0]
    )
    lines = a.get("line") or []
    postal = "".join(ch for ch in str(a.get("postalCode") or "") if ch.isdigit()) or None
    return Address(
        lines[0] if lines else None,
        lines[1] if len(lines) > 1 else None,
        a.get("city"),
        a.get("state"),
        postal,
    )


def d8(text: Any) -> str | None:
    """CCYYMMDD of a FHIR date or dateTime."""
    if not text:
        return None
    day = str(text)[:10]
    return day.replace("-", "") if len(day) == 10 else None


def amount(value: Any) -> str:
    """An X12 monetary amount (R): at most two decimals, no trailing zeros."""
    d = Decimal(str(value or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    text = f"{d:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def quantity(value: Any) -> str:
    d = Decimal(str(value or 0))
    text = f"{d.normalize():f}"
    return text


def codings(concept: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((concept or {}).get("coding") or [])


def code_in(concept: dict[str, Any] | None, system: str | None = None) -> str | None:
    for c in codings(concept):
        if (system is None or c.get("system") == system) and c.get("code"):
            return str(c["code"])
    return None
