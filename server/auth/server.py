"""The embedded OAuth2 authorization server (SMART App Launch v2 and Backend Services).

Endpoints under ``/auth``: ``authorize`` (GET: login page), ``login`` and ``pick`` (the
forms), ``token`` (authorization_code with PKCE S256, refresh_token, client_credentials
with a private_key_jwt assertion), ``revoke`` (RFC 7009), ``introspect`` (RFC 7662),
``jwks``; and ``/fhir/.well-known/smart-configuration``. PKCE uses authlib's S256
implementation; JWTs are handled by joserfc, authlib's JOSE successor.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from server.auth import grants, pages
from server.auth.client_auth import authenticate_client
from server.auth.clients import check_user_password, grant_scopes
from server.auth.oauth_error import OAuthError
from server.auth.picker_labels import patient_labels
from server.auth.records import AUTH_CODE, CLIENT, REFRESH_TOKEN, REVOKED_TOKEN
from server.auth.scopes import split_scopes
from server.auth.tokens import TokenError

if TYPE_CHECKING:
    from server.auth.setup import Security

log = logging.getLogger("billable.auth.server")

CODE_LIFETIME_S = 60
FORM_LIFETIME_S = 600

router = APIRouter()
well_known = APIRouter()


def security_of(request: Request) -> Security:
    security: Security = request.app.state.security
    return security


def _no_store(payload: dict[str, Any]) -> Response:
    return JSONResponse(payload, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# -- discovery -------------------------------------------------------------------------


@well_known.get("/fhir/.well-known/smart-configuration")
async def smart_configuration(request: Request) -> Response:
    security = security_of(request)
    return JSONResponse(await security.smart_configuration())


@router.get("/.well-known/openid-configuration")
async def openid_configuration(request: Request) -> Response:
    security = security_of(request)
    config = await security.smart_configuration()
    config["subject_types_supported"] = ["public"]
    config["id_token_signing_alg_values_supported"] = ["RS256"]
    return JSONResponse(config)


@router.get("/jwks")
async def jwks(request: Request) -> Response:
    security = security_of(request)
    await security.ensure_ready()
    assert security.keys is not None
    return JSONResponse(security.keys.public_jwks(), headers={"Cache-Control": "max-age=300"})


# -- authorization code: authorize, login, pick ------------------------------------------


@router.get("/authorize")
async def authorize(request: Request) -> Response:
    security = security_of(request)
    await security.ensure_ready()
    params = request.query_params
    client_id = params.get("client_id", "")
    client = await security.records.get(CLIENT, client_id) if client_id else None
    redirect_uri = params.get("redirect_uri", "")
    if client is None or client.get("kind") != "app":
        return HTMLResponse(pages.error_page("Unknown client."), 400)
    if redirect_uri not in client.get("redirect_uris", []):
        return HTMLResponse(pages.error_page("The redirect URI is not registered."), 400)
    state = params.get("state")

    def fail(error: str, description: str) -> Response:
        query = {"error": error, "error_description": description}
        if state is not None:
            query["state"] = state
        return RedirectResponse(_with_query(redirect_uri, query), 302)

    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "response_type must be code")
    base = security.base
    if params.get("aud", "").rstrip("/") != base:
        return fail("invalid_request", "aud must be this server's FHIR base URL")
    if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
        return fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
    launch_context: dict[str, Any] = {}
    if params.get("launch"):
        launch = await security.records.consume(security.launch_kind, grants.sha(params["launch"]))
        if launch is None or launch.get("exp", 0) < time.time():
            return fail("invalid_request", "unknown or expired launch")
        launch_context = {"patient": launch.get("patient")}
    scopes = grant_scopes(params.get("scope", ""), client["scopes"], ("patient", "user"))
    if params.get("launch") and "launch" not in scopes:
        scopes.append("launch")
    if not any("/" in s and not s.startswith("launch") for s in scopes) and "openid" not in scopes:
        return fail("invalid_scope", "none of the requested scopes may be granted to this client")
    request_token = security.sign_form(
        issuer=security.issuer_url(),
        kind="authorize",
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(scopes),
        state=state,
        code_challenge=params["code_challenge"],
        aud=base,
        launch=launch_context,
    )
    return HTMLResponse(pages.login_page(client["name"], scopes, request_token))


@router.post("/login")
async def login(request: Request) -> Response:
    security = security_of(request)
    form = await request.form()
    pending = await security.read_form(str(form.get("request", "")), "authorize")
    if pending is None:
        return HTMLResponse(pages.error_page("The sign-in form expired; start again."), 400)
    user = await check_user_password(
        security.records, str(form.get("username", "")), str(form.get("password", ""))
    )
    if user is None:
        log.info("failed login for client=%s", pending["client_id"])
        return HTMLResponse(
            pages.login_page(
                pending["client_id"],
                split_scopes(pending["scope"]),
                str(form["request"]),
                "Unknown user name or wrong password.",
            ),
            401,
        )
    scopes = split_scopes(pending["scope"])
    patient = (pending.get("launch") or {}).get("patient")
    candidates: list[str] = user.get("patients") or []
    if patient and user.get("patients") is not None and patient not in candidates:
        return _redirect_error(pending, "access_denied", "the user may not open this patient")
    if patient is None and "launch/patient" in scopes:
        if len(candidates) > 1:
            session = await grants.open_pick_session(
                security.records, str(form["request"]), pending, user["username"]
            )
            labels = await patient_labels(request.app.state.repository, candidates)
            return HTMLResponse(
                pages.picker_page(candidates, str(form["request"]), session, labels)
            )
        if len(candidates) == 1:
            patient = candidates[0]
    return await _issue_code(security, pending, user, patient)


@router.post("/pick")
async def pick(request: Request) -> Response:
    security = security_of(request)
    form = await request.form()
    request_token = str(form.get("request", ""))
    pending = await security.read_form(request_token, "authorize")
    if pending is None:
        return HTMLResponse(pages.error_page("The form expired; start again."), 400)
    username, refusal = await grants.take_pick_session(
        security.records, str(form.get("session", "")), request_token, pending
    )
    if username is None:
        log.info("patient picker refused: %s", refusal)
        return HTMLResponse(pages.error_page(refusal or "Start again."), 400)
    user = await security.records.get(security.user_kind, username)
    patient = str(form.get("patient", ""))
    if user is None or patient not in (user.get("patients") or []):
        return HTMLResponse(pages.error_page("That patient cannot be chosen."), 400)
    return await _issue_code(security, pending, user, patient)


async def _issue_code(
    security: Security, pending: dict[str, Any], user: dict[str, Any], patient: str | None
) -> Response:
    code = secrets.token_urlsafe(32)
    # The grant outlives the code: a replay finds it and revokes what it led to.
    await grants.open_grant(
        security.records,
        grants.sha(code),
        pending["client_id"],
        security.offline_refresh_lifetime_s,
    )
    await security.records.put(
        AUTH_CODE,
        grants.sha(code),
        {
            "client_id": pending["client_id"],
            "redirect_uri": pending["redirect_uri"],
            "scope": pending["scope"],
            "code_challenge": pending["code_challenge"],
            "username": user["username"],
            "fhir_user": user.get("fhir_user"),
            "user_patients": user.get("patients"),
            "patient": patient,
            "aud": pending["aud"],
            "exp": time.time() + CODE_LIFETIME_S,
        },
    )
    query = {"code": code}
    if pending.get("state") is not None:
        query["state"] = pending["state"]
    return RedirectResponse(_with_query(pending["redirect_uri"], query), 302)


def _redirect_error(pending: dict[str, Any], error: str, description: str) -> Response:
    query = {"error": error, "error_description": description}
    if pending.get("state") is not None:
        query["state"] = pending["state"]
    return RedirectResponse(_with_query(pending["redirect_uri"], query), 302)


def _with_query(uri: str, query: dict[str, str]) -> str:
    return uri + ("&" if urlsplit(uri).query else "?") + urlencode(query)


# -- token -----------------------------------------------------------------------------


@router.post("/token")
async def token(request: Request) -> Response:
    security = security_of(request)
    await security.ensure_ready()
    form = {k: str(v) for k, v in (await request.form()).items()}
    # The AuditEvent names a client only once it has authenticated (each grant sets it);
    # a client_id the request merely claims is never recorded as the actor.
    try:
        grant_type = form.get("grant_type")
        if grant_type == "client_credentials":
            payload = await _client_credentials(request, security, form)
        elif grant_type == "authorization_code":
            payload = await _authorization_code(request, security, form)
        elif grant_type == "refresh_token":
            payload = await _refresh(request, security, form)
        else:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} not supported")
    except OAuthError as exc:
        log.info("token refused: %s", exc.error)
        return exc.response()
    return _no_store(payload)


async def _client_credentials(
    request: Request, security: Security, form: dict[str, str]
) -> dict[str, Any]:
    client = await authenticate_client(request, security, form, allow_public=False)
    if client.get("kind") != "backend":
        raise OAuthError("unauthorized_client", "client_credentials is for backend clients")
    granted = grant_scopes(form.get("scope", ""), client["scopes"], ("system",))
    if not granted:
        raise OAuthError("invalid_scope", "none of the requested scopes may be granted")
    scope = " ".join(granted)
    issued = security.issuer.access_token(
        issuer=security.issuer_url(),
        audience=security.base,
        client_id=client["client_id"],
        scope=scope,
        lifetime_s=security.backend_token_lifetime_s,
    )
    return {
        "access_token": issued.token,
        "token_type": "bearer",
        "expires_in": security.backend_token_lifetime_s,
        "scope": scope,
    }


async def _authorization_code(
    request: Request, security: Security, form: dict[str, str]
) -> dict[str, Any]:
    client = await authenticate_client(request, security, form, allow_public=True)
    code = form.get("code", "")
    grant = await security.records.consume(AUTH_CODE, grants.sha(code)) if code else None
    if grant is None and code and await grants.is_used_code(security.records, grants.sha(code)):
        # RFC 6749 section 4.1.2: a code used twice revokes what it was exchanged for.
        issued_to, revoked = await grants.revoke_grant(
            security.records, grants.sha(code), security.offline_refresh_lifetime_s
        )
        request.state.audit_note = (
            f"authorization code of client {issued_to} replayed;"
            f" {revoked} token(s) issued from it revoked"
        )
        log.warning("authorization code replayed by client=%s", client["client_id"])
        raise OAuthError(
            "invalid_grant", "the code was already used; the tokens issued from it are revoked"
        )
    if grant is None or grant["exp"] < time.time():
        raise OAuthError("invalid_grant", "the code is unknown, used or expired")
    if grant["client_id"] != client["client_id"]:
        raise OAuthError("invalid_grant", "the code was issued to another client")
    if form.get("redirect_uri") != grant["redirect_uri"]:
        raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
    verifier = form.get("code_verifier", "")
    if not (43 <= len(verifier) <= 128) or not secrets.compare_digest(
        create_s256_code_challenge(verifier), grant["code_challenge"]
    ):
        raise OAuthError("invalid_grant", "the PKCE code_verifier does not match")
    grant["grant"] = grants.sha(code)
    request.state.oauth_client = client["client_id"]  # a public client: proven by the code
    return await _user_tokens(request, security, client["client_id"], grant, refresh=None)


async def _user_tokens(
    request: Request,
    security: Security,
    client_id: str,
    grant: dict[str, Any],
    refresh: str | None,
) -> dict[str, Any]:
    scopes = split_scopes(grant["scope"])
    base = security.base
    issuer_url = security.issuer_url()
    patient = grant.get("patient") if any(s.startswith("launch") for s in scopes) else None
    issued = security.issuer.access_token(
        issuer=issuer_url,
        audience=base,
        client_id=client_id,
        scope=grant["scope"],
        lifetime_s=security.app_token_lifetime_s,
        subject=grant["username"],
        patient=patient,
        fhir_user=grant.get("fhir_user") if "fhirUser" in scopes else None,
        user_patients=grant.get("user_patients"),
    )
    family = grant.get("grant")
    if family and not await grants.record_issued(security.records, family, issued.claims):
        raise OAuthError("invalid_grant", "the authorization was revoked (its code was replayed)")
    payload: dict[str, Any] = {
        "access_token": issued.token,
        "token_type": "bearer",
        "expires_in": security.app_token_lifetime_s,
        "scope": grant["scope"],
        "need_patient_banner": patient is not None,
    }
    if patient:
        payload["patient"] = patient
    if "openid" in scopes and grant.get("fhir_user") and "fhirUser" in scopes:
        now = int(time.time())
        payload["id_token"] = security.issuer.sign(
            {
                "iss": issuer_url,
                "sub": grant["username"],
                "aud": client_id,
                "iat": now,
                "exp": now + security.app_token_lifetime_s,
                "fhirUser": f"{base}/{grant['fhir_user']}",
            }
        )
    if "offline_access" in scopes or "online_access" in scopes:
        lifetime = (
            security.offline_refresh_lifetime_s
            if "offline_access" in scopes
            else security.online_refresh_lifetime_s
        )
        token = refresh or secrets.token_urlsafe(32)
        record = {
            key: grant.get(key)
            for key in ("scope", "username", "fhir_user", "user_patients", "patient", "grant")
        }
        record.update({"client_id": client_id, "exp": time.time() + lifetime})
        await security.records.put(REFRESH_TOKEN, grants.sha(token), record)
        payload["refresh_token"] = token
    return payload


async def _refresh(request: Request, security: Security, form: dict[str, str]) -> dict[str, Any]:
    client = await authenticate_client(request, security, form, allow_public=True)
    old = form.get("refresh_token", "")
    grant = await security.records.consume(REFRESH_TOKEN, grants.sha(old)) if old else None
    if grant is None or grant["exp"] < time.time() or grant["client_id"] != client["client_id"]:
        raise OAuthError("invalid_grant", "the refresh token is unknown, revoked or expired")
    if form.get("scope"):
        wanted = set(split_scopes(form["scope"]))
        if not wanted <= set(split_scopes(grant["scope"])):
            raise OAuthError("invalid_scope", "a refresh cannot widen the scopes")
        grant["scope"] = " ".join(s for s in split_scopes(grant["scope"]) if s in wanted)
    request.state.oauth_client = client["client_id"]  # proven by its refresh token
    if grant.get("grant") and await grants.grant_revoked(security.records, grant["grant"]):
        raise OAuthError("invalid_grant", "the authorization was revoked (its code was replayed)")
    # Rotation: the old refresh token is spent; a new one comes with the new access token.
    return await _user_tokens(request, security, client["client_id"], grant, refresh=None)


# -- revocation and introspection ------------------------------------------------------


@router.post("/revoke")
async def revoke(request: Request) -> Response:
    security = security_of(request)
    await security.ensure_ready()
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        client = await authenticate_client(request, security, form, allow_public=True)
    except OAuthError as exc:
        return exc.response()
    value = form.get("token", "")
    refresh = await security.records.get(REFRESH_TOKEN, grants.sha(value)) if value else None
    if refresh is not None and refresh["client_id"] == client["client_id"]:
        await security.records.delete(REFRESH_TOKEN, grants.sha(value))
    elif value.count(".") == 2:
        claims = await security.own_token_claims(value)
        if claims is not None and claims.get("client_id") == client["client_id"]:
            await security.records.put(REVOKED_TOKEN, claims["jti"], {"exp": claims["exp"]})
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


@router.post("/introspect")
async def introspect(request: Request) -> Response:
    security = security_of(request)
    await security.ensure_ready()
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        client = await authenticate_client(request, security, form, allow_public=False)
    except OAuthError as exc:
        return exc.response()
    value = form.get("token", "")
    try:
        claims = await security.validator.claims(value, security.issuer_url(), security.base)
    except TokenError:
        return _no_store({"active": False})
    if not may_introspect(client, claims):
        # RFC 7662 section 2.2: a token the caller may not know about is simply inactive.
        log.info("introspection of another client's token refused for %s", client["client_id"])
        return _no_store({"active": False})
    answer = {"active": True, "token_type": "Bearer"}
    for key in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "patient", "fhirUser"):
        if key in claims:
            answer[key] = claims[key]
    return _no_store(answer)


def may_introspect(client: dict[str, Any], claims: dict[str, Any]) -> bool:
    """RFC 7662 section 4: only a party authorised for the token learns about it.

    That is the client the token was issued to, or a client registered as a resource
    server (``billable clients add ... --introspect``), whose job is to check tokens
    presented to it.
    """
    return bool(client.get("introspect")) or claims.get("client_id") == client["client_id"]
