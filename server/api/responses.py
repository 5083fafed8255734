"""Building FHIR responses from stored bytes, without a model round trip."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from server.api.negotiation import FHIR_JSON, response_media_type, wants_pretty
from server.errors import Issue, operation_outcome
from server.storage.port import StoredVersion


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def http_date(instant: str) -> str:
    return format_datetime(parse_instant(instant), usegmt=True)


def version_headers(version: StoredVersion, base_url: str) -> dict[str, str]:
    return {
        "ETag": f'W/"{version.version}"',
        "Last-Modified": http_date(version.last_updated),
        "Location": f"{base_url}/{version.resource_type}/{version.id}/_history/{version.version}",
    }


def _content_type(media: str) -> str:
    return f"{media}; charset=utf-8"


def json_bytes_response(
    request: Request,
    body: bytes,
    status: int = 200,
    headers: dict[str, str] | None = None,
    media: str | None = None,
) -> Response:
    """Serve JSON bytes as they are, re-indented only when ``_pretty=true``."""
    media = media or response_media_type(request)
    if wants_pretty(request):
        body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    return Response(body, status, headers=headers, media_type=_content_type(media))


def json_response(
    request: Request,
    value: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    media: str | None = None,
) -> Response:
    option = orjson.OPT_INDENT_2 if wants_pretty(request) else 0
    body = orjson.dumps(value, option=option)
    return Response(
        body,
        status,
        headers=headers,
        media_type=_content_type(media or response_media_type(request)),
    )


def outcome_body(issues: list[Issue]) -> dict[str, Any]:
    return operation_outcome(issues)


def error_response(
    status: int, issues: list[Issue], headers: dict[str, str] | None = None
) -> Response:
    """An OperationOutcome answer; always FHIR JSON, even when negotiation itself failed."""
    body = orjson.dumps(operation_outcome(issues))
    return Response(body, status, headers=headers, media_type=_content_type(FHIR_JSON))


def write_response(
    request: Request, version: StoredVersion, status: int, base_url: str
) -> Response:
    """The answer to create/update/patch, shaped by ``Prefer: return=...``."""
    from server.api.negotiation import preferences

    headers = version_headers(version, base_url)
    wanted = preferences(request).return_
    if wanted == "minimal":
        return Response(status_code=status, headers=headers)
    if wanted == "OperationOutcome":
        verb = "created" if status == 201 else "updated"
        issue = Issue(
            "information",
            "informational",
            f"{version.resource_type}/{version.id} {verb} (version {version.version})",
        )
        return json_response(request, operation_outcome([issue]), status, headers)
    assert version.body is not None
    return json_bytes_response(request, version.body, status, headers)
