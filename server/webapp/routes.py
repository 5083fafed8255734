"""The coder app's routes (``/app/...``): sign-in, the dashboard, and the page modules.

Pages answer HTML; actions are plain HTML forms (POST, a CSRF token, 303 back) so that
everything works with the keyboard and without JavaScript; htmx only refreshes the queue
as filters change and loads its count. Each handler turns the coder's session into a
``FhirClient`` and does its work through the API; an API refusal becomes a page that
says what the server said, with the status it gave. The pages: ``pages_queue``,
``pages_claim``, ``pages_queries``; shared state and helpers: ``web``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from server.webapp import PREFIX, dashboard, pages_claim, pages_queries, pages_queue
from server.webapp.fhir import FhirCallError
from server.webapp.signin import COOKIE
from server.webapp.web import HERE, CoderWeb, failed, form_of, set_cookie, signed_in, state_of

if TYPE_CHECKING:
    from server.config import Settings

router = APIRouter()
BOARD_CACHE_S = 60.0


def build_web(main: FastAPI, settings: Settings) -> FastAPI:
    """The app's own ASGI application (``server.webapp.install`` mounts it at /app)."""
    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    web.state.coder = CoderWeb(main, settings)
    web.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (router, pages_queue.router, pages_claim.router, pages_queries.router):
        web.include_router(module)
    return web


# -- sign-in -------------------------------------------------------------------------


@router.get(f"{PREFIX}/login")
async def login(request: Request) -> Response:
    state = state_of(request)
    security = state.security
    if security is None:
        return RedirectResponse(f"{PREFIX}/", 303)
    origin = await state.origin(request)
    url = state.signin.start(security.issuer_url(), security.base, f"{origin}{PREFIX}/callback")
    return RedirectResponse(url, 303)


@router.get(f"{PREFIX}/callback")
async def callback(request: Request) -> Response:
    state = state_of(request)
    params = request.query_params
    if params.get("error"):
        return state.render(
            "message.html",
            400,
            session=None,
            title="Sign-in refused",
            message=f"{params.get('error')}: {params.get('error_description', '')}",
        )
    try:
        sid = await state.signin.finish(
            await state.http(request), "/auth", params.get("state", ""), params.get("code", "")
        )
    except ValueError as exc:
        return state.render(
            "message.html", 400, session=None, title="Sign-in failed", message=str(exc)
        )
    response = RedirectResponse(f"{PREFIX}/", 303)
    set_cookie(response, request, sid)
    return response


@router.post(f"{PREFIX}/logout")
async def logout(request: Request) -> Response:
    state = state_of(request)
    session = await state.session(request)
    if session is not None and await form_of(request, session) is not None:
        await state.signin.end(await state.http(request), "/auth", request.cookies.get(COOKIE))
    response = state.render(
        "message.html", session=None, title="Signed out", message="You are signed out."
    )
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# -- dashboard -----------------------------------------------------------------------


@router.get(f"{PREFIX}/dashboard")
async def dashboard_page(request: Request) -> Response:
    state = state_of(request)
    who = await signed_in(request)
    if isinstance(who, Response):
        return who
    session, fhir = who
    # Built from every claim: kept for a minute per coder (their own actions, and
    # "Refresh", rebuild it at once).
    cached = state.boards.get(session.username)
    if (
        cached
        and time.monotonic() - cached[0] < BOARD_CACHE_S
        and not request.query_params.get("fresh")
    ):
        _, board, stamp = cached
    else:
        try:
            board = await dashboard.build(fhir, await state.payer_names(fhir))
        except FhirCallError as exc:
            return failed(request, session, exc)
        stamp = datetime.now(UTC).strftime("%H:%M:%S UTC")
        state.boards[session.username] = (time.monotonic(), board, stamp)
    return state.render(
        "dashboard.html", page="dashboard", session=session, board=board, stamp=stamp
    )
