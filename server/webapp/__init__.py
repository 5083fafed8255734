"""The coders' web app, served by Billable at ``/app`` (docs/coder-app.md).

A SMART on FHIR app in the same process: server-rendered pages (Jinja2, a little htmx
served from ``/app/static``), a sign-in through Billable's own authorization server, and
every piece of data read and written through Billable's FHIR API with the coder's token
(``server.webapp.fhir``). It holds no store and no repository.

``install(app, settings)`` puts it in front of the API: ``/app`` requests go to the app's
own routes (their own security headers; the API requests they make go through the whole
stack, security middleware and audit included), every other request to the API as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from server.config import Settings

Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]
]

PREFIX = "/app"
# What a coder's work needs (SMART v2): read everything a claim is made from, write the
# claim and its Task (regeneration, release), the decisions (Basic), documentation
# queries (CommunicationRequest/Communication), and adjudicate on release ($submit).
CODER_SCOPES = (
    "openid fhirUser online_access user/*.rs user/Claim.cu user/Task.cu user/Basic.cud"
    " user/CommunicationRequest.cu user/Communication.cu user/ClaimResponse.c"
    " user/ExplanationOfBenefit.c"
)


class CoderAppDispatch:
    """ASGI: ``/app`` to the coder app, everything else to the API stack."""

    def __init__(self, app: ASGIApp, web: ASGIApp) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.web(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the coder app from ``app`` (unless ``settings.coder_app`` is off)."""
    if not getattr(settings, "coder_app", True):
        return
    from server.webapp.routes import build_web

    web = build_web(app, settings)
    app.state.coder_app = web
    app.add_middleware(CoderAppDispatch, web=web)
