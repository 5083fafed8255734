"""Signing the coder in: SMART App Launch (standalone) against Billable's own authorization
server, authorization code with PKCE S256, then a server-side session.

The app is a registered SMART client like any other (``billable clients add
billable-coder-app --kind app ...``, docs/coder-app.md); the coder is a user of the
embedded authorization server (``billable users add``). Nothing here checks a password
or mints a token: ``/auth/authorize`` shows its own login page, ``/auth/token`` trades
the code for the coder's access token. The token stays on the server (the browser holds
only an opaque, HttpOnly session cookie), so page scripts can never read it.

Sessions and pending sign-ins live in this process's memory: a restart signs coders out,
which is the safe failure. Each session has a CSRF token every form carries.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

COOKIE = "billable_coder"
PENDING_LIFETIME_S = 600
MAX_SESSIONS = 10_000
REFRESH_MARGIN_S = 60


@dataclass(slots=True)
class Session:
    access_token: str | None
    refresh_token: str | None
    expires_at: float
    username: str
    fhir_user: str | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    created: float = field(default_factory=time.time)

    def owner_reference(self) -> dict[str, Any]:
        """``Task.owner`` / ``author`` for this coder: the fhirUser and always the user."""
        ref: dict[str, Any] = {
            "identifier": {"system": "https://billable.dev/fhir/user", "value": self.username},
            "display": self.username,
        }
        if self.fhir_user and "/" in self.fhir_user:
            ref["reference"] = self.fhir_user.split("/fhir/")[-1]
        return ref


@dataclass(slots=True)
class Pending:
    verifier: str
    redirect_uri: str
    created: float


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT we just received from our own token endpoint (for display;
    the API verifies the token on every call)."""
    try:
        part = token.split(".")[1]
        value = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


class SignIn:
    """Pending sign-ins and sessions of one app."""

    def __init__(self, client_id: str, scopes: str) -> None:
        self.client_id = client_id
        self.scopes = scopes
        self.pending: dict[str, Pending] = {}
        self.sessions: dict[str, Session] = {}

    def start(self, issuer: str, fhir_base: str, redirect_uri: str) -> str:
        """The authorize URL to send the browser to (a new state and PKCE verifier)."""
        now = time.time()
        for key in [k for k, p in self.pending.items() if now - p.created > PENDING_LIFETIME_S]:
            del self.pending[key]
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        self.pending[state] = Pending(verifier, redirect_uri, now)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.scopes,
            "state": state,
            "aud": fhir_base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{issuer}/authorize?{urlencode(query)}"

    async def finish(self, http: httpx.AsyncClient, issuer_path: str, state: str, code: str) -> str:
        """Trade the code for tokens; returns the new session id (raises ValueError)."""
        pending = self.pending.pop(state, None)
        if pending is None or time.time() - pending.created > PENDING_LIFETIME_S:
            raise ValueError("the sign-in expired or was not started here; sign in again")
        response = await http.post(
            f"{issuer_path}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": pending.redirect_uri,
                "client_id": self.client_id,
                "code_verifier": pending.verifier,
            },
        )
        if response.status_code != 200:
            raise ValueError(f"the token endpoint refused the sign-in: {response.text[:200]}")
        return self._open(response.json())

    def _open(self, tokens: dict[str, Any]) -> str:
        access = str(tokens["access_token"])
        claims = _claims(access)
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = min(self.sessions, key=lambda k: self.sessions[k].created)
            del self.sessions[oldest]
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(
            access_token=access,
            refresh_token=tokens.get("refresh_token"),
            expires_at=time.time() + float(tokens.get("expires_in") or 300),
            username=str(claims.get("sub") or "coder"),
            fhir_user=claims.get("fhirUser"),
        )
        return sid

    def open_unauthenticated(self) -> str:
        """``--auth off``: a session without a token (the API is open on loopback)."""
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(None, None, float("inf"), "local coder (auth off)", None)
        return sid

    async def current(
        self, http: httpx.AsyncClient, issuer_path: str, sid: str | None
    ) -> Session | None:
        """The session of a cookie, its token refreshed when about to expire."""
        session = self.sessions.get(sid or "")
        if session is None:
            return None
        if session.access_token is None or time.time() < session.expires_at - REFRESH_MARGIN_S:
            return session
        if session.refresh_token:
            response = await http.post(
                f"{issuer_path}/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": session.refresh_token,
                    "client_id": self.client_id,
                },
            )
            if response.status_code == 200:
                tokens = response.json()
                session.access_token = str(tokens["access_token"])
                session.refresh_token = tokens.get("refresh_token")
                session.expires_at = time.time() + float(tokens.get("expires_in") or 300)
                return session
        self.sessions.pop(sid or "", None)
        return None

    async def end(self, http: httpx.AsyncClient, issuer_path: str, sid: str | None) -> None:
        session = self.sessions.pop(sid or "", None)
        if session is None or session.access_token is None:
            return
        for token in (session.refresh_token, session.access_token):
            if token:
                await http.post(
                    f"{issuer_path}/revoke", data={"token": token, "client_id": self.client_id}
                )
