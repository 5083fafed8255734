"""SMART App Launch v2 against a real server process: login form, patient picker, PKCE."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.auth.live import LiveServer, live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from live_server(tmp_path)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _hidden(html: str, name: str) -> str:
    match = re.search(rf"name={name} value='([^']*)'", html)
    assert match, html
    return match.group(1)


def _seed(server: LiveServer) -> None:
    headers = {
        "Authorization": f"Bearer {server.backend_token()}",
        "Content-Type": "application/fhir+json",
    }
    for pid in ("p1", "p2"):
        r = httpx.put(
            f"{server.fhir}/Patient/{pid}",
            json={"resourceType": "Patient", "id": pid},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        coverage = {
            "resourceType": "Coverage",
            "id": f"cov-{pid}",
            "status": "active",
            "beneficiary": {"reference": f"Patient/{pid}"},
            "payor": [{"reference": "Organization/o1"}],
        }
        assert (
            httpx.put(
                f"{server.fhir}/Coverage/cov-{pid}", json=coverage, headers=headers
            ).status_code
            == 201
        )


def _authorize(
    http: httpx.Client, server: LiveServer, challenge: str, scope: str, **extra: str
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": "coverage-app",
        "redirect_uri": server.callback.uri,
        "scope": scope,
        "state": "xyz-state",
        "aud": server.fhir,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return http.get(f"{server.base}/auth/authorize", params=params)


SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs"


def test_standalone_launch_with_picker_pkce_and_refresh(server: LiveServer):
    _seed(server)
    config = httpx.get(f"{server.fhir}/.well-known/smart-configuration").json()
    assert config["code_challenge_methods_supported"] == ["S256"]
    verifier, challenge = _pkce()
    with httpx.Client(follow_redirects=True) as http:
        login = _authorize(http, server, challenge, SCOPE)
        assert login.status_code == 200 and "Sign in" in login.text
        picker = http.post(
            f"{server.base}/auth/login",
            data={
                "username": "guardian",
                "password": "correct horse battery",
                "request": _hidden(login.text, "request"),
            },
        )
        assert "Choose a patient" in picker.text
        assert "Patient/p1" in picker.text and "Patient/p2" in picker.text
        landed = http.post(
            f"{server.base}/auth/pick",
            data={
                "request": _hidden(picker.text, "request"),
                "session": _hidden(picker.text, "session"),
                "patient": "p2",
            },
        )
        assert landed.status_code == 200 and landed.text == "app received the redirect"
    redirect = server.callback.received[-1]
    assert redirect["state"] == "xyz-state"
    token_form = {
        "grant_type": "authorization_code",
        "code": redirect["code"],
        "redirect_uri": server.callback.uri,
        "client_id": "coverage-app",
        "code_verifier": verifier,
    }
    tokens = httpx.post(config["token_endpoint"], data=token_form)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["patient"] == "p2"
    assert set(body["scope"].split()) == set(SCOPE.split())
    # The id_token is signed with a key from the published JWKS and names the user.
    jwks = KeySet.import_key_set(httpx.get(config["jwks_uri"]).json())
    id_token = jwt.decode(body["id_token"], jwks, algorithms=["RS256"]).claims
    assert id_token["fhirUser"] == f"{server.fhir}/RelatedPerson/rp1"
    assert id_token["aud"] == "coverage-app"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    coverage = httpx.get(f"{server.fhir}/Coverage/cov-p2", headers=headers)
    assert coverage.status_code == 200
    assert httpx.get(f"{server.fhir}/Coverage/cov-p1", headers=headers).status_code == 404
    # Refresh (rotating): the new access token keeps the patient context.
    refreshed = httpx.post(
        config["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": "coverage-app",
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["patient"] == "p2"
    stale = httpx.post(
        config["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": "coverage-app",
        },
    )
    assert stale.status_code == 400
    # Revocation of the new refresh token, then introspection of the access token.
    new_refresh = refreshed.json()["refresh_token"]
    assert (
        httpx.post(
            config["revocation_endpoint"], data={"token": new_refresh, "client_id": "coverage-app"}
        ).status_code
        == 200
    )
    gone = httpx.post(
        config["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": new_refresh,
            "client_id": "coverage-app",
        },
    )
    assert gone.status_code == 400
    # The code is single-use; a replay revokes what it was exchanged for (RFC 6749 4.1.2).
    again = httpx.post(config["token_endpoint"], data=token_form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert httpx.get(f"{server.fhir}/Coverage/cov-p2", headers=headers).status_code == 401


def test_wrong_pkce_verifier_is_refused(server: LiveServer):
    verifier, challenge = _pkce()
    with httpx.Client(follow_redirects=True) as http:
        login = _authorize(http, server, challenge, "launch/patient patient/*.rs")
        http.post(
            f"{server.base}/auth/login",
            data={
                "username": "ada",
                "password": "correct horse battery",
                "request": _hidden(login.text, "request"),
            },
        )
    code = server.callback.received[-1]["code"]
    r = httpx.post(
        f"{server.base}/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": server.callback.uri,
            "client_id": "coverage-app",
            "code_verifier": _pkce()[0],
        },
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_a_patient_user_gets_their_own_context_without_a_picker(server: LiveServer):
    verifier, challenge = _pkce()
    with httpx.Client(follow_redirects=True) as http:
        login = _authorize(http, server, challenge, "launch/patient patient/*.rs")
        landed = http.post(
            f"{server.base}/auth/login",
            data={
                "username": "ada",
                "password": "correct horse battery",
                "request": _hidden(login.text, "request"),
            },
        )
        assert landed.text == "app received the redirect"
    code = server.callback.received[-1]["code"]
    r = httpx.post(
        f"{server.base}/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": server.callback.uri,
            "client_id": "coverage-app",
            "code_verifier": verifier,
        },
    )
    assert r.json()["patient"] == "p1"


def test_pkce_is_required(server: LiveServer):
    with httpx.Client(follow_redirects=True) as http:
        r = http.get(
            f"{server.base}/auth/authorize",
            params={
                "response_type": "code",
                "client_id": "coverage-app",
                "redirect_uri": server.callback.uri,
                "scope": "patient/*.rs",
                "state": "s",
                "aud": server.fhir,
            },
        )
        assert r.status_code == 200
    assert server.callback.received[-1]["error"] == "invalid_request"
    with httpx.Client(follow_redirects=True) as http:
        _authorize(http, server, "x" * 43, "patient/*.rs", code_challenge_method="plain")
    assert server.callback.received[-1]["error"] == "invalid_request"


def test_unregistered_redirect_uri_is_never_redirected_to(server: LiveServer):
    r = httpx.get(
        f"{server.base}/auth/authorize",
        params={
            "response_type": "code",
            "client_id": "coverage-app",
            "redirect_uri": "https://evil.example/cb",
            "scope": "patient/*.rs",
            "aud": server.fhir,
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        },
    )
    assert r.status_code == 400
    assert "location" not in r.headers


def test_wrong_password_shows_the_form_again(server: LiveServer):
    _, challenge = _pkce()
    with httpx.Client(follow_redirects=True) as http:
        login = _authorize(http, server, challenge, SCOPE)
        r = http.post(
            f"{server.base}/auth/login",
            data={
                "username": "guardian",
                "password": "nope-nope",
                "request": _hidden(login.text, "request"),
            },
        )
    assert r.status_code == 401
    assert "wrong password" in r.text


def test_ehr_launch_binds_the_launch_patient(server: LiveServer, tmp_path: Path):
    from tests.auth.live import cli

    launch = cli("launch", "--patient", "p2", "--store", server.store_url).strip()
    verifier, challenge = _pkce()
    with httpx.Client(follow_redirects=True) as http:
        login = _authorize(
            http, server, challenge, "launch openid fhirUser patient/*.rs", launch=launch
        )
        http.post(
            f"{server.base}/auth/login",
            data={
                "username": "guardian",
                "password": "correct horse battery",
                "request": _hidden(login.text, "request"),
            },
        )
    code = server.callback.received[-1]["code"]
    r = httpx.post(
        f"{server.base}/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": server.callback.uri,
            "client_id": "coverage-app",
            "code_verifier": verifier,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["patient"] == "p2"


def test_backend_services_end_to_end_over_http(server: LiveServer):
    token = server.backend_token("system/*.rs")
    r = httpx.get(f"{server.fhir}/Patient/nobody", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 404
    assert r.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{server.fhir}/Patient/nobody").status_code == 401
