"""``If-None-Exist`` as clients really send it.

FHIR says the header holds the query part (``identifier=...``). HAPI FHIR's generic client
(``.create().conditional().where(...)``) sends an absolute URL,
``[base]/Patient?identifier=...``, and others send ``Patient?identifier=...``. Both name the
type and the criteria the plain form has; accept them when they name this server and the
type being created, and say why otherwise (a criterion silently dropped would make the
create unconditional).
"""

from __future__ import annotations

import re

from server.errors import FhirError

_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def relative_criteria(value: str, base_url: str, resource_type: str) -> str:
    """The query part of an ``If-None-Exist`` value given in any of the three forms."""
    value = value.strip()
    head, sep, query = value.partition("?")
    if _ABSOLUTE.match(value):
        base, _, rtype = head.rstrip("/").rpartition("/")
        if base.rstrip("/") != base_url.rstrip("/"):
            raise FhirError.of(
                400,
                "invalid",
                f"If-None-Exist names {base!r}, not this server ({base_url}): give the search"
                " relative to this server",
            )
        return _checked(rtype, query, resource_type)
    if sep and "=" not in head:
        return _checked(head.strip("/"), query, resource_type)  # "Patient?identifier=..."
    return value


def _checked(named: str, query: str, resource_type: str) -> str:
    if named != resource_type:
        raise FhirError.of(
            400,
            "invalid",
            f"If-None-Exist searches {named or '(no type)'}, but the request creates a"
            f" {resource_type}",
        )
    return query
