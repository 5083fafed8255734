"""Registered clients (backend services and apps) and users, kept as security records."""

from __future__ import annotations

import secrets
import time
from typing import Any

from server.auth.passwords import hash_secret, verify_secret
from server.auth.records import CLIENT, USER, Records
from server.auth.scopes import parse_scope, split_scopes

CONTEXT_SCOPES = frozenset(
    {"openid", "fhirUser", "profile", "launch", "launch/patient", "offline_access", "online_access"}
)


class RegistrationError(ValueError):
    pass


async def add_backend_client(
    records: Records,
    client_id: str,
    scopes: str,
    *,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """A SMART Backend Services client: authenticates with a JWT signed by its own key."""
    if (jwks is None) == (jwks_url is None):
        raise RegistrationError("give exactly one of a JWKS (file) or a JWKS URL")
    if jwks is not None and not isinstance(jwks.get("keys"), list):
        raise RegistrationError("the JWKS must be an object with a 'keys' array")
    _check_scopes(scopes)
    record = {
        "client_id": client_id,
        "kind": "backend",
        "name": name or client_id,
        "scopes": split_scopes(scopes),
        "jwks": jwks,
        "jwks_url": jwks_url,
        "confidential": True,
        "created": time.time(),
    }
    if not await records.insert(CLIENT, client_id, record):
        raise RegistrationError(f"client {client_id!r} already exists")
    return record


async def add_app_client(
    records: Records,
    client_id: str,
    scopes: str,
    redirect_uris: list[str],
    *,
    confidential: bool = False,
    name: str | None = None,
    jwks: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """A SMART app (authorization code + PKCE). Returns the record and, if confidential
    with a secret, the secret in clear — shown once, only its scrypt hash is stored."""
    if not redirect_uris:
        raise RegistrationError("an app needs at least one redirect URI")
    _check_scopes(scopes)
    secret = secrets.token_urlsafe(32) if confidential and jwks is None else None
    record = {
        "client_id": client_id,
        "kind": "app",
        "name": name or client_id,
        "scopes": split_scopes(scopes),
        "redirect_uris": redirect_uris,
        "confidential": confidential,
        "secret_hash": hash_secret(secret) if secret else None,
        "jwks": jwks,
        "jwks_url": None,
        "created": time.time(),
    }
    if not await records.insert(CLIENT, client_id, record):
        raise RegistrationError(f"client {client_id!r} already exists")
    return record, secret


async def add_user(
    records: Records,
    username: str,
    password: str,
    *,
    fhir_user: str | None = None,
    patients: list[str] | None = None,
) -> dict[str, Any]:
    """A person who can log in to the embedded authorization server.

    ``patients``: the patients this user may open (the patient picker lists them, and
    ``user/`` scopes are limited to their compartments); ``None`` when the user's
    ``user/`` scopes are not limited to some patients (e.g. a billing clerk).
    """
    if len(password) < 8:
        raise RegistrationError("a password needs at least 8 characters")
    if fhir_user and fhir_user.split("/")[0] not in (
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "RelatedPerson",
        "Person",
    ):
        raise RegistrationError("fhirUser must be a Patient, Practitioner, ... reference")
    if fhir_user and fhir_user.startswith("Patient/") and not patients:
        patients = [fhir_user.split("/", 1)[1]]
    record = {
        "username": username,
        "password_hash": hash_secret(password),
        "fhir_user": fhir_user,
        "patients": patients,
        "created": time.time(),
    }
    if not await records.insert(USER, username, record):
        raise RegistrationError(f"user {username!r} already exists")
    return record


async def check_user_password(
    records: Records, username: str, password: str
) -> dict[str, Any] | None:
    user = await records.get(USER, username)
    if user is None:
        verify_secret(password, _DUMMY_HASH)  # same work either way: no user enumeration
        return None
    return user if verify_secret(password, user["password_hash"]) else None


_DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))


def _check_scopes(scopes: str) -> None:
    for text in split_scopes(scopes):
        if text not in CONTEXT_SCOPES and parse_scope(text) is None:
            raise RegistrationError(f"{text!r} is not a SMART scope")


def grant_scopes(requested: str, allowed: list[str], contexts: tuple[str, ...]) -> list[str]:
    """The requested scopes the client may have: each one covered by an allowed scope.

    ``contexts``: the scope contexts this grant type may carry (``system`` for backend
    services; ``patient``/``user`` for apps).
    """
    allowed_parsed = [s for s in (parse_scope(a) for a in allowed) if s is not None]
    granted: list[str] = []
    for text in split_scopes(requested):
        wanted = parse_scope(text)
        if wanted is None:
            if text in allowed and text in CONTEXT_SCOPES:
                granted.append(text)
            continue
        if wanted.context not in contexts:
            continue
        if any(a.covers(wanted) for a in allowed_parsed):
            granted.append(text)
    return list(dict.fromkeys(granted))
