"""The corpus the judge validates: every kind of resource Billable produces, made through
its HTTP API from the Synthea sample (``tests/fixtures/synthea``).

One ``build_corpus`` run drives a SMART-mode app (real signed tokens, so the audit trail
writes AuditEvents) on one store: it loads the sample (Synthea's own Claims and EOBs
dropped, a Coverage added per patient), turns two ambulatory encounters into an inpatient
stay and an outpatient hospital visit so that both institutional claim kinds exist, codes
every encounter (``$generate-claim``), adjudicates every clean claim (``Claim/$submit``),
asks for eligibility, and then reads back what Billable wrote: Claim, Task, Provenance,
ClaimResponse, ExplanationOfBenefit (with the CARIN BB STU2 profile it must meet),
CoverageEligibilityResponse, AuditEvent, the CapabilityStatement, searchset Bundles (one
with an unknown-parameter warning), OperationOutcomes, and the terminology catalog.

Each resource lands in ``<out>/<label>/<Type>/<id>.json``; ``manifest()`` lists them
with the profiles to check them against.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings

SYNTHEA = Path(__file__).resolve().parent.parent / "fixtures" / "synthea"
REFERENCE = ("hospitalInformation.json", "practitionerInformation.json")
BASE = "http://testserver"
FHIR = f"{BASE}/fhir"
FHIR_JSON = "application/fhir+json"
CARIN = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
CARIN_VERSION = "2.0.0"
EOB_PROFILES = {
    "professional": f"{CARIN}C4BB-ExplanationOfBenefit-Professional-NonClinician|{CARIN_VERSION}",
    "outpatient": f"{CARIN}C4BB-ExplanationOfBenefit-Outpatient-Institutional|{CARIN_VERSION}",
    "inpatient": f"{CARIN}C4BB-ExplanationOfBenefit-Inpatient-Institutional|{CARIN_VERSION}",
}
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# Encounter classes the corpus gives two ambulatory visits (encounter-settings.csv).
INPATIENT_CLASS = "IMP"
OUTPATIENT_HOSPITAL_CLASS = "OBSENC"
# At most this many AuditEvents per (type, subtype, action, outcome): the trail has one per
# request and they differ only in their details.
AUDIT_SAMPLE = 2
# Concepts of a published code system that the judge validates (see ``_sampled``): every
# concept has the same structure, and HAPI's csd-1 check is pairwise (quadratic).
CONCEPT_SAMPLE = 200
# Complete releases up to this size are loaded into the judge whole, as terminology (CPT,
# about 11,000 concepts; HCPCS Level II, about 9,000). ICD-10-CM (98,000 in each of three
# fiscal years under one URL, which the judge could not tell apart) is left out.
REFERENCE_LIMIT = 20_000
# Provenance: one per write (the sample's transactions make ~150 alike); this many are judged.
PROVENANCE_SAMPLE = 40


@dataclass
class Corpus:
    """What one run wrote, for the manifest and for the tests' own checks."""

    root: Path
    label: str
    files: list[tuple[str, list[str]]] = field(default_factory=list)
    # Catalog code systems the judge loads as terminology (whole concept lists only).
    terminology: set[str] = field(default_factory=set)
    eob_kinds: dict[str, int] = field(default_factory=dict)
    # Every concept code of each catalog CodeSystem read in full (the judge sees a prefix).
    concept_codes: dict[str, list[str]] = field(default_factory=dict)
    # Complete releases the judge loads as terminology but does not validate (their
    # structure is judged on a prefix, ``_sampled``): not part of ``files``.
    reference: list[str] = field(default_factory=list)

    def add(
        self,
        resource: dict[str, Any],
        profiles: list[str] | None = None,
        terminology: bool = False,
    ) -> None:
        rtype = resource["resourceType"]
        rid = resource.get("id") or uuid.uuid4().hex
        rel = Path(self.label) / rtype / f"{rid}.json"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(resource, option=orjson.OPT_INDENT_2))
        self.files.append((rel.as_posix(), list(profiles or [])))
        if terminology:
            self.terminology.add(rel.as_posix())

    def add_reference(self, codesystem: dict[str, Any]) -> None:
        """A whole code system for the judge's terminology only (see ``reference``)."""
        rel = Path(self.label) / "terminology" / f"{codesystem['id']}.json"
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_bytes(orjson.dumps(codesystem))
        self.reference.append(rel.as_posix())

    def count(self, rtype: str) -> int:
        return sum(1 for rel, _ in self.files if rel.split("/")[1] == rtype)

    def resources(self, rtype: str | None = None) -> Iterator[dict[str, Any]]:
        for rel, _ in self.files:
            if rtype is None or rel.split("/")[1] == rtype:
                yield orjson.loads((self.root / rel).read_bytes())


