"""search-type, search-system and compartment search; ``POST .../_search`` too.

The query string (or form body) is parsed once into an expression tree
(``server.search.parse``), run through the repository on whichever store is
configured, and answered as a ``searchset`` Bundle with keyset paging links.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.context import known_type, repository_of, request_context, settings_of
from server.api.negotiation import preferences, read_body
from server.api.responses import json_response
from server.errors import FhirError, operation_outcome
from server.repository import Repository, RequestContext
from server.search.expr import And, Expr, Or, Reference, RefValue
from server.search.paging import decode_cursor, encode_cursor, query_digest
from server.search.parse import Include, ParsedSearch, parse_search
from server.search.registry import registry
from server.search.shape import shape
from server.spec.resources import is_resource_type
from server.storage.port import SearchQuery, StoredVersion

router = APIRouter()


def type_search_params(resource_type: str) -> list[dict[str, str]]:
    """The CapabilityStatement's searchParam list of one type, from the registry."""
    return [
        {"name": p.code, "definition": p.url, "type": p.type}
        for p in sorted(registry().params(resource_type).values(), key=lambda p: p.code)
        if p.indexed and not p.code.startswith("_")
    ]


# The parameters every type has; per-type lists come from ``server.search.registry``.
CAPABILITY = {
    "searchParamsPerType": type_search_params,
    "type": ("search-type",),
    "system": ("search-system",),
    "searchParam": [
        {
            "name": code,
            "definition": f"http://hl7.org/fhir/SearchParameter/Resource-{code[1:]}",
            "type": kind,
        }
        for code, kind in (
            ("_id", "token"),
            ("_lastUpdated", "date"),
            ("_tag", "token"),
            ("_profile", "uri"),
            ("_security", "token"),
            ("_source", "uri"),
        )
    ],
}

MAX_INCLUDES = 1000
MAX_ITERATIONS = 4
FORM = "application/x-www-form-urlencoded"


async def _pairs(request: Request) -> list[tuple[str, str]]:
    pairs = list(parse_qsl(request.url.query, keep_blank_values=True))
    if request.method == "POST":
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in ("", FORM):
            raise FhirError.of(415, "not-supported", f"POST _search takes {FORM}, not {media!r}")
        body = await read_body(request, settings_of(request).max_body_bytes)
        pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return pairs


def _entry(version: StoredVersion, base: str, mode: str, parsed: ParsedSearch) -> dict[str, Any]:
    assert version.body is not None
    entry: dict[str, Any] = {"fullUrl": f"{base}/{version.resource_type}/{version.id}"}
    if mode == "match" and (parsed.summary in ("true", "text", "data") or parsed.elements):
        entry["resource"] = shape(orjson.loads(version.body), parsed.summary, parsed.elements)
    else:
        entry["resource"] = orjson.Fragment(version.body)
    entry["search"] = {"mode": mode}
    return entry


async def _includes(
    repo: Repository,
    ctx: RequestContext,
    parsed: ParsedSearch,
    matches: list[StoredVersion],
) -> list[StoredVersion]:
    seen = {(v.resource_type, v.id) for v in matches}
    added: list[StoredVersion] = []
    frontier = [(v.resource_type, v.id) for v in matches]
    specs: list[Include] = parsed.includes + parsed.revincludes
    first = True
    for _round in range(MAX_ITERATIONS):
        if not frontier or len(added) >= MAX_INCLUDES:
            break
        new: list[tuple[str, str]] = []
        for inc in specs:
            if not first and not inc.iterate:
                continue
            found = await repo.include(ctx, inc.spec, frontier, MAX_INCLUDES - len(added))
            for version in found:
                key = (version.resource_type, version.id)
                if key not in seen:
                    seen.add(key)
                    added.append(version)
                    new.append(key)
        frontier = new
        first = False
        if not any(inc.iterate for inc in specs):
            break
    return added


def _link(base: str, path: str, pairs: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(pairs))
    return f"{base}/{path}" + (f"?{query}" if query else "")


