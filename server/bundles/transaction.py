"""Transactions: every entry planned first, then ONE ``commit`` of all their writes.

Processing follows R4 (http.html#trules):

1. Parse every entry; authorise each interaction; validate every resource (once).
2. Resolve identities in the R4 order (DELETE, POST, PUT/PATCH, GET/HEAD): plain ids,
   conditional delete/update/patch criteria and ``ifNoneExist`` are evaluated against the
   store, and new ids are drawn for creates. Two entries for one resource, or two
   fullUrls alike, fail the transaction (400).
3. Rewrite references: fullUrls (``urn:uuid:``, ``urn:oid:``, absolute URLs and the
   resource-relative ``Type/id`` they imply) become the stored ids, including those of
   conditional creates that matched an existing resource; conditional references
   (``Patient?identifier=...``) must match exactly one resource, in the store or among the
   bundle's own creates and updates.
4. Build every ``Write`` with ``Repository.plan_write`` (so index values are extracted
   exactly as for single writes) and hand them all to one ``commit``: the storage port
   stores all or none, on every backend.
5. Answer the reads (they see the transaction's own writes) and build the response.

Isolation: the whole plan-and-commit runs under the repository's conditional lock, so in
this process no other conditional interaction or transaction interleaves between a
match and the commit that relies on it. Versions read while planning are checked again by
the commit (optimistic concurrency); if another writer changed one of them in between,
the transaction is planned again from scratch (a few times), unless the entry carried
``ifMatch``, which then fails with 412. Across processes sharing one store, a conditional
create can still race with another process's; see docs/bundles.md.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from typing import Any

import jsonpatch
import orjson

from server.bundles.entries import PROCESSING_ORDER, Entry, entry_error
from server.bundles.parallel import validate_entries
from server.bundles.references import (
    ReferenceMap,
    Target,
    base_of,
    conditional_references,
    rewrite_serialised,
)
from server.bundles.results import EntryResult
from server.bundles.split import return_free_memory
from server.errors import FhirError
from server.repository import (
    Repository,
    RequestContext,
    parse_version_tag,
    serialise_with_meta,
)
from server.search.conditional import parse_conditional_search
from server.search.extract import extract_index_values
from server.search.memory import UnsupportedInMemory, matches
from server.storage.port import SearchIndex, SearchQuery, StoredVersion, VersionConflict, Write
from server.validation import validate_resource

MAX_ATTEMPTS = 5
YIELD_EVERY = 200
TRIM_EVERY = 2000  # writes of a large bundle between giving freed memory back
SEARCH_LIMIT = 100


async def run_transaction(
    repo: Repository, ctx: RequestContext, entries: list[Entry]
) -> list[EntryResult]:
    """Plan and commit ``entries`` as one transaction; the results in request order."""
    _check_full_urls(entries)
    for entry in entries:
        try:
            repo.authorize(ctx, entry.interaction, entry.resource_type)
        except FhirError as exc:
            raise entry_error(entry.index, entry.label, exc) from exc
    # Validation (worker processes for big bundles) runs while the plan is built; the
    # commit waits for it. The first invalid entry wins over any planning error, as if
    # validation had come first.
    validation = asyncio.ensure_future(validate_entries(entries))
    try:
        return await _plan_and_commit(repo, ctx, entries, validation)
    except FhirError:
        if not validation.done():
            await asyncio.wait([validation])
        invalid = None if validation.cancelled() else validation.exception()
        if invalid is not None:
            raise invalid from None
        raise
    finally:
        if not validation.done():
            validation.cancel()


async def _plan_and_commit(
    repo: Repository, ctx: RequestContext, entries: list[Entry], validation: asyncio.Future[None]
) -> list[EntryResult]:
    for _attempt in range(MAX_ATTEMPTS):
        async with repo.conditional_lock:
            plan = TransactionPlan(repo, ctx, entries)
            await plan.resolve_identities()
            if plan.lean:
                await validation  # before build_writes lets go of the entries' bytes
            await plan.build_writes()
            await validation
            try:
                await repo.commit_planned(ctx, plan.writes)
            except VersionConflict as exc:
                if plan.lean:
                    # The entries' bytes are gone (each became its write): no new plan.
                    raise FhirError.of(
                        409,
                        "conflict",
                        f"{exc.resource_type}/{exc.resource_id} was changed by another"
                        " request while this transaction was processed; send it again",
                    ) from exc
                planned = plan.by_identity.get((exc.resource_type, exc.resource_id))
                if planned is not None and planned.entry.if_match is not None:
                    raise entry_error(
                        planned.entry.index,
                        planned.entry.label,
                        FhirError.of(
                            412,
                            "conflict",
                            f"ifMatch: {exc.resource_type}/{exc.resource_id} is at version"
                            f" {exc.actual}, not {exc.expected}",
                        ),
                    ) from exc
                continue
        await plan.answer_reads()
        return plan.results()
    raise FhirError.of(
        409, "conflict", "The resources of this transaction are being changed concurrently"
    )


def _check_full_urls(entries: list[Entry]) -> None:
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.full_url is None:
            continue
        if entry.full_url in seen:
            raise FhirError.of(
                400,
                "invalid",
                f"{entry.label}: fullUrl {entry.full_url!r} is also the fullUrl of"
                f" Bundle.entry[{seen[entry.full_url]}]",
                (f"{entry.where}.fullUrl",),
            )
        seen[entry.full_url] = entry.index


@dataclass(slots=True)
class Planned:
    """What an entry resolved to. ``rid is None``: a conditional delete that matched nothing."""

    entry: Entry
    rid: str | None = None
    current: StoredVersion | None = None
    # The resource to store, before references are rewritten: the patched resource of a
    # PATCH; for a POST or PUT (``stores_entry``) the entry's own, read from the entry
    # when needed (a large bundle keeps it only as bytes).
    resource: dict[str, Any] | None = None
    stores_entry: bool = False
    write: Write | None = None
    stored: StoredVersion | None = None
    status: int = 200
    matched_existing: bool = False

    @property
    def next_version(self) -> int:
        return (self.current.version if self.current else 0) + 1

    @property
    def writes_resource(self) -> bool:
        return self.resource is not None or self.stores_entry

    def resource_dict(self) -> dict[str, Any]:
        found = self.resource if self.resource is not None else self.entry.resource
        assert found is not None
        return found

    def resource_bytes(self) -> bytes:
        if self.resource is not None:
            return orjson.dumps(self.resource)
        found = self.entry.resource_bytes()
        assert found is not None
        return found


class TransactionPlan:
    def __init__(self, repo: Repository, ctx: RequestContext, entries: list[Entry]) -> None:
        self.repo = repo
        self.ctx = ctx
        self.entries = entries
        self.planned: dict[int, Planned] = {}
        self.by_identity: dict[tuple[str, str], Planned] = {}
        self.writes: list[Write] = []
        self.read_results: dict[int, EntryResult] = {}
        # A large bundle (its entries hold only bytes): each entry's bytes are dropped as
        # soon as its write is built, so that the bundle is not held twice at the peak.
        self.lean = any(e.compact is not None for e in entries)

    # -- step 2: identities ---------------------------------------------------------

    async def resolve_identities(self) -> None:
        ordered = sorted(self.entries, key=lambda e: (PROCESSING_ORDER[e.method], e.index))
        conditional_creates: dict[tuple[str, str], int] = {}
        for entry in ordered:
            if entry.method in ("GET", "HEAD"):
                continue
            try:
                if entry.method == "POST" and entry.if_none_exist is not None:
                    key = (entry.resource_type, entry.if_none_exist)
                    if key in conditional_creates:
                        raise FhirError.of(
                            400,
                            "invalid",
                            f"the same conditional create as Bundle.entry"
                            f"[{conditional_creates[key]}] (ifNoneExist"
                            f" {entry.if_none_exist!r})",
                        )
                    conditional_creates[key] = entry.index
                planned = await self._resolve(entry)
            except FhirError as exc:
                raise entry_error(entry.index, entry.label, exc) from exc
            self.planned[entry.index] = planned
            if planned.rid is None:
                continue
            identity = (entry.resource_type, planned.rid)
            other = self.by_identity.get(identity)
            if other is not None:
                raise FhirError.of(
                    400,
                    "invalid",
                    f"{entry.label}: {identity[0]}/{identity[1]} is also the resource of"
                    f" {other.entry.label}; a transaction may touch a resource only once",
                    (entry.where,),
                )
            self.by_identity[identity] = planned

    async def _resolve(self, entry: Entry) -> Planned:
        rtype = entry.resource_type
        if entry.method == "POST":
            if entry.if_none_exist is not None:
                ids = await self._match(rtype, entry.if_none_exist, "Conditional create")
                if ids:
                    current = await self.repo.current_version(self.ctx, "read", rtype, ids[0])
                    return Planned(entry, ids[0], current, status=200, matched_existing=True)
            return Planned(entry, str(uuid.uuid4()), None, stores_entry=True, status=201)

        rid = entry.rid
        if rid is None:
            assert entry.query is not None
            what = {"PUT": "Conditional update", "PATCH": "Conditional patch"}.get(
                entry.method, "Conditional delete"
            )
            ids = await self._match(rtype, entry.query, what)
            if ids:
                rid = ids[0]
            elif entry.method == "DELETE":
                return Planned(entry, None, status=204)
            elif entry.method == "PATCH":
                raise FhirError.of(404, "not-found", f"{what}: no {rtype} matches {entry.query!r}")
            else:  # conditional update with no match creates (with the body's id, if any)
                assert entry.resource is not None
                rid = str(entry.resource.get("id") or uuid.uuid4())
        if entry.method == "PUT" and entry.rid is None and entry.resource is not None:
            body_id = entry.resource.get("id")
            if body_id is not None and body_id != rid:
                raise FhirError.of(
                    400,
                    "invalid",
                    f"the id in the resource ({body_id!r}) is not the id of the resource"
                    f" matched by the criteria ({rid!r})",
                    ("resource.id",),
                )
        # The rules of single interactions: a resource ``ctx`` cannot see, or (for a
        # restricted token) an id it did not get from the server, reads as unknown.
        current = await self.repo.write_target(self.ctx, entry.interaction, rtype, rid)
        self._check_if_match(entry, current)
        if entry.method == "DELETE":
            if current is None:
                raise FhirError.of(404, "not-found", f"{rtype}/{rid} is not known")
            return Planned(entry, rid, current, status=204)
        if entry.method == "PATCH":
            return Planned(entry, rid, current, self._patched(entry, rid, current), status=200)
        created = current is None or current.deleted
        return Planned(entry, rid, current, stores_entry=True, status=201 if created else 200)

    async def _match(self, rtype: str, criteria: str, what: str) -> list[str]:
        query = parse_conditional_search(rtype, criteria, what)
        ids = await self.repo.find_ids(self.ctx, query)
        if len(ids) > 1:
            raise FhirError.of(
                412,
                "multiple-matches",
                f"{what}: {criteria!r} matches more than one {rtype}",
            )
        return ids

    @staticmethod
    def _check_if_match(entry: Entry, current: StoredVersion | None) -> None:
        if entry.if_match is None:
            return
        expected = parse_version_tag(entry.if_match)
        actual = current.version if current else 0
        if actual != expected:
            raise FhirError.of(
                412,
                "conflict",
                f"ifMatch: {entry.resource_type}/{current.id if current else entry.rid} is at"
                f" version {actual}, not {expected}",
            )

    @staticmethod
    def _patched(entry: Entry, rid: str, current: StoredVersion | None) -> dict[str, Any]:
        if current is None or current.deleted or current.body is None:
            status, code = (410, "deleted") if current else (404, "not-found")
            raise FhirError.of(status, code, f"{entry.resource_type}/{rid} cannot be patched")
        try:
            patched = jsonpatch.JsonPatch(entry.patch or []).apply(orjson.loads(current.body))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise FhirError.of(422, "processing", f"The patch cannot be applied: {exc}") from exc
        except (TypeError, KeyError) as exc:
            raise FhirError.of(400, "structure", f"Invalid JSON Patch: {exc}") from exc
        if not isinstance(patched, dict):
            raise FhirError.of(422, "processing", "The patch must leave a resource object")
        if patched.get("resourceType") != entry.resource_type or patched.get("id") != rid:
            raise FhirError.of(422, "processing", "A patch must not change resourceType or id")
        validate_resource(patched)
        return patched

    # -- steps 3 and 4: references and writes ---------------------------------------

    def _reference_map(self) -> ReferenceMap:
        refs = ReferenceMap()
        for planned in self.planned.values():
            entry = planned.entry
            if entry.full_url is None or planned.rid is None:
                continue
            if planned.matched_existing:
                version = planned.current.version if planned.current else None
            else:
                version = planned.next_version
            refs.add(entry.full_url, Target(entry.resource_type, planned.rid, version))
        return refs

    async def build_writes(self) -> None:
        refs = self._reference_map()
        to_write = [
            p for p in self.planned.values() if p.writes_resource and not p.matched_existing
        ]
        # Compact JSON of each resource, scanned (not walked) for references; see
        # references.rewrite_serialised.
        serialised = {p.entry.index: p.resource_bytes() for p in to_write}
        pending: dict[str, int] = {}
        for index, raw in serialised.items():
            for ref in conditional_references(raw):
                pending.setdefault(ref, index)
        if pending:
            await self._resolve_conditional_references(refs, pending, to_write)
        for planned in sorted(
            self.planned.values(),
            key=lambda p: (PROCESSING_ORDER[p.entry.method], p.entry.index),
        ):
            entry = planned.entry
            if planned.rid is None or planned.matched_existing:
                planned.stored = planned.current
                continue
            if entry.method == "DELETE":
                assert planned.current is not None
                if planned.current.deleted:
                    planned.stored = planned.current
                    continue
                write = self.repo.plan_delete(entry.resource_type, planned.rid, planned.current)
                planned.stored = StoredVersion(
                    write.resource_type, write.id, write.version, write.last_updated, True, None
                )
            else:
                resource = self._rewritten(refs, planned, serialised.pop(entry.index))
                if _unchanged(entry, planned, resource):
                    planned.stored = planned.current
                    continue
                expected = planned.current.version if planned.current else 0
                write, planned.stored = self.repo.plan_write(
                    self.ctx,
                    entry.interaction,
                    entry.resource_type,
                    planned.rid,
                    resource,
                    expected,
                    validated=True,  # by the bundle's validation pool, awaited before commit
                )
            planned.write = write
            self.writes.append(write)
            if self.lean:
                entry.compact = None
                if len(self.writes) % TRIM_EVERY == 0:
                    return_free_memory()
            if len(self.writes) % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let other requests (and pool results) through

    def _rewritten(self, refs: ReferenceMap, planned: Planned, serialised: bytes) -> dict[str, Any]:
        base = base_of(planned.entry.full_url)

        def resolve(ref: str) -> str | None:
            return refs.resolve(ref, base)

        rewritten = rewrite_serialised(serialised, resolve)
        if rewritten is not None:
            return rewritten
        return planned.resource_dict()

    async def _resolve_conditional_references(
        self, refs: ReferenceMap, pending: dict[str, int], to_write: list[Planned]
    ) -> None:
        """Each conditional reference must match exactly one resource: in the store, or
        among the resources this transaction creates or updates."""
        wanted = {ref.partition("?")[0] for ref in pending}
        local: dict[str, list[tuple[str, SearchIndex]]] = {t: [] for t in wanted}
        for planned in to_write:
            rtype = planned.entry.resource_type
            if rtype in wanted and planned.writes_resource and planned.rid is not None:
                index = extract_index_values(planned.resource_dict())
                local[rtype].append((planned.rid, index))
        for ref, index_of_first in pending.items():
            first = self.planned[index_of_first].entry
            rtype, _, criteria = ref.partition("?")
            try:
                query = parse_conditional_search(rtype, criteria, "Conditional reference")
                found = set(await self.repo.find_ids(self.ctx, query))
                found.update(_local_matches(query, local[rtype]))
            except FhirError as exc:
                raise entry_error(first.index, first.label, exc) from exc
            if len(found) != 1:
                status, code, how = (
                    (412, "multiple-matches", "more than one")
                    if found
                    else (400, "not-found", "no")
                )
                raise FhirError.of(
                    status,
                    code,
                    f"{first.label}: the conditional reference {ref!r} matches {how} {rtype}"
                    " (it must match exactly one)",
                    (f"{first.where}.resource",),
                )
            rid = found.pop()
            target = self.by_identity.get((rtype, rid))
            refs.conditional[ref] = Target(rtype, rid, target.next_version if target else None)

    # -- step 5: reads and results --------------------------------------------------

    async def answer_reads(self) -> None:
        for entry in self.entries:
            if entry.method not in ("GET", "HEAD"):
                continue
            try:
                self.read_results[entry.index] = await self._read(entry)
            except FhirError as exc:
                raise entry_error(entry.index, entry.label, exc) from exc

    async def _read(self, entry: Entry) -> EntryResult:
        rtype = entry.resource_type
        if entry.rid is None:
            body = await search_bundle(self.repo, self.ctx, entry)
            return EntryResult(200, body=None if entry.method == "HEAD" else body)
        planned = self.by_identity.get((rtype, entry.rid))
        version = planned.stored if planned is not None else None
        if entry.vid is not None:
            if version is None or str(version.version) != entry.vid:
                version = await self.repo.vread(self.ctx, rtype, entry.rid, entry.vid)
        elif version is None:
            version = await self.repo.read(self.ctx, rtype, entry.rid)
        if version.deleted:
            raise FhirError.of(410, "deleted", f"{rtype}/{entry.rid} was deleted")
        return EntryResult(200, version, _body(entry, version), with_location=False)

    def results(self) -> list[EntryResult]:
        out = []
        for entry in self.entries:
            if entry.index in self.read_results:
                out.append(self.read_results[entry.index])
                continue
            planned = self.planned[entry.index]
            stored = planned.stored
            body = stored.body if stored is not None and entry.method != "DELETE" else None
            out.append(EntryResult(planned.status, stored, body))
        return out


def _unchanged(entry: Entry, planned: Planned, resource: dict[str, Any]) -> bool:
    """A PUT that would store exactly the current content is a no-op: no new version.

    This is what makes re-sending (and re-loading) update-as-create entries idempotent.
    """
    current = planned.current
    if entry.method != "PUT" or current is None or current.body is None:
        return False
    assert planned.rid is not None
    same = serialise_with_meta(resource, planned.rid, current.version, current.last_updated)
    return same == current.body


def _body(entry: Entry, version: StoredVersion) -> bytes | None:
    return None if entry.method == "HEAD" else version.body


def _local_matches(query: SearchQuery, planned: list[tuple[str, SearchIndex]]) -> set[str]:
    """Ids among the transaction's own planned resources that match ``query``; criteria
    that need other resources (chains, ``_has``) match only stored resources."""
    try:
        return {rid for rid, index in planned if matches(query.where, rid, index)}
    except UnsupportedInMemory:
        return set()


async def search_bundle(repo: Repository, ctx: RequestContext, entry: Entry) -> bytes:
    """GET ``Type?criteria`` inside a bundle: a searchset of the first matches (no paging)."""
    query = parse_conditional_search(entry.resource_type, entry.query or "", "Search")
    page = await repo.search(ctx, replace(query, count=SEARCH_LIMIT))
    found = [
        {
            "fullUrl": f"{ctx.base_url}/{v.resource_type}/{v.id}",
            "resource": orjson.Fragment(v.body),
            "search": {"mode": "match"},
        }
        for v in page.versions
        if v.body is not None
    ]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if found:
        bundle["entry"] = found
    return orjson.dumps(bundle)


__all__ = ["run_transaction", "search_bundle"]
