"""The SMART-mode CapabilityStatement is valid R4: what R4 cannot say goes elsewhere."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.auth.setup import R4_CAPABILITIES

CAPABILITIES_URL = "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _security(client: TestClient) -> dict:
    statement = client.get("/fhir/metadata").json()
    return statement["rest"][0]["security"]


def test_rest_security_carries_only_r4_smart_capability_codes(client: TestClient) -> None:
    codes = {e["valueCode"] for e in _security(client)["extension"] if e["url"] == CAPABILITIES_URL}
    assert codes and codes <= R4_CAPABILITIES
    assert "client-confidential-asymmetric" not in codes
    assert not {c for c in codes if c in ("permission-v1", "permission-v2", "permission-online")}
    # SMART v2's own codes are announced where SMART v2 looks for them
    config = client.get("/fhir/.well-known/smart-configuration").json()
    assert {"client-confidential-asymmetric", "permission-v2"} <= set(config["capabilities"])


def test_oauth_uris_has_only_its_defined_sub_extensions(client: TestClient) -> None:
    uris = next(e for e in _security(client)["extension"] if e["url"] == OAUTH_URIS)
    assert {e["url"] for e in uris["extension"]} <= {"authorize", "token", "register", "manage"}
    assert {e["url"] for e in uris["extension"]} >= {"authorize", "token"}
    config = client.get("/fhir/.well-known/smart-configuration").json()
    assert config["revocation_endpoint"] and config["introspection_endpoint"]


def test_audit_event_is_advertised_read_only_as_the_scopes_enforce(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent")
    codes = {i["code"] for i in entry["interaction"]}
    assert {"read", "search-type"} <= codes
    assert not codes & {"create", "update", "patch", "delete"}
    assert entry["conditionalCreate"] is False and entry["updateCreate"] is False
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert "create" in {i["code"] for i in patient["interaction"]}
