"""Parsing an 835 (005010X221A1) into remittances, claim payments and service payments.

The file has been validated by pyx12 (``reader.validate``) first, so the segments here
are in guide order; this walks them once, keeping the current claim (CLP) and service
line (SVC) so that each CAS, LQ, AMT, REF and DTM lands where the guide puts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from server.errors import FhirError
from server.x12.reader import Seg


def money(text: str) -> Decimal:
    try:
        return Decimal(text) if text else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def iso_date(d8: str) -> str | None:
    return f"{d8[:4]}-{d8[4:6]}-{d8[6:8]}" if len(d8) == 8 and d8.isdigit() else None


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One CAS triple: group (CO, PR, OI, PI, CR), CARC reason, amount, quantity."""

    group: str
    reason: str
    amount: Decimal
    quantity: Decimal | None = None


def adjustments(seg: Seg) -> list[Adjustment]:
    out = []
    group = seg["CAS01"]
    for first in range(2, 20, 3):
        reason = seg.element(first)
        if not reason:
            continue
        qty = seg.element(first + 2)
        out.append(
            Adjustment(group, reason, money(seg.element(first + 1)), money(qty) if qty else None)
        )
    return out


@dataclass(slots=True)
class ServicePayment:
    qualifier: str
    code: str
    modifiers: list[str]
    charge: Decimal
    paid: Decimal
    revenue: str | None
    units: Decimal | None
    line_ref: str | None = None  # REF*6R: the line item control number the 837 sent
    date: str | None = None
    allowed: Decimal | None = None
    adjustments: list[Adjustment] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ClaimPayment:
    pcn: str  # CLP01, the patient control number of the 837
    status: str  # CLP02
    charge: Decimal
    paid: Decimal
    patient_responsibility: Decimal
    payer_icn: str  # CLP07
    position: int
    patient_name: str | None = None
    adjustments: list[Adjustment] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    services: list[ServicePayment] = field(default_factory=list)
    statement_start: str | None = None

    @property
    def reversal(self) -> bool:
        return self.status == "22"


@dataclass(slots=True)
class ProviderAdjustment:
    reason: str
    reference: str
    amount: Decimal  # positive: money the payer keeps back


@dataclass(slots=True)
class Remittance:
    """One 835 transaction set: one payment (BPR/TRN) and the claims it pays."""

    control: str
    handling: str = ""  # BPR01: I remittance with payment, H notification only ...
    total: Decimal = Decimal(0)
    credit: bool = True  # BPR03 C (to the provider) or D
    method: str = ""  # BPR04: CHK, ACH, BOP, FWT, NON
    payment_date: str | None = None  # BPR16
    trace: str = ""  # TRN02: check or EFT trace number
    payer_id: str = ""  # TRN03 (or REF*2U)
    payer_name: str = ""
    payee_name: str = ""
    payee_npi: str | None = None
    production_date: str | None = None
    claims: list[ClaimPayment] = field(default_factory=list)
    provider_adjustments: list[ProviderAdjustment] = field(default_factory=list)


def parse_835(segs: list[Seg]) -> list[Remittance]:
    out: list[Remittance] = []
    rem: Remittance | None = None
    claim: ClaimPayment | None = None
    svc: ServicePayment | None = None
    entity = ""
    for seg in segs:
        sid = seg.id
        if sid == "ST":
            if seg["ST01"] != "835":
                raise FhirError.of(
                    400,
                    "not-supported",
                    f"segment ST #{seg.position}: transaction set"
                    f" {seg['ST01']!r} is not an 835 (element ST01)",
                    ("ST01",),
                )
            rem, claim, svc, entity = Remittance(seg["ST02"]), None, None, ""
            out.append(rem)
            continue
        if rem is None:
            continue
        if sid == "BPR":
            rem.handling, rem.total = seg["BPR01"], money(seg["BPR02"])
            rem.credit, rem.method = seg["BPR03"] != "D", seg["BPR04"]
            rem.payment_date = iso_date(seg["BPR16"])
        elif sid == "TRN":
            rem.trace, rem.payer_id = seg["TRN02"], rem.payer_id or seg["TRN03"]
        elif sid == "DTM" and claim is None and seg["DTM01"] == "405":
            rem.production_date = iso_date(seg["DTM02"])
        elif sid == "N1":
            entity = seg["N101"]
            if entity == "PR":
                rem.payer_name = seg["N102"]
            elif entity == "PE":
                rem.payee_name = seg["N102"]
                if seg["N103"] == "XX":
                    rem.payee_npi = seg["N104"]
        elif sid == "REF" and claim is None and entity == "PR" and seg["REF01"] == "2U":
            rem.payer_id = seg["REF02"]
        elif sid == "CLP":
            claim = ClaimPayment(
                pcn=seg["CLP01"],
                status=seg["CLP02"],
                charge=money(seg["CLP03"]),
                paid=money(seg["CLP04"]),
                patient_responsibility=money(seg["CLP05"]),
                payer_icn=seg["CLP07"],
                position=seg.position,
            )
            rem.claims.append(claim)
            svc = None
        elif sid == "CAS" and claim is not None:
            (svc.adjustments if svc is not None else claim.adjustments).extend(adjustments(seg))
        elif sid == "NM1" and claim is not None and seg["NM101"] == "QC":
            claim.patient_name = " ".join(p for p in (seg["NM104"], seg["NM103"]) if p) or None
        elif sid == "MOA" and claim is not None:
            claim.remarks += [seg.element(n) for n in range(3, 8) if seg.element(n)]
        elif sid == "MIA" and claim is not None:
            claim.remarks += [seg.element(n) for n in (5, 20, 21, 22, 23) if seg.element(n)]
        elif sid == "DTM" and claim is not None:
            if svc is not None and seg["DTM01"] in ("472", "150"):
                svc.date = iso_date(seg["DTM02"])
            elif svc is None and seg["DTM01"] == "232":
                claim.statement_start = iso_date(seg["DTM02"])
        elif sid == "SVC" and claim is not None:
            units = seg["SVC05"]
            svc = ServicePayment(
                qualifier=seg["SVC01-1"],
                code=seg["SVC01-2"],
                modifiers=[seg[f"SVC01-{n}"] for n in range(3, 7) if seg[f"SVC01-{n}"]],
                charge=money(seg["SVC02"]),
                paid=money(seg["SVC03"]),
                revenue=seg["SVC04"] or None,
                units=money(units) if units else None,
            )
            claim.services.append(svc)
        elif sid == "REF" and svc is not None and seg["REF01"] == "6R":
            svc.line_ref = seg["REF02"]
        elif sid == "AMT" and svc is not None and seg["AMT01"] == "B6":
            svc.allowed = money(seg["AMT02"])
        elif sid == "LQ" and svc is not None and seg["LQ01"] == "HE":
            svc.remarks.append(seg["LQ02"])
        elif sid == "PLB":
            for first in range(3, 14, 2):
                reason = seg[f"PLB{first:02d}-1"]
                if reason:
                    rem.provider_adjustments.append(
                        ProviderAdjustment(
                            reason, seg[f"PLB{first:02d}-2"], money(seg.element(first + 1))
                        )
                    )
        elif sid == "SE":
            rem, claim, svc = None, None, None
    return out
