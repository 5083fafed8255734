"""Request bodies: read within the size limit, parsed off the event loop, shape-checked.

Every JSON body of the FHIR API comes through here, so that the limits below hold for
every endpoint at once instead of each one guarding its own corner:

- depth: orjson parses 1024 levels but serialises only 254, so a body between the two
  parsed fine and then crashed on the way out (validation, storage, ``_pretty``, a
  searchset). ``MAX_DEPTH`` leaves room for the levels a stored resource gains when it
  is served inside a Bundle or Parameters (three each).
- work: validation and index extraction cost time per JSON value, so one resource is
  capped at ``MAX_VALUES_PER_RESOURCE`` values (the largest Synthea resource has under
  2,000; a 999-line Claim about 30,000), a body at ``MAX_VALUES_PER_BODY`` (a 100 MB
  Synthea bundle has about 9 million) and a batch/transaction at ``MAX_ENTRIES``
  entries. A Bundle's own envelope (``entry``, ``request``, ``fullUrl``...) counts
  towards the body, not towards any one resource. Bodies above ``THREAD_THRESHOLD``
  bytes are parsed and checked in a worker thread.
- size: a transaction or batch Bundle may be up to ``Settings.max_bundle_bytes``
  (``BILLABLE_MAX_BUNDLE_MB``, 128 MiB by default), any other body up to
  ``Settings.max_body_bytes`` (``BILLABLE_MAX_BODY_MB``, 16 MiB). A bundle above
  ``SPLIT_THRESHOLD`` bytes is never parsed whole: ``server.bundles.split`` parses it
  entry by entry, so the server holds its bytes, not four times as many Python objects.
- ids: every ``id`` of a resource in the body, and the ids and version ids of the URLs of
  batch/transaction entries, follow the rules of ``server.api.ids``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import Request

from server.api.context import settings_of
from server.api.ids import check_id, check_version_id, check_version_tag
from server.api.negotiation import FHIR_JSON, PLAIN_JSON, read_body, require_content_type
from server.errors import FhirError
from server.spec.resources import is_resource_type
from server.validation import validate_resource

MAX_DEPTH = 128
MAX_VALUES_PER_RESOURCE = 50_000
MAX_VALUES_PER_BODY = 16_000_000
MAX_ENTRIES = 100_000
THREAD_THRESHOLD = 256 * 1024
SPLIT_THRESHOLD = 4 * 1024 * 1024
_SPLIT_BUNDLES = ("batch", "transaction")


def check_json_shape(value: Any, where: str = "body") -> int:
    """400 when ``value`` is nested deeper than ``MAX_DEPTH``, holds more JSON values than
    the caps allow, or carries an id that is not a FHIR id.

    Iterative (no Python recursion), and stops at the first limit crossed. In a batch or
    transaction Bundle each entry's resource is counted on its own, because each is
    validated and stored on its own, and the Bundle's own values count towards the body
    only; anywhere else the whole body is one resource. Returns the number of values.
    """
    split = (
        isinstance(value, dict)
        and value.get("resourceType") == "Bundle"
        and value.get("type") in _SPLIT_BUNDLES
    )
    counts = [0]  # values per resource; index 0 is the body's own (or the Bundle's)
    total = 0
    # (value, depth, index of the resource it counts towards, path for messages)
    stack: list[tuple[Any, int, int, str]] = [(value, 1, 0, "")]
    while stack:
        item, depth, owner, path = stack.pop()
        total += 1
        counts[owner] += 1
        if depth > MAX_DEPTH:
            raise too_deep(where, path or "$")
        if isinstance(item, dict):
            if isinstance(item.get("resourceType"), str) and "id" in item:
                _check_resource_id(item["id"], f"{path}.id" if path else "id")
            for key, child in item.items():
                if isinstance(child, dict | list):
                    child_owner = owner
                    if split and depth == 3 and key == "resource" and path.startswith(".entry["):
                        counts.append(0)
                        child_owner = len(counts) - 1
                    stack.append((child, depth + 1, child_owner, f"{path}.{key}"))
                else:
                    total += 1
                    counts[owner] += 1
            if (
                split
                and depth == 3
                and path.startswith(".entry[")
                and isinstance(item.get("request"), dict)
            ):
                _check_entry_request(item["request"], path)
        elif isinstance(item, list):
            for i, child in enumerate(item):
                if isinstance(child, dict | list):
                    stack.append((child, depth + 1, owner, f"{path}[{i}]"))
                else:
                    total += 1
                    counts[owner] += 1
        # After the children: a long array of scalars counts before the next container.
        if counts[owner] > MAX_VALUES_PER_RESOURCE and not (split and owner == 0):
            raise too_many(where, MAX_VALUES_PER_RESOURCE, "in one resource")
        if total > MAX_VALUES_PER_BODY:
            raise too_many(where, MAX_VALUES_PER_BODY, "in all")
    if split and len(value.get("entry") or ()) > MAX_ENTRIES:
        raise FhirError.of(
            413,
            "too-costly",
            f"The Bundle has more than {MAX_ENTRIES:,} entries; split it into smaller bundles",
        )
    return total


def check_entry_shape(entry: Any, index: int) -> int:
    """``check_json_shape`` for one ``Bundle.entry`` item parsed on its own (a bundle
    split by ``server.bundles.split``): the entry is one resource, its request URL
    follows the id rules. Returns the number of values."""
    where = f".entry[{index}]"
    count = check_json_shape(entry, f"Bundle.entry[{index}]")
    if isinstance(entry, dict) and isinstance(entry.get("request"), dict):
        _check_entry_request(entry["request"], where)
    return count


def too_many(where: str, limit: int, scope: str) -> FhirError:
    return FhirError.of(
        413,
        "too-costly",
        f"The {where} holds more than {limit:,} JSON values {scope};"
        " split it into smaller resources or bundles",
    )


def _check_resource_id(rid: Any, path: str) -> None:
    if not isinstance(rid, str):
        raise FhirError.of(400, "value", "A resource id must be a string", (path,))
    check_id(rid, path)


def _check_entry_request(request: dict[str, Any], path: str) -> None:
    """The URL of a batch/transaction entry names ids just like a request URL does."""
    url = request.get("url")
    if isinstance(url, str):
        route = url.split("?", 1)[0].split("#", 1)[0]
        segments = [s for s in route.split("/") if s]
        start = next((i for i, s in enumerate(segments) if is_resource_type(s)), None)
        if start is not None:
            rest = segments[start + 1 :]
            where = f"{path}.request.url"
            if rest and not rest[0].startswith(("$", "_")):
                check_id(rest[0], where)
            if len(rest) >= 3 and rest[1] == "_history":
                check_version_id(rest[2], where)
    if_match = request.get("ifMatch")
    if isinstance(if_match, str):
        check_version_tag(if_match, f"{path}.request.ifMatch")


def _parse_and_check(body: bytes | bytearray, resource: bool) -> Any:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):  # orjson's own limit (1024) is past ours anyway
            raise too_deep("body", "$") from exc
        raise FhirError.of(400, "structure", f"The body is not valid JSON: {exc}") from exc
    check_json_shape(value)
    if resource:
        _check_resource(value)
    return value


def _check_resource(value: Any) -> None:
    """A JSON object with a known ``resourceType`` (validation comes later)."""
    if not isinstance(value, dict):
        raise FhirError.of(400, "structure", "The body must be a JSON object (a FHIR resource)")
    rtype = value.get("resourceType")
    if not isinstance(rtype, str):
        raise FhirError.of(400, "required", "The resource has no resourceType", ("resourceType",))
    if not is_resource_type(rtype):
        raise FhirError.of(
            400, "not-supported", f"Unknown resource type {rtype!r} (not a FHIR R4 resource type)"
        )


def too_deep(where: str, path: str) -> FhirError:
    shown = path if len(path) <= 80 else path[:80] + "..."
    return FhirError.of(
        400,
        "too-costly",
        f"The {where} is nested more than {MAX_DEPTH} levels deep (at {shown});"
        f" Billable stores and serves JSON up to {MAX_DEPTH} levels",
    )


async def parse_body(body: bytes | bytearray, resource: bool) -> Any:
    """``body`` parsed and shape-checked; in a worker thread when it is large."""
    if len(body) < THREAD_THRESHOLD:
        return _parse_and_check(body, resource)
    return await asyncio.to_thread(_parse_and_check, body, resource)


async def json_body(
    request: Request, media: tuple[str, ...] | None = (FHIR_JSON, PLAIN_JSON)
) -> Any:
    """Any JSON value in the body (a JSON Patch, a Bundle); ``media`` None accepts any
    Content-Type."""
    if media is not None:
        require_content_type(request, media)
    body = await read_body(request, settings_of(request).max_body_bytes)
    return await parse_body(body, resource=False)


async def bundle_body(request: Request) -> Any:
    """The body of ``POST [base]``: the parsed JSON value, or for a body of at least
    ``SPLIT_THRESHOLD`` bytes a ``server.bundles.split.SplitBundle`` (envelope parsed,
    entries not yet). Up to ``Settings.max_bundle_bytes``, read into one buffer."""
    require_content_type(request, (FHIR_JSON, PLAIN_JSON))
    limit = settings_of(request).max_bundle_bytes
    body = await _read_into_buffer(request, limit)
    if len(body) < SPLIT_THRESHOLD:
        return await parse_body(body, resource=False)
    from server.bundles.split import split_bundle  # the bundles package builds on this one

    split = await asyncio.to_thread(split_bundle, body)
    if split is None:  # no plain, unique entry array: parsed whole, orjson's semantics
        return await asyncio.to_thread(_parse_and_check, body, False)
    return split


async def _read_into_buffer(request: Request, limit: int) -> bytearray:
    """The body in one growing buffer (no list of chunks joined at the end: a 100 MB
    bundle is held once, not twice); 413 above ``limit``."""
    from server.api.middleware import too_large

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, bundle=True)
    buffer = bytearray()
    async for chunk in request.stream():
        if len(buffer) + len(chunk) > limit:
            raise too_large(limit, bundle=True)
        buffer += chunk
    if not buffer.strip():
        raise FhirError.of(400, "structure", "The request has no body")
    return buffer


async def resource_body(request: Request) -> dict[str, Any]:
    """The resource in the body: right media type, within the limits, a known type."""
    require_content_type(request, (FHIR_JSON, PLAIN_JSON))
    body = await read_body(request, settings_of(request).max_body_bytes)
    value: dict[str, Any] = await parse_body(body, resource=True)
    return value


async def operation_input(request: Request, accepted: tuple[str, ...]) -> dict[str, Any]:
    """The input of an operation (``$submit``...): a resource of one of the ``accepted``
    types, validated completely before the operation reads a single element of it, so
    that a malformed ``Parameters`` or ``Bundle`` is a 400 and never a crash."""
    value = await resource_body(request)
    rtype = value["resourceType"]
    if rtype not in accepted:
        raise FhirError.of(
            400, "invalid", f"This operation takes {', '.join(accepted)}, not {rtype}"
        )
    await asyncio.to_thread(validate_resource, value)
    return value
