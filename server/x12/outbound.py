"""837s out: one claim (``Claim/{id}/$x12``) or a batch per payer (``billable x12 837``).

A claim is gathered, built and checked: if any required element is missing the whole
claim is refused with each missing element named, and nothing is written. Every
interchange gets a fresh control number (``control``). A batch records what it sent
(``ledger``): a claim already sent unchanged is skipped, a changed one goes again as a
replacement (frequency 7), a cancelled one that was sent goes as a void (8); a Claim
that names a prior claim (``Claim.related``) is a replacement of that one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from server.config import Settings
from server.errors import FhirError
from server.repository import Repository, RequestContext
from server.search.parse import parse_search
from server.storage.port import SearchQuery
from server.x12 import build_837i, build_837p
from server.x12.control import next_control_number
from server.x12.elements import Report, code_in
from server.x12.envelope import Envelope
from server.x12.gather import ClaimParts, gather
from server.x12.ledger import Ledger
from server.x12.loops_837 import Frequency, patient_control_number_of
from server.x12.parties import Parties
from server.x12.segments import Segments

PAYER_ICN = "https://billable.dev/fhir/sid/payer-claim-control-number"
FIXED_MOMENT = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Built:
    """One claim's transaction set body, ready for an envelope."""

    parts: ClaimParts
    kind: str  # "837P" or "837I"
    pcn: str
    frequency: Frequency
    body: Segments
    digest: str
    report: Report

    @property
    def payer_key(self) -> str:
        ref = self.parts.payor_reference
        ident = next(
            (str(i["value"]) for i in (self.parts.payer or {}).get("identifier") or []),
            None,
        ) or (ref.get("identifier") or {}).get("value")
        return str(ident or ref.get("reference") or ref.get("display") or "unknown")


@dataclass(slots=True)
class Document:
    kind: str
    payer: str
    control_number: int
    text: str
    claims: list[Built]


@dataclass(slots=True)
class BatchResult:
    documents: list[Document] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[Report] = field(default_factory=list)
    not_billable: list[tuple[str, str]] = field(default_factory=list)  # (claim id, why)


def kind_of(claim: dict[str, Any]) -> str:
    code = code_in(claim.get("type"))
    if code in ("institutional",):
        return "837I"
    if code in ("professional", None):
        return "837P"
    raise FhirError.of(
        422,
        "not-supported",
        f"A {code} claim has no 837 form here: only professional (837P) and institutional"
        " (837I) claims are sent as X12",
        ("Claim.type",),
    )


