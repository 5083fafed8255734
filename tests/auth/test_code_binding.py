"""The patient picker is bound to its authorization request; a replayed code revokes.

Against ``billable serve`` over HTTP, on SQLite and MongoDB (FerretDB), with the login
form, the picker and the token endpoint as a browser and an app use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.live import LiveServer, live_server
from tests.auth.test_app_launch import _authorize, _hidden, _pkce

SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs"


@pytest.fixture(params=["sqlite", "mongo"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    store_url = None
    if request.param == "mongo":
        store_url = str(request.getfixturevalue("mongo_db_uri"))
    yield from live_server(tmp_path, store_url=store_url)


def _picker(http: httpx.Client, server: LiveServer, state: str) -> tuple[str, str]:
    """(request, session) of the picker the guardian gets for a new authorization."""
    _, challenge = _pkce()
    login = _authorize(http, server, challenge, SCOPE, state=state)
    picker = http.post(
        f"{server.base}/auth/login",
        data={
            "username": "guardian",
            "password": "correct horse battery",
            "request": _hidden(login.text, "request"),
        },
    )
    assert "Choose a patient" in picker.text
    return _hidden(picker.text, "request"), _hidden(picker.text, "session")


def test_a_picker_session_is_refused_with_another_authorization_request(server: LiveServer):
    with httpx.Client() as http:
        _, victim_session = _picker(http, server, "victim-state")
        # Another authorization request (the attacker's, its own state and PKCE challenge).
        _, attacker_challenge = _pkce()
        other = _authorize(http, server, attacker_challenge, SCOPE, state="attacker-state")
        spliced = http.post(
            f"{server.base}/auth/pick",
            data={
                "request": _hidden(other.text, "request"),
                "session": victim_session,
                "patient": "p2",
            },
        )
    assert spliced.status_code == 400
    assert "location" not in spliced.headers
    assert server.callback.received == []  # no code was issued to either request


def test_a_picker_session_is_single_use(server: LiveServer):
    with httpx.Client() as http:
        request_token, session = _picker(http, server, "s1")
        form = {"request": request_token, "session": session, "patient": "p2"}
        first = http.post(f"{server.base}/auth/pick", data=form)
        assert first.status_code == 302 and "code=" in first.headers["location"]
        again = http.post(f"{server.base}/auth/pick", data=form)
    assert again.status_code == 400
    assert "location" not in again.headers


def test_a_forged_picker_session_is_refused(server: LiveServer):
    with httpx.Client() as http:
        request_token, _ = _picker(http, server, "s1")
        forged = http.post(
            f"{server.base}/auth/pick",
            data={"request": request_token, "session": "made-up", "patient": "p2"},
        )
    assert forged.status_code == 400
    assert server.callback.received == []


def _code(server: LiveServer) -> tuple[str, str]:
    """(code, verifier) of an authorization by ada (one patient: no picker)."""
    verifier, challenge = _pkce()
    with httpx.Client(follow_redirects=True) as http:
        login = _authorize(http, server, challenge, SCOPE)
        http.post(
            f"{server.base}/auth/login",
            data={
                "username": "ada",
                "password": "correct horse battery",
                "request": _hidden(login.text, "request"),
            },
        )
    return server.callback.received[-1]["code"], verifier


def _redeem(server: LiveServer, code: str, verifier: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": server.callback.uri,
            "client_id": "coverage-app",
            "code_verifier": verifier,
        },
        timeout=30,  # a replay revokes several records: slow on a busy FerretDB
    )


def _refresh(server: LiveServer, refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": "coverage-app",
        },
        timeout=30,
    )


def _reads(server: LiveServer, access_token: str) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    return httpx.get(f"{server.fhir}/Patient/p1", headers=headers, timeout=30).status_code


def test_a_replayed_code_revokes_every_token_issued_from_it_and_is_audited(
    server: LiveServer,
):
    auditor = {"Authorization": f"Bearer {server.backend_token('system/AuditEvent.rs')}"}
    code, verifier = _code(server)
    first = _redeem(server, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert _reads(server, tokens["access_token"]) in (200, 404)  # accepted
    refreshed = _refresh(server, tokens["refresh_token"])
    assert refreshed.status_code == 200
    later = refreshed.json()
    assert _reads(server, later["access_token"]) in (200, 404)

    replay = _redeem(server, code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"

    # Every access token of this grant (the first and the refreshed one) is now refused,
    # and its refresh token cannot make new ones.
    assert _reads(server, tokens["access_token"]) == 401
    assert _reads(server, later["access_token"]) == 401
    assert _refresh(server, later["refresh_token"]).status_code == 400

    history = httpx.get(
        f"{server.fhir}/AuditEvent/_history?_count=50", headers=auditor, timeout=30
    ).json()
    replays = [
        e["resource"]
        for e in history["entry"]
        if "replayed" in e["resource"].get("outcomeDesc", "")
    ]
    assert len(replays) == 1
    event = replays[0]
    assert event["outcome"] == "4"
    assert event["subtype"][0]["code"] == "oauth-token"
    assert "of client coverage-app replayed; 2 token(s)" in event["outcomeDesc"]
    # a public client proves nothing by naming itself: the actor stays anonymous
    assert event["agent"][0]["who"]["identifier"]["value"] == "anonymous"


def test_a_failed_redemption_still_burns_the_code(server: LiveServer):
    code, verifier = _code(server)
    wrong = _redeem(server, code, _pkce()[0])
    assert wrong.status_code == 400
    assert _redeem(server, code, verifier).status_code == 400  # no second chance
