"""A verified token is not verified again, yet revocation and expiry still apply at once.

The token validator keeps the claims of tokens whose signature it checked (by the token's
SHA-256); these cases show what that cache must never change: a token revoked by another
server process on the same store is refused on its next request, a token is refused once
it expires, and a token that failed is never remembered as good.
"""

from __future__ import annotations

import time
import uuid

from fastapi.testclient import TestClient
from joserfc import jwt

from server.auth.records import REVOKED_TOKEN, Records
from server.auth.tokens import LEEWAY_S
from tests.auth.conftest import BASE, FHIR, mint, run_on_store


def _signed(client: TestClient, **claims: object) -> str:
    key = client.app.state.security.keys.signing_key  # type: ignore[attr-defined]
    now = int(time.time())
    body: dict[str, object] = {
        "iss": f"{BASE}/auth",
        "aud": FHIR,
        "client_id": "payer",
        "sub": "payer",
        "scope": "system/*.rs",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)


def _status(client: TestClient, token: str) -> int:
    return client.get(
        "/fhir/Patient/nobody", headers={"Authorization": f"Bearer {token}"}
    ).status_code


def test_a_token_revoked_by_another_process_is_refused_on_its_next_request(
    client: TestClient, registered: str
):
    token = _signed(client)
    assert _status(client, token) == 404  # accepted (and now cached)
    assert _status(client, token) == 404
    jti = jwt.decode(token, client.app.state.security.keys.keyset).claims["jti"]  # type: ignore[attr-defined]

    async def revoke_elsewhere(records: Records) -> None:
        await records.put(REVOKED_TOKEN, jti, {"exp": int(time.time()) + 300})

    # Another server process: its own store connection and records, the same store.
    run_on_store(registered, revoke_elsewhere)
    assert _status(client, token) == 401


def test_a_cached_token_is_refused_once_it_expires(client: TestClient):
    expires = int(time.time()) - LEEWAY_S + 2
    token = _signed(client, exp=expires)
    assert _status(client, token) == 404
    time.sleep(max(0.0, expires + LEEWAY_S - time.time()) + 1.1)
    assert _status(client, token) == 401


def test_a_refused_token_is_not_remembered_as_good(client: TestClient):
    good = mint(client, "system/*.rs")["Authorization"].split()[1]
    header, body, signature = good.split(".")
    forged = f"{header}.{body}.{signature[:-4]}AAAA"
    for _ in range(2):
        assert _status(client, forged) == 401
    assert _status(client, good) == 404


def test_the_cache_keeps_a_hash_of_the_token_not_the_token(client: TestClient):
    token = _signed(client)
    assert _status(client, token) == 404
    cache = client.app.state.security.validator.verified  # type: ignore[attr-defined]
    assert all(token not in repr(key) for key in cache._entries)