class X12Out:
    def __init__(self, repo: Repository, settings: Settings) -> None:
        self.repo = repo
        self.parties = Parties.from_settings(settings)
        self.ledger = Ledger(repo)

    # ---------------------------------------------------------------- one claim
    async def build(
        self, ctx: RequestContext, claim_id: str, frequency: Frequency | None = None
    ) -> Built:
        """Build one claim's 837 body; raise 422 naming every missing element."""
        parts = await gather(self.repo, ctx, claim_id)
        if frequency is None:
            frequency = await self.frequency(ctx, parts)
        built = self.build_parts(parts, frequency)
        if built.report.missing:
            raise built.report.error()
        return built

    def build_parts(self, parts: ClaimParts, frequency: Frequency) -> Built:
        """The 837 body of ``parts``; ``report.missing`` lists what makes it invalid."""
        kind = kind_of(parts.claim)
        builder = build_837i.build_837i if kind == "837I" else build_837p.build_837p
        pcn = patient_control_number_of(parts.claim_id)
        report = Report(parts.claim_id)
        if parts.coverage is None:
            # Self-pay, or a Coverage the caller cannot read: there is no one to bill.
            report.need(
                None,
                "2000B",
                "SBR",
                "",
                "a Coverage to bill (a self-pay claim has no 837)",
                "Claim.insurance.coverage",
            )
            return Built(parts, kind, pcn, frequency, Segments(), "", report)
        # The digest ignores what changes between sendings (moment, reference, frequency).
        plain = builder(parts, self.parties, pcn, Frequency(), "0", FIXED_MOMENT, Report(""))
        digest = hashlib.sha256("~".join(plain.items[1:]).encode()).hexdigest()
        body = builder(parts, self.parties, pcn, frequency, "0", FIXED_MOMENT, report)
        return Built(parts, kind, pcn, frequency, body, digest, report)

    async def frequency(self, ctx: RequestContext, parts: ClaimParts) -> Frequency:
        """1 original, 7 replacement (a changed resend, or a Claim naming a prior claim),
        8 void (a cancelled claim)."""
        claim = parts.claim
        if claim.get("status") == "cancelled":
            return Frequency("8", await self.payer_icn(ctx, parts.claim_id))
        for related in claim.get("related") or []:
            if code_in(related.get("relationship")) == "prior":
                ref = (related.get("claim") or {}).get("reference") or ""
                prior = ref.split("/")[-1]
                # A replacement only of a claim the payer has (sent, or paid by an 835);
                # a prior claim that never left is not replaced: this one is the original.
                icn = await self.payer_icn(ctx, prior) if prior else None
                if icn is not None or (prior and await self.ledger.sent(prior) is not None):
                    return Frequency("7", icn)
        sent = await self.ledger.sent(parts.claim_id)
        if sent is not None and sent[1].get("digest"):
            return Frequency("7", await self.payer_icn(ctx, parts.claim_id))
        return Frequency("1")

    async def payer_icn(self, ctx: RequestContext, claim_id: str) -> str | None:
        """The payer's claim control number of a claim, from the ClaimResponse an 835
        posted (``posting``)."""
        parsed = parse_search(
            ("ClaimResponse",), [("request", f"Claim/{claim_id}")], base_url=ctx.base_url
        )
        page = await self.repo.search(ctx, SearchQuery(("ClaimResponse",), parsed.where, count=20))
        for version in page.versions:
            body = orjson.loads(version.body or b"{}")
            for ident in body.get("identifier") or []:
                if ident.get("system") == PAYER_ICN and ident.get("value"):
                    return str(ident["value"])
        return None

    async def envelope(self, built: Sequence[Built], moment: datetime | None = None) -> Document:
        """Wrap claims of one kind in an interchange with a new control number."""
        kind = built[0].kind
        version = build_837i.VERSION if kind == "837I" else build_837p.VERSION
        moment = moment or datetime.now(UTC)
        number = await next_control_number(self.repo)
        bodies = []
        for n, b in enumerate(built, start=1):
            body = Segments(list(b.body.items))
            # BHT03 (originator's reference) and BHT04/05: this sending.
            body.items[0] = f"BHT*0019*00*{number}-{n:04d}*{moment:%Y%m%d}*{moment:%H%M}*CH"
            bodies.append(body)
        envelope = Envelope(
            self.parties.sender_id,
            self.parties.receiver_id,
            self.parties.usage,
            number,
            moment,
            "HC",
            version,
        )
        await self.ledger.remember_interchange(
            number,
            kind,
            [b.parts.claim_id for b in built],
            {b.pcn: b.parts.claim_id for b in built},
        )
        return Document(kind, built[0].payer_key, number, envelope.wrap(bodies), list(built))

    async def claim_document(self, ctx: RequestContext, claim_id: str) -> Document:
        """``GET Claim/{id}/$x12``: the claim's 837 in its own interchange (not recorded
        as sent: the batch is what tracks submissions)."""
        return await self.envelope([await self.build(ctx, claim_id)])

    # ------------------------------------------------------------------- batch
    async def batch(
        self,
        ctx: RequestContext,
        since: str | None = None,
        payers: Sequence[str] = (),
        moment: datetime | None = None,
    ) -> BatchResult:
        """Every active claim (and every cancelled one that was sent) not yet sent as it
        is now, one interchange per payer and kind. Call ``record`` once the documents
        are safely written."""
        result = BatchResult()
        groups: dict[tuple[str, str], list[Built]] = {}
        for claim_id in await self._candidates(ctx, since):
            try:
                parts = await gather(self.repo, ctx, claim_id)
            except FhirError as exc:
                result.not_billable.append((claim_id, str(exc)))
                continue
            if parts.coverage is None:
                result.not_billable.append((claim_id, "self-pay: no Coverage to bill"))
                continue
            sent = await self.ledger.sent(claim_id)
            status = parts.claim.get("status")
            if status == "cancelled" and (sent is None or not sent[1].get("digest")):
                continue  # never sent: nothing to void
            if status == "cancelled" and sent is not None and sent[1].get("frequency") == "8":
                result.unchanged.append(claim_id)
                continue
            try:
                built = self.build_parts(parts, Frequency())
            except FhirError as exc:  # a claim type without an 837 form
                result.not_billable.append((claim_id, str(exc)))
                continue
            if payers and not any(p in (built.payer_key, _payer_name(parts)) for p in payers):
                continue
            if sent is not None and sent[1].get("digest") == built.digest and status != "cancelled":
                result.unchanged.append(claim_id)
                continue
            frequency = await self.frequency(ctx, parts)
            if frequency != built.frequency:
                built = self.build_parts(parts, frequency)
            if built.report.missing:
                result.refused.append(built.report)
                continue
            groups.setdefault((built.payer_key, built.kind), []).append(built)
        for (_payer, _kind), claims in sorted(groups.items()):
            result.documents.append(await self.envelope(claims, moment))
        return result

    async def record(self, result: BatchResult) -> None:
        """Record the batch's claims as sent (after its files are written)."""
        sent_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for doc in result.documents:
            entries = {
                b.parts.claim_id: {
                    "claim_id": b.parts.claim_id,
                    "claim_version": b.parts.claim_version,
                    "pcn": b.pcn,
                    "digest": b.digest,
                    "frequency": b.frequency.code,
                    "kind": doc.kind,
                    "payer": doc.payer,
                    "control_number": doc.control_number,
                    "transaction": f"{n:04d}",
                    "sent_at": sent_at,
                }
                for n, b in enumerate(doc.claims, start=1)
            }
            writes = await self.ledger.sent_writes(entries)
            await self.repo.records.commit(writes)

    async def _candidates(self, ctx: RequestContext, since: str | None) -> list[str]:
        ids: list[str] = []
        for status in ("active", "cancelled"):
            pairs = [("status", status), ("_sort", "_lastUpdated")]
            if since:
                pairs.append(("created", f"ge{since}"))
            parsed = parse_search(("Claim",), pairs, base_url=ctx.base_url)
            query = SearchQuery(("Claim",), parsed.where, count=500, sort=parsed.sort)
            while True:
                page = await self.repo.search(ctx, query)
                ids += [v.id for v in page.versions if v.body is not None]
                if not page.more or not page.positions:
                    break
                query = replace(query, after=page.positions[-1])
        return ids


def _payer_name(parts: ClaimParts) -> str:
    return str((parts.payer or {}).get("name") or parts.payor_reference.get("display") or "")
