"""The security middleware: bearer tokens, rate limits, security headers and the audit trail.

It runs before any route. On a protected path a request without a valid token gets a 401
with ``WWW-Authenticate`` and never reaches a handler; with one, the validated ``Grants``
go into ``request.state.grants`` (``server.api.context`` puts them in the
``RequestContext`` the repository's policy judges and its Provenance names). Whatever
the outcome, one AuditEvent is appended before the response starts; if that fails the
client gets a 503 instead of an unaudited answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request

from server.audit.chain import AuditRecord
from server.auth.scopes import Grants
from server.auth.tokens import TokenError
from server.errors import Issue, operation_outcome

if TYPE_CHECKING:
    from server.auth.setup import Security

log = logging.getLogger("billable.auth.middleware")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/healthz", "/fhir/metadata", "/fhir/.well-known/smart-configuration"})
UNAUDITED_PATHS = frozenset({"/healthz"})
# A load balancer's health probe names an internal address: it never pins the base URL.
UNPINNED_PATHS = frozenset({"/healthz"})
CACHEABLE_PATHS = frozenset(
    {"/fhir/metadata", "/fhir/.well-known/smart-configuration", "/auth/jwks"}
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    ),
]


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/auth/")


class RateLimiter:
    """A token bucket per client (or per address before authentication)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._buckets.clear()  # crude bound on memory under address spraying
        return True


def reads_audit_events(path: str, query: bytes) -> bool:
    """Whether a request may read AuditEvents (their type, included or in a compartment,
    or every type at once)."""
    return "AuditEvent" in path or b"AuditEvent" in query or path in SYSTEM_PATHS or "$" in path


SYSTEM_PATHS = frozenset({"/fhir", "/fhir/", "/fhir/_history", "/fhir/_search"})