def manifest(corpora: list[Corpus]) -> list[dict[str, Any]]:
    judged = [
        {"path": rel, "profiles": profiles, "terminology": rel in corpus.terminology}
        for corpus in corpora
        for rel, profiles in corpus.files
    ]
    reference = [
        {"path": rel, "profiles": [], "terminology": True, "validate": False}
        for corpus in corpora
        for rel in corpus.reference
    ]
    return reference + judged


# What the coding engine reads of a patient's record (mappings.coding.service.gather); the
# rest of Synthea's record (observations, reports, documents, immunizations...) produces
# nothing and only slows the corpus down, the MongoDB leg most.
CLINICAL = frozenset({"Patient", "Encounter", "Condition", "Procedure"})


def _with_coverage(bundle: dict[str, Any]) -> dict[str, Any]:
    """The patient bundle's clinical resources (without Synthea's Claims and EOBs), with a
    Coverage on the default plan."""
    dropped = {
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] not in CLINICAL
    }
    entries = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] not in CLINICAL:
            continue
        entry = {**entry, "resource": _without(resource, dropped)}
        entries.append(entry)
        if resource["resourceType"] == "Patient":
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, entry['fullUrl'])}",
                    "resource": {
                        "resourceType": "Coverage",
                        "status": "active",
                        "beneficiary": {"reference": entry["fullUrl"]},
                        "subscriber": {"reference": entry["fullUrl"]},
                        "payor": [{"reference": "Organization/billable-payer"}],
                        "period": {"start": "2000-01-01", "end": "2030-12-31"},
                    },
                    "request": {"method": "POST", "url": "Coverage"},
                }
            )
    return {**bundle, "entry": entries}


def _without(node: Any, dropped: set[str]) -> Any:
    """``node`` without its references to ``dropped`` (and without what they leave empty)."""

    def gone(value: Any) -> bool:
        return isinstance(value, dict) and value.get("reference") in dropped

    if isinstance(node, dict):
        kept = {k: _without(v, dropped) for k, v in node.items() if not gone(v)}
        return {k: v for k, v in kept.items() if v not in ([], {})}
    if isinstance(node, list):
        return [_without(v, dropped) for v in node if not gone(v)]
    return node


def _token(client: TestClient, scope: str) -> dict[str, str]:
    """A real access token signed by the server's own key, as its token endpoint issues."""
    security = client.app.state.security  # type: ignore[attr-defined]
    issued = security.issuer.access_token(
        issuer=f"{BASE}/auth",
        audience=FHIR,
        client_id="conformance-corpus",
        scope=scope,
        lifetime_s=900,
    )
    return {"Authorization": f"Bearer {issued.token}"}


class _Api:
    """The corpus's HTTP calls; every answer is checked for the status it must have."""

    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def get(self, path: str, expect: int = 200, **params: str) -> dict[str, Any]:
        r = self.client.get(f"/fhir/{path}", params=params, headers=self.headers)
        assert r.status_code == expect, f"GET {path} {params}: {r.status_code} {r.text[:600]}"
        body: dict[str, Any] = r.json()
        return body

    def send(self, method: str, path: str, body: Any, expect: int = 200) -> dict[str, Any]:
        r = self.client.request(
            method,
            f"/fhir/{path}".rstrip("/"),
            content=body if isinstance(body, bytes) else orjson.dumps(body),
            headers={**self.headers, "Content-Type": FHIR_JSON},
        )
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text[:600]}"
        answer: dict[str, Any] = r.json()
        return answer

    def all(self, rtype: str, **params: str) -> list[dict[str, Any]]:
        """Every resource of a search, following ``next`` links."""
        found: list[dict[str, Any]] = []
        page = self.get(rtype, _count="200", **params)
        while True:
            found.extend(e["resource"] for e in page.get("entry") or [] if "resource" in e)
            nxt = next(
                (lk["url"] for lk in page.get("link") or [] if lk["relation"] == "next"), None
            )
            if nxt is None:
                return found
            r = self.client.get(nxt.removeprefix(BASE), headers=self.headers)
            assert r.status_code == 200, r.text[:600]
            page = r.json()


