"""The patient picker names the patients (name and birth date read through the
repository), so a guardian chooses a person, not an id."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.live import LiveServer, live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from live_server(tmp_path)


def test_the_picker_shows_each_patients_name_and_birth_date(server: LiveServer) -> None:
    token = server.backend_token()
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [
            {"use": "nickname", "given": ["Addie"]},
            {"use": "official", "given": ["Ada", "May"], "family": "Lovelace"},
        ],
        "birthDate": "1985-12-10",
    }
    stored = httpx.put(
        f"{server.fhir}/Patient/p1",
        json=patient,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
    )
    assert stored.status_code == 201, stored.text
    params = {
        "response_type": "code",
        "client_id": "coverage-app",
        "redirect_uri": server.callback.uri,
        "scope": "launch/patient openid fhirUser patient/*.rs",
        "state": "s",
        "aud": server.fhir,
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    with httpx.Client(follow_redirects=True) as http:
        login = http.get(f"{server.base}/auth/authorize", params=params)
        request = re.search(r"name=request value='([^']*)'", login.text)
        assert request, login.text
        picker = http.post(
            f"{server.base}/auth/login",
            data={
                "username": "guardian",
                "password": "correct horse battery",
                "request": request.group(1),
            },
        )
    assert "Choose a patient" in picker.text
    assert "Ada May Lovelace, born 1985-12-10" in picker.text  # the official name
    assert "Addie" not in picker.text
    # p2 is on the user's list but not stored yet: the picker falls back to its id.
    assert "Patient/p2" in picker.text