def describe(method: str, path: str, query: str) -> tuple[str, str, str | None, str | None]:
    """(action, interaction, entity reference, query) of a request, for the AuditEvent."""
    if path.startswith("/auth/"):
        return "E", "oauth-" + path.rsplit("/", 1)[-1], None, None
    parts = [p for p in path.split("/")[2:] if p] if path.startswith("/fhir") else []
    if not parts:
        return ("E", "transaction", None, None) if method == "POST" else ("R", "other", None, None)
    if parts[0] == "metadata":
        return "R", "capabilities", None, None
    if parts[0] == "_history":
        return "R", "history-system", None, f"_history?{query}"
    if parts[0].startswith("$") or parts[-1].startswith("$"):
        return "E", "operation", "/".join(parts[:-1]) or None, query or None
    rtype = parts[0]
    if len(parts) == 1:
        if method == "GET":
            return "E", "search-type", None, f"{rtype}?{query}"
        if method == "POST":
            return "C", "create", None, None
        code = {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "other")
        return ("D" if method == "DELETE" else "U"), code, None, f"{rtype}?{query}"
    if parts[1] == "_search":
        return "E", "search-type", None, f"{rtype}?{query}"
    if parts[1] == "_history":
        return "R", "history-type", None, f"{rtype}/_history?{query}"
    reference = f"{rtype}/{parts[1]}"
    if len(parts) >= 3 and parts[2] == "_history":
        if len(parts) == 3:
            return "R", "history-instance", reference, query or None
        return "R", "vread", f"{reference}/_history/{parts[3]}", None
    if method == "GET":
        return "R", "read", reference, None
    code = {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "other")
    return ("D" if method == "DELETE" else "U"), code, reference, None


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        remote = client[0] if client else None
        https = scope.get("scheme") == "https"
        state: dict[str, Any] = scope.setdefault("state", {})
        grants: Grants | None = None
        refusal: tuple[int, bytes, list[tuple[bytes, bytes]]] | None = None

        if path not in UNPINNED_PATHS and not self.security.base_pinned:
            await self.security.pin_base(_request_base(scope))
        if method != "OPTIONS" and not is_public(path):
            grants, refusal = await self._authenticate(scope, headers)
        rate_key = grants.client_id if grants else f"addr:{remote}"
        if refusal is None and not self.security.rate_limiter.allow(rate_key):
            refusal = _refusal(
                429, "throttled", "Too many requests; slow down", [(b"retry-after", b"5")]
            )
        state["grants"] = grants
        if path not in UNAUDITED_PATHS and method != "OPTIONS":
            # Tells the audit trail's group commit that this request's record will come.
            self.security.audit.expect()
            state["audit_expected"] = True

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["response_started"] = True
                status = int(message["status"])
                location = _header(message, b"location")
                ok = await self._audit(scope, path, method, remote, grants, status, state, location)
                if not ok:
                    failure = _refusal(
                        503, "transient", "The audit trail is unavailable; try again later", []
                    )
                    await _send_plain(send, failure, path, https)
                    state["audit_failed"] = True
                    return
                message["headers"] = _with_security_headers(
                    list(message.get("headers", [])), path, https
                )
            if state.get("audit_failed"):
                return
            await send(message)

        if (
            self.security.audit.journaled
            and refusal is None
            and reads_audit_events(path, scope.get("query_string", b""))
        ):
            await self.security.audit.flushed()  # every answered request is in the store
        try:
            if refusal is not None:
                status, body, extra = refusal
                ok = await self._audit(scope, path, method, remote, grants, status, state)
                if not ok:
                    refusal = _refusal(503, "transient", "The audit trail is unavailable", [])
                await _send_plain(send, refusal, path, https)
                return
            try:
                await self.app(scope, receive, audited_send)
            except Exception:
                # An unhandled error becomes a 500 outside this middleware: audit it here.
                if not state.get("response_started"):
                    await self._audit(scope, path, method, remote, grants, 500, state)
                raise
        finally:
            if state.pop("audit_expected", False):  # ended without an audit record
                self.security.audit.unexpect()

    async def _authenticate(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[Grants | None, tuple[int, bytes, list[tuple[bytes, bytes]]] | None]:
        realm = 'Bearer realm="billable"'
        authorization = headers.get("authorization", "")
        if not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
            return None, _refusal(
                401,
                "login",
                "An access token is required (Authorization: Bearer)",
                [(b"www-authenticate", realm.encode())],
            )
        token = authorization[7:].strip()
        try:
            grants = await self.security.validate(token)
        except TokenError as exc:
            challenge = f'{realm}, error="{exc.error}", error_description="{exc.description}"'
            return None, _refusal(
                401,
                "login",
                f"The access token was refused: {exc.description}",
                [(b"www-authenticate", challenge.encode())],
            )
        return grants, None

    async def _audit(
        self,
        scope: Scope,
        path: str,
        method: str,
        remote: str | None,
        grants: Grants | None,
        status: int,
        state: dict[str, Any],
        location: str | None = None,
    ) -> bool:
        if path in UNAUDITED_PATHS or method == "OPTIONS":
            return True
        query = scope.get("query_string", b"").decode("latin-1")
        action, interaction, entity, searched = describe(method, path, query)
        if entity is None and location and "/fhir/" in location:
            entity = location.split("/fhir/", 1)[1]  # what a create (or bundle) made
        client_id = grants.client_id if grants else state.get("oauth_client")
        user = (grants.fhir_user or grants.subject) if grants else None
        record = AuditRecord(
            action=action,
            interaction=interaction,
            status=status,
            client_id=client_id,
            user=user,
            remote_addr=remote,
            entity=entity,
            query=searched,
            description=f"{method} {path} -> {status}"
            + (f": {state['audit_note']}" if state.get("audit_note") else ""),
        )
        try:
            await self.security.audit.append(record, expected=state.pop("audit_expected", False))
        except Exception:
            log.exception("audit append failed for %s %s", method, path)
            return False
        return True


def _request_base(scope: Scope) -> str:
    """The FHIR base URL this request shows (scheme, Host, root path): a candidate only."""
    return str(Request(scope).base_url).rstrip("/") + "/fhir"


def _header(message: Message, name: bytes) -> str | None:
    for key, value in message.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _refusal(
    status: int, code: str, message: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = orjson.dumps(operation_outcome([Issue("error", code, message)]))
    return status, body, headers


async def _send_plain(
    send: Send, refusal: tuple[int, bytes, list[tuple[bytes, bytes]]], path: str, https: bool
) -> None:
    status, body, extra = refusal
    headers = [
        (b"content-type", b"application/fhir+json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _with_security_headers(headers, path, https),
        }
    )
    await send({"type": "http.response.body", "body": body})


def _with_security_headers(
    headers: list[tuple[bytes, bytes]], path: str, https: bool
) -> list[tuple[bytes, bytes]]:
    present = {k.lower() for k, _ in headers}
    out = list(headers)
    for name, value in SECURITY_HEADERS:
        if name not in present:
            out.append((name, value))
    if b"cache-control" not in present and path not in CACHEABLE_PATHS:
        out.append((b"cache-control", b"no-store"))
    if https:
        out.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    return out
