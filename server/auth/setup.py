"""Wiring: ``build_security(settings, repository)`` makes the pieces ``--auth smart`` needs and
``install`` puts them into an app (routes, middleware, CORS, CapabilityStatement hook)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.middleware.cors import CORSMiddleware

from server.audit.chain import AuditTrail
from server.audit.journal import AuditJournal
from server.audit.queue import JournaledTrail
from server.audit.seal import AuditSeal, default_key_file
from server.auth.keys import KeyRing
from server.auth.middleware import RateLimiter, SecurityMiddleware
from server.auth.policy import SmartPolicy
from server.auth.records import ISSUER_PIN, LAUNCH, USER, Records
from server.auth.scopes import Grants
from server.auth.tokens import RemoteJwks, TokenError, TokenIssuer, TokenValidator
from server.repository import AccessPolicy, Repository

if TYPE_CHECKING:
    from server.config import Settings

log = logging.getLogger("billable.auth.setup")

SCOPES_SUPPORTED = [
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.read",
    "user/*.cruds",
    "user/*.read",
    "user/*.write",
    "system/*.cruds",
    "system/*.read",
    "system/*.write",
    "system/AuditEvent.rs",
]
CAPABILITIES = [
    "launch-standalone",
    "launch-ehr",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "context-ehr-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
]
# The codes R4's CapabilityStatement may carry (R4 4.0.1 CodeSystem smart-capabilities): the
# SMART v2 ones above (client-confidential-asymmetric, permission-online, permission-v1/v2)
# are announced in .well-known/smart-configuration only.
R4_CAPABILITIES = frozenset(
    {
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "sso-openid-connect",
        "context-passthrough-banner",
        "context-passthrough-style",
        "context-ehr-patient",
        "context-ehr-encounter",
        "context-standalone-patient",
        "context-standalone-encounter",
        "permission-offline",
        "permission-patient",
        "permission-user",
    }
)


# Loggers of libraries that would write resource content (PHI) at debug level.
PHI_LOGGERS = ("pymongo.command",)


def quiet_phi_loggers() -> None:
    """Keep resource content out of the logs even at ``--log-level debug``."""
    for name in PHI_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def auth_origin(base: str) -> str:
    return base[: -len("/fhir")] if base.endswith("/fhir") else base


class Security:
    backend_token_lifetime_s = 300
    app_token_lifetime_s = 3600
    offline_refresh_lifetime_s = 30 * 86400
    online_refresh_lifetime_s = 8 * 3600
    launch_kind = LAUNCH
    user_kind = USER

    def __init__(self, settings: Settings, repository: Repository) -> None:
        quiet_phi_loggers()
        self.settings = settings
        self.records = Records(repository)
        self.external_issuer: str | None = getattr(settings, "issuer", None)
        self.keys: KeyRing | None = None if self.external_issuer else KeyRing(self.records)
        self._issuer = TokenIssuer(self.keys) if self.keys else None
        self._remote: RemoteJwks | None = None
        self._discovery: dict[str, Any] | None = None
        self._client_jwks: dict[str, tuple[float, KeySet]] = {}
        self.validator = TokenValidator(
            self._keys_for, self.records, check_revocation=self.keys is not None
        )
        self.policy = repository.policy
        self.audit = audit_trail(repository, audit_seal(settings))
        # Billable's own engines (coding, adjudication) are audited by the repository.
        repository.audit_sink = self.audit.append
        self.rate_limiter = RateLimiter(int(getattr(settings, "rate_limit_per_minute", 0) or 0))
        configured = getattr(settings, "base_url", None)
        self._base: str | None = configured.rstrip("/") if configured else None
        self._base_lock = asyncio.Lock()
        self._app: FastAPI | None = None
        self._ready = False
        self._ready_lock = asyncio.Lock()

    # -- lifecycle and keys ------------------------------------------------------------

    async def ensure_ready(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready and self.keys is not None:
                await self.keys.load()
            self._ready = True

    @property
    def issuer(self) -> TokenIssuer:
        if self._issuer is None:
            raise RuntimeError("this server trusts an external issuer and issues no tokens")
        return self._issuer

    async def _keys_for(self, kid: str | None) -> KeySet:
        await self.ensure_ready()
        if self.keys is not None:
            if kid and all(k.kid != kid for k in self.keys.keyset.keys):
                await self.keys.reload_if_stale()  # another process may have rotated
            return self.keys.keyset
        if self._remote is None:
            jwks_url = getattr(self.settings, "jwks_url", None)
            if not jwks_url:
                jwks_url = (await self.discovery()).get("jwks_uri")
            if not jwks_url:
                raise TokenError("the external issuer publishes no JWKS URL")
            self._remote = RemoteJwks(str(jwks_url))
        try:
            return await self._remote.keyset(kid)
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError("the issuer's keys could not be fetched") from exc

    async def client_jwks(self, url: str) -> KeySet:
        cached = self._client_jwks.get(url)
        if cached and time.monotonic() - cached[0] < 60:
            return cached[1]
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(url)
            response.raise_for_status()
            keyset = KeySet.import_key_set(response.json())
        self._client_jwks[url] = (time.monotonic(), keyset)
        return keyset

    async def discovery(self) -> dict[str, Any]:
        """The external issuer's OpenID/SMART metadata (best effort, cached)."""
        if self._discovery is None:
            assert self.external_issuer
            found: dict[str, Any] = {}
            async with httpx.AsyncClient(timeout=5) as client:
                for suffix in (
                    "/.well-known/smart-configuration",
                    "/.well-known/openid-configuration",
                ):
                    try:
                        response = await client.get(self.external_issuer.rstrip("/") + suffix)
                        if response.status_code == 200:
                            found = response.json()
                            break
                    except httpx.HTTPError:
                        continue
            self._discovery = found
        return self._discovery

    # -- tokens ------------------------------------------------------------------------

    @property
    def base(self) -> str:
        """The FHIR base URL tokens are for: configured, or pinned by ``pin_base``."""
        if self._base is None:
            raise RuntimeError("the public base URL is not pinned yet")
        return self._base

    @property
    def base_pinned(self) -> bool:
        return self._base is not None

    async def pin_base(self, seen: str) -> str:
        """The one public FHIR base URL, never the Host header of each request.

        ``--base-url`` wins. Without it the first base URL a request shows is written to
        the store (``insert``: one value even with several processes) and used from then
        on, by this process and after every restart: the issuer, the audience of tokens
        and client assertions, discovery and the links the server writes all follow it.
        """
        if self._base is not None:
            return self._base
        async with self._base_lock:
            if self._base is None:
                pinned = await self.records.get(ISSUER_PIN, "base")
                if pinned is None:
                    value = {"base": seen.rstrip("/"), "pinned": time.time()}
                    if await self.records.insert(ISSUER_PIN, "base", value):
                        log.warning(
                            "public base URL pinned to %s (first request seen); set"
                            " --base-url to choose it",
                            value["base"],
                        )
                    pinned = await self.records.get(ISSUER_PIN, "base")
                assert pinned is not None
                self._base = str(pinned["base"])
                if self._app is not None:  # links (Location, fullUrl) use it too
                    settings = self._app.state.settings
                    self._app.state.settings = replace(settings, base_url=self._base)
        return self._base

    def issuer_url(self) -> str:
        return self.external_issuer or auth_origin(self.base) + "/auth"

    async def validate(self, token: str) -> Grants:
        return await self.validator.validate(token, self.issuer_url(), self.base)

    async def own_token_claims(self, token: str) -> dict[str, Any] | None:
        """Claims of a token this server signed, expired or not (for revocation)."""
        await self.ensure_ready()
        if self.keys is None:
            return None
        try:
            claims = jwt.decode(token, self.keys.keyset, algorithms=["RS256"]).claims
        except JoseError:
            return None
        return claims if isinstance(claims.get("jti"), str) else None

    def sign_form(self, *, issuer: str, kind: str, **values: Any) -> str:
        now = int(time.time())
        claims = {
            **values,
            "iss": issuer,
            "aud": issuer + "/" + kind,
            "iat": now,
            "exp": now + 600,
            "typ": kind,
        }
        return self.issuer.sign(claims)

    async def read_form(self, token: str, kind: str) -> dict[str, Any] | None:
        """A value signed by ``sign_form`` (the pending authorization request, the session)."""
        await self.ensure_ready()
        assert self.keys is not None
        try:
            claims = jwt.decode(token, self.keys.keyset, algorithms=["RS256"]).claims
        except (JoseError, ValueError):
            return None
        issuer = self.issuer_url()
        if claims.get("aud") != issuer + "/" + kind or claims.get("exp", 0) < time.time():
            return None
        return claims

    # -- discovery ---------------------------------------------------------------------

    async def smart_configuration(self) -> dict[str, Any]:
        if self.external_issuer:
            found = await self.discovery()
            config = {
                k: v
                for k, v in found.items()
                if k
                in (
                    "issuer",
                    "jwks_uri",
                    "authorization_endpoint",
                    "token_endpoint",
                    "revocation_endpoint",
                    "introspection_endpoint",
                    "token_endpoint_auth_methods_supported",
                    "grant_types_supported",
                    "scopes_supported",
                    "code_challenge_methods_supported",
                    "capabilities",
                )
            }
            config.setdefault("issuer", self.external_issuer)
            jwks_url = getattr(self.settings, "jwks_url", None)
            if jwks_url:
                config["jwks_uri"] = jwks_url
            config.setdefault("code_challenge_methods_supported", ["S256"])
            config.setdefault("capabilities", CAPABILITIES)
            return config
        issuer = self.issuer_url()
        return {
            "issuer": issuer,
            "jwks_uri": issuer + "/jwks",
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "revocation_endpoint": issuer + "/revoke",
            "introspection_endpoint": issuer + "/introspect",
            "token_endpoint_auth_methods_supported": [
                "private_key_jwt",
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "grant_types_supported": [
                "authorization_code",
                "client_credentials",
                "refresh_token",
            ],
            "scopes_supported": SCOPES_SUPPORTED,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": CAPABILITIES,
        }

    def capability_security(self, statement: dict[str, Any], base: str) -> dict[str, Any]:
        """The CapabilityStatement hook: ``rest.security`` with the SMART extensions.

        The URIs come from the pinned base (the middleware pinned it before this request
        reached the handler), not from ``base``, which a Host header could have made."""
        issuer = self.issuer_url()
        # oauth-uris defines authorize, token, register and manage only; revocation and
        # introspection are announced in .well-known/smart-configuration.
        uris = [
            {"url": "authorize", "valueUri": issuer + "/authorize"},
            {"url": "token", "valueUri": issuer + "/token"},
        ]
        security = {
            "cors": bool(getattr(self.settings, "cors_origins", ())),
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ],
                    "text": "OAuth2 with SMART on FHIR (see .well-known/smart-configuration)",
                }
            ],
            "extension": [
                {
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": uris,
                },
                *(
                    {
                        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities",
                        "valueCode": code,
                    }
                    for code in CAPABILITIES
                    if code in R4_CAPABILITIES
                ),
            ],
            "description": "SMART App Launch 2.x and Backend Services; scopes v1 and v2"
            " (patient/, user/, system/); PKCE S256 required; private_key_jwt RS384/ES384.",
        }
        for rest in statement.get("rest", []):
            rest["security"] = security
        return statement

    # -- wiring ------------------------------------------------------------------------

    def install(self, app: FastAPI) -> None:
        """Routes (before the generic FHIR routes), middleware and the capability hook."""
        from server.auth.server import router, well_known

        app.state.security = self
        self._app = app
        app.include_router(well_known)
        if self.keys is not None:
            app.include_router(router, prefix="/auth")
        hooks = list(getattr(app.state, "capability_hooks", []))
        hooks.append(self.capability_security)
        app.state.capability_hooks = hooks
        app.add_middleware(SecurityMiddleware, security=self)
        origins = list(getattr(self.settings, "cors_origins", ()) or ())
        if origins:
            app.add_middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "If-Match",
                    "If-None-Exist",
                    "If-None-Match",
                    "Prefer",
                ],
                expose_headers=["ETag", "Location", "Last-Modified", "Content-Location"],
                max_age=600,
            )


