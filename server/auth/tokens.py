"""Access tokens: JWTs signed by the embedded server or by a trusted external issuer.

Validation is the same whoever issued the token: signature with a key of the issuer's
JWKS (asymmetric algorithms only, so neither ``alg: none`` nor HS/RS confusion can get
through), ``iss``, ``aud`` (the FHIR base URL), ``exp``, ``nbf`` and ``iat`` with a small
leeway, then revocation for the embedded issuer's tokens.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from server.auth.keys import SIGNING_ALG, KeyRing
from server.auth.records import REVOKED_TOKEN, Records
from server.auth.scopes import Grants

log = logging.getLogger("billable.auth.tokens")

ACCEPTED_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384")
LEEWAY_S = 10
PATIENTS_CLAIM = "billable_patients"


class TokenError(Exception):
    """An unusable bearer token; ``error`` is the RFC 6750 code for WWW-Authenticate."""

    def __init__(self, description: str, error: str = "invalid_token") -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: dict[str, Any]


class TokenIssuer:
    """Signs the embedded server's access and id tokens with the key ring's newest key."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.keys.signing_key
        return jwt.encode({"alg": SIGNING_ALG, "kid": key.kid, "typ": "JWT"}, claims, key)

    def access_token(
        self,
        *,
        issuer: str,
        audience: str,
        client_id: str,
        scope: str,
        lifetime_s: int,
        subject: str | None = None,
        patient: str | None = None,
        fhir_user: str | None = None,
        user_patients: list[str] | None = None,
    ) -> IssuedToken:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": subject or client_id,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        if patient:
            claims["patient"] = patient
        if fhir_user:
            claims["fhirUser"] = fhir_user
        if user_patients is not None:
            claims[PATIENTS_CLAIM] = user_patients
        return IssuedToken(self.sign(claims), claims)


class RemoteJwks:
    """An external issuer's keys, fetched from its JWKS URL and refetched on an unknown kid."""

    def __init__(self, url: str, min_refresh_s: float = 30.0) -> None:
        self.url = url
        self.min_refresh_s = min_refresh_s
        self._keyset: KeySet | None = None
        self._fetched = 0.0

    async def keyset(self, kid: str | None) -> KeySet:
        stale = time.monotonic() - self._fetched > self.min_refresh_s
        if self._keyset is None or (stale and not _has_kid(self._keyset, kid)):
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                self._keyset = KeySet.import_key_set(response.json())
            self._fetched = time.monotonic()
        return self._keyset


def _has_kid(keyset: KeySet, kid: str | None) -> bool:
    return kid is None or any(k.kid == kid for k in keyset.keys)


