"""The envelope: ISA/IEA around one GS/GE functional group of ST/SE transaction sets.

One interchange carries one functional group (GS06 = ISA13) of one or more transaction
sets numbered 0001, 0002, ... (ST02 is unique within its group). ISA's fixed-width
fields are padded as the standard requires; SE01 counts the segments from ST to SE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.x12.segments import (
    COMPONENT_SEPARATOR,
    REPETITION_SEPARATOR,
    Segments,
    clean,
    render,
)


@dataclass(frozen=True, slots=True)
class Envelope:
    sender_id: str
    receiver_id: str
    usage: str  # ISA15: T or P
    control_number: int
    moment: datetime
    functional_id: str = "HC"  # GS01: HC health care claim
    version: str = "005010X222A1"  # GS08

    def wrap(self, transaction_sets: list[Segments], newlines: bool = True) -> str:
        """The interchange text around ``transaction_sets`` (each from BHT onwards,
        without ST/SE: the envelope numbers them)."""
        ctl = f"{self.control_number:09d}"
        out = Segments()
        out.add(
            "ISA",
            "00",
            " " * 10,
            "00",
            " " * 10,
            "ZZ",
            clean(self.sender_id, 15).ljust(15),
            "ZZ",
            clean(self.receiver_id, 15).ljust(15),
            self.moment.strftime("%y%m%d"),
            self.moment.strftime("%H%M"),
            REPETITION_SEPARATOR,
            "00501",
            ctl,
            "0",
            self.usage,
            COMPONENT_SEPARATOR,
        )
        out.add(
            "GS",
            self.functional_id,
            clean(self.sender_id, 15),
            clean(self.receiver_id, 15),
            self.moment.strftime("%Y%m%d"),
            self.moment.strftime("%H%M"),
            str(self.control_number),
            "X",
            self.version,
        )
        for n, body in enumerate(transaction_sets, start=1):
            st = f"{n:04d}"
            out.add("ST", transaction_id(self.functional_id), st, self.version)
            out.extend(body)
            out.add("SE", str(len(body) + 2), st)
        out.add("GE", str(len(transaction_sets)), str(self.control_number))
        out.add("IEA", "1", ctl)
        return render(out.items, newlines)


def transaction_id(functional_id: str) -> str:
    return {"HC": "837", "HP": "835", "FA": "999", "HN": "277"}[functional_id]
