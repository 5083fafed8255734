"""An inbound X12 file: validate it, tell what it is, post it in one commit.

The file is validated with pyx12 first: any error answers 400 naming the segment and
element, and nothing is posted. Then each functional group is read by its GS01: HP
(835 remittance), FA (999), HN (277CA). All the writes the file implies, FHIR resources
and ledger records alike, are committed together through the repository, or none.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from server.errors import FhirError, Issue, operation_outcome
from server.repository import Repository, RequestContext
from server.storage.port import VersionConflict, Write
from server.x12 import reader
from server.x12.acks import AckPoster, AckReport, verdicts_277, verdicts_999
from server.x12.posting import Poster, PostingReport
from server.x12.remit import parse_835

KINDS = {"HP": "835", "FA": "999", "HN": "277CA"}


@dataclass(slots=True)
class ImportResult:
    kinds: list[str] = field(default_factory=list)
    posting: PostingReport = field(default_factory=PostingReport)
    acks: AckReport = field(default_factory=AckReport)
    written: int = 0

    def outcome(self) -> dict[str, Any]:
        """An OperationOutcome a biller reads: what was posted, what was not and why."""
        p, a = self.posting, self.acks
        issues = [
            Issue(
                "information",
                "informational",
                f"Imported {', '.join(self.kinds) or 'nothing'}: {p.claims} claim payment(s);"
                f" {len(p.created)} created, {len(p.updated)} updated, {len(p.unchanged)}"
                f" unchanged, {len(p.reversed)} reversed; {len(a.accepted)} accepted,"
                f" {len(a.rejected)} rejected",
            )
        ]
        issues += [Issue("information", "informational", f"Created {r}") for r in p.created]
        issues += [Issue("information", "informational", f"Updated {r}") for r in p.updated]
        issues += [Issue("information", "informational", f"Reversed {r}") for r in p.reversed]
        issues += [Issue("warning", "not-found", f"Unmatched claim: {u}") for u in p.unmatched]
        issues += [Issue("warning", "business-rule", w) for w in p.warnings]
        issues += [Issue("information", "informational", f"Accepted {m}") for m in a.accepted]
        issues += [
            Issue("warning", "business-rule", f"Rejected, back to the coders' queue: {m}")
            for m in a.rejected
        ]
        issues += [
            Issue("warning", "not-found", f"Unmatched acknowledgement: {u}") for u in a.unmatched
        ]
        return operation_outcome(issues)


def _groups(segs: list[reader.Seg]) -> list[tuple[str, list[reader.Seg]]]:
    out: list[tuple[str, list[reader.Seg]]] = []
    for seg in segs:
        if seg.id == "GS":
            out.append((seg["GS01"], []))
        elif out and seg.id not in ("GE", "IEA"):
            out[-1][1].append(seg)
    return out


async def import_x12(repo: Repository, ctx: RequestContext, text: str) -> ImportResult:
    """Post ``text`` (an 835, 999 or 277CA interchange); raise 400 when it is invalid."""
    text = text.lstrip("\ufeff \r\n\t")
    # Validation walks the guide's map for every segment: off the event loop.
    problems = await asyncio.to_thread(reader.validate, text)
    if problems:
        raise reader.invalid(problems)
    segs = await asyncio.to_thread(reader.segments, text)
    isa = segs[0]
    source = f"{isa['ISA06'].strip()}/{isa['ISA13']}"
    for _attempt in range(5):
        result = ImportResult()
        writes: list[Write] = []
        for functional_id, group in _groups(segs):
            kind = KINDS.get(functional_id)
            if kind is None:
                raise FhirError.of(
                    400,
                    "not-supported",
                    f"segment GS element GS01: functional group {functional_id!r} cannot be"
                    " imported (835 HP, 999 FA and 277CA HN can); nothing was posted",
                    ("GS01",),
                )
            result.kinds.append(kind)
            if kind == "835":
                writes += await Poster(repo, ctx).plan(parse_835(group), result.posting)
            elif kind == "999":
                writes += await AckPoster(repo, ctx).plan(verdicts_999(group, source), result.acks)
            else:
                writes += await AckPoster(repo, ctx).plan(verdicts_277(group, source), result.acks)
        if not writes:
            return result
        try:
            await repo.commit_planned(ctx, writes)
        except VersionConflict:
            continue  # something changed meanwhile: plan again against the new state
        result.written = len(writes)
        return result
    raise FhirError.of(409, "conflict", "The X12 import kept colliding with other writes; retry")