KeysFor = Callable[[str | None], Awaitable[KeySet]]


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token whose signature and claims were checked: until when that may be reused."""

    claims: dict[str, Any]
    grants: Grants
    until: float  # monotonic seconds


class VerifiedTokens:
    """Tokens already verified, by the SHA-256 of the token (the token itself is not kept).

    A signature check costs more than the rest of the token's checks; a client sends the
    same token for minutes. What is cached is only what the signature proves (the
    claims): expiry, not-before and revocation are checked on every request as before,
    so a revoked token is refused at once. An entry lives at most ``ttl_s`` (so a key
    withdrawn from an issuer's JWKS stops its tokens within that time) and never past
    the token's ``exp``.
    """

    def __init__(self, ttl_s: float = 60.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[tuple[bytes, str, str], _Verified] = {}

    @staticmethod
    def key(token: str, issuer: str, audience: str) -> tuple[bytes, str, str]:
        return hashlib.sha256(token.encode()).digest(), issuer, audience

    def get(self, key: tuple[bytes, str, str]) -> _Verified | None:
        found = self._entries.get(key)
        if found is not None and found.until < time.monotonic():
            del self._entries[key]
            return None
        return found

    def put(self, key: tuple[bytes, str, str], claims: dict[str, Any]) -> _Verified:
        now = time.monotonic()
        lifetime = float(claims["exp"]) - time.time() + LEEWAY_S
        entry = _Verified(claims, grants_from_claims(claims), now + min(self.ttl_s, lifetime))
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v.until >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = entry
        return entry

    def clear(self) -> None:
        self._entries.clear()


class TokenValidator:
    def __init__(
        self,
        keys_for: KeysFor,
        records: Records | None = None,
        check_revocation: bool = True,
    ) -> None:
        self.keys_for = keys_for
        self.records = records
        self.check_revocation = check_revocation and records is not None
        self.verified = VerifiedTokens()

    async def validate(self, token: str, issuer: str, audience: str) -> Grants:
        return (await self._verified(token, issuer, audience)).grants

    async def claims(self, token: str, issuer: str, audience: str) -> dict[str, Any]:
        return (await self._verified(token, issuer, audience)).claims

    async def _verified(self, token: str, issuer: str, audience: str) -> _Verified:
        key = self.verified.key(token, issuer, audience)
        entry = self.verified.get(key)
        if entry is None:
            entry = self.verified.put(key, await self._verify_signature(token, issuer, audience))
        else:
            _check_claims(entry.claims, issuer, audience)  # exp and nbf move with time
        await self._check_revocation(entry.claims)
        return entry

    async def _check_revocation(self, claims: dict[str, Any]) -> None:
        if self.check_revocation and self.records is not None:
            jti = claims.get("jti")
            if isinstance(jti, str) and await self.records.get(REVOKED_TOKEN, jti) is not None:
                raise TokenError("token was revoked")

    async def _verify_signature(self, token: str, issuer: str, audience: str) -> dict[str, Any]:
        """The claims of a token whose signature, issuer, audience and times are valid."""
        header = _unverified_header(token)
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGS:
            raise TokenError(f"token algorithm {alg!r} is not accepted")
        keyset = await self.keys_for(header.get("kid"))
        try:
            decoded = jwt.decode(token, keyset, algorithms=list(ACCEPTED_ALGS))
        except JoseError as exc:
            raise TokenError(f"token signature is not valid ({exc.error})") from exc
        claims = decoded.claims
        _check_claims(claims, issuer, audience)
        grants_from_claims(claims)  # a token naming no client is refused before caching
        return claims


def _unverified_header(token: str) -> dict[str, Any]:
    import base64

    import orjson

    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token is not a signed JWT")
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        header = orjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise TokenError("token header is not valid") from exc
    if not isinstance(header, dict):
        raise TokenError("token header is not valid")
    return header


def _check_claims(claims: dict[str, Any], issuer: str, audience: str) -> None:
    now = time.time()
    if claims.get("iss") != issuer:
        raise TokenError("token issuer is not trusted here")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise TokenError("token audience is not this FHIR server")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp < now - LEEWAY_S:
        raise TokenError("token is expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + LEEWAY_S):
        raise TokenError("token is not valid yet")
    iat = claims.get("iat")
    if iat is not None and (not isinstance(iat, int | float) or iat > now + LEEWAY_S):
        raise TokenError("token was issued in the future")


def grants_from_claims(claims: dict[str, Any]) -> Grants:
    scope = claims.get("scope")
    if scope is None and isinstance(claims.get("scp"), list):
        scope = " ".join(str(s) for s in claims["scp"])
    client_id = claims.get("client_id") or claims.get("azp") or claims.get("sub")
    if not isinstance(client_id, str):
        raise TokenError("token names no client")
    patients = claims.get(PATIENTS_CLAIM)
    subject = claims.get("sub")
    return Grants.from_scope_string(
        scope if isinstance(scope, str) else "",
        client_id,
        subject=subject if isinstance(subject, str) and subject != client_id else None,
        fhir_user=claims.get("fhirUser") if isinstance(claims.get("fhirUser"), str) else None,
        patient=claims.get("patient") if isinstance(claims.get("patient"), str) else None,
        user_patients=[str(p) for p in patients] if isinstance(patients, list) else None,
        token_id=claims.get("jti") if isinstance(claims.get("jti"), str) else None,
    )