def _load_sample(
    api: _Api, patients_wanted: int | None, recent_encounters: int | None = None
) -> list[str]:
    """Post the reference bundles, then the patients (the smallest ``patients_wanted``
    records, or all; with ``recent_encounters``, only that many of each record's latest
    encounters and the reference resources they name); returns the patients' ids."""
    records = sorted(
        (p for p in SYNTHEA.glob("*.json") if p.name not in REFERENCE),
        key=lambda p: p.stat().st_size,
    )
    bundles = [_with_coverage(orjson.loads(p.read_bytes())) for p in records[:patients_wanted]]
    if recent_encounters is not None:
        bundles = [_recent(b, recent_encounters) for b in bundles]
    named = orjson.dumps(bundles).decode()
    for name in REFERENCE:
        reference = orjson.loads((SYNTHEA / name).read_bytes())
        if recent_encounters is not None:
            reference = _named_in(reference, named)
        api.send("POST", "", reference)
    patients = []
    for bundle in bundles:
        answer = api.send("POST", "", bundle)
        for entry in answer["entry"]:
            location = entry["response"]["location"]
            if location.startswith("Patient/"):
                patients.append(location.split("/")[1])
    return patients


def _recent(bundle: dict[str, Any], encounters: int) -> dict[str, Any]:
    """The record with its ``encounters`` latest Encounters only, and the Conditions and
    Procedures of those (what the coding engine reads for them)."""
    entries = bundle["entry"]
    visits = sorted(
        (e for e in entries if e["resource"]["resourceType"] == "Encounter"),
        key=lambda e: e["resource"]["period"]["start"],
    )
    kept = {e["fullUrl"] for e in visits[-encounters:]}
    for e in visits[-encounters:]:
        enc = e["resource"]
        links = [d.get("condition") for d in enc.get("diagnosis") or []]
        kept |= {r["reference"] for r in links + (enc.get("reasonReference") or []) if r}

    def wanted(entry: dict[str, Any]) -> bool:
        resource = entry["resource"]
        if resource["resourceType"] not in ("Encounter", "Condition", "Procedure"):
            return True
        encounter = (resource.get("encounter") or {}).get("reference")
        return entry["fullUrl"] in kept or encounter in kept

    chosen = [e for e in entries if wanted(e)]
    dropped = {e["fullUrl"] for e in entries} - {e["fullUrl"] for e in chosen}
    trimmed = [{**e, "resource": _without(e["resource"], dropped)} for e in chosen]
    return {**bundle, "entry": trimmed}


def _named_in(reference: dict[str, Any], text: str) -> dict[str, Any]:
    """The reference bundle's resources that ``text`` (the records) names by identifier
    (Synthea's conditional references), and the roles of the practitioners among them."""

    def named(resource: dict[str, Any]) -> bool:
        return any(
            f"{resource['resourceType']}?identifier={i['system']}|{i['value']}" in text
            for i in resource.get("identifier") or []
        )

    kept = [e for e in reference["entry"] if named(e["resource"])]
    people = {
        (i["system"], i["value"])
        for e in kept
        if e["resource"]["resourceType"] == "Practitioner"
        for i in e["resource"].get("identifier") or []
    }
    for entry in reference["entry"]:
        who = (entry["resource"].get("practitioner") or {}).get("identifier") or {}
        if (who.get("system"), who.get("value")) in people:
            kept.append(entry)
    return {**reference, "entry": kept}


def _make_institutional(api: _Api) -> None:
    """Two encounters that coded clean become an inpatient stay and an observation stay in a
    hospital outpatient department (the two institutional claim kinds), and are coded again
    (the new claims replace the professional ones, which were not adjudicated yet)."""
    clean = [c for c in api.all("Claim", status="active") if c.get("diagnosis")]
    # A hospital outpatient claim bills procedures only (no E/M, no room and board): take a
    # visit with a procedure for it, and another visit for the inpatient stay.
    with_procedure = [c for c in clean if any(not _is_em(i) for i in c["item"])]
    outpatient = with_procedure[-1] if with_procedure else clean[-1]
    inpatient = next((c for c in reversed(clean) if c is not outpatient), outpatient)
    chosen = [
        (c["item"][0]["encounter"][0]["reference"], cls)
        for c, cls in ((inpatient, INPATIENT_CLASS), (outpatient, OUTPATIENT_HOSPITAL_CLASS))
    ]
    for reference, cls in chosen:
        eid = reference.split("/")[-1]
        encounter = api.get(f"Encounter/{eid}")
        encounter.pop("meta", None)
        encounter["class"] = {"system": V3_ACT, "code": cls}
        if cls == INPATIENT_CLASS:
            encounter["hospitalization"] = {
                "admitSource": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/admit-source",
                            "code": "emd",
                        }
                    ]
                },
                "dischargeDisposition": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                            "code": "home",
                        }
                    ]
                },
            }
        api.send("PUT", f"Encounter/{eid}", encounter)
        api.send("POST", f"Encounter/{eid}/$generate-claim", {})


