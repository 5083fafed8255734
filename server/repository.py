"""The repository facade: the one way into the store.

Every interaction of every endpoint goes through ``Repository`` — never straight to the
storage port — so that access control and audit, applied here, cannot be bypassed by a
new endpoint (the pattern of Medplum's ``repo.ts``). It also owns the policy the
backends must not care about: ids, version numbers, ``meta``, timestamps, the exact
bytes stored, optimistic-concurrency retries and the FHIR semantics of conditional
interactions.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import jsonpatch
import orjson

from server.errors import FhirError, Issue
from server.instants import format_micros
from server.merge_patch import MergePatch
from server.search.conditional import parse_conditional_search
from server.search.extract import extract_index_values, extract_tokens
from server.spec.resources import is_resource_type
from server.storage.port import (
    HistoryPage,
    HistoryQuery,
    IncludeSpec,
    SearchPage,
    SearchQuery,
    SearchStore,
    SearchTooCostly,
    Store,
    StoredVersion,
    VersionConflict,
    Write,
)
from server.validation import validate_resource

if TYPE_CHECKING:
    from server.auth.scopes import Grants

log = logging.getLogger("billable.repository")

MAX_UPDATE_RETRIES = 20


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, from where: what access control and audit need to know."""

    base_url: str
    client_id: str | None = None
    user: str | None = None
    remote_addr: str | None = None
    # The validated access token (``server.auth.scopes.Grants``); None with --auth off.
    grants: Grants | None = None


class AccessPolicy(Protocol):
    """Decides whether ``ctx`` may perform ``interaction`` on ``resource_type``.

    ``authorize`` is asked before every interaction, and again with the resource a write
    would store; ``can_see`` is asked for every version before it leaves the repository
    (read, vread, history; search results and includes must do the same).
    """

    def authorize(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str | None,
        resource: dict[str, Any] | None = None,
    ) -> None:
        """Raise ``FhirError`` (403) to refuse."""

    def can_see(self, ctx: RequestContext, interaction: str, version: StoredVersion) -> bool:
        """Whether ``version`` may be shown; hidden versions look like missing ones."""

    def restrict_search(self, ctx: RequestContext, query: SearchQuery) -> SearchQuery:
        """``query`` limited to what ``ctx`` may see (patient compartment, scope queries)."""


def system_context(client_id: str, base_url: str = "urn:billable:system") -> RequestContext:
    """The identity of one of Billable's own engines (coding, adjudication, terminology
    publisher): a system client with every scope, so its work is authorised and audited
    like any other client's, under its own name."""
    from server.auth.scopes import Grants

    grants = Grants.from_scope_string("system/*.cruds", client_id)
    return RequestContext(base_url=base_url, client_id=client_id, grants=grants)


class OpenAccess:
    """The policy of ``--auth off``: everything is allowed (loopback development only)."""

    def authorize(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str | None,
        resource: dict[str, Any] | None = None,
    ) -> None:
        return None

    def can_see(self, ctx: RequestContext, interaction: str, version: StoredVersion) -> bool:
        # Internal records (OAuth clients, signing keys) share the store; never serve them.
        return is_resource_type(version.resource_type)

    def restrict_search(self, ctx: RequestContext, query: SearchQuery) -> SearchQuery:
        return query


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """The version a write produced (``None`` when a delete found nothing to delete)."""

    version: StoredVersion | None
    created: bool = False
    matched_existing: bool = False


