"""The coder app's FHIR client: Billable's own API, called in process with the coder's token.

The app never holds the store or the repository. Every read and write is an HTTP
request to ``/fhir`` sent through the whole ASGI application (``httpx.ASGITransport``),
so the security middleware validates the coder's access token, the repository applies
the token's scopes, and each request gets its AuditEvent naming the coder, exactly as
for any SMART client. In process rather than over a socket: the same path, no port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

FHIR_JSON = "application/fhir+json"
Params = Sequence[tuple[str, str]] | Mapping[str, str]


class FhirCallError(Exception):
    """An API answer that is not a success: its status and the OperationOutcome's text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _outcome_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    issues = body.get("issue") if isinstance(body, dict) else None
    if not issues:
        return str(body.get("error_description") or body)[:300] if isinstance(body, dict) else ""
    return "; ".join(str(i.get("diagnostics") or i.get("code")) for i in issues)[:600]


class FhirClient:
    """One coder's view of the API (``token`` None: the server runs with ``--auth off``)."""

    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self.http = http
        self.token = token

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    async def _send(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        query = (
            ("?" + urlencode(list(params.items()) if isinstance(params, Mapping) else list(params)))
            if params
            else ""
        )
        content = orjson.dumps(body) if body is not None else None
        extra = dict(headers or {})
        if content is not None:
            extra["Content-Type"] = FHIR_JSON
        return await self.http.request(
            method,
            "/fhir/" + path.lstrip("/") + query,
            content=content,
            headers=self._headers(extra),
        )

    async def call(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self._send(method, path, params, body, headers)
        if response.status_code >= 400:
            raise FhirCallError(response.status_code, _outcome_text(response))
        if not response.content:
            return {}
        value: dict[str, Any] = orjson.loads(response.content)
        return value

    async def read(self, reference: str) -> dict[str, Any] | None:
        """``Type/id`` or ``Type/id/_history/n``; None when gone or not allowed."""
        try:
            return await self.call("GET", reference)
        except FhirCallError:
            return None

    async def search(self, resource_type: str, params: Params) -> dict[str, Any]:
        return await self.call("GET", resource_type, params)

    async def search_all(
        self, resource_type: str, params: list[tuple[str, str]], limit: int = 20_000
    ) -> list[dict[str, Any]]:
        """Every match of a search, following ``next`` links (dashboards)."""
        found: list[dict[str, Any]] = []
        bundle = await self.search(resource_type, params)
        while True:
            found += [
                e["resource"]
                for e in bundle.get("entry") or []
                if (e.get("search") or {}).get("mode", "match") == "match"
            ]
            following = next_query(bundle)
            if following is None or len(found) >= limit:
                return found
            bundle = await self.call("GET", f"{resource_type}?{following}")

    async def read_many(self, references: list[str]) -> dict[str, dict[str, Any]]:
        """Several reads at once (each is its own audited request)."""
        unique = list(dict.fromkeys(r for r in references if r))
        bodies = await asyncio.gather(*(self.read(r) for r in unique))
        return {ref: body for ref, body in zip(unique, bodies, strict=True) if body is not None}


def matches(bundle: dict[str, Any], resource_type: str | None = None) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry") or []
        if (e.get("search") or {}).get("mode", "match") == "match"
        and (resource_type is None or e["resource"].get("resourceType") == resource_type)
    ]


def included(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every resource of a search Bundle by ``Type/id`` (matches and includes)."""
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
        for e in bundle.get("entry") or []
        if "resource" in e
    }


def next_query(bundle: dict[str, Any]) -> str | None:
    """The query string of the Bundle's ``next`` link (the server's own paging cursor)."""
    for link in bundle.get("link") or []:
        if link.get("relation") == "next" and "?" in str(link.get("url")):
            return str(link["url"]).split("?", 1)[1]
    return None
