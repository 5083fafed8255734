"""Adjudication against the store: ``adjudicate_claim(repo, ctx, claim_id)``.

Everything is read and written through the repository facade, so access policy and
audit apply as for any interaction. Per claim, one atomic ``commit`` writes:

* the ClaimResponse and the ExplanationOfBenefit (ids derived from the claim id and
  version, created with expected version 0);
* the member's accumulator record for the plan year, and the family's when the plan has
  family amounts (internal records ``x-billable-accumulator``, updated with the port's
  optimistic concurrency: the version read is the version expected);
* the claim's adjudication record (``x-billable-adjudication``: which claim version was
  adjudicated, what it added to which accumulator), which makes resubmission idempotent
  and lets a replacement claim reverse exactly what the original added;
* the claim's fingerprint (``x-billable-claim-fingerprint``), which finds exact
  duplicates submitted under another id.

A ``VersionConflict`` (another adjudication of the same member, or of the same claim,
committed first) restarts the whole adjudication from fresh reads, so concurrent claims
of one member never apply more than the deductible.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from mappings.adjudication.benefits import (
    PlanBenefits,
    apply_coverage,
    default_plan_resource,
    from_insurance_plan,
)
from mappings.adjudication.engine import (
    Balances,
    ClaimFacts,
    Denial,
    Line,
    adjudicate_lines,
    review,
)
from mappings.adjudication.resources import (
    claim_response,
    error_response,
    explanation_of_benefit,
)
from mappings.adjudication.rules import RateTable, is_specialist, shipped_rates
from server.errors import FhirError
from server.repository import Repository, RequestContext
from server.repository.process_lock import ProcessLock
from server.storage.port import StoredVersion, VersionConflict, Write

ACCUMULATOR = "x-billable-accumulator"
ADJUDICATION = "x-billable-adjudication"
FINGERPRINT = "x-billable-claim-fingerprint"
NAMESPACE = uuid.UUID("6f1d8a52-2b7e-4d0e-9a51-b111ab1e0008")
MAX_ATTEMPTS = 60
ZERO = Decimal("0")


@dataclass(slots=True)
class AdjudicationConfig:
    """Payer configuration: contracted rates, the default plan, the terminology."""

    rates: RateTable = field(default_factory=shipped_rates)
    default_plan: dict[str, Any] = field(default_factory=default_plan_resource)
    terminology: Any = None

    def terminology_service(self) -> Any:
        if self.terminology is None:
            from terminology.service import get_service

            return get_service()
        return self.terminology


_config: AdjudicationConfig | None = None


def get_config() -> AdjudicationConfig:
    global _config
    if _config is None:
        _config = AdjudicationConfig()
    return _config


def set_config(config: AdjudicationConfig | None) -> None:
    global _config
    _config = config


@dataclass(slots=True)
class Adjudicated:
    claim_response: StoredVersion
    explanation_of_benefit: StoredVersion | None
    created: bool  # False: the claim version had been adjudicated already


def _member_lock(repo: Repository, member: str) -> ProcessLock:
    """One of a fixed set of locks per repository, chosen by the member; held across the
    processes sharing the store too (``billable serve --workers N``)."""
    return repo.process_lock("adjudication-member", member)


def derived_id(kind: str, claim_id: str, version: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}/{claim_id}/{version}"))


def _record_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _reference_id(ref: dict[str, Any] | None, rtype: str) -> str | None:
    """The id in a literal ``rtype/id`` reference (relative or absolute)."""
    text = (ref or {}).get("reference")
    if not isinstance(text, str):
        return None
    parts = text.split("/")
    for i in range(len(parts) - 1):
        if parts[i] == rtype:
            return parts[i + 1]
    return None


def _day(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _dec(value: Any, default: str = "0") -> Decimal:
    if value is None:
        return Decimal(default)
    return Decimal(str(value))


def claim_facts(claim: dict[str, Any]) -> ClaimFacts:
    """Lines with their codes, charges, dates, places and diagnosis codes."""
    diagnoses: dict[int, str] = {}
    for diag in claim.get("diagnosis") or []:
        for coding in (diag.get("diagnosisCodeableConcept") or {}).get("coding") or []:
            if coding.get("code"):
                diagnoses[int(diag.get("sequence", 0))] = str(coding["code"])
                break
    claim_day = _day((claim.get("billablePeriod") or {}).get("start"))
    lines = []
    for item in claim.get("item") or []:
        coding = ((item.get("productOrService") or {}).get("coding") or [{}])[0]
        quantity = _dec((item.get("quantity") or {}).get("value"), "1")
        unit = (item.get("unitPrice") or {}).get("value")
        net = (item.get("net") or {}).get("value")
        charge = _dec(net) if net is not None else _dec(unit) * quantity
        pos_coding = ((item.get("locationCodeableConcept") or {}).get("coding") or [{}])[0]
        period_start = (item.get("servicedPeriod") or {}).get("start")
        lines.append(
            Line(
                sequence=int(item["sequence"]),
                system=coding.get("system"),
                code=coding.get("code"),
                modifiers=[
                    str(c.get("code"))
                    for m in item.get("modifier") or []
                    for c in m.get("coding") or []
                    if c.get("code")
                ],
                quantity=quantity,
                charge=charge,
                day=_day(item.get("servicedDate")) or _day(period_start) or claim_day,
                pos=pos_coding.get("code"),
                diagnoses=[
                    diagnoses[s] for s in item.get("diagnosisSequence") or [] if s in diagnoses
                ]
                or list(diagnoses.values())[:1],
            )
        )
    taxonomies = [
        str(c.get("code"))
        for member in claim.get("careTeam") or []
        for c in (member.get("qualification") or {}).get("coding") or []
        if c.get("code")
    ]
    institutional = any(
        c.get("code") == "institutional" for c in (claim.get("type") or {}).get("coding", [])
    )
    provider = (claim.get("provider") or {}).get("reference")
    return ClaimFacts(
        provider=str(provider) if provider else None,
        payers=[],
        specialist=is_specialist(taxonomies),
        lines=lines,
        institutional=institutional,
        received=_day(claim.get("created")),
    )


def accumulator_keys(coverage: dict[str, Any], benefits: PlanBenefits, day: date) -> dict[str, str]:
    """The accumulators a claim counts towards: the member's and, with family amounts, the
    family's (by subscriber), each per plan and plan year (the one containing ``day``)."""
    member = str((coverage.get("beneficiary") or {}).get("reference") or coverage.get("id"))
    family_ref = (coverage.get("subscriber") or {}).get("reference") or coverage.get("subscriberId")
    year = benefits.plan_year_label(day)
    keys = {"individual": f"{member}|{benefits.plan_id}|{year}"}
    if family_ref and (benefits.deductible_family is not None or benefits.oop_family):
        keys["family"] = f"family:{family_ref}|{benefits.plan_id}|{year}"
    return keys


