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


# The app's forms are a few fields of text: a body past this is refused (413) before any
# handler reads it (the API's own body limit is behind the dispatch, not in front of it).
MAX_FORM_BYTES = 64 * 1024


class CoderAppDispatch:
    """ASGI: ``/app`` to the coder app, everything else to the API stack."""

    def __init__(self, app: ASGIApp, web: ASGIApp) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            headers = dict(scope.get("headers") or [])
            declared = headers.get(b"content-length", b"0")
            if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
                await _too_large(send)
                return
            seen = 0

            async def bounded() -> Any:
                nonlocal seen
                message = await receive()
                seen += len(message.get("body", b""))
                if seen > MAX_FORM_BYTES:  # a chunked body that lied about its size
                    raise ValueError("request body too large")
                return message

            await self.web(scope, bounded, send)
            return
        await self.app(scope, receive, send)


async def _too_large(send: Any) -> None:
    body = b"The coder app accepts forms of at most 64 KiB."
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the coder app from ``app`` (unless ``settings.coder_app`` is off)."""
    if not getattr(settings, "coder_app", True):
        return
    from server.webapp.routes import build_web

    web = build_web(app, settings)
    app.state.coder_app = web
    app.add_middleware(CoderAppDispatch, web=web)
