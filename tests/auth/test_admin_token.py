"""`billable token`: an administrator's token from the embedded server's own key."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from fastapi.testclient import TestClient

from server.cli import main
from tests.auth.conftest import FHIR, FHIR_JSON


def issue(store_url: str, *args: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["token", "--store", store_url, "--base-url", FHIR, *args]) == 0
    return out.getvalue().strip()


def test_admin_token_is_accepted_with_the_scopes_it_names(client: TestClient, store_url: str):
    client.get("/fhir/metadata")  # the app has made its signing key by now
    token = issue(store_url, "--scope", "system/Patient.cruds")
    auth = {"Authorization": f"Bearer {token}"}
    created = client.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers={**FHIR_JSON, **auth}
    )
    assert created.status_code == 201
    assert client.get(created.headers["location"], headers=auth).status_code == 200
    assert client.get("/fhir/Claim", headers=auth).status_code == 403


def test_admin_token_for_another_server_is_refused(client: TestClient, store_url: str):
    out = io.StringIO()
    with redirect_stdout(out):
        main(["token", "--store", store_url, "--base-url", "http://elsewhere:8080/fhir"])
    auth = {"Authorization": f"Bearer {out.getvalue().strip()}"}
    assert client.get("/fhir/Patient", headers=auth).status_code == 401