async def run_search(
    request: Request,
    types: tuple[str, ...],
    path: str,
    pairs: list[tuple[str, str]],
    extra: Expr | None = None,
) -> Response:
    settings = settings_of(request)
    ctx = request_context(request)
    strict = preferences(request).handling == "strict"
    parsed = parse_search(
        types,
        pairs,
        base_url=ctx.base_url,
        default_count=settings.default_count,
        max_count=settings.max_count,
        strict=strict,
    )
    where = parsed.where
    if extra is not None:
        where = extra if where is None else And((extra, where))
    applied = [p for p in parsed.applied if p[0] != "_count"]
    digest = query_digest([*applied, ("_type", ",".join(types)), ("path", path)])
    cursor = decode_cursor(parsed.cursor, digest) if parsed.cursor else None
    # _count=0 asks for the total only (fhirpy's count() relies on it), like _summary=count.
    count_only = parsed.summary == "count" or parsed.count == 0
    want_total = count_only or parsed.total in ("accurate", "estimate")
    query = SearchQuery(
        types=types,
        where=where,
        sort=parsed.sort,
        count=0 if count_only else parsed.count,
        after=cursor.position if cursor and not cursor.backwards else None,
        before=cursor.position if cursor and cursor.backwards else None,
        total=want_total,
    )
    repo = repository_of(request)
    page = await repo.search(ctx, query)
    base = ctx.base_url
    link_pairs = [*applied, ("_count", str(parsed.count))]
    self_pairs = list(link_pairs)
    if parsed.cursor:
        self_pairs.append(("_cursor", parsed.cursor))
    links = [{"relation": "self", "url": _link(base, path, self_pairs)}]
    backwards = cursor is not None and cursor.backwards
    has_next = (page.more if not backwards else True) and not count_only
    has_prev = (cursor is not None and not backwards) or (backwards and page.more)
    if has_prev and page.positions:
        token = encode_cursor(page.positions[0], True, digest)
        links.append(
            {"relation": "previous", "url": _link(base, path, [*link_pairs, ("_cursor", token)])}
        )
    if has_next and page.positions:
        token = encode_cursor(page.positions[-1], False, digest)
        links.append(
            {"relation": "next", "url": _link(base, path, [*link_pairs, ("_cursor", token)])}
        )
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    total = page.total
    if total is None and cursor is None and not page.more and parsed.total != "none":
        total = len(page.versions)  # everything fits on the first page: known for free
    if total is not None and parsed.total != "none":
        bundle["total"] = total
    bundle["link"] = links
    entries = [_entry(v, base, "match", parsed) for v in page.versions]
    if page.versions and (parsed.includes or parsed.revincludes) and not count_only:
        included = await _includes(repo, ctx, parsed, page.versions)
        entries += [_entry(v, base, "include", parsed) for v in included]
    if parsed.warnings:
        # Outside a transaction or batch every entry needs a fullUrl (bdl-7's R4 rule):
        # the outcome is not stored, so it is named by a fresh urn:uuid.
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": operation_outcome(parsed.warnings),
                "search": {"mode": "outcome"},
            }
        )
    if entries:
        bundle["entry"] = entries
    return json_response(request, bundle)


def _types_param(pairs: list[tuple[str, str]]) -> tuple[str, ...]:
    types: list[str] = []
    for name, value in pairs:
        if name == "_type":
            for t in value.split(","):
                t = t.strip()
                if not is_resource_type(t):
                    raise FhirError.of(400, "invalid", f"_type: {t!r} is not a resource type")
                types.append(t)
    return tuple(dict.fromkeys(types))


async def _system(request: Request) -> Response:
    pairs = await _pairs(request)
    types = _types_param(pairs)
    return await run_search(request, types, "", pairs)


@router.get("/_search", include_in_schema=False)
async def system_search_get(request: Request) -> Response:
    return await _system(request)


@router.post("/_search")
async def system_search_post(request: Request) -> Response:
    return await _system(request)


async def system_search(request: Request) -> Response:
    """``GET [base]?...``: mounted on the empty path by the app factory."""
    return await _system(request)


@router.get("/{resource_type}")
async def search_type(request: Request, resource_type: str) -> Response:
    known_type(resource_type)
    return await run_search(request, (resource_type,), resource_type, await _pairs(request))


@router.post("/{resource_type}/_search")
async def search_type_post(request: Request, resource_type: str) -> Response:
    known_type(resource_type)
    return await run_search(request, (resource_type,), resource_type, await _pairs(request))


def compartment_criterion(compartment: str, cid: str, resource_type: str) -> Expr:
    params = registry().compartment_params(compartment, resource_type)
    if not params:
        raise FhirError.of(
            404,
            "not-found",
            f"{resource_type} is not in the {compartment} compartment",
        )
    refs: list[Expr] = []
    for code in params:
        if code == "{def}":
            continue
        refs.append(Reference(code, (RefValue(compartment, cid),)))
    return refs[0] if len(refs) == 1 else Or(tuple(refs))


@router.get("/{compartment}/{cid}/{resource_type}")
async def search_compartment(
    request: Request, compartment: str, cid: str, resource_type: str
) -> Response:
    known_type(compartment)
    if compartment not in registry().compartments:
        raise FhirError.of(
            404, "not-supported", f"Compartment search is supported for Patient, not {compartment}"
        )
    known_type(resource_type)
    extra = compartment_criterion(compartment, cid, resource_type)
    path = f"{compartment}/{cid}/{resource_type}"
    return await run_search(request, (resource_type,), path, await _pairs(request), extra)
