"""Two ASGI guards around the whole app: request body size, and the last-resort 500.

``BodyLimitMiddleware`` refuses a body above the limit of its path (413) before it is
buffered: at once from ``Content-Length``, and while streaming otherwise. The OAuth
endpoints take small forms, so their limit is small: they used to read a 17 MB form
whole before looking at it. ``POST [base]`` (a transaction or batch Bundle, the way an
EHR sends a patient's history) has its own, larger limit; every other FHIR request
keeps the default. The 413 names the setting that raises the limit.

``ErrorMiddleware`` turns any exception that escapes the app into a 500
OperationOutcome. The app installs it twice: inside the security middleware, so that a
500 gets the security headers and its AuditEvent like any answer, and outermost, for
an error in the security middleware itself (it then adds the security headers itself).
Starlette's own last resort would answer without either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from server.errors import FhirError, Issue, operation_outcome

log = logging.getLogger("billable.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

AUTH_BODY_LIMIT = 64 * 1024  # an OAuth form (a signed assertion is ~1 KB)
FHIR_JSON = b"application/fhir+json; charset=utf-8"


BUNDLE_PATHS = ("/fhir", "/fhir/")
BUNDLE_SETTING = "BILLABLE_MAX_BUNDLE_MB"
BODY_SETTING = "BILLABLE_MAX_BODY_MB"


def body_limit_for(path: str, default: int, bundle: int | None = None, method: str = "") -> int:
    if path.startswith("/auth/"):
        return AUTH_BODY_LIMIT
    if bundle is not None and method == "POST" and path in BUNDLE_PATHS:
        return bundle
    return default


def too_large(limit: int, bundle: bool) -> FhirError:
    """413, saying which limit and how the server's operator raises it."""
    mib = limit / 2**20
    if bundle:
        what = "for a transaction or batch Bundle (POST [base])"
        how = f"set {BUNDLE_SETTING} (MiB) on the server to raise it, or split the bundle"
    else:
        what = "for this request"
        how = (
            f"set {BODY_SETTING} (MiB) on the server to raise it; send large sets of"
            f" resources as a transaction Bundle (limit {BUNDLE_SETTING})"
        )
    return FhirError.of(
        413,
        "too-costly",
        f"The request body is larger than the limit of {limit:,} bytes ({mib:g} MiB) {what}; {how}",
    )


async def send_outcome(
    send: Send,
    status: int,
    issues: list[Issue],
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = orjson.dumps(operation_outcome(issues))
    headers = [
        (b"content-type", FHIR_JSON),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, default_limit: int, bundle_limit: int | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        self.bundle_limit = bundle_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(
            scope["path"], self.default_limit, self.bundle_limit, scope.get("method", "")
        )
        bundle = limit == self.bundle_limit and scope["path"] in BUNDLE_PATHS
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length":
                text = value.decode("latin-1").strip()
                if not text.isdigit():
                    await send_outcome(
                        send, 400, [Issue("error", "structure", "Content-Length is not a number")]
                    )
                    return
                if int(text) > limit:
                    # Never parsed; read and dropped first when that is cheap (below), so a
                    # client that sends the whole body gets the answer, not a reset.
                    await _discard_body(scope, receive, int(text))
                    await send_outcome(
                        send, 413, too_large(limit, bundle).issues, [(b"connection", b"close")]
                    )
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit, bundle)  # answered by the FhirError handler
            return message

        await self.app(scope, limited_receive, send)


# A refused body is read and dropped before the 413 (nginx's "lingering close") up to this
# size and time: closing a socket with unread data makes the kernel answer with a reset,
# and a client still sending (no ``Expect: 100-continue``) then sees a reset, not the
# 413. Larger bodies are not worth reading: the connection closes on them.
DISCARD_BYTES = 64 * 2**20
DISCARD_SECONDS = 10.0


async def _discard_body(scope: Scope, receive: Receive, declared: int) -> None:
    if declared > DISCARD_BYTES:
        return
    for key, value in scope.get("headers", []):
        if key.lower() == b"expect" and value.lower().startswith(b"100-continue"):
            return  # the client waits for our answer before it sends the body
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DISCARD_SECONDS
    while (remaining := deadline - loop.time()) > 0:
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body"):
            return


class ErrorMiddleware:
    def __init__(
        self, app: ASGIApp, headers: Callable[[Scope], list[tuple[bytes, bytes]]] | None = None
    ) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # half an answer is out: only closing the connection is left
            if isinstance(exc, FhirError):  # raised outside a route (e.g. body limit)
                status, issues = exc.status, exc.issues
            else:
                log.exception("unexpected error in %s %s", scope.get("method"), scope["path"])
                status = 500
                issues = [
                    Issue("fatal", "exception", "Internal server error; the error was logged")
                ]
            extra = self.headers(scope) if self.headers else []
            await send_outcome(send, status, issues, extra)
