"""HTTP content negotiation for FHIR JSON: formats, request bodies, Prefer, _pretty."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from server.errors import FhirError

FHIR_JSON = "application/fhir+json"
PLAIN_JSON = "application/json"
JSON_PATCH = "application/json-patch+json"

_FORMAT_ALIASES = {
    "json": FHIR_JSON,
    FHIR_JSON: FHIR_JSON,
    PLAIN_JSON: PLAIN_JSON,
    "text/json": PLAIN_JSON,
}
_XML_TYPES = {"xml", "application/fhir+xml", "application/xml", "text/xml"}
_ANY = {"*/*", "application/*", ""}


def _media_types(header: str) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in header.split(",")]


def response_media_type(request: Request) -> str:
    """The JSON media type to answer with; 406 when the client wants only XML or others."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        key = fmt.strip().lower().split(";", 1)[0]
        if key in _FORMAT_ALIASES:
            return _FORMAT_ALIASES[key]
        raise _not_acceptable(f"_format={fmt}")
    accept = request.headers.get("accept", "")
    types = _media_types(accept)
    for media in types:
        if media in _FORMAT_ALIASES:
            return _FORMAT_ALIASES[media]
    if any(m in _ANY or m.startswith("text/html") for m in types):
        return FHIR_JSON
    raise _not_acceptable(f"Accept: {accept}")


def _not_acceptable(what: str) -> FhirError:
    return FhirError.of(
        406,
        "not-supported",
        f"{what} cannot be served: Billable produces FHIR JSON only ({FHIR_JSON} or {PLAIN_JSON})",
    )


def require_content_type(request: Request, allowed: tuple[str, ...]) -> None:
    raw = request.headers.get("content-type")
    media = (raw or "").split(";", 1)[0].strip().lower()
    if media not in allowed:
        shown = raw if raw else "(none)"
        raise FhirError.of(
            415,
            "not-supported",
            f"Content-Type {shown} is not supported here; send {' or '.join(allowed)}",
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything above ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise FhirError.of(400, "structure", "The request has no body")
    return body


def _too_large(limit: int) -> FhirError:
    return FhirError.of(413, "too-costly", f"The body is larger than the limit of {limit} bytes")


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the client asked for in ``Prefer``."""

    return_: str = "representation"
    handling: str = "lenient"
    respond_async: bool = False


def preferences(request: Request) -> Preferences:
    values: dict[str, str] = {}
    flags: set[str] = set()
    for raw in request.headers.getlist("prefer"):
        for part in raw.replace(";", ",").split(","):
            key, _, value = part.strip().partition("=")
            if value:
                values[key.strip().lower()] = value.strip().strip('"')
            elif key:
                flags.add(key.strip().lower())
    ret = values.get("return", "representation")
    if ret.lower() == "operationoutcome":
        ret = "OperationOutcome"
    elif ret not in ("minimal", "representation"):
        ret = "representation"
    return Preferences(ret, values.get("handling", "lenient"), "respond-async" in flags)


def wants_pretty(request: Request) -> bool:
    return request.query_params.get("_pretty", "false").lower() == "true"