def _is_em(item: dict[str, Any]) -> bool:
    """An E/M line (CPT 99202-99499), which a hospital outpatient claim does not bill."""
    codes = [c.get("code", "") for c in item["productOrService"].get("coding", [])]
    return any(code.startswith("99") and len(code) == 5 for code in codes)


def _eob_kind(eob: dict[str, Any]) -> str:
    types = {c.get("code") for c in (eob.get("type") or {}).get("coding", [])}
    if "institutional" not in types:
        return "professional"
    subtypes = {c.get("code") for c in (eob.get("subType") or {}).get("coding", [])}
    return "inpatient" if "inpatient" in subtypes else "outpatient"


def _code_all(api: _Api) -> None:
    for encounter in api.all("Encounter"):
        api.send("POST", f"Encounter/{encounter['id']}/$generate-claim", {})


def _adjudicate(api: _Api, corpus: Corpus) -> None:
    for claim in api.all("Claim", status="active"):
        api.send(
            "POST",
            "Claim/$submit",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "claim", "valueReference": {"reference": f"Claim/{claim['id']}"}}
                ],
            },
        )
    for rtype in ("Claim", "Task", "ClaimResponse"):
        for resource in api.all(rtype):
            corpus.add(resource)
    # The claims' Provenance first (the coding engine's), then the ingest's.
    provenance = sorted(
        api.all("Provenance"),
        key=lambda p: not any(t["reference"].startswith("Claim/") for t in p["target"]),
    )
    for resource in provenance[:PROVENANCE_SAMPLE]:
        corpus.add(resource)
    for eob in api.all("ExplanationOfBenefit"):
        kind = _eob_kind(eob)
        corpus.eob_kinds[kind] = corpus.eob_kinds.get(kind, 0) + 1
        corpus.add(eob, [EOB_PROFILES[kind]])


def _eligibility(api: _Api, corpus: Corpus, patients: list[str]) -> None:
    for pid in patients:
        coverage = api.all("Coverage", beneficiary=f"Patient/{pid}")[0]
        request = {
            "resourceType": "CoverageEligibilityRequest",
            "status": "active",
            "purpose": ["benefits", "validation"],
            "patient": {"reference": f"Patient/{pid}"},
            "created": "2026-03-02",
            "insurer": {"reference": "Organization/billable-payer"},
            "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/{coverage['id']}"}}],
        }
        corpus.add(api.send("POST", "CoverageEligibilityRequest/$submit", request))


def _searches(api: _Api, corpus: Corpus, patients: list[str]) -> None:
    pid = patients[0]
    corpus.add(api.get("ExplanationOfBenefit", patient=pid, _count="3"))
    corpus.add(api.get("Claim", patient=pid, _include="Claim:patient", _count="2"))
    corpus.add(api.get("Encounter", patient=pid, _revinclude="Claim:encounter", _count="2"))
    corpus.add(api.get("Patient", **{"bogus-parameter": "1"}))  # unknown-parameter warning
    corpus.add(api.get("Condition", _summary="count"))
    corpus.add(api.get("Claim", _elements="status,patient", _count="2"))
    corpus.add(api.get("Patient", _summary="true"))
    corpus.add(api.get("Task", _summary="true", _count="3"))  # contained outcomes
    corpus.add(api.get("Patient/_history", _count="3"))


def _outcomes(api: _Api, corpus: Corpus) -> None:
    corpus.add(api.get("Patient/does-not-exist", expect=404))
    corpus.add(api.get("Patient", expect=400, birthdate="not-a-date"))
    bad = {"resourceType": "Patient", "birthDate": "yesterday", "gender": 7}
    corpus.add(api.send("POST", "Patient", bad, expect=400))