def access_policy(settings: Settings) -> AccessPolicy | None:
    """The repository's policy for ``settings.auth`` (``None``: open, ``--auth off``)."""
    return SmartPolicy() if settings.auth == "smart" else None


def audit_seal(settings: Settings, create: bool = True) -> AuditSeal:
    """The audit chain's key and anchor, from ``--audit-key-file`` / ``BILLABLE_AUDIT_KEY``."""
    configured = getattr(settings, "audit_key_file", None)
    key_file = Path(configured) if configured else default_key_file(settings.store_url)
    return AuditSeal.open(key_file, getattr(settings, "audit_key", None), create=create)


def audit_trail(repository: Repository, seal: AuditSeal) -> AuditTrail | JournaledTrail:
    """The trail requests append to: committed before each answer (the default), or
    queued in the crash-safe journal next to the key file (``BILLABLE_AUDIT_JOURNAL=1``,
    docs/security.md)."""
    if os.environ.get("BILLABLE_AUDIT_JOURNAL", "0") != "1":
        return AuditTrail(repository, seal)
    anchor = seal.anchor_file
    key_file = anchor.with_name(anchor.name.removesuffix(".anchor"))
    return JournaledTrail(repository, seal, AuditJournal(key_file))


def build_security(settings: Settings, repository: Repository) -> Security | None:
    """The security pieces for ``settings.auth == "smart"`` (``None`` for ``off``), over
    the repository (built with ``access_policy(settings)``)."""
    if settings.auth != "smart":
        return None
    return Security(settings, repository)
