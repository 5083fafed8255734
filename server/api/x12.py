"""X12 5010 over HTTP (docs/x12.md).

* ``GET /fhir/Claim/{id}/$x12``: the Claim as an 837P or 837I interchange
  (``application/edi-x12``), with a new control number; a Claim that cannot make a valid
  837 answers 422 naming every missing element, and nothing is written.
* ``POST /fhir/$import-x12`` (body ``application/edi-x12``): post an 835 remittance, or
  record a 999/277CA acknowledgement; answers an OperationOutcome of what was posted,
  what matched no claim and what was rejected. Invalid X12 answers 400 naming the
  segment and element, and nothing is posted.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.context import repository_of, request_context, settings_of
from server.api.negotiation import FHIR_JSON
from server.errors import FhirError
from server.x12.inbound import import_x12
from server.x12.outbound import X12Out

router = APIRouter()
EDI_X12 = "application/edi-x12"
MAX_NOTES_HEADER = 2000


@router.get("/Claim/{rid}/$x12")
async def claim_x12(request: Request, rid: str) -> Response:
    out = X12Out(repository_of(request), settings_of(request))
    document = await out.claim_document(request_context(request), rid)
    built = document.claims[0]
    filename = f"{document.kind}-{document.control_number:09d}.x12"
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-X12-Control-Number": str(document.control_number),
        "X-X12-Frequency": built.frequency.code,
    }
    if built.report.notes:
        # Explicit fallbacks (a default code where the Claim had none), for the biller.
        headers["X-X12-Notes"] = " | ".join(built.report.notes)[:MAX_NOTES_HEADER]
    return Response(document.text.encode("ascii", "replace"), media_type=EDI_X12, headers=headers)


@router.post("/$import-x12")
async def import_x12_operation(request: Request) -> Response:
    body = await request.body()
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media and media not in (EDI_X12, "text/plain", "application/octet-stream"):
        raise FhirError.of(
            415,
            "not-supported",
            f"$import-x12 takes an X12 interchange as {EDI_X12}, not {media}",
        )
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FhirError.of(
            400,
            "structure",
            f"The X12 document has a byte outside the X12 character set at offset {exc.start};"
            " nothing was posted",
        ) from exc
    result = await import_x12(repository_of(request), request_context(request), text)
    return Response(orjson.dumps(result.outcome()), status_code=200, media_type=FHIR_JSON)


def capability_hook(statement: dict[str, Any], base_url: str) -> dict[str, Any]:
    for rest in statement.get("rest", []):
        rest.setdefault("operation", []).append(
            {
                "name": "import-x12",
                "definition": "https://billable.dev/fhir/OperationDefinition/import-x12",
            }
        )
        for entry in rest.get("resource", []):
            if entry.get("type") == "Claim":
                entry.setdefault("operation", []).append(
                    {
                        "name": "x12",
                        "definition": "https://billable.dev/fhir/OperationDefinition/Claim-x12",
                    }
                )
    return statement