class InstantClock:
    """FHIR instants in UTC, strictly increasing within this process."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._last = 0

    def next(self) -> str:
        micros = int(self._now() * 1_000_000)
        if micros <= self._last:
            micros = self._last + 1
        self._last = micros
        return format_micros(micros)


def parse_version_tag(etag: str) -> int:
    """``W/"3"`` or ``"3"`` or ``3`` → 3; anything else is a 400."""
    text = etag.strip()
    text = text.removeprefix("W/").strip('"')
    if not text.isdigit():
        raise FhirError.of(400, "invalid", f'Malformed version tag {etag!r} (expected W/"n")')
    return int(text)


class Repository:
    def __init__(
        self,
        store: Store,
        policy: AccessPolicy | None = None,
        clock: InstantClock | None = None,
    ) -> None:
        self.store = store
        self.policy: AccessPolicy = policy or OpenAccess()
        self.clock = clock or InstantClock()
        # Serialises check-then-create within this process, so that two concurrent
        # conditional creates with the same criteria cannot both create.
        self._conditional_lock = asyncio.Lock()
        # Told the writes of every successful commit (e.g. the coding engine's trigger).
        # A listener must not block or raise: it schedules its own work.
        self.commit_listeners: list[Callable[[Sequence[Write]], None]] = []

    def _committed(self, writes: Sequence[Write]) -> None:
        for listener in self.commit_listeners:
            try:
                listener(writes)
            except Exception:  # a listener never fails the write that has committed
                log.exception("commit listener failed")

    # -- reads ---------------------------------------------------------------------

    async def read(self, ctx: RequestContext, resource_type: str, rid: str) -> StoredVersion:
        self.policy.authorize(ctx, "read", resource_type)
        current = await self._visible(ctx, "read", await self.store.read(resource_type, rid))
        if current is None:
            raise FhirError.of(404, "not-found", f"{resource_type}/{rid} is not known")
        if current.deleted:
            raise FhirError.of(
                410,
                "deleted",
                f"{resource_type}/{rid} was deleted (version {current.version})",
                headers={"ETag": f'W/"{current.version}"'},
            )
        return current

    async def vread(
        self, ctx: RequestContext, resource_type: str, rid: str, vid: str
    ) -> StoredVersion:
        self.policy.authorize(ctx, "vread", resource_type)
        if not vid.isdigit():
            raise FhirError.of(404, "not-found", f"{resource_type}/{rid} has no version {vid!r}")
        version = await self.store.vread(resource_type, rid, int(vid))
        if version is not None and not await self._visible(ctx, "vread", version):
            version = None
        if version is None:
            raise FhirError.of(404, "not-found", f"{resource_type}/{rid} has no version {vid}")
        if version.deleted:
            raise FhirError.of(
                410, "deleted", f"Version {vid} of {resource_type}/{rid} is a deletion"
            )
        return version

    async def history(self, ctx: RequestContext, query: HistoryQuery) -> HistoryPage:
        if query.resource_id is not None:
            interaction = "history-instance"
        else:
            interaction = "history-type" if query.resource_type else "history-system"
        self.policy.authorize(ctx, interaction, query.resource_type)
        if query.resource_id is not None:
            assert query.resource_type is not None
            current = await self.store.read(query.resource_type, query.resource_id)
            if await self._visible(ctx, interaction, current) is None:
                raise FhirError.of(
                    404, "not-found", f"{query.resource_type}/{query.resource_id} is not known"
                )
        try:
            page = await self.store.history(query)
        except ValueError as exc:
            raise FhirError.of(400, "invalid", f"Invalid history paging cursor: {exc}") from exc
        # Hidden versions are dropped from the page; the cursor still moves past them.
        page.versions = [v for v in page.versions if self.policy.can_see(ctx, interaction, v)]
        return page

    async def _visible(
        self, ctx: RequestContext, interaction: str, version: StoredVersion | None
    ) -> StoredVersion | None:
        """``version`` if the policy lets ``ctx`` see it, else ``None`` (reads as 404).

        A delete marker has no content to judge, so the version before it decides.
        """
        if version is None or self.policy.can_see(ctx, interaction, version):
            return version
        if version.deleted and version.version > 1:
            before = await self.store.vread(version.resource_type, version.id, version.version - 1)
            if before is not None and self.policy.can_see(ctx, interaction, before):
                return version
        return None

    def _guarded(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str,
        produce: Callable[[StoredVersion | None], dict[str, Any]],
    ) -> Callable[[StoredVersion | None], dict[str, Any]]:
        """``produce`` checked by the policy: the version replaced and the one written."""

        def guarded(current: StoredVersion | None) -> dict[str, Any]:
            if current is not None and current.body is not None:
                if not self.policy.can_see(ctx, "read", current):
                    raise FhirError.of(
                        404, "not-found", f"{resource_type}/{current.id} is not known"
                    )
            resource = produce(current)
            self.policy.authorize(ctx, interaction, resource_type, resource)
            return resource

        return guarded

    async def search(self, ctx: RequestContext, query: SearchQuery) -> SearchPage:
        """One page of a compiled FHIR search (``server.search``)."""
        if len(query.types) == 1:
            self.policy.authorize(ctx, "search-type", query.types[0])
        else:
            self.policy.authorize(ctx, "search-system", None)
            for rtype in query.types:
                self.policy.authorize(ctx, "search-type", rtype)
        query = self.policy.restrict_search(ctx, query)
        try:
            page = await _searchable(self.store).search(query)
        except SearchTooCostly as exc:
            raise FhirError.of(400, "too-costly", f"Search too costly: {exc}") from exc
        # Safety net (and the only filter for multi-type searches): never hand out a
        # version the policy hides; a total that counted hidden ones would leak them.
        keep = [self.policy.can_see(ctx, "search-type", v) for v in page.versions]
        if not all(keep):
            page.versions = [v for v, k in zip(page.versions, keep, strict=True) if k]
            page.positions = [p for p, k in zip(page.positions, keep, strict=True) if k]
            page.total = None
        return page

    async def include(
        self,
        ctx: RequestContext,
        spec: IncludeSpec,
        resources: Sequence[tuple[str, str]],
        limit: int,
    ) -> list[StoredVersion]:
        """Resources ``_include``/``_revinclude`` add to a search page (authorised per type)."""
        found = await _searchable(self.store).include(spec, resources, limit)
        allowed: dict[str, bool] = {}
        out = []
        for version in found:
            rtype = version.resource_type
            if rtype not in allowed:
                try:
                    self.policy.authorize(ctx, "search-type", rtype)
                    allowed[rtype] = True
                except FhirError:
                    allowed[rtype] = False
            if allowed[rtype] and self.policy.can_see(ctx, "search-type", version):
                out.append(version)
        return out

    # -- writes --------------------------------------------------------------------

    async def create(
        self,
        ctx: RequestContext,
        resource_type: str,
        resource: dict[str, Any],
        if_none_exist: str | None = None,
    ) -> WriteOutcome:
        self.policy.authorize(ctx, "create", resource_type)
        _check_type(resource, resource_type)
        self.policy.authorize(ctx, "create", resource_type, resource)
        validate_resource(resource)
        if if_none_exist is None:
            return await self._create_new(resource_type, resource)
        query = parse_conditional_search(resource_type, if_none_exist, "Conditional create")
        async with self._conditional_lock:
            ids = await self._conditional_ids(query)
            if len(ids) > 1:
                raise FhirError.of(
                    412,
                    "multiple-matches",
                    f"Conditional create: If-None-Exist {if_none_exist!r} matches more than one"
                    f" {resource_type}",
                )
            if ids:
                existing = await self.store.read(resource_type, ids[0])
                return WriteOutcome(existing, created=False, matched_existing=True)
            return await self._create_new(resource_type, resource)

    async def _create_new(self, resource_type: str, resource: dict[str, Any]) -> WriteOutcome:
        rid = str(uuid.uuid4())
        version = self.new_version(resource_type, rid, resource, expected=0)
        await self.store.commit([version[0]])
        self._committed([version[0]])
        return WriteOutcome(version[1], created=True)

    async def update(
        self,
        ctx: RequestContext,
        resource_type: str,
        rid: str,
        resource: dict[str, Any],
        if_match: str | None = None,
    ) -> WriteOutcome:
        """PUT: update, or create with the client's id when the resource is new."""
        self.policy.authorize(ctx, "update", resource_type)
        _check_type(resource, resource_type)
        body_id = resource.get("id")
        if body_id is None:
            raise FhirError.of(
                400, "required", "An update must carry the resource id in the body", ("id",)
            )
        if body_id != rid:
            raise FhirError.of(
                400,
                "invalid",
                f"The id in the body ({body_id!r}) differs from the id in the URL ({rid!r})",
                (f"{resource_type}.id",),
            )
        validate_resource(resource)
        expected = parse_version_tag(if_match) if if_match is not None else None
        produce = self._guarded(ctx, "update", resource_type, lambda _current: resource)
        return await self._put(resource_type, rid, produce, expected)

    async def conditional_update(
        self,
        ctx: RequestContext,
        resource_type: str,
        criteria: str,
        resource: dict[str, Any],
        if_match: str | None = None,
    ) -> WriteOutcome:
        self.policy.authorize(ctx, "update", resource_type)
        _check_type(resource, resource_type)
        validate_resource(resource)
        query = parse_conditional_search(resource_type, criteria, "Conditional update")
        async with self._conditional_lock:
            ids = await self._conditional_ids(query)
            if len(ids) > 1:
                raise FhirError.of(
                    412,
                    "multiple-matches",
                    f"Conditional update: {criteria!r} matches more than one {resource_type}",
                )
            body_id = resource.get("id")
            if not ids:
                if body_id is None:
                    return await self._create_new(resource_type, resource)
                target = str(body_id)
            else:
                target = ids[0]
                if body_id is not None and body_id != target:
                    raise FhirError.of(
                        400,
                        "invalid",
                        f"The id in the body ({body_id!r}) is not the id of the resource"
                        f" matched by the criteria ({target!r})",
                        (f"{resource_type}.id",),
                    )
            expected = parse_version_tag(if_match) if if_match is not None else None
            produce = self._guarded(ctx, "update", resource_type, lambda _c: resource)
            return await self._put(resource_type, target, produce, expected)

    async def patch(
        self,
        ctx: RequestContext,
        resource_type: str,
        rid: str,
        operations: Any,
        if_match: str | None = None,
        merge: bool = False,
    ) -> WriteOutcome:
        """JSON Patch (RFC 6902), or with ``merge`` a JSON Merge Patch (RFC 7386, see
        ``server.merge_patch``), applied to the current version."""
        self.policy.authorize(ctx, "patch", resource_type)
        if merge:
            if not isinstance(operations, dict):
                raise FhirError.of(400, "structure", "A JSON Merge Patch must be a JSON object")
            patch: Any = MergePatch(operations)
        elif not isinstance(operations, list):
            raise FhirError.of(400, "structure", "A JSON Patch document must be a JSON array")
        else:
            try:
                patch = jsonpatch.JsonPatch(operations)
            except (jsonpatch.JsonPatchException, TypeError, KeyError) as exc:
                raise FhirError.of(400, "structure", f"Invalid JSON Patch: {exc}") from exc

        def apply(current: StoredVersion | None) -> dict[str, Any]:
            if current is None or current.deleted or current.body is None:
                status, code = (410, "deleted") if current else (404, "not-found")
                raise FhirError.of(status, code, f"{resource_type}/{rid} cannot be patched")
            try:
                patched = patch.apply(orjson.loads(current.body))
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise FhirError.of(
                    422, "processing", f"The patch cannot be applied: {exc}"
                ) from exc
            if not isinstance(patched, dict):
                raise FhirError.of(422, "processing", "The patch must leave a resource object")
            if patched.get("resourceType") != resource_type or patched.get("id") != rid:
                raise FhirError.of(422, "processing", "A patch must not change resourceType or id")
            validate_resource(patched)
            return patched

        expected = parse_version_tag(if_match) if if_match is not None else None
        return await self._put(
            resource_type, rid, self._guarded(ctx, "patch", resource_type, apply), expected
        )

    async def delete(
        self, ctx: RequestContext, resource_type: str, rid: str, if_match: str | None = None
    ) -> WriteOutcome:
        self.policy.authorize(ctx, "delete", resource_type)
        expected_tag = parse_version_tag(if_match) if if_match is not None else None
        for _attempt in range(MAX_UPDATE_RETRIES):
            current = await self._visible(ctx, "delete", await self.store.read(resource_type, rid))
            if current is None:
                raise FhirError.of(404, "not-found", f"{resource_type}/{rid} is not known")
            if expected_tag is not None and current.version != expected_tag:
                raise _precondition_failed(resource_type, rid, expected_tag, current.version)
            if current.deleted:
                return WriteOutcome(current)
            write = Write(
                resource_type,
                rid,
                expected_version=current.version,
                version=current.version + 1,
                last_updated=self.clock.next(),
                body=None,
            )
            try:
                await self.store.commit([write])
            except VersionConflict as exc:
                if expected_tag is not None:
                    raise _precondition_failed(
                        resource_type, rid, expected_tag, exc.actual
                    ) from exc
                continue
            return WriteOutcome(_as_stored(write))
        raise _conflict(resource_type, rid)

    async def conditional_delete(
        self, ctx: RequestContext, resource_type: str, criteria: str
    ) -> WriteOutcome:
        self.policy.authorize(ctx, "delete", resource_type)
        query = parse_conditional_search(resource_type, criteria, "Conditional delete")
        ids = await self._conditional_ids(query)
        if len(ids) > 1:
            raise FhirError.of(
                412,
                "multiple-matches",
                f"Conditional delete: {criteria!r} matches more than one {resource_type}",
            )
        if not ids:
            return WriteOutcome(None)
        return await self.delete(ctx, resource_type, ids[0])

    # -- planning: Writes built without committing (batch/transaction bundles) -------

    @property
    def conditional_lock(self) -> asyncio.Lock:
        """Held around check-then-write of conditional interactions, bundles included."""
        return self._conditional_lock

    def authorize(self, ctx: RequestContext, interaction: str, resource_type: str | None) -> None:
        """Access control for one interaction that a bundle entry asks for."""
        self.policy.authorize(ctx, interaction, resource_type)

    async def current_version(
        self, ctx: RequestContext, interaction: str, resource_type: str, rid: str
    ) -> StoredVersion | None:
        """The latest version (a delete marker included) for planning a write, as ``ctx``
        may see it: a version the policy hides reads as missing."""
        return await self._visible(ctx, interaction, await self.store.read(resource_type, rid))

    async def _conditional_ids(self, query: SearchQuery) -> list[str]:
        """Ids matching conditional criteria (full search), at most ``query.count``."""
        try:
            page = await _searchable(self.store).search(query)
        except SearchTooCostly as exc:
            raise FhirError.of(400, "too-costly", f"Conditional criteria: {exc}") from exc
        return [v.id for v in page.versions]

    async def find_ids(self, query: SearchQuery) -> list[str]:
        """Ids matching conditional criteria (``parse_conditional_search``), for planning,
        with the same semantics as single conditional interactions; callers authorise."""
        return await self._conditional_ids(query)

    def plan_write(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str,
        rid: str,
        resource: dict[str, Any],
        expected: int,
    ) -> tuple[Write, StoredVersion]:
        """``new_version`` after the policy has seen the resource exactly as it will be
        stored (references rewritten)."""
        self.policy.authorize(ctx, interaction, resource_type, resource)
        return self.new_version(resource_type, rid, resource, expected)

    def plan_delete(self, resource_type: str, rid: str, current: StoredVersion) -> Write:
        """The delete marker that follows ``current``."""
        return Write(
            resource_type,
            rid,
            expected_version=current.version,
            version=current.version + 1,
            last_updated=self.clock.next(),
            body=None,
        )

    async def commit_planned(self, ctx: RequestContext, writes: list[Write]) -> None:
        """Commit writes planned with ``plan_write``/``plan_delete``: all of them or none.

        Raises ``VersionConflict`` when a resource changed since it was planned.
        """
        await self.store.commit(writes)
        self._committed(writes)

    # -- internals -----------------------------------------------------------------

    async def _put(
        self,
        resource_type: str,
        rid: str,
        produce: Callable[[StoredVersion | None], dict[str, Any]],
        expected_tag: int | None,
    ) -> WriteOutcome:
        """Read-modify-write with optimistic concurrency.

        With ``If-Match`` a concurrent change is the client's problem (412). Without it
        the server retries: a plain PUT means "make it this", so a lost race is retried
        against the new current version rather than refused.
        """
        for _attempt in range(MAX_UPDATE_RETRIES):
            current = await self.store.read(resource_type, rid)
            actual = current.version if current else 0
            resource = produce(current)
            if expected_tag is not None and actual != expected_tag:
                raise _precondition_failed(resource_type, rid, expected_tag, actual)
            write, stored = self.new_version(resource_type, rid, resource, expected=actual)
            try:
                await self.store.commit([write])
            except VersionConflict as exc:
                if expected_tag is not None:
                    raise _precondition_failed(
                        resource_type, rid, expected_tag, exc.actual
                    ) from exc
                continue
            self._committed([write])
            created = current is None or current.deleted
            return WriteOutcome(stored, created=created)
        raise _conflict(resource_type, rid)

    def new_version(
        self, resource_type: str, rid: str, resource: dict[str, Any], expected: int
    ) -> tuple[Write, StoredVersion]:
        version = expected + 1
        last_updated = self.clock.next()
        body = serialise_with_meta(resource, rid, version, last_updated)
        write = Write(
            resource_type,
            rid,
            expected_version=expected,
            version=version,
            last_updated=last_updated,
            body=body,
            tokens=extract_tokens(resource),
            index=extract_index_values(resource, last_updated),
        )
        return write, _as_stored(write)


