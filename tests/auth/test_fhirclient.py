"""A real SMART client library (``fhirclient`` from PyPI) launching against Billable.

fhirclient discovers the OAuth endpoints from the CapabilityStatement's security section,
builds the authorize URL with ``aud`` and PKCE S256, exchanges the code and reads with
the token. Only the user's part (the login form) is driven here with httpx.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fhirclient import client as smart_client
from fhirclient.models.coverage import Coverage

from tests.auth.live import LiveServer, live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from live_server(tmp_path)


@pytest.mark.filterwarnings(r"ignore:perform\(\) is deprecated:DeprecationWarning")
def test_fhirclient_standalone_launch_reads_the_patients_coverage(server: LiveServer):
    admin = {
        "Authorization": f"Bearer {server.backend_token()}",
        "Content-Type": "application/fhir+json",
    }
    for pid in ("p1", "p2"):
        coverage = {
            "resourceType": "Coverage",
            "id": f"cov-{pid}",
            "status": "active",
            "beneficiary": {"reference": f"Patient/{pid}"},
            "payor": [{"reference": "Organization/o1"}],
        }
        r = httpx.put(f"{server.fhir}/Coverage/cov-{pid}", json=coverage, headers=admin)
        assert r.status_code == 201

    smart = smart_client.FHIRClient(
        settings={
            "app_id": "coverage-app",
            "api_base": server.fhir + "/",
            "redirect_uri": server.callback.uri,
            "scope": "openid fhirUser patient/*.rs",
        }
    )
    authorize_url = smart.authorize_url
    assert authorize_url.startswith(f"{server.base}/auth/authorize?")
    assert "code_challenge_method=S256" in authorize_url

    with httpx.Client(follow_redirects=True) as browser:
        login = browser.get(authorize_url)
        request_token = re.search(r"name=request value='([^']*)'", login.text)
        assert request_token, login.text
        landed = browser.post(
            f"{server.base}/auth/login",
            data={
                "username": "ada",
                "password": "correct horse battery",
                "request": request_token.group(1),
            },
        )
        assert landed.status_code == 200
        callback_url = str(landed.url)

    smart.handle_callback(callback_url)
    assert smart.ready
    assert smart.patient_id == "p1"
    mine = Coverage.read("cov-p1", smart.server)
    assert mine.beneficiary.reference == "Patient/p1"
    bundle = Coverage.where({"beneficiary": "Patient/p1"}).perform(smart.server)
    assert [e.resource.id for e in bundle.entry or []] == ["cov-p1"]
    with pytest.raises(Exception):  # noqa: B017 - fhirclient raises requests' HTTPError
        Coverage.read("cov-p2", smart.server)
