"""Token introspection (RFC 7662) answers only a party authorised for the token.

Over real HTTP against ``billable serve``, on SQLite and on MongoDB (FerretDB): a
confidential client learns about its own tokens; another confidential client gets
``active: false`` and not one claim; a client registered as a resource server
(``billable clients add ... --introspect``) may check tokens issued to others.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import KeySet

from server.auth.clients import add_backend_client
from server.auth.records import Records
from tests.auth.conftest import run_on_store
from tests.auth.live import ASSERTION_TYPE, LiveServer, cli, live_server


@pytest.fixture(params=["sqlite", "mongo"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    store_url = None
    if request.param == "mongo":
        store_url = str(request.getfixturevalue("mongo_db_uri"))
    yield from live_server(tmp_path, store_url=store_url)


def _register_other_clients(server: LiveServer, tmp_path: Path) -> None:
    jwks = KeySet([server.backend_key]).as_dict(private=False)

    async def work(records: Records) -> None:
        await add_backend_client(records, "nosy-backend", "system/*.rs", jwks=jwks)

    run_on_store(server.store_url, work)
    jwks_file = tmp_path / "gateway.jwks.json"
    jwks_file.write_text(json.dumps(jwks))
    cli(
        "clients",
        "add",
        "gateway",
        "--kind",
        "backend",
        "--jwks",
        str(jwks_file),
        "--scope",
        "system/*.rs",
        "--introspect",
        "--store",
        server.store_url,
    )


def _introspect(server: LiveServer, client_id: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/auth/introspect",
        data={
            "token": token,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": server.assertion(client_id),
        },
    )


def test_introspection_answers_only_the_client_the_token_was_issued_to(
    server: LiveServer, tmp_path: Path
):
    _register_other_clients(server, tmp_path)
    token = server.backend_token("system/*.rs", client_id="payer")

    own = _introspect(server, "payer", token)
    assert own.status_code == 200
    assert own.json()["active"] is True
    assert own.json()["client_id"] == "payer"
    assert own.headers["cache-control"] == "no-store"

    other = _introspect(server, "nosy-backend", token)
    assert other.status_code == 200
    assert other.json() == {"active": False}  # not one claim of payer's token
    assert "payer" not in other.text and "system/" not in other.text


def test_a_registered_resource_server_may_introspect_tokens_of_other_clients(
    server: LiveServer, tmp_path: Path
):
    _register_other_clients(server, tmp_path)
    token = server.backend_token("system/*.rs", client_id="payer")
    answer = _introspect(server, "gateway", token).json()
    assert answer["active"] is True
    assert answer["client_id"] == "payer"
    assert answer["scope"] == "system/*.rs"


def test_introspection_needs_an_authenticated_client(server: LiveServer):
    token = server.backend_token("system/*.rs", client_id="payer")
    anonymous = httpx.post(f"{server.base}/auth/introspect", data={"token": token})
    assert anonymous.status_code == 401
    claimed = httpx.post(
        f"{server.base}/auth/introspect", data={"token": token, "client_id": "payer"}
    )
    assert claimed.status_code == 401  # a confidential client must prove who it is
    assert "system/" not in claimed.text
