"""Claim generation against the store: gather, code, write Claim + Task + Provenance.

Every read and write goes through the ``Repository`` (policy and audit apply); the
automatic trigger uses a system ``RequestContext``. One commit holds the Claim version,
its Task (the coder's work item) and its Provenance, so they exist together or not at all.

Identity: one Claim per Encounter, found by its identifier
(``https://billable.dev/fhir/claim-for-encounter|{encounter id}``) and by
``Claim?encounter=Encounter/{id}``. Regenerating a Claim that has no ClaimResponse updates
it (a new version, only when its content changed); once a ClaimResponse refers to it, a
change produces a replacement Claim with ``related.relationship = prior``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import orjson

from mappings.coding.engine import code_encounter
from mappings.coding.model import (
    ENGINE_NAME,
    ENGINE_VERSION,
    CodingConfig,
    CodingResult,
    Problem,
    SourceData,
)
from mappings.coding.overrides import BASIC_KIND, OVERRIDE_CODE
from mappings.coding.patient_status import rendering_practitioner
from mappings.coding.tables import rule_tables
from mappings.coding.worklist import add_queue_facts
from server.errors import FhirError
from server.repository import Repository, RequestContext
from server.repository import system_context as repository_system_context
from server.search.parse import parse_search
from server.storage.port import SearchQuery, StoredVersion, VersionConflict, Write
from server.validation import validate_resource
from terminology.service import TerminologyService, get_service

log = logging.getLogger("billable.coding")

CLAIM_IDENTIFIER = "https://billable.dev/fhir/claim-for-encounter"
ENGINE_DEVICE = "https://billable.dev/fhir/coding-engine"
TASK_CODE = "https://billable.dev/fhir/CodeSystem/task-code"
OPEN_TASK = ("requested", "ready", "received", "accepted", "in-progress", "on-hold")


def system_context(base_url: str = "urn:billable:system") -> RequestContext:
    """The identity of the automatic trigger: the engine itself, with system scopes."""
    return repository_system_context("billable-coding-engine", base_url)


@dataclass(slots=True)
class Generated:
    claim: StoredVersion
    result: CodingResult
    written: bool  # False when the stored claim was already up to date


def _date(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def _body(version: StoredVersion) -> dict[str, Any]:
    assert version.body is not None
    data: dict[str, Any] = orjson.loads(version.body)
    return data


def _given_at(immunization: dict[str, Any], encounter_ref: str) -> bool:
    """An Immunization of this visit: linked to it, or unlinked on the same day."""
    linked = (immunization.get("encounter") or {}).get("reference")
    return linked == encounter_ref or linked is None


def _comparable(claim: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claim.items() if k not in ("id", "meta", "created", "related")}


class ClaimService:
    def __init__(
        self,
        repo: Repository,
        config: CodingConfig | None = None,
        terminology: TerminologyService | None = None,
        auto: bool = False,
    ) -> None:
        self.repo = repo
        self.config = config or CodingConfig()
        self._terminology = terminology
        self.auto = auto
        # Across the processes sharing the store too (``--workers``): two never code at once.
        self._lock = repo.process_lock("coding")
        self._pending: dict[str, None] = {}
        self._worker: asyncio.Task[None] | None = None
        self.failures: list[tuple[str, str]] = []  # (encounter id, what went wrong)
        # Finished encounters the automatic trigger left alone: past the timely filing window.
        self.skipped_timely: list[str] = []
        self.generated = 0
        self.seconds = 0.0  # wall time spent in generate(), store round trips included
        # Told every result (encounter id, result): reports and benches count edits here.
        self.observers: list[Callable[[str, CodingResult], None]] = []
        if auto:
            repo.commit_listeners.append(self.on_commit)

    @property
    def terminology(self) -> TerminologyService:
        return self._terminology or get_service()

    # ---------------------------------------------------------------- automatic
    def on_commit(self, writes: Sequence[Write]) -> None:
        """Repository commit listener: queue finished Encounters (never raises)."""
        for w in writes:
            if w.resource_type == "Encounter" and w.body and b'"status":"finished"' in w.body:
                self._pending[w.id] = None
        if self._pending and (self._worker is None or self._worker.done()):
            loop = asyncio.get_running_loop()
            # A fresh context: the trigger acts as the engine, not as the request's client.
            self._worker = loop.create_task(self._work(), context=contextvars.Context())

    async def _work(self) -> None:
        ctx = system_context()
        while self._pending:
            encounter_id = next(iter(self._pending))
            del self._pending[encounter_id]
            try:
                current = await self.repo.read(ctx, "Encounter", encounter_id)
                body = _body(current)
                if body.get("status") != "finished":
                    continue
                late = self.past_timely_filing(body)
                if late is not None:
                    # Years of history from an EHR must not flood the coders' queue with
                    # claims that can no longer be filed; $generate-claim still codes them.
                    self.skipped_timely.append(encounter_id)
                    log.info("Encounter/%s not coded automatically: %s", encounter_id, late)
                    continue
                await self.generate(ctx, encounter_id)
            except Exception as exc:  # never let one encounter stop the queue
                log.exception("claim generation failed for Encounter/%s", encounter_id)
                self.failures.append((encounter_id, f"{type(exc).__name__}: {exc}"))
                await self._record_failure(ctx, encounter_id, exc)

    async def _record_failure(self, ctx: RequestContext, encounter_id: str, exc: Exception) -> None:
        """A Task on the Encounter, so the failure shows in the coders' queue too."""
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": {
                "coding": [{"system": TASK_CODE, "code": "claim-generation-failed"}],
                "text": "The coding engine could not generate this encounter's claim",
            },
            "description": f"Claim generation failed: {type(exc).__name__}: {exc}"[:1000],
            "focus": {"reference": f"Encounter/{encounter_id}"},
            "authoredOn": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        try:
            await self.repo.create(ctx, "Task", task)
        except Exception:
            log.exception("could not record the failure for Encounter/%s", encounter_id)

    async def drain(self) -> None:
        """Wait until every queued Encounter has been coded (tests, loaders, benches)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)
        if self._pending:
            self._worker = asyncio.get_running_loop().create_task(self._work())
            await self._worker

    def past_timely_filing(
        self, encounter: dict[str, Any], today: date | None = None
    ) -> str | None:
        """Why ``encounter`` is outside the timely filing window, or None (inside it, no
        date of service, or no limit configured)."""
        limit = self.config.timely_filing_days
        period = encounter.get("period") or {}
        dos = _date(period.get("start")) or _date(period.get("end"))
        if not limit or dos is None:
            return None
        today = today or date.today()
        age = (today - dos).days
        if age <= limit:
            return None
        return (
            f"the date of service {dos} is {age} days before {today}, past the timely filing"
            f" window of {limit} days (Medicare: 12 months, 42 CFR 424.44); payers deny"
            " claims filed this late (CARC 29)"
        )

    # ----------------------------------------------------------------- gathering
    async def _search(
        self, ctx: RequestContext, rtype: str, pairs: list[tuple[str, str]], count: int = 200
    ) -> list[StoredVersion]:
        parsed = parse_search((rtype,), pairs, strict=True, base_url=ctx.base_url)
        query = SearchQuery((rtype,), parsed.where, count=count)
        out: list[StoredVersion] = []
        while True:
            page = await self.repo.search(ctx, query)
            out += [v for v in page.versions if v.body is not None]
            if not page.more or not page.positions or len(out) >= 5000:
                return out
            query = replace(query, after=page.positions[-1])

    async def _read(self, ctx: RequestContext, reference: str) -> StoredVersion | None:
        parts = reference.split("/")
        if len(parts) < 2:
            return None
        try:
            return await self.repo.read(ctx, parts[-2], parts[-1])
        except FhirError:
            return None

    async def gather(
        self, ctx: RequestContext, encounter_id: str
    ) -> tuple[SourceData, list[StoredVersion]]:
        enc_v = await self.repo.read(ctx, "Encounter", encounter_id)
        enc = _body(enc_v)
        used = [enc_v]
        ref = f"Encounter/{encounter_id}"
        patient = None
        subject = (enc.get("subject") or {}).get("reference") or ""
        if subject.startswith("Patient/"):
            pv = await self._read(ctx, subject)
            if pv is not None:
                patient = _body(pv)
                used.append(pv)
        conditions = await self._search(ctx, "Condition", [("encounter", ref)])
        have = {f"Condition/{c.id}" for c in conditions}
        linked = [
            (d.get("condition") or {}).get("reference") or "" for d in enc.get("diagnosis") or []
        ] + [(r or {}).get("reference") or "" for r in enc.get("reasonReference") or []]
        for cref in linked:
            if cref.startswith("Condition/") and cref not in have:
                cv = await self._read(ctx, cref)
                if cv is not None:
                    conditions.append(cv)
                    have.add(cref)
        procedures = await self._search(ctx, "Procedure", [("encounter", ref)])
        coverages: list[StoredVersion] = []
        prior: list[StoredVersion] = []
        roles: list[StoredVersion] = []
        people: list[StoredVersion] = []
        immunizations: list[StoredVersion] = []
        start = ((enc.get("period") or {}).get("start") or "")[:10]
        if patient is not None:
            coverages = await self._search(ctx, "Coverage", [("beneficiary", subject)])
            if start:
                prior = await self._prior_encounters(ctx, subject, start, encounter_id)
                roles, people = await self._roles(ctx, enc, [_body(p) for p in prior])
                roles = list({r.id: r for r in roles}.values())
                immunizations = [
                    v
                    for v in await self._search(
                        ctx, "Immunization", [("patient", subject), ("date", start)], count=50
                    )
                    if _given_at(_body(v), ref)
                ]
        # The coders' decisions on this encounter's claim, reapplied by the engine.
        overrides = await self._search(
            ctx, "Basic", [("subject", ref), ("code", f"{BASIC_KIND}|{OVERRIDE_CODE}")]
        )
        used += conditions + procedures + coverages + immunizations + roles + people + overrides
        source = SourceData(
            enc,
            patient,
            [_body(c) for c in conditions],
            [_body(p) for p in procedures],
            [_body(c) for c in coverages],
            prior_encounters=[_body(p) for p in prior],
            roles=[_body(r) for r in roles],
            practitioners=[_body(p) for p in people],
            immunizations=[_body(i) for i in immunizations],
            overrides=[_body(o) for o in overrides],
        )
        return source, used

    async def _prior_encounters(
        self, ctx: RequestContext, subject: str, start: str, encounter_id: str
    ) -> list[StoredVersion]:
        """The patient's finished Encounters of the 3 years before the date of service
        (CPT new vs established), at most 100."""
        dos = date.fromisoformat(start)
        try:
            since = dos.replace(year=dos.year - 3)
        except ValueError:  # 29 February
            since = dos.replace(year=dos.year - 3, day=28)
        found = await self._search(
            ctx,
            "Encounter",
            [
                ("subject", subject),
                ("status", "finished"),
                ("date", f"ge{since.isoformat()}"),
                ("date", f"le{start}"),
            ],
            count=100,
        )
        return [p for p in found if p.id != encounter_id][:100]

    async def _roles(
        self, ctx: RequestContext, enc: dict[str, Any], prior: list[dict[str, Any]]
    ) -> tuple[list[StoredVersion], list[StoredVersion]]:
        """PractitionerRoles (and the Practitioners) of the rendering practitioner and of
        the earlier encounters' practitioners: specialty and group decide new vs
        established."""
        rendering = rendering_practitioner(enc)
        who: list[str] = []
        for e in prior:
            for part in e.get("participant") or []:
                ref = (part.get("individual") or {}).get("reference") or ""
                if ref.startswith("Practitioner/") and ref not in who:
                    who.append(ref)
        roles: list[StoredVersion] = []
        people: list[StoredVersion] = []
        if rendering is None or rendering in who or not who:
            return roles, people  # same physician seen before, or nothing to compare
        mine, me = await self._roles_of(ctx, rendering)
        if not any(_body(r).get("specialty") for r in mine):
            return mine, me  # specialty unknown: the organization decides
        roles, people = mine, me
        for ref in who[:20]:
            found, person = await self._roles_of(ctx, ref)
            roles += found
            people += person
        return roles, people

    async def _roles_of(
        self, ctx: RequestContext, ref: str
    ) -> tuple[list[StoredVersion], list[StoredVersion]]:
        """One practitioner's roles, by reference and by its identifiers."""
        roles = await self._search(ctx, "PractitionerRole", [("practitioner", ref)], count=20)
        person = await self._read(ctx, ref)
        if person is None:
            return roles, []
        # Roles may name the practitioner by identifier (Synthea: the NPI).
        for ident in _body(person).get("identifier") or []:
            if ident.get("system") and ident.get("value"):
                value = f"{ident['system']}|{ident['value']}"
                roles += await self._search(
                    ctx, "PractitionerRole", [("practitioner:identifier", value)], count=20
                )
        return roles, [person]

    # ------------------------------------------------------------------ generate
    async def generate(self, ctx: RequestContext, encounter_id: str) -> Generated:
        async with self._lock:
            started = time.perf_counter()
            try:
                for _attempt in range(5):
                    try:
                        return await self._generate_once(ctx, encounter_id)
                    except VersionConflict:
                        continue
            finally:
                self.seconds += time.perf_counter() - started
            raise FhirError.of(409, "conflict", f"Claim for Encounter/{encounter_id} is busy")

    async def _generate_once(self, ctx: RequestContext, encounter_id: str) -> Generated:
        source, used = await self.gather(ctx, encounter_id)
        result = code_encounter(source, self.terminology, rule_tables(), self.config)
        if source.patient is not None and any(p.code == "no-diagnosis" for p in result.problems):
            # Nothing links a diagnosis to the visit: try the patient's problem list.
            subject = source.encounter["subject"]["reference"]
            listed = await self._search(ctx, "Condition", [("subject", subject)], count=500)
            source.problem_list = [_body(c) for c in listed]
            result = code_encounter(source, self.terminology, rule_tables(), self.config)
            used += [c for c in listed if c not in used]
        late = self.past_timely_filing(source.encounter)
        if late is not None:
            result.problems.append(
                Problem(
                    "warning", "timely-filing", f"Timely filing: {late}", "Claim.billablePeriod"
                )
            )
        for observe in self.observers:
            observe(encounter_id, result)
        claim = result.claim
        existing = await self._search(
            ctx, "Claim", [("identifier", f"{CLAIM_IDENTIFIER}|{encounter_id}")], count=50
        )
        replaced = {
            (r.get("claim") or {}).get("reference")
            for c in existing
            for r in _body(c).get("related") or []
        }
        current = next(
            (
                c
                for c in sorted(existing, key=lambda v: v.last_updated, reverse=True)
                if f"Claim/{c.id}" not in replaced
            ),
            None,
        )
        writes: list[Write] = []
        if current is None:
            claim_id, expected = str(uuid.uuid4()), 0
        else:
            old = _body(current)
            adjudicated = await self._search(
                ctx, "ClaimResponse", [("request", f"Claim/{current.id}")], count=1
            )
            if _comparable(old) == _comparable(claim):
                return Generated(current, result, False)
            if adjudicated:
                claim_id, expected = str(uuid.uuid4()), 0
                claim["related"] = [
                    {
                        "claim": {"reference": f"Claim/{current.id}"},
                        "relationship": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/related-claim-relationship",
                                    "code": "prior",
                                }
                            ]
                        },
                    }
                ]
            else:
                claim_id, expected = current.id, current.version
                if old.get("related"):
                    claim["related"] = old["related"]
        claim["id"] = claim_id
        validate_resource(claim)
        interaction = "create" if expected == 0 else "update"
        claim_write, claim_stored = self.repo.plan_write(
            ctx, interaction, "Claim", claim_id, claim, expected, validated=True
        )
        writes.append(claim_write)
        task_write = await self._task(
            ctx, claim_id, claim, result, new_claim=expected == 0, source=source
        )
        if task_write is not None:
            writes.append(task_write)
        writes.append(self._provenance(ctx, claim_stored, task_write, used, result))
        await self.repo.commit_planned(ctx, writes)
        self.generated += 1
        return Generated(claim_stored, result, True)

    async def _task(
        self,
        ctx: RequestContext,
        claim_id: str,
        claim: dict[str, Any],
        result: CodingResult,
        new_claim: bool,
        source: SourceData | None = None,
    ) -> Write | None:
        if new_claim and result.clean:
            return None  # a new clean claim has no Task to create or complete
        found = []
        if not new_claim:
            found = await self._search(ctx, "Task", [("focus", f"Claim/{claim_id}")], count=10)
        task_v = found[0] if found else None
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if result.clean:
            if task_v is None:
                return None
            task = _body(task_v)
            if task.get("status") not in OPEN_TASK:
                return None
            task["status"] = "completed"
            task["lastModified"] = now
            task["businessStatus"] = {"text": "The claim is clean after regeneration"}
        else:
            outcome = result.outcome()
            outcome["id"] = "outcome"
            errors = [p for p in result.problems if p.severity == "error"]
            task = _body(task_v) if task_v is not None else {"resourceType": "Task"}
            task.update(
                {
                    "resourceType": "Task",
                    "contained": [outcome],
                    "status": "requested",
                    "intent": "order",
                    "priority": "routine",
                    "code": {
                        "coding": [{"system": TASK_CODE, "code": "review-claim"}],
                        "text": "Review a draft claim that the coding engine could not finish",
                    },
                    "description": "; ".join(p.message for p in errors[:5]),
                    "focus": {"reference": f"Claim/{claim_id}"},
                    "for": claim.get("patient"),
                    "lastModified": now,
                    "input": [
                        {
                            "type": {"text": "claim edits"},
                            "valueReference": {"reference": "#outcome"},
                        }
                    ],
                }
            )
            task.setdefault("authoredOn", now)
            encounter_id = str(((claim.get("identifier") or [{}])[0]).get("value") or "")
            coverages = source.coverages if source is not None else []
            add_queue_facts(task, claim, encounter_id, coverages, result)
        tid = task_v.id if task_v is not None else str(uuid.uuid4())
        task["id"] = tid
        validate_resource(task)
        expected = task_v.version if task_v is not None else 0
        write, _ = self.repo.plan_write(
            ctx, "update" if expected else "create", "Task", tid, task, expected, validated=True
        )
        return write

    def _provenance(
        self,
        ctx: RequestContext,
        claim: StoredVersion,
        task: Write | None,
        used: list[StoredVersion],
        result: CodingResult,
    ) -> Write:
        entities: list[dict[str, Any]] = [
            {
                "role": "source",
                "what": {"reference": f"{v.resource_type}/{v.id}/_history/{v.version}"},
            }
            for v in used
        ]
        for system, version in sorted(result.terminology_versions):
            entities.append(
                {
                    "role": "source",
                    "what": {
                        "identifier": {"system": system, "value": version},
                        "display": f"terminology {system} version {version}",
                    },
                }
            )
        for table, version in sorted(result.rule_versions.items()):
            entities.append(
                {
                    "role": "source",
                    "what": {
                        "identifier": {
                            "system": f"{ENGINE_DEVICE}/rules/{table}",
                            "value": version,
                        },
                        "display": f"rule table mappings/data/{table} version {version}",
                    },
                }
            )
        targets = [{"reference": f"Claim/{claim.id}/_history/{claim.version}"}]
        if task is not None:
            targets.append({"reference": f"Task/{task.id}/_history/{task.version}"})
        recorded = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        provenance = {
            "resourceType": "Provenance",
            "target": targets,
            "recorded": recorded,
            "activity": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                        "code": "CREATE" if claim.version == 1 else "UPDATE",
                    }
                ]
            },
            "agent": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                "code": "assembler",
                            }
                        ]
                    },
                    "who": {
                        "identifier": {"system": ENGINE_DEVICE, "value": ENGINE_VERSION},
                        "display": f"{ENGINE_NAME} {ENGINE_VERSION}",
                    },
                    "onBehalfOf": {"identifier": {"value": ctx.client_id or "anonymous"}},
                }
            ],
            "entity": entities,
        }
        pid = str(uuid.uuid4())
        provenance["id"] = pid
        # Provenance is server-written (clients may only read it): the engine's record of
        # how it coded is planned under the engine's identity, on behalf of the caller.
        engine = system_context(ctx.base_url)
        write, _ = self.repo.plan_write(engine, "create", "Provenance", pid, provenance, 0)
        return write
