"""The coder app's shared state and helpers: sessions to API clients, pages, refusals.

Pages answer HTML; actions are plain HTML forms (POST, a CSRF token, 303 back) so that
everything works with the keyboard and without JavaScript; htmx only refreshes the queue
as filters change and assigns a row in place. Each handler turns the coder's session
into a ``FhirClient`` and does its work through the API; an API refusal becomes a page
that says what the server said, with the status it gave.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from server.webapp import CODER_SCOPES, PREFIX
from server.webapp.fhir import FhirCallError, FhirClient
from server.webapp.signin import COOKIE, Session, SignIn

if TYPE_CHECKING:
    from server.config import Settings

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NOTICES = {
    "assigned": "The claim is assigned to you.",
    "decided": "Decision recorded and the claim regenerated with it.",
    "withdrawn": "Decision withdrawn and the claim regenerated.",
    "regenerated": "The claim was regenerated from the encounter.",
    "released": "Claim released: it is active and went on to adjudication.",
    "queried": "Documentation query sent: the claim left the active queue until answered.",
    "answered": "Answer recorded: the claim is back in the queue.",
    "resumed": "The claim is back in the queue.",
}
PAYER_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type|pay"
PAYER_CACHE_S = 60.0


class CoderWeb:
    """State of the app: the API it calls, sign-in and sessions, templates."""

    def __init__(self, main: FastAPI, settings: Settings) -> None:
        self.main = main
        self.settings = settings
        self.signin = SignIn(
            getattr(settings, "coder_app_client", "billable-coder-app"), CODER_SCOPES
        )
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            enable_async=False,
        )
        self.templates.globals["prefix"] = PREFIX
        self._http: httpx.AsyncClient | None = None
        self._payers: tuple[float, dict[str, str]] = (0.0, {})
        # username -> (monotonic time, dashboard, "HH:MM:SS UTC") (routes.dashboard_page)
        self.boards: dict[str, tuple[float, Any, str]] = {}

    @property
    def security(self) -> Any:
        return getattr(self.main.state, "security", None)

    async def origin(self, request: Request) -> str:
        """The server's public origin (the pinned base URL without ``/fhir``)."""
        security = self.security
        seen = str(request.base_url).rstrip("/")
        if security is None:
            return seen
        base = await security.pin_base(seen + "/fhir")
        return str(base)[: -len("/fhir")] if str(base).endswith("/fhir") else str(base)

    async def http(self, request: Request) -> httpx.AsyncClient:
        """One in-process HTTP client over the whole ASGI app (API, security, audit)."""
        if self._http is None:
            origin = await self.origin(request)
            self._http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.main), base_url=origin, timeout=120
            )
        return self._http

    async def session(self, request: Request) -> Session | None:
        return await self.signin.current(
            await self.http(request), "/auth", request.cookies.get(COOKIE)
        )

    def render(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(**values)
        return HTMLResponse(html, status, headers=PAGE_HEADERS)

    async def payer_names(self, fhir: FhirClient) -> dict[str, str]:
        stamp, names = self._payers
        if time.monotonic() - stamp < PAYER_CACHE_S and names:
            return names
        try:
            # Payers: organizations typed as payers, and every one a Coverage names.
            typed, paying = await asyncio.gather(
                fhir.search_all(
                    "Organization", [("type", PAYER_TYPE), ("_elements", "name"), ("_count", "200")]
                ),
                fhir.search_all(
                    "Organization",
                    [
                        ("_has:Coverage:payor:status", "active,cancelled,draft"),
                        ("_elements", "name"),
                        ("_count", "200"),
                    ],
                ),
            )
            found = typed + paying
        except FhirCallError:
            return names
        names = {str(o["id"]): str(o.get("name") or o["id"]) for o in found}
        self._payers = (time.monotonic(), names)
        return names


def back(path: str, notice: str | None = None, **query: str) -> RedirectResponse:
    values = {k: v for k, v in query.items() if v}
    if notice:
        values["done"] = notice
    return RedirectResponse(f"{PREFIX}{path}" + (f"?{urlencode(values)}" if values else ""), 303)


def state_of(request: Request) -> CoderWeb:
    state: CoderWeb = request.app.state.coder
    return state


async def signed_in(request: Request) -> tuple[Session, FhirClient] | Response:
    """The coder's session and API client, or where to send the browser to sign in."""
    state = state_of(request)
    session = await state.session(request)
    if session is None:
        if state.security is None:  # --auth off: no sign-in, the API is open
            sid = state.signin.open_unauthenticated()
            response = RedirectResponse(str(request.url.path) + "?" + request.url.query, 303)
            set_cookie(response, request, sid)
            return response
        return RedirectResponse(f"{PREFIX}/login", 303)
    return session, FhirClient(await state.http(request), session.access_token)


async def form_of(request: Request, session: Session) -> dict[str, str] | None:
    """The posted form, or None when its CSRF token is not this session's."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    if form.get("csrf") != session.csrf:
        return None
    state_of(request).boards.pop(session.username, None)  # a change: fresh numbers next
    return form


def failed(
    request: Request, session: Session | None, error: FhirCallError | str, status: int = 400
) -> HTMLResponse:
    """A page saying what was refused, with the API's status (or ``status``)."""
    message = error.message if isinstance(error, FhirCallError) else error
    code = error.status if isinstance(error, FhirCallError) else status
    return state_of(request).render(
        "message.html", code, session=session, title="Not done", message=message
    )


async def put_task(fhir: FhirClient, task: dict[str, Any]) -> None:
    """Update a Task with ``If-Match``: two coders never overwrite each other silently."""
    task["lastModified"] = now()
    version = str((task.get("meta") or {}).get("versionId") or "")
    await fhir.call("PUT", f"Task/{task['id']}", body=task, headers={"If-Match": f'W/"{version}"'})


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def html_text(text: str) -> str:
    from html import escape

    return escape(text)


def set_cookie(response: Response, request: Request, sid: str) -> None:
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=PREFIX,
        max_age=8 * 3600,
    )
