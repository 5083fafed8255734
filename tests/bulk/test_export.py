"""$export over HTTP on both backends: the Bulk Data IG v2 flow from kick-off to files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey

from tests.auth.conftest import mint, put
from tests.bulk.conftest import (
    ASYNC,
    backend_token,
    claim,
    download,
    ids,
    kick_off,
    seed,
    wait_done,
)


def test_full_export_cycle_kick_off_poll_manifest_download(
    client: TestClient, rsa_key: RSAKey, export_dir: Path
) -> None:
    seed(client)
    token = backend_token(client, rsa_key, "system/*.rs")
    status_url = kick_off(client, token, "/fhir/$export?_type=Patient,Claim,Coverage,Organization")
    manifest = wait_done(client, status_url, token)
    assert manifest["request"] == (
        "http://testserver/fhir/$export?_type=Patient,Claim,Coverage,Organization"
    )
    assert manifest["requiresAccessToken"] is True
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["error"] == []
    assert [o["type"] for o in manifest["output"]] == [
        "Patient",
        "Claim",
        "Coverage",
        "Organization",
    ]
    files = download(client, manifest, token)
    assert ids(files["Patient"]) == ["p1", "p2"]
    assert ids(files["Claim"]) == ["claim-p1", "claim-p2"]
    assert ids(files["Coverage"]) == ["cov-p1", "cov-p2"]
    assert files["Claim"][0]["meta"]["versionId"] == "1"
    # The files need the token: none is 401; the same client's other token works.
    url = manifest["output"][0]["url"]
    assert client.get(url).status_code == 401
    again = backend_token(client, rsa_key, "system/Claim.rs")
    assert client.get(url, headers=again).status_code == 200
    # Exported files are the server user's only.
    assert (export_dir.stat().st_mode & 0o777) == 0o700


def test_system_export_without_type_covers_every_permitted_type_but_audit(
    client: TestClient, rsa_key: RSAKey
) -> None:
    seed(client)
    token = backend_token(client, rsa_key)
    manifest = wait_done(client, kick_off(client, token), token)
    types = {o["type"] for o in manifest["output"]}
    assert {"Patient", "Claim", "Coverage", "Observation", "Organization"} <= types
    assert "AuditEvent" not in types  # `*` never covers the audit trail
    assert "Provenance" in types  # every write with a token left one
    # With the audit scope named, the trail comes too.
    audit = mint(client, "system/*.rs system/AuditEvent.rs", client_id="auditor")
    manifest = wait_done(client, kick_off(client, audit, "/fhir/$export?_type=AuditEvent"), audit)
    assert [o["type"] for o in manifest["output"]] == ["AuditEvent"]


def test_kick_off_requires_prefer_respond_async(client: TestClient) -> None:
    token = mint(client, "system/*.rs", client_id="reader")
    r = client.get("/fhir/$export", headers=token)
    assert r.status_code == 400
    assert "respond-async" in r.json()["issue"][0]["diagnostics"]


def test_kick_off_validates_its_parameters(client: TestClient) -> None:
    token = {**mint(client, "system/*.rs", client_id="reader"), **ASYNC}
    for query, needle in (
        ("_outputFormat=text/csv", "_outputFormat"),
        ("_type=Nope", "Nope"),
        ("_since=yesterday", "_since"),
        ("_typeFilter=Claim", "Type?"),
        ("_typeFilter=Claim?bogus=1", "bogus"),
        ("_typeFilter=Claim?_count=5", "_count"),
        ("_type=Claim&_typeFilter=Coverage?status=active", "_type"),
        ("_elements=id", "not supported"),
    ):
        r = client.get(f"/fhir/$export?{query}", headers=token)
        assert r.status_code == 400, (query, r.text)
        assert needle in r.text, (query, r.text)
    # The three spellings of NDJSON are accepted; lenient handling ignores the unknown.
    for fmt in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
        r = client.get(f"/fhir/$export?_type=Claim&_outputFormat={fmt}", headers=token)
        assert r.status_code == 202
    lenient = {**token, "Prefer": "respond-async, handling=lenient"}
    assert client.get("/fhir/$export?_type=Claim&_elements=id", headers=lenient).status_code == 202


def test_since_exports_only_what_changed_after_it(client: TestClient) -> None:
    admin = seed(client)
    token = mint(client, "system/*.rs", client_id="reader")
    first = wait_done(client, kick_off(client, token, "/fhir/$export?_type=Claim"), token)
    since = first["transactionTime"]
    time.sleep(0.01)
    assert put(client, admin, claim("p1", "claim-p1", status="cancelled")).status_code == 200
    assert put(client, admin, claim("p2", "claim-new")).status_code == 201
    second = wait_done(
        client, kick_off(client, token, f"/fhir/$export?_type=Claim,Coverage&_since={since}"), token
    )
    files = download(client, second, token)
    assert set(files) == {"Claim"}  # no Coverage changed
    assert ids(files["Claim"]) == ["claim-new", "claim-p1"]
    assert {c["id"]: c["status"] for c in files["Claim"]}["claim-p1"] == "cancelled"


def test_type_filter_limits_a_type_and_several_filters_are_ored(client: TestClient) -> None:
    seed(client)
    token = mint(client, "system/*.rs", client_id="reader")
    lab = (
        "Observation?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    )
    url = f"/fhir/$export?_type=Observation,Claim&_typeFilter={lab}"
    files = download(client, wait_done(client, kick_off(client, token, url), token), token)
    assert ids(files["Observation"]) == ["lab-p1", "lab-p2"]
    assert ids(files["Claim"]) == ["claim-p1", "claim-p2"]  # no filter for Claim: all
    url += "&_typeFilter=Observation?_id=soc-p2"
    files = download(client, wait_done(client, kick_off(client, token, url), token), token)
    assert ids(files["Observation"]) == ["lab-p1", "lab-p2", "soc-p2"]


def test_post_kick_off_with_parameters(client: TestClient) -> None:
    seed(client)
    token = mint(client, "system/*.rs", client_id="reader")
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_outputFormat", "valueString": "ndjson"},
            {"name": "_type", "valueString": "Coverage"},
            {"name": "_typeFilter", "valueString": "Coverage?beneficiary=Patient/p2"},
        ],
    }
    r = client.post(
        "/fhir/$export",
        content=orjson.dumps(body),
        headers={**token, **ASYNC, "Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 202, r.text
    files = download(client, wait_done(client, r.headers["content-location"], token), token)
    assert ids(files["Coverage"]) == ["cov-p2"]


def test_patient_export_covers_the_patient_compartment(client: TestClient) -> None:
    seed(client)
    admin = mint(client, "system/*.cruds", client_id="payer")
    orphan = {"resourceType": "Observation", "id": "no-patient", "status": "final",
              "code": {"text": "x"}, "subject": {"reference": "Group/g0"}}  # fmt: skip
    assert put(client, admin, orphan).status_code == 201
    token = mint(client, "system/*.rs", client_id="reader")
    manifest = wait_done(client, kick_off(client, token, "/fhir/Patient/$export"), token)
    files = download(client, manifest, token)
    assert "Organization" not in files  # not in the Patient compartment
    assert ids(files["Observation"]) == ["lab-p1", "lab-p2", "soc-p1", "soc-p2"]
    assert ids(files["Claim"]) == ["claim-p1", "claim-p2"]
    r = client.get("/fhir/Patient/$export?_type=Organization", headers={**token, **ASYNC})
    assert r.status_code == 400


def test_group_export_follows_group_members(client: TestClient) -> None:
    admin = seed(client, ("p1", "p2", "p3"))
    group = {
        "resourceType": "Group",
        "id": "g1",
        "type": "person",
        "actual": True,
        "member": [
            {"entity": {"reference": "Patient/p1"}},
            {"entity": {"reference": "Patient/p3"}},
            {"entity": {"reference": "Patient/p2"}, "inactive": True},
            {"entity": {"reference": "Practitioner/x"}},
        ],
    }
    assert put(client, admin, group).status_code == 201
    token = mint(client, "system/*.rs", client_id="reader")
    url = "/fhir/Group/g1/$export?_type=Patient,Claim,Coverage"
    manifest = wait_done(client, kick_off(client, token, url), token)
    files = download(client, manifest, token)
    assert ids(files["Patient"]) == ["p1", "p3"]
    assert ids(files["Claim"]) == ["claim-p1", "claim-p3"]
    assert ids(files["Coverage"]) == ["cov-p1", "cov-p3"]
    # The member that is not a Patient is reported in the error file.
    assert len(manifest["error"]) == 1
    r = client.get(manifest["error"][0]["url"], headers=token)
    outcome = orjson.loads(r.content.splitlines()[0])
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Practitioner/x" in outcome["issue"][0]["diagnostics"]
    unknown = client.get("/fhir/Group/nope/$export", headers={**token, **ASYNC})
    assert unknown.status_code == 404


def test_files_are_split_per_type_and_by_size(make_client: Callable[..., TestClient]) -> None:
    client = make_client(export_file_max_bytes=1200)
    admin = seed(client)
    for i in range(8):
        assert put(client, admin, claim("p1", f"extra-{i}")).status_code == 201
    token = mint(client, "system/*.rs", client_id="reader")
    manifest = wait_done(client, kick_off(client, token, "/fhir/$export?_type=Claim"), token)
    names = [o["url"].rsplit("/", 1)[-1] for o in manifest["output"]]
    assert len(names) > 2 and names[0] == "Claim-1.ndjson" and names[1] == "Claim-2.ndjson"
    files = download(client, manifest, token)
    assert len(files["Claim"]) == 10
    assert len(set(ids(files["Claim"]))) == 10


def test_delete_cancels_and_removes_the_files(client: TestClient, export_dir: Path) -> None:
    seed(client)
    token = mint(client, "system/*.rs", client_id="reader")
    status_url = kick_off(client, token, "/fhir/$export?_type=Claim")
    manifest = wait_done(client, status_url, token)
    job_dir = export_dir / status_url.rsplit("/", 1)[-1]
    assert job_dir.is_dir()
    assert client.delete(status_url, headers=token).status_code == 202
    assert client.get(status_url, headers=token).status_code == 404
    assert client.get(manifest["output"][0]["url"], headers=token).status_code == 404
    assert not job_dir.exists()
    assert client.delete(status_url, headers=token).status_code == 404


def test_cancelling_a_running_job_stops_it(client: TestClient, export_dir: Path) -> None:
    admin = seed(client)
    for i in range(10):
        assert put(client, admin, claim("p1", f"extra-{i}")).status_code == 201
    service = client.app.state.bulk  # type: ignore[attr-defined]
    service.page_size, service.page_delay = 1, 0.1
    token = mint(client, "system/*.rs", client_id="reader")
    status_url = kick_off(client, token, "/fhir/$export?_type=Claim")
    job_dir = export_dir / status_url.rsplit("/", 1)[-1]
    deadline = time.monotonic() + 20
    while not job_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.delete(status_url, headers=token).status_code == 202
    assert client.get(status_url, headers=token).status_code == 404
    deadline = time.monotonic() + 20
    while job_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not job_dir.exists()


def test_polling_too_fast_gets_429_with_retry_after(client: TestClient) -> None:
    admin = seed(client)
    for i in range(10):
        assert put(client, admin, claim("p1", f"extra-{i}")).status_code == 201
    service = client.app.state.bulk  # type: ignore[attr-defined]
    service.page_size, service.page_delay, service.min_poll_seconds = 1, 0.5, 3.0
    token = mint(client, "system/*.rs", client_id="reader")
    status_url = kick_off(client, token, "/fhir/$export?_type=Claim")
    first = client.get(status_url, headers=token)
    assert first.status_code == 202
    assert first.headers["retry-after"] == "2"
    second = client.get(status_url, headers=token)
    assert second.status_code == 429
    assert second.headers["retry-after"] == "2"
    assert second.json()["issue"][0]["code"] == "throttled"
    time.sleep(3.1)  # honouring the interval is answered again
    assert client.get(status_url, headers=token).status_code in (200, 202)


def test_authorisation_refusals(client: TestClient, rsa_key: RSAKey) -> None:
    seed(client)
    claims_only = backend_token(client, rsa_key, "system/Claim.rs")
    r = client.get("/fhir/$export?_type=Claim,Coverage", headers={**claims_only, **ASYNC})
    assert r.status_code == 403
    assert "Coverage" in r.json()["issue"][0]["diagnostics"]
    # Without _type, only the permitted types are exported.
    manifest = wait_done(client, kick_off(client, claims_only), claims_only)
    assert [o["type"] for o in manifest["output"]] == ["Claim"]
    # Write-only scopes cannot export.
    writer = mint(client, "system/*.cud", client_id="writer")
    assert client.get("/fhir/$export", headers={**writer, **ASYNC}).status_code == 403
    # No token at all: 401.
    assert client.get("/fhir/$export", headers=ASYNC).status_code == 401
    # Another client sees neither the job nor its files.
    other = mint(client, "system/*.rs", client_id="someone-else")
    status_url = kick_off(client, claims_only, "/fhir/$export?_type=Claim")
    manifest = wait_done(client, status_url, claims_only)
    assert client.get(status_url, headers=other).status_code == 404
    assert client.get(manifest["output"][0]["url"], headers=other).status_code == 404
    assert client.delete(status_url, headers=other).status_code == 404


def test_patient_token_exports_only_its_compartment(client: TestClient) -> None:
    seed(client)
    token = mint(client, "patient/*.rs", client_id="coverage-app", patient="p1")
    manifest = wait_done(client, kick_off(client, token, "/fhir/Patient/$export"), token)
    files = download(client, manifest, token)
    assert ids(files["Patient"]) == ["p1"]
    assert ids(files["Claim"]) == ["claim-p1"]
    assert ids(files["Observation"]) == ["lab-p1", "soc-p1"]
    # The same app for another patient cannot read this job.
    other = mint(client, "patient/*.rs", client_id="coverage-app", patient="p2")
    assert client.get(manifest["output"][0]["url"], headers=other).status_code == 404


def test_expired_exports_are_cleaned_up(
    make_client: Callable[..., TestClient], export_dir: Path
) -> None:
    client = make_client(export_expiry_seconds=1)
    service = client.app.state.bulk  # type: ignore[attr-defined]
    service.cleanup_seconds = 0.1
    seed(client)
    token = mint(client, "system/*.rs", client_id="reader")
    status_url = kick_off(client, token, "/fhir/$export?_type=Claim")
    manifest = wait_done(client, status_url, token)
    job_dir = export_dir / status_url.rsplit("/", 1)[-1]
    assert job_dir.is_dir()
    time.sleep(1.2)
    assert client.get(status_url, headers=token).status_code == 404
    assert client.get(manifest["output"][0]["url"], headers=token).status_code == 404
    deadline = time.monotonic() + 10
    while job_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not job_dir.exists()


def test_capability_statement_declares_export(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    assert (
        "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data" in statement["instantiates"]
    )
    names = {o["definition"] for o in statement["rest"][0]["operation"]}
    assert "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export" in names
    group = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Group")
    assert {o["definition"] for o in group["operation"]} == {
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
    }


def test_user_token_exports_its_users_patients_only(client: TestClient) -> None:
    seed(client, ("p1", "p2", "p3"))
    token = mint(
        client,
        "user/*.rs",
        client_id="coverage-app",
        fhir_user="RelatedPerson/rp1",
        user_patients=["p1", "p3"],
    )
    manifest = wait_done(
        client, kick_off(client, token, "/fhir/$export?_type=Claim,Coverage"), token
    )
    files = download(client, manifest, token)
    assert ids(files["Claim"]) == ["claim-p1", "claim-p3"]
    assert ids(files["Coverage"]) == ["cov-p1", "cov-p3"]
