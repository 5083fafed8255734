"""Bulk Data ``$export`` (FHIR Bulk Data Access IG v2): kick-off, status, cancel, files.

``GET|POST [base]/$export``, ``[base]/Patient/$export`` and ``[base]/Group/{id}/$export``
need ``Prefer: respond-async`` and answer 202 with ``Content-Location`` of the status URL.
``GET`` on it answers 202 with ``X-Progress`` and ``Retry-After`` while the job runs (429
when polled faster than asked), 200 with the manifest when done, 500 with an
OperationOutcome when the job failed; ``DELETE`` cancels and removes the files. The files
are served only to the client (and user, and patient context) that started the job. The
work happens in ``server.bulk``.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from server.api.body import json_body
from server.api.context import request_context
from server.api.responses import json_response
from server.bulk.request import NDJSON, parameters_to_pairs, parse_kickoff
from server.bulk.service import ExportService
from server.errors import FhirError

router = APIRouter()
CAPABILITY: dict[str, Any] = {}

# (where: None = the system level, else the resource type's entry; definition)
OPERATIONS = [
    (None, "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"),
    ("Patient", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"),
    ("Group", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"),
]
INSTANTIATES = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"


def capability_hook(statement: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Declare $export where it runs: the system level, Patient and Group (each its own
    OperationDefinition; an operation's name is unique within its level)."""
    statement = dict(statement)
    statement["instantiates"] = [*statement.get("instantiates", []), INSTANTIATES]
    rest = dict(statement["rest"][0])
    for where, url in OPERATIONS:
        operation = {"name": "export", "definition": url}
        if where is None:
            rest["operation"] = [*rest.get("operation", []), operation]
            continue
        rest["resource"] = [
            {**entry, "operation": [*entry.get("operation", []), operation]}
            if entry.get("type") == where
            else entry
            for entry in rest.get("resource", [])
        ]
    statement["rest"] = [rest, *statement["rest"][1:]]
    return statement


def service_of(request: Request) -> ExportService:
    service: ExportService = request.app.state.bulk
    return service


def _prefer(request: Request) -> tuple[bool, bool]:
    """(respond-async asked for, handling=lenient asked for) from ``Prefer``."""
    flags: set[str] = set()
    for raw in request.headers.getlist("prefer"):
        for part in raw.replace(";", ",").split(","):
            flags.add(part.strip().lower().replace(" ", "").replace('"', ""))
    return "respond-async" in flags, "handling=lenient" in flags


async def _kickoff(
    request: Request, level: str, path: str, group_id: str | None = None
) -> Response:
    respond_async, lenient = _prefer(request)
    if not respond_async:
        raise FhirError.of(
            400, "invalid", "$export is asynchronous: send the header Prefer: respond-async"
        )
    ctx = request_context(request)
    pairs = list(parse_qsl(request.url.query, keep_blank_values=True))
    if request.method == "POST":
        pairs += parameters_to_pairs(await json_body(request, media=None))
    export = parse_kickoff(pairs, level, group_id, lenient=lenient, base_url=ctx.base_url)
    query = request.url.query
    request_url = f"{ctx.base_url}/{path}" + (f"?{query}" if query else "")
    job_id = await service_of(request).kickoff(ctx, request_url, export)
    return Response(
        status_code=202, headers={"Content-Location": f"{ctx.base_url}/$export-status/{job_id}"}
    )


@router.api_route("/$export", methods=["GET", "POST"])
async def export_system(request: Request) -> Response:
    return await _kickoff(request, "system", "$export")


@router.api_route("/Patient/$export", methods=["GET", "POST"])
async def export_patients(request: Request) -> Response:
    return await _kickoff(request, "patient", "Patient/$export")


@router.api_route("/Group/{group_id}/$export", methods=["GET", "POST"])
async def export_group(request: Request, group_id: str) -> Response:
    return await _kickoff(request, "group", f"Group/{group_id}/$export", group_id)


@router.get("/$export-status/{job_id}")
async def export_status(request: Request, job_id: str) -> Response:
    answer = await service_of(request).status(request_context(request), job_id)
    if answer.status == 200:
        assert answer.manifest is not None and answer.expires is not None
        headers = {"Expires": formatdate(answer.expires, usegmt=True)}
        return json_response(request, answer.manifest, 200, headers, media="application/json")
    headers = {"Retry-After": str(answer.retry_after)}
    if answer.status == 429:
        raise FhirError.of(
            429, "throttled", "Polled too often; wait for Retry-After seconds", headers=headers
        )
    assert answer.progress is not None
    headers["X-Progress"] = answer.progress
    return Response(status_code=202, headers=headers)


@router.delete("/$export-status/{job_id}")
async def export_cancel(request: Request, job_id: str) -> Response:
    await service_of(request).cancel(request_context(request), job_id)
    return Response(status_code=202)


@router.get("/$export-file/{job_id}/{name}")
async def export_file(request: Request, job_id: str, name: str) -> Response:
    path = await service_of(request).file_path(request_context(request), job_id, name)
    return FileResponse(path, media_type=NDJSON, filename=None)
