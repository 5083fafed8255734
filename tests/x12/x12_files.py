"""Hand-built inbound X12 files shaped like the implementation guides' examples: 835
remittances (005010X221A1), 999s (005010X231A1) and 277CAs (005010X214), each checked
by pyx12 in the tests that use them."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from server.x12.segments import render

PAYER_SENDER = "ACMEPAYER"
RECEIVER = "BILLABLETEST"


@dataclass
class Line:
    code: str
    charge: Decimal
    paid: Decimal
    adjustments: list[tuple[str, str, Decimal]] = field(default_factory=list)
    sequence: int | None = None
    remarks: list[str] = field(default_factory=list)
    allowed: Decimal | None = None


@dataclass
class Clp:
    pcn: str
    status: str
    charge: Decimal
    paid: Decimal
    patient: Decimal
    icn: str
    lines: list[Line] = field(default_factory=list)
    adjustments: list[tuple[str, str, Decimal]] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


def _isa(sender: str, control: int, functional: str, version: str) -> list[str]:
    return [
        f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*{RECEIVER:<15}*260315*1200*^*00501"
        f"*{control:09d}*0*T*:",
        f"GS*{functional}*{sender}*{RECEIVER}*20260315*1200*{control}*X*{version}",
    ]


def _close(segments: list[str], control: int) -> str:
    body = segments[2:]
    st = body[0].split("*")[2]
    segments.append(f"SE*{len(body) + 1}*{st}")
    segments += [f"GE*1*{control}", f"IEA*1*{control:09d}"]
    return render(segments)


def _cas(group: str, reason: str, amount: Decimal) -> str:
    return f"CAS*{group}*{reason}*{amount}"


def remit(
    claims: list[Clp],
    trace: str = "CHK10001",
    control: int = 101,
    plb: list[tuple[str, str, Decimal]] | None = None,
) -> str:
    """An 835 paying ``claims`` by check ``trace``; provider-level adjustments ``plb``
    (reason, reference, amount) reduce the payment."""
    total = sum((c.paid for c in claims), Decimal(0)) - sum(
        (a for _, _, a in plb or []), Decimal(0)
    )
    s = _isa(PAYER_SENDER, control, "HP", "005010X221A1")
    s += [
        "ST*835*0001",
        f"BPR*I*{total}*C*CHK************20260315",
        f"TRN*1*{trace}*1123456789",
        "DTM*405*20260314",
        "N1*PR*ACME HEALTH",
        "N3*1 PAYER WAY",
        "N4*HARTFORD*CT*06101",
        "PER*BL*PROVIDER SERVICES*TE*8005550100",
        "N1*PE*TEST PRACTICE*XX*1234567893",
        "LX*1",
    ]
    for c in claims:
        s.append(f"CLP*{c.pcn}*{c.status}*{c.charge}*{c.paid}*{c.patient}*12*{c.icn}*11*1")
        s += [_cas(*a) for a in c.adjustments]
        s.append("NM1*QC*1*GOLD*PATIENT****MI*MEM0")
        if c.remarks:
            s.append("MOA***" + "*".join(c.remarks))
        for line in c.lines:
            s.append(f"SVC*HC:{line.code}*{line.charge}*{line.paid}**1")
            s.append("DTM*472*20260302")
            s += [_cas(*a) for a in line.adjustments]
            if line.sequence is not None:
                s.append(f"REF*6R*{line.sequence}")
            if line.allowed is not None:
                s.append(f"AMT*B6*{line.allowed}")
            s += [f"LQ*HE*{r}" for r in line.remarks]
    if plb:
        parts = "*".join(f"{reason}:{ref}*{amount}" for reason, ref, amount in plb)
        s.append(f"PLB*1234567893*20261231*{parts}")
    return _close(s, control)


def ack_999(group_control: int, verdicts: list[tuple[str, str]], control: int = 501) -> str:
    """A 999 answering the 837 group ``group_control``: per (ST02, IK501) one AK2."""
    s = _isa("CLEARINGHOUSE", control, "FA", "005010X231A1")
    s += ["ST*999*0001*005010X231A1", f"AK1*HC*{group_control}*005010X222A1"]
    accepted = 0
    for st, verdict in verdicts:
        s.append(f"AK2*837*{st}*005010X222A1")
        if verdict == "R":
            s += ["IK3*NM1*17*2010*8", "IK4*9*67*7*BADID"]
            s.append("IK5*R*5")
        else:
            accepted += 1
            s.append(f"IK5*{verdict}")
    group = "A" if accepted == len(verdicts) else ("R" if accepted == 0 else "P")
    s.append(f"AK9*{group}*{len(verdicts)}*{len(verdicts)}*{accepted}")
    return _close(s, control)


def ack_277ca(claims: list[tuple[str, str, str]], control: int = 601) -> str:
    """A 277CA with one patient loop per (pcn, STC01 category:status, message)."""
    s = _isa("CLEARINGHOUSE", control, "HN", "005010X214")
    s += [
        "ST*277*0001*005010X214",
        "BHT*0085*08*277CA1*20260311*0900*TH",
        "HL*1**20*1",
        "NM1*PR*2*ACME HEALTH*****PI*ACME1",
        "TRN*1*277CA1",
        "DTP*050*D8*20260311",
        "DTP*009*D8*20260311",
        "HL*2*1*21*1",
        "NM1*41*2*BILLABLE*****46*BILLABLE",
        "TRN*2*BATCH1",
        "STC*A1:19:PR*20260311*WQ*110",
        "HL*3*2*19*1",
        "NM1*85*2*TEST PRACTICE*****XX*1234567893",
        "TRN*1*0",
        "STC*A1:19:PR**WQ*110",
    ]
    hl = 3
    for pcn, status, message in claims:
        hl += 1
        s += [
            f"HL*{hl}*3*PT",
            "NM1*QC*1*GOLD*PATIENT****MI*MEM0",
            f"TRN*2*{pcn}",
            f"STC*{status}:PR*20260311*{'WQ' if status[:2] in ('A1', 'A2') else 'U'}*110"
            + (f"********{message}" if message else ""),
            f"REF*1K*ICN-{pcn[:10]}",
            "DTP*472*D8*20260302",
        ]
    return _close(s, control)
