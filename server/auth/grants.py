"""What one authorization request leads to, kept so that it can be bound and revoked.

- A **picker session** ties the patient picker to the authorization request it was
  shown for: the browser holds only a random id; the store holds who signed in and the
  request (client, redirect URI, state, PKCE challenge, hash of the signed request).
  It is consumed once, and refused with any other request.
- A **grant** outlives its authorization code and lists the access tokens issued from
  it and from its refreshes, so that a replayed code (RFC 6749 section 4.1.2) revokes
  them all; a revocation marker makes its refresh tokens fail too.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from server.auth.records import GRANT, PICK_SESSION, REVOKED_TOKEN, Records

PICK_LIFETIME_S = 600


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- picker sessions -------------------------------------------------------------------


def pick_binding(request_token: str, pending: dict[str, Any]) -> dict[str, Any]:
    """What a picker session is bound to: this exact authorization request."""
    return {
        "request": sha(request_token),
        "client_id": pending["client_id"],
        "redirect_uri": pending["redirect_uri"],
        "state": pending.get("state"),
        "code_challenge": pending["code_challenge"],
    }


async def open_pick_session(
    records: Records, request_token: str, pending: dict[str, Any], username: str
) -> str:
    """A new opaque, single-use session id for the picker of ``pending``."""
    session_id = secrets.token_urlsafe(32)
    await records.put(
        PICK_SESSION,
        sha(session_id),
        {
            "username": username,
            "binding": pick_binding(request_token, pending),
            "exp": time.time() + PICK_LIFETIME_S,
        },
    )
    return session_id


async def take_pick_session(
    records: Records, session_id: str, request_token: str, pending: dict[str, Any]
) -> tuple[str | None, str | None]:
    """(user name, refusal): the session is spent whatever the outcome."""
    session = await records.consume(PICK_SESSION, sha(session_id)) if session_id else None
    if session is None or session["exp"] < time.time():
        return None, "The form expired; start again."
    if session["binding"] != pick_binding(request_token, pending):
        return None, "This choice belongs to another sign-in; start again."
    return str(session["username"]), None


# -- grants ----------------------------------------------------------------------------


def _marker(family: str) -> str:
    return f"grant-{family}"


async def open_grant(records: Records, family: str, client_id: str, lifetime_s: float) -> None:
    """The grant of a new code (``family``: the code's hash)."""
    await records.put(
        GRANT, family, {"client_id": client_id, "tokens": [], "exp": time.time() + lifetime_s}
    )


async def is_used_code(records: Records, family: str) -> bool:
    """A code that was issued (its grant exists) but can no longer be consumed."""
    return await records.get(GRANT, family) is not None


async def grant_revoked(records: Records, family: str) -> bool:
    return await records.get(REVOKED_TOKEN, _marker(family)) is not None


async def record_issued(records: Records, family: str, claims: dict[str, Any]) -> bool:
    """Note an access token under its grant; ``False`` (and revoked) if the grant is gone.

    The revocation marker is written before a replay reads the list, and checked here
    after the token is listed, so a token issued while a replay runs is revoked too.
    """
    record = await records.get(GRANT, family)
    if record is not None:
        now = time.time()  # expired tokens need no revoking: keep the list short
        live = [t for t in record.get("tokens", []) if t[1] > now]
        record["tokens"] = [*live, [claims["jti"], claims["exp"]]]
        await records.put(GRANT, family, record)
    if record is None or await grant_revoked(records, family):
        await records.put(REVOKED_TOKEN, claims["jti"], {"exp": claims["exp"]})
        return False
    return True


async def revoke_grant(records: Records, family: str, default_lifetime_s: float) -> tuple[str, int]:
    """Revoke every access token of a grant; its refresh tokens then fail.

    Returns the client the grant was issued to (from the store, not from the request)
    and how many access tokens were revoked.
    """
    record = await records.get(GRANT, family)
    exp = record["exp"] if record else time.time() + default_lifetime_s
    await records.put(REVOKED_TOKEN, _marker(family), {"exp": exp})
    tokens = (record or {}).get("tokens", [])
    for jti, token_exp in tokens:
        await records.put(REVOKED_TOKEN, jti, {"exp": token_exp})
    return str((record or {}).get("client_id", "unknown")), len(tokens)