def _searchable(store: Store) -> SearchStore:
    if not hasattr(store, "search"):
        raise FhirError.of(
            501, "not-supported", f"Search is not available on the {store.info.kind} store yet"
        )
    return cast(SearchStore, store)


def serialise_with_meta(
    resource: dict[str, Any], rid: str, version: int, last_updated: str
) -> bytes:
    """The stored bytes: the client's JSON with server-owned ``id`` and ``meta`` set.

    Client-supplied ``meta`` elements that are the client's to set (profile, security,
    tag, source) are kept; ``versionId`` and ``lastUpdated`` are always the server's.
    """
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = last_updated
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    ordered = {"resourceType": resource["resourceType"], "id": rid, "meta": meta, **rest}
    return orjson.dumps(ordered)


def _as_stored(write: Write) -> StoredVersion:
    return StoredVersion(
        write.resource_type, write.id, write.version, write.last_updated, write.deleted, write.body
    )


def _check_type(resource: dict[str, Any], resource_type: str) -> None:
    if resource.get("resourceType") != resource_type:
        raise FhirError.of(
            400,
            "invalid",
            f"The body is a {resource.get('resourceType')!r}, but the URL is for {resource_type}",
            ("resourceType",),
        )


def _precondition_failed(rtype: str, rid: str, expected: int, actual: int) -> FhirError:
    return FhirError(
        412,
        [
            Issue(
                "error",
                "conflict",
                f"If-Match: {rtype}/{rid} is at version {actual}, not {expected}",
            )
        ],
    )


def _conflict(rtype: str, rid: str) -> FhirError:
    return FhirError.of(409, "conflict", f"{rtype}/{rid} is being changed concurrently; try again")
