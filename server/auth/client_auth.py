"""Who is calling the token, revoke and introspect endpoints: client authentication.

A confidential client proves itself with a private_key_jwt assertion (SMART Backend
Services: RS384 or ES384, signed with a key registered for it, inline or at its JWKS URL;
one use per ``jti``) or with its secret (form fields or HTTP Basic); a public client only
names itself, and only where the endpoint allows public clients.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from server.auth.grants import sha
from server.auth.oauth_error import OAuthError
from server.auth.records import ASSERTION_JTI, CLIENT
from server.auth.tokens import TokenError, _unverified_header

if TYPE_CHECKING:
    from server.auth.setup import Security

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME_S = 300


def token_endpoint_url(request: Request, security: Security) -> str:
    """The assertion audience: the pinned issuer's token URL, whatever Host was sent."""
    return security.issuer_url() + "/token"


async def authenticate_client(
    request: Request, security: Security, form: dict[str, str], allow_public: bool
) -> dict[str, Any]:
    """The calling client, authenticated by private_key_jwt, a secret, or (public) its id."""
    if form.get("client_assertion_type") or form.get("client_assertion"):
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_client", "unsupported client_assertion_type", 401)
        proven = await verify_client_assertion(
            security, form.get("client_assertion", ""), token_endpoint_url(request, security)
        )
        request.state.oauth_client = proven["client_id"]  # proven: the AuditEvent names it
        return proven
    client_id, secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
            client_id, secret = decoded.split(":", 1)
        except (ValueError, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from exc
        from urllib.parse import unquote_plus

        client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if not client_id:
        raise OAuthError("invalid_client", "client authentication is required", 401)
    client = await security.records.get(CLIENT, client_id)
    if client is None:
        raise OAuthError("invalid_client", "unknown client", 401)
    if client.get("secret_hash"):
        from server.auth.passwords import verify_secret

        if not secret or not verify_secret(secret, client["secret_hash"]):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        request.state.oauth_client = client["client_id"]
        return client
    if client.get("confidential"):
        raise OAuthError("invalid_client", "this client must authenticate with its key", 401)
    if not allow_public:
        raise OAuthError("invalid_client", "a public client cannot use this endpoint", 401)
    return client


async def verify_client_assertion(
    security: Security, assertion: str, token_url: str
) -> dict[str, Any]:
    """SMART Backend Services: a JWT signed with the client's registered key."""
    try:
        header = _unverified_header(assertion)
    except TokenError as exc:
        raise OAuthError("invalid_client", "the client assertion is not a JWT", 401) from exc
    if not isinstance(header, dict):  # a JSON array or string where the header goes
        raise OAuthError("invalid_client", "the client assertion header is not an object", 401)
    if header.get("alg") not in ASSERTION_ALGS:
        raise OAuthError(
            "invalid_client", f"client assertions must be signed with {ASSERTION_ALGS}", 401
        )
    try:
        payload = orjson.loads(_b64(assertion.split(".")[1]))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise OAuthError("invalid_client", "the client assertion is not a JWT", 401) from exc
    if not isinstance(payload, dict):  # a JSON array or string where the claims go
        raise OAuthError("invalid_client", "the client assertion claims are not an object", 401)
    client_id = payload.get("iss")
    client = await security.records.get(CLIENT, client_id) if isinstance(client_id, str) else None
    if client is None:
        raise OAuthError("invalid_client", "unknown client", 401)
    if payload.get("sub") != client_id:
        raise OAuthError(
            "invalid_client", "iss and sub of the assertion must be the client id", 401
        )
    keyset = await _client_keys(security, client, header)
    try:
        verified = jwt.decode(assertion, keyset, algorithms=[header["alg"]]).claims
    except JoseError as exc:
        raise OAuthError(
            "invalid_client", "the client assertion signature is invalid", 401
        ) from exc
    aud = verified.get("aud")
    if token_url not in (aud if isinstance(aud, list) else [aud]):
        raise OAuthError("invalid_client", "the assertion aud must be the token endpoint", 401)
    now = time.time()
    exp = verified.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        raise OAuthError("invalid_client", "the client assertion is expired", 401)
    if exp > now + MAX_ASSERTION_LIFETIME_S + 5:
        raise OAuthError("invalid_client", "the assertion exp is more than 5 minutes ahead", 401)
    jti = verified.get("jti")
    if not isinstance(jti, str) or not jti:
        raise OAuthError("invalid_client", "the client assertion needs a jti", 401)
    if not await security.records.insert(
        ASSERTION_JTI, sha(f"{client_id}\n{jti}"), {"client_id": client_id, "exp": exp}
    ):
        raise OAuthError("invalid_client", "the client assertion was already used (jti)", 401)
    return client


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


async def _client_keys(
    security: Security, client: dict[str, Any], header: dict[str, Any]
) -> KeySet:
    if client.get("jwks"):
        return KeySet.import_key_set(client["jwks"])
    url = client.get("jwks_url")
    if not url:
        raise OAuthError("invalid_client", "the client has no registered keys", 401)
    if header.get("jku") and header["jku"] != url:
        raise OAuthError("invalid_client", "jku is not the client's registered JWKS URL", 401)
    try:
        return await security.client_jwks(url)
    except Exception as exc:  # network, JSON or key errors: all mean "cannot verify"
        raise OAuthError("invalid_client", "the client's JWKS URL could not be read", 401) from exc
