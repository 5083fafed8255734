"""The coder app's pages in process (no browser): what each page shows and refuses.

With ``--auth off`` (loopback only) the app opens a session without a token; with
``--auth smart`` it must send the browser to the authorization server first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.coding.cases import CASES
from tests.coding.test_store import generate, load


@pytest.fixture(params=["sqlite", "mongo"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    if request.param == "mongo":
        settings = Settings(store_url=request.getfixturevalue("mongo_db_uri"))
    else:
        settings = Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}")
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_the_queue_lists_the_draft_claim_and_its_page_traces_the_code(client: TestClient) -> None:
    case = next(c for c in CASES if c.name == "header_code_is_error")
    eid = load(client, case)
    claim, _ = generate(client, eid)
    queue = client.get("/app/")  # --auth off: a session without a token, then the queue
    assert queue.status_code == 200
    assert f"/app/claim/{claim['id']}" in queue.text and "code-not-billable" in queue.text
    assert "default-src 'self'" in queue.headers["content-security-policy"]

    page = client.get(f"/app/claim/{claim['id']}")
    assert page.status_code == 200
    assert "given by the EHR as http://hl7.org/fhir/sid/icd-10-cm" in page.text
    assert "Claim.diagnosis" in page.text or "Condition/" in page.text

    # A decision without a reason is refused with 422 and nothing is written.
    refused = client.post(
        f"/app/claim/{claim['id']}/decide",
        data={"csrf": _csrf(page.text), "action": "dx-code", "target": "E11", "value": "E11.9"},
        follow_redirects=False,
    )
    assert refused.status_code == 422 and "a reason is required" in refused.text
    assert not client.get("/fhir/Basic").json().get("entry")

    # A forged form (no CSRF token) is refused.
    forged = client.post(
        f"/app/claim/{claim['id']}/decide",
        data={"action": "dx-code", "target": "E11", "value": "E11.9", "reason": "x"},
        follow_redirects=False,
    )
    assert forged.status_code == 403

    done = client.post(
        f"/app/claim/{claim['id']}/decide",
        data={
            "csrf": _csrf(page.text),
            "action": "dx-code",
            "target": "E11",
            "value": "E11.9",
            "reason": "documented",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    after = client.get(done.headers["location"])
    assert "E11.9" in after.text and "coder-hold" in after.text


def test_without_a_session_the_app_sends_the_browser_to_the_authorization_server(
    tmp_path: Path,
) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'b.db'}", auth="smart")
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8080") as c:
        first = c.get("/app/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/app/login"
        login = c.get("/app/login", follow_redirects=False)
        target = urlsplit(login.headers["location"])
        query = parse_qs(target.query)
        assert target.path == "/auth/authorize"
        assert query["client_id"] == ["billable-coder-app"]
        assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
        assert query["redirect_uri"] == ["http://127.0.0.1:8080/app/callback"]
        assert query["aud"] == ["http://127.0.0.1:8080/fhir"]
        # A callback with a state this app never issued opens no session.
        forged = c.get("/app/callback?state=nope&code=abc", follow_redirects=False)
        assert forged.status_code == 400 and "billable_coder" not in forged.headers.get(
            "set-cookie", ""
        )