def _sampled(codesystem: dict[str, Any]) -> dict[str, Any]:
    """A very large code system (ICD-10-CM, ICD-10-PCS) with its first concepts only.

    HAPI checks the invariant csd-1 (codes unique) pairwise, hours for 98,000 concepts;
    the structure of every concept is the same, so a prefix judges it, and the test checks
    uniqueness over the whole list itself (``test_catalog_codes_are_unique``).
    """
    concepts = codesystem.get("concept")
    if not isinstance(concepts, list) or len(concepts) <= CONCEPT_SAMPLE:
        return codesystem
    sample = {k: v for k, v in codesystem.items() if k != "count"}  # count is the whole's
    return {**sample, "concept": concepts[:CONCEPT_SAMPLE]}


def _catalog(api: _Api, corpus: Corpus, content: bool = True) -> None:
    """The published catalog (the stored summaries), and with ``content`` the full content
    behind each summary: judged on a prefix (``_sampled``), and the whole of each complete
    release up to ``REFERENCE_LIMIT`` concepts loaded into the judge as terminology (CPT and
    HCPCS, whose summaries carry no concepts), so that the codes Billable emits in them are
    checked. Without ``content`` (the MongoDB leg: the full content comes from the
    terminology module, the same on every backend) only the codes are kept, for the
    catalog tests."""
    loaded: set[tuple[str, str]] = set()
    for rtype in ("CodeSystem", "ValueSet", "ConceptMap"):
        for resource in api.all(rtype):
            key = (str(resource.get("url")), str(resource.get("version")))
            whole = rtype == "CodeSystem" and bool(resource.get("concept")) and key not in loaded
            if whole:
                loaded.add(key)
            corpus.add(resource, terminology=whole and content)
            if rtype in ("CodeSystem", "ConceptMap") and resource.get("content") != "complete":
                # the published summary; the full content is served inline
                full = api.get(f"{rtype}/{resource['id']}", _summary="false")
                if rtype == "CodeSystem":
                    concepts = full.get("concept") or []
                    corpus.concept_codes[resource["id"]] = [c["code"] for c in concepts]
                    if content and key not in loaded and 0 < len(concepts) <= REFERENCE_LIMIT:
                        loaded.add(key)
                        corpus.add_reference({**full, "id": f"{resource['id']}-whole"})
                if content:
                    corpus.add(_sampled({**full, "id": f"{resource['id']}-full"}))


def _audit(api: _Api, corpus: Corpus) -> None:
    kept: dict[tuple[str, ...], int] = {}
    for event in api.all("AuditEvent"):
        key = (
            orjson.dumps(event.get("type")).decode(),
            orjson.dumps(event.get("subtype")).decode(),
            str(event.get("action")),
            str(event.get("outcome")),
        )
        if kept.get(key, 0) < AUDIT_SAMPLE:
            kept[key] = kept.get(key, 0) + 1
            corpus.add(event)


@contextmanager
def served(store_url: str, audit_key: Path) -> Iterator[TestClient]:
    settings = Settings(
        store_url=store_url,
        auth="smart",
        preload_terminology=True,
        audit_key_file=str(audit_key),  # not ./data/audit-<db>.key in the working copy
    )
    with TestClient(create_app(settings), base_url=BASE) as client:
        client.get("/auth/jwks")  # makes the signing keys on first use
        yield client


def wait_for_catalog(api: _Api) -> None:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if api.get("ConceptMap", _summary="count").get("total", 0) > 0:
            time.sleep(0.5)  # the publisher writes CodeSystems, ValueSets, then ConceptMaps
            return
        time.sleep(0.25)
    raise AssertionError("the terminology catalog was not published within 120 s")


def build_corpus(
    store_url: str,
    root: Path,
    label: str,
    patients_wanted: int | None = None,
    recent_encounters: int | None = None,
    catalog_content: bool = True,
) -> Corpus:
    """One backend's corpus: see the module docstring; ``patients_wanted`` and
    ``recent_encounters`` make a smaller one (``_load_sample``), ``catalog_content=False``
    leaves the catalog's full content (the same on every backend) to another leg."""
    corpus = Corpus(root, label)
    with served(store_url, root / f"{label}.audit-key") as client:
        api = _Api(client, _token(client, "system/*.cruds system/AuditEvent.rs"))
        corpus.add(api.get("metadata"))
        # The catalog is published at start-up in the background: let it finish first, so
        # that the sample's transactions do not contend with it for the store.
        wait_for_catalog(api)
        patients = _load_sample(api, patients_wanted, recent_encounters)
        _code_all(api)
        _make_institutional(api)
        _adjudicate(api, corpus)
        _eligibility(api, corpus, patients)
        _searches(api, corpus, patients)
        _outcomes(api, corpus)
        _catalog(api, corpus, catalog_content)
        _audit(api, corpus)
    return corpus
