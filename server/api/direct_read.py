"""Reads by id without the router: ``GET /fhir/{type}/{id}`` and its ``_history/{vid}``.

Matching a path against every route of the app and solving the router's dependencies
cost more server time than the read itself (a third of a read's CPU in the profile of
bench/read_perf.py). This ASGI layer sits innermost, under the security middleware
(token, policy, audit) and the error guards, and sends those two shapes of path straight
to the same handler code (``server.api.read``) after the same id checks
(``check_request_ids``); errors go through the app's own exception handlers. Everything
else, and any path another route claims (``CodeSystem/{id}`` of the terminology module,
``Type/$op``, ``Type/_history``...), goes on to the router as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from server.api import read
from server.api.ids import check_request_ids

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Shape = tuple[str | None, ...]  # path segments after /fhir: a literal, or None for a parameter

PREFIX = "/fhir/"


def _api_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) of every route, through included routers (which FastAPI keeps
    nested, with their prefix in ``include_context``, or flattens, by release)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            context = getattr(route, "include_context", None)
            yield from _api_routes(nested.routes, prefix + str(getattr(context, "prefix", "")))
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def route_shapes(app: FastAPI) -> set[Shape]:
    """The segment shapes of every GET route under /fhir other than read and vread."""
    shapes: set[Shape] = set()
    for path, route in _api_routes(app.router.routes):
        if "GET" not in (route.methods or ()) or route.endpoint in (read.read, read.vread):
            continue
        if path.startswith(PREFIX):
            segments = path[len(PREFIX) :].split("/")
            shapes.add(tuple(None if s.startswith("{") else s for s in segments))
    return shapes


ShapeKey = tuple[int, str | None]  # (number of segments, first segment or None: any)


def _claimed(segments: list[str], shapes: dict[ShapeKey, list[Shape]]) -> bool:
    n = len(segments)
    for key in ((n, segments[0]), (n, None)):
        for shape in shapes.get(key, ()):
            if all(s is None or s == value for s, value in zip(shape, segments, strict=True)):
                return True
    return False


def _grouped(shapes: set[Shape]) -> dict[ShapeKey, list[Shape]]:
    """Shapes by length and first segment: a read tests only the few that could match."""
    grouped: dict[ShapeKey, list[Shape]] = {}
    for shape in shapes:
        grouped.setdefault((len(shape), shape[0]), []).append(shape)
    return grouped


class DirectReads:
    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._shapes: dict[ShapeKey, list[Shape]] | None = None  # on first use: routes come later

    def target(self, path: str) -> dict[str, str] | None:
        """The path parameters of a read or vread no other route claims, else None."""
        if not path.startswith(PREFIX):
            return None
        segments = path[len(PREFIX) :].split("/")
        if len(segments) == 2:
            params = {"resource_type": segments[0], "rid": segments[1]}
        elif len(segments) == 4 and segments[2] == "_history":
            params = {"resource_type": segments[0], "rid": segments[1], "vid": segments[3]}
        else:
            return None
        if any(not s or s[0] in "$_" for s in segments[:2]) or not segments[-1]:
            return None
        if self._shapes is None:
            self._shapes = _grouped(route_shapes(self.fastapi_app))
        return None if _claimed(segments, self._shapes) else params

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = None
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            params = self.target(scope["path"])
        if params is None:
            await self.app(scope, receive, send)
            return
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            await check_request_ids(request)
            if "vid" in params:
                response = await read.vread(
                    request, params["resource_type"], params["rid"], params["vid"]
                )
            else:
                response = await read.read(request, params["resource_type"], params["rid"])
        except Exception as exc:
            response = await self._handled(request, exc)
        await response(scope, receive, send)

    async def _handled(self, request: Request, exc: Exception) -> Response:
        """The answer the app's exception handlers give (re-raised if none applies)."""
        handlers = self.fastapi_app.exception_handlers
        for kind in type(exc).__mro__:
            handler = handlers.get(kind)
            if handler is not None and kind is not Exception:
                answer = handler(request, exc)
                if not isinstance(answer, Response):
                    answer = await answer
                assert isinstance(answer, Response)
                return answer
        raise exc  # the error guards around the app answer with a 500 OperationOutcome
