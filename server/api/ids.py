"""Ids, version ids and version tags in URLs and headers, checked once for every route.

A FHIR id is ``[A-Za-z0-9\\-\\.]{1,64}`` (R4 datatypes, ``id``); a version id here is a
decimal integer that fits the stores' 64-bit integers. Anything else is a 400 before a
handler runs, so that neither store is ever asked about an id it cannot hold (a 20-digit
version crashed the SQLite driver; a 10,000-character id reached both indexes).

``check_request_ids`` is a dependency of the whole ``/fhir`` router: it checks every
path parameter that names an instance (``rid``, ``cid``, ``group_id``, ``job_id``,
``name``), the version in ``vid`` (a number no store can hold reads as 404, like any unknown
version), and the ``If-Match`` header.
"""

from __future__ import annotations

import re

from fastapi import Request

from server.errors import FhirError

ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")
MAX_VERSION = 2**63 - 1
ID_PARAMS = ("rid", "cid", "group_id", "job_id", "name")


def check_id(value: str, where: str = "id") -> str:
    if not ID_PATTERN.fullmatch(value):
        shown = value if len(value) <= 70 else value[:64] + "..."
        raise FhirError.of(
            400,
            "value",
            f"{where}: {shown!r} is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)",
        )
    return value


def version_number(text: str) -> int | None:
    """``text`` as a version number, or None when it is not one the store could hold."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if number <= MAX_VERSION else None


def check_version_id(value: str, where: str = "version id") -> None:
    if version_number(value) is None:
        shown = value if len(value) <= 24 else value[:20] + "..."
        raise FhirError.of(
            400,
            "value",
            f"{where}: {shown!r} is not a version id (a whole number up to {MAX_VERSION})",
        )


def check_version_tag(tag: str, where: str = "If-Match") -> None:
    """``W/"3"``, ``"3"`` or ``3``, with a number the store can hold."""
    text = tag.strip().removeprefix("W/").strip('"')
    if version_number(text) is None:
        shown = tag if len(tag) <= 30 else tag[:26] + "..."
        raise FhirError.of(
            400,
            "invalid",
            f'{where}: {shown!r} is not a version tag (W/"n", n up to {MAX_VERSION})',
        )


async def check_request_ids(request: Request) -> None:
    """Router dependency: ids in the path and the ``If-Match`` header, before the handler."""
    params = request.path_params
    for key in ID_PARAMS:
        value = params.get(key)
        if isinstance(value, str):
            check_id(value, "export file name" if key == "name" else "id")
    vid = params.get("vid")
    if isinstance(vid, str) and version_number(vid) is None:
        # No such version can exist: it reads as missing, like any unknown version.
        raise FhirError.of(404, "not-found", f"There is no version {vid[:24]!r} of this resource")
    if_match = request.headers.get("if-match")
    if if_match is not None:
        check_version_tag(if_match)