async def accumulated(repo: Repository, key: str) -> tuple[Decimal, Decimal]:
    """(deductible met, out-of-pocket met) of one accumulator."""
    found = await repo.records.get(ACCUMULATOR, _record_id(key))
    if found is None:
        return ZERO, ZERO
    body = found[1]
    return _dec(body["deductible"]), _dec(body["oop"])


def fingerprint(claim: dict[str, Any], facts: ClaimFacts) -> str:
    """Same patient, provider and lines (code, modifiers, date, units, charge)."""
    key = [
        (claim.get("patient") or {}).get("reference"),
        facts.provider,
        sorted(
            (
                line.code or "",
                sorted(line.modifiers),
                str(line.day),
                str(line.quantity.normalize()),
                str(line.charge.normalize()),
            )
            for line in facts.lines
        ),
    ]
    return _record_id(orjson.dumps(key).decode())


class _Records:
    """Internal records read and planned for one attempt (current version, body)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.seen: dict[tuple[str, str], tuple[int, dict[str, Any] | None]] = {}

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        if (kind, key) not in self.seen:
            current = await self.repo.records.read(kind, key)
            body = orjson.loads(current.body) if current and current.body else None
            self.seen[(kind, key)] = (current.version if current else 0, body)
        return self.seen[(kind, key)][1]

    def write(self, kind: str, key: str, value: dict[str, Any] | None) -> Write:
        version, _ = self.seen[(kind, key)]
        return self.repo.records.write(kind, key, version, value, self.repo.clock.next())


async def adjudicate_claim(
    repo: Repository,
    ctx: RequestContext,
    claim_id: str,
    config: AdjudicationConfig | None = None,
) -> Adjudicated:
    """Adjudicate the current version of ``Claim/claim_id`` (the coding engine's hook).

    Idempotent: the same claim version returns its existing ClaimResponse and changes
    nothing. Raises ``FhirError`` 404 for an unknown claim, 422 for one that cannot be
    adjudicated (not ``active``, or not ``use = claim``).
    """
    config = config or get_config()
    for attempt in range(MAX_ATTEMPTS):
        claim_version = await repo.read(ctx, "Claim", claim_id)
        patient = ""
        if claim_version.body is not None:
            patient = str((orjson.loads(claim_version.body).get("patient") or {}).get("reference"))
        try:
            # Within one process, claims of one member take turns (no wasted attempts);
            # across processes the accumulators' expected versions keep them correct.
            async with _member_lock(repo, patient):
                return await _attempt(repo, ctx, claim_version, config)
        except VersionConflict:
            # Another adjudication touched the same records first: start again from
            # fresh reads. A little jitter keeps colliding claims from colliding again.
            await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
    raise FhirError.of(
        409, "conflict", f"Claim/{claim_id}: adjudication kept colliding with others; try again"
    )


def _now() -> tuple[str, date]:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment.date()


async def _existing(repo: Repository, ctx: RequestContext, record: dict[str, Any]) -> Adjudicated:
    response = await repo.read(ctx, "ClaimResponse", record["claim_response"])
    eob = None
    if record.get("eob"):
        eob = await repo.read(ctx, "ExplanationOfBenefit", record["eob"])
    return Adjudicated(response, eob, created=False)


async def _attempt(
    repo: Repository,
    ctx: RequestContext,
    claim_version: StoredVersion,
    config: AdjudicationConfig,
) -> Adjudicated:
    assert claim_version.body is not None
    claim: dict[str, Any] = orjson.loads(claim_version.body)
    claim_id = claim_version.id
    if claim.get("status") == "cancelled":
        return await _void(repo, ctx, claim_id)
    if claim.get("status") != "active":
        raise FhirError.of(
            422,
            "business-rule",
            f"Claim/{claim_id} is {claim.get('status')}: only active claims are adjudicated",
        )
    if claim.get("use", "claim") != "claim":
        raise FhirError.of(
            422,
            "not-supported",
            f"Claim/{claim_id} is a {claim.get('use')}: only use=claim is adjudicated",
        )
    records = _Records(repo)
    record = await records.get(ADJUDICATION, claim_id)
    if record is not None and record.get("claim_version") == claim_version.version:
        return await _existing(repo, ctx, record)

    created, today = _now()
    cr_id = derived_id("ClaimResponse", claim_id, claim_version.version)
    eob_id = derived_id("ExplanationOfBenefit", claim_id, claim_version.version)
    claim_ref = f"Claim/{claim_id}"
    insurance = next(
        (i for i in claim.get("insurance") or [] if i.get("focal")),
        (claim.get("insurance") or [{}])[0],
    )
    coverage_ref = insurance.get("coverage") or {"display": "unknown coverage"}
    coverage_id = _reference_id(coverage_ref, "Coverage")
    coverage = await read_optional(repo, ctx, "Coverage", coverage_id)
    writes: list[Write] = []

    # Replacements: a new version of this claim, or a claim naming a prior one.
    priors: list[tuple[str, dict[str, Any]]] = []
    if record is not None and not record.get("reversed"):
        priors.append((claim_id, record))
    for related in claim.get("related") or []:
        codes = {c.get("code") for c in (related.get("relationship") or {}).get("coding", [])}
        prior_id = _reference_id(related.get("claim"), "Claim")
        if "prior" in codes and prior_id and prior_id != claim_id:
            prior_record = await records.get(ADJUDICATION, prior_id)
            if prior_record is not None and not prior_record.get("reversed"):
                priors.append((prior_id, prior_record))

    if coverage is None:
        insurer = {"display": "unknown payer"}
        message = (
            f"Coverage {coverage_ref.get('reference') or coverage_ref.get('display')} could not"
            " be found: the claim cannot be adjudicated (CARC 16)"
        )
        resource = error_response(
            rid=cr_id,
            claim=claim,
            claim_ref=claim_ref,
            insurer=insurer,
            coverage_ref=coverage_ref,
            message=message,
            created=created,
        )
        cr_write, cr_stored = repo.plan_write(ctx, "create", "ClaimResponse", cr_id, resource, 0)
        writes.append(cr_write)
        # Nothing is reversed for a claim that cannot be adjudicated: what an earlier
        # version of it added stays recorded, to be reversed by a later version.
        kept = record if record is not None and not record.get("reversed") else {}
        new_record = {
            "claim_version": claim_version.version,
            "claim_response": cr_id,
            "eob": None,
            "contributions": kept.get("contributions") or [],
            "fingerprint": kept.get("fingerprint"),
            "reversed": False,
        }
        await records.get(ADJUDICATION, claim_id)
        writes.append(records.write(ADJUDICATION, claim_id, new_record))
        await repo.commit_planned(ctx, writes)
        return Adjudicated(cr_stored, None, created=True)

    insurer = (coverage.get("payor") or [{"display": "payer"}])[0]
    benefits = await benefits_of(repo, ctx, coverage, config)
    facts = claim_facts(claim)
    facts.payers = [
        str(p.get("reference") or (p.get("identifier") or {}).get("value"))
        for p in coverage.get("payor") or []
    ]
    first_day = min((line.day for line in facts.lines if line.day), default=today)
    keys = accumulator_keys(coverage, benefits, first_day)

    # Accumulators: current state, minus what the replaced claims added.
    accumulators: dict[str, dict[str, Any]] = {}

    async def accumulator(key: str) -> dict[str, Any]:
        rid = _record_id(key)
        if rid not in accumulators:
            body = await records.get(ACCUMULATOR, rid)
            accumulators[rid] = body or {"key": key, "deductible": "0", "oop": "0", "claims": {}}
        return accumulators[rid]

    for prior_id, prior_record in priors:
        for contribution in prior_record.get("contributions") or []:
            acc = await accumulator(contribution["key"])
            acc["deductible"] = str(_dec(acc["deductible"]) - _dec(contribution["deductible"]))
            acc["oop"] = str(_dec(acc["oop"]) - _dec(contribution["oop"]))
            acc["claims"].pop(prior_id, None)
    ind = await accumulator(keys["individual"])
    fam = await accumulator(keys["family"]) if "family" in keys else None
    balances = Balances(
        deductible_individual=_dec(ind["deductible"]),
        oop_individual=_dec(ind["oop"]),
        deductible_family=_dec(fam["deductible"]) if fam else ZERO,
        oop_family=_dec(fam["oop"]) if fam else ZERO,
    )

    terminology = config.terminology_service()
    fp = fingerprint(claim, facts)
    fp_record = await records.get(FINGERPRINT, fp)
    replaced = {p for p, _ in priors}
    duplicate_of = None
    if fp_record is not None and fp_record.get("claim") not in (claim_id, *replaced):
        original = await records.get(ADJUDICATION, str(fp_record["claim"]))
        if original is not None and not original.get("reversed"):
            duplicate_of = str(fp_record["claim"])
    if duplicate_of is not None:
        denials = {
            line.sequence: Denial(
                "18", f"Exact duplicate of Claim/{duplicate_of}, already adjudicated"
            )
            for line in facts.lines
        }
    review_notes: list[str] = []
    if duplicate_of is None:
        denials = review(facts, coverage, benefits, terminology, review_notes)
    decision = adjudicate_lines(facts, denials, benefits, balances, terminology, config.rates)
    decision.notes[:0] = review_notes

    contributions = []
    if decision.deductible_applied or decision.oop_applied:
        for acc in [ind, fam] if fam else [ind]:
            acc["deductible"] = str(_dec(acc["deductible"]) + decision.deductible_applied)
            acc["oop"] = str(_dec(acc["oop"]) + decision.oop_applied)
            acc["claims"][claim_id] = {
                "deductible": str(decision.deductible_applied),
                "oop": str(decision.oop_applied),
            }
            contributions.append(
                {
                    "key": acc["key"],
                    "deductible": str(decision.deductible_applied),
                    "oop": str(decision.oop_applied),
                }
            )

    cr = claim_response(
        rid=cr_id,
        claim=claim,
        claim_ref=claim_ref,
        coverage_ref=coverage_ref,
        insurer=insurer,
        decision=decision,
        created=created,
        today=today,
    )
    eob = explanation_of_benefit(
        rid=eob_id,
        claim=claim,
        claim_ref=claim_ref,
        claim_response_id=cr_id,
        coverage_ref=coverage_ref,
        insurer=insurer,
        decision=decision,
        created=created,
        today=today,
        received=str(claim.get("created") or created)[:10],
    )
    cr_write, cr_stored = repo.plan_write(ctx, "create", "ClaimResponse", cr_id, cr, 0)
    eob_write, eob_stored = repo.plan_write(ctx, "create", "ExplanationOfBenefit", eob_id, eob, 0)
    writes += [cr_write, eob_write]
    for rid, acc in accumulators.items():
        writes.append(records.write(ACCUMULATOR, rid, acc))
    for prior_id, prior_record in priors:
        writes += await _cancel_prior(repo, ctx, prior_record)
        if prior_id != claim_id:
            writes.append(records.write(ADJUDICATION, prior_id, {**prior_record, "reversed": True}))
    writes.append(
        records.write(
            ADJUDICATION,
            claim_id,
            {
                "claim_version": claim_version.version,
                "claim_response": cr_id,
                "eob": eob_id,
                "contributions": contributions,
                "fingerprint": fp if duplicate_of is None else None,
                "reversed": False,
            },
        )
    )
    if duplicate_of is None:
        writes.append(records.write(FINGERPRINT, fp, {"claim": claim_id}))
    await repo.commit_planned(ctx, writes)
    return Adjudicated(cr_stored, eob_stored, created=True)


async def _void(repo: Repository, ctx: RequestContext, claim_id: str) -> Adjudicated:
    """A cancelled claim: reverse what it added, cancel its ClaimResponse and EOB."""
    records = _Records(repo)
    record = await records.get(ADJUDICATION, claim_id)
    if record is None:
        raise FhirError.of(
            422, "business-rule", f"Claim/{claim_id} is cancelled and was never adjudicated"
        )
    if record.get("reversed"):
        return await _existing(repo, ctx, record)
    writes: list[Write] = []
    for contribution in record.get("contributions") or []:
        rid = _record_id(contribution["key"])
        acc = await records.get(ACCUMULATOR, rid)
        if acc is None:
            continue
        acc["deductible"] = str(_dec(acc["deductible"]) - _dec(contribution["deductible"]))
        acc["oop"] = str(_dec(acc["oop"]) - _dec(contribution["oop"]))
        acc["claims"].pop(claim_id, None)
        writes.append(records.write(ACCUMULATOR, rid, acc))
    writes += await _cancel_prior(repo, ctx, record)
    if record.get("fingerprint"):
        fp = str(record["fingerprint"])
        if (await records.get(FINGERPRINT, fp) or {}).get("claim") == claim_id:
            writes.append(records.write(FINGERPRINT, fp, None))
    writes.append(records.write(ADJUDICATION, claim_id, {**record, "reversed": True}))
    await repo.commit_planned(ctx, writes)
    return await _existing(repo, ctx, record)


async def _cancel_prior(
    repo: Repository, ctx: RequestContext, record: dict[str, Any]
) -> list[Write]:
    """The replaced claim's ClaimResponse and EOB, marked ``cancelled``."""
    writes = []
    for rtype, rid in (
        ("ClaimResponse", record.get("claim_response")),
        ("ExplanationOfBenefit", record.get("eob")),
    ):
        if not rid:
            continue
        current = await repo.current_version(ctx, "update", rtype, rid)
        if current is None or current.body is None:
            continue
        body = orjson.loads(current.body)
        if body.get("status") == "cancelled":
            continue
        body["status"] = "cancelled"
        body.pop("meta", None)
        write, _ = repo.plan_write(ctx, "update", rtype, rid, body, current.version)
        writes.append(write)
    return writes


async def read_optional(
    repo: Repository, ctx: RequestContext, rtype: str, rid: str | None
) -> dict[str, Any] | None:
    if rid is None:
        return None
    try:
        version = await repo.read(ctx, rtype, rid)
    except FhirError as exc:
        if exc.status in (404, 410):
            return None
        raise
    assert version.body is not None
    body: dict[str, Any] = orjson.loads(version.body)
    return body


async def _plan_by_identifier(
    repo: Repository, ctx: RequestContext, value: str
) -> dict[str, Any] | None:
    from server.search.parse import parse_search
    from server.storage.port import SearchQuery

    parsed = parse_search(("InsurancePlan",), [("identifier", value)], strict=True)
    page = await repo.search(ctx, SearchQuery(("InsurancePlan",), parsed.where, count=2))
    if len(page.versions) != 1 or page.versions[0].body is None:
        return None
    found: dict[str, Any] = orjson.loads(page.versions[0].body)
    return found


async def benefits_of(
    repo: Repository, ctx: RequestContext, coverage: dict[str, Any], config: AdjudicationConfig
) -> PlanBenefits:
    """The plan named by the Coverage's ``class`` of type ``plan``, then the Coverage's terms."""
    plan_resource = None
    for cls in coverage.get("class") or []:
        codes = {c.get("code") for c in (cls.get("type") or {}).get("coding", [])}
        if "plan" in codes and cls.get("value"):
            value = str(cls["value"])
            plan_resource = await read_optional(repo, ctx, "InsurancePlan", value)
            if plan_resource is None:  # the plan's identifier rather than its id
                plan_resource = await _plan_by_identifier(repo, ctx, value)
            break
    benefits = from_insurance_plan(plan_resource or config.default_plan)
    return apply_coverage(benefits, coverage)
