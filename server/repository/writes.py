"""Writes: create, update, patch, delete and their conditional forms.

Each is authorised for the interaction, validated, judged by the policy exactly as it
will be stored (``with_id``), and committed through the one write path
(``RepositoryCore._commit``, which adds the caller's Provenance). A caller whose access
is restricted (a patient token) creates only with server-assigned ids, and a resource it
cannot see, or an id it did not get from the server, answers exactly like an unknown
id: no write's answer depends on data the caller may not see.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import jsonpatch
import orjson

from server.errors import FhirError
from server.merge_patch import MergePatch
from server.repository.conditional import Conditional
from server.repository.context import RequestContext
from server.repository.versions import (
    WriteOutcome,
    as_stored,
    check_type,
    conflict,
    not_known,
    parse_version_tag,
    precondition_failed,
    with_id,
)
from server.search.conditional import parse_conditional_search
from server.storage.port import StoredVersion, VersionConflict, Write
from server.validation import validate_resource

MAX_UPDATE_RETRIES = 20


class Writes(Conditional):
    async def create(
        self,
        ctx: RequestContext,
        resource_type: str,
        resource: dict[str, Any],
        if_none_exist: str | None = None,
    ) -> WriteOutcome:
        self.policy.authorize(ctx, "create", resource_type)
        check_type(resource, resource_type)
        validate_resource(resource)
        if if_none_exist is None:
            return await self._create_new(ctx, resource_type, resource)
        query = parse_conditional_search(resource_type, if_none_exist, "Conditional create")
        async with self._conditional_lock:
            ids = await self._conditional_ids(ctx, query)
            if len(ids) > 1:
                raise FhirError.of(
                    412,
                    "multiple-matches",
                    f"Conditional create: If-None-Exist {if_none_exist!r} matches more than one"
                    f" {resource_type}",
                )
            if ids:
                existing = await self._visible(
                    ctx, "read", await self._store.read(resource_type, ids[0])
                )
                if existing is not None:
                    return WriteOutcome(existing, created=False, matched_existing=True)
            return await self._create_new(ctx, resource_type, resource)

    async def _create_new(
        self, ctx: RequestContext, resource_type: str, resource: dict[str, Any]
    ) -> WriteOutcome:
        """A create under a new server-assigned id; the policy judges the resource as it
        will be stored (with that id), never the id the body claims."""
        rid = str(uuid.uuid4())
        self.policy.authorize(ctx, "create", resource_type, with_id(resource, rid))
        write, stored = self.new_version(resource_type, rid, resource, expected=0)
        await self._commit(ctx, [write])
        return WriteOutcome(stored, created=True)

    async def update(
        self,
        ctx: RequestContext,
        resource_type: str,
        rid: str,
        resource: dict[str, Any],
        if_match: str | None = None,
    ) -> WriteOutcome:
        """PUT: update, or create with the client's id when the resource is new."""
        self._admit_update(ctx, resource_type, resource)
        body_id = resource.get("id")
        if body_id is None:
            raise FhirError.of(
                400, "required", "An update must carry the resource id in the body", ("id",)
            )
        if body_id != rid:
            raise _other_id(resource_type, f"({body_id!r}) differs from the id in the URL", rid)
        validate_resource(resource)
        return await self._put_as_is(ctx, resource_type, rid, resource, if_match)

    async def conditional_update(
        self,
        ctx: RequestContext,
        resource_type: str,
        criteria: str,
        resource: dict[str, Any],
        if_match: str | None = None,
    ) -> WriteOutcome:
        self._admit_update(ctx, resource_type, resource)
        validate_resource(resource)
        query = parse_conditional_search(resource_type, criteria, "Conditional update")
        async with self._conditional_lock:
            ids = await self._conditional_ids(ctx, query)
            if len(ids) > 1:
                raise FhirError.of(
                    412,
                    "multiple-matches",
                    f"Conditional update: {criteria!r} matches more than one {resource_type}",
                )
            body_id = resource.get("id")
            if not ids:
                if body_id is None:
                    return await self._create_new(ctx, resource_type, resource)
                target = str(body_id)
            else:
                target = ids[0]
                if body_id is not None and body_id != target:
                    raise _other_id(
                        resource_type,
                        f"({body_id!r}) is not the id of the resource matched by the criteria",
                        target,
                    )
            return await self._put_as_is(ctx, resource_type, target, resource, if_match)

    def _admit_update(self, ctx: RequestContext, resource_type: str, resource: Any) -> None:
        """What every update checks first: the policy, then the body's type."""
        self.policy.authorize(ctx, "update", resource_type)
        check_type(resource, resource_type)

    async def _put_as_is(
        self,
        ctx: RequestContext,
        resource_type: str,
        rid: str,
        resource: dict[str, Any],
        if_match: str | None,
    ) -> WriteOutcome:
        """Store ``resource`` as the next version of ``rid`` (If-Match checked)."""
        expected = parse_version_tag(if_match) if if_match is not None else None
        produce = self._guarded(ctx, "update", resource_type, rid, lambda _current: resource)
        return await self._put(ctx, resource_type, rid, produce, expected)

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
        patch: Any
        if merge:
            if not isinstance(operations, dict):
                raise FhirError.of(400, "structure", "A JSON Merge Patch must be a JSON object")
            patch = MergePatch(operations)
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
        produce = self._guarded(ctx, "patch", resource_type, rid, apply)
        return await self._put(ctx, resource_type, rid, produce, expected)

    async def delete(
        self, ctx: RequestContext, resource_type: str, rid: str, if_match: str | None = None
    ) -> WriteOutcome:
        self.policy.authorize(ctx, "delete", resource_type)
        expected_tag = parse_version_tag(if_match) if if_match is not None else None
        for _attempt in range(MAX_UPDATE_RETRIES):
            current = await self._visible(ctx, "delete", await self._store.read(resource_type, rid))
            if current is None:
                raise FhirError.of(404, "not-found", f"{resource_type}/{rid} is not known")
            if expected_tag is not None and current.version != expected_tag:
                raise precondition_failed(resource_type, rid, expected_tag, current.version)
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
                await self._commit(ctx, [write])
            except VersionConflict as exc:
                if expected_tag is not None:
                    raise precondition_failed(resource_type, rid, expected_tag, exc.actual) from exc
                continue
            return WriteOutcome(as_stored(write))
        raise conflict(resource_type, rid)

    async def conditional_delete(
        self, ctx: RequestContext, resource_type: str, criteria: str
    ) -> WriteOutcome:
        self.policy.authorize(ctx, "delete", resource_type)
        query = parse_conditional_search(resource_type, criteria, "Conditional delete")
        ids = await self._conditional_ids(ctx, query)
        if len(ids) > 1:
            raise FhirError.of(
                412,
                "multiple-matches",
                f"Conditional delete: {criteria!r} matches more than one {resource_type}",
            )
        if not ids:
            return WriteOutcome(None)
        return await self.delete(ctx, resource_type, ids[0])

    def _guarded(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str,
        rid: str,
        produce: Callable[[StoredVersion | None], dict[str, Any]],
    ) -> Callable[[StoredVersion | None], Awaitable[dict[str, Any]]]:
        """``produce`` checked by the policy: the version replaced and the one written."""

        async def guarded(current: StoredVersion | None) -> dict[str, Any]:
            await self._check_target(ctx, interaction, resource_type, rid, current)
            resource = produce(current)
            self.policy.authorize(ctx, interaction, resource_type, with_id(resource, rid))
            return resource

        return guarded

    async def _check_target(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str,
        rid: str,
        current: StoredVersion | None,
    ) -> None:
        """Refuse to write over a version ``ctx`` cannot see, and (for a caller that may
        not choose ids) to create at an id it cannot see: both answer exactly like an
        unknown id, so no answer depends on data the caller may not see (a deleted
        resource of another patient cannot be re-created over either)."""
        visible = await self._visible(ctx, "read", current)
        if current is not None and visible is None:
            raise not_known(resource_type, rid)
        # A delete marker that is visible was the caller's own resource: it may re-create.
        if visible is None and not self.policy.may_choose_ids(ctx, resource_type):
            raise not_known(resource_type, rid)

    def authorize(self, ctx: RequestContext, interaction: str, resource_type: str | None) -> None:
        """Access control for one interaction that a bundle entry asks for."""
        self.policy.authorize(ctx, interaction, resource_type)

    async def current_version(
        self, ctx: RequestContext, interaction: str, resource_type: str, rid: str
    ) -> StoredVersion | None:
        """The latest version (a delete marker included) for planning a write, as ``ctx``
        may see it: a version the policy hides reads as missing."""
        return await self._visible(ctx, interaction, await self._store.read(resource_type, rid))

    async def write_target(
        self, ctx: RequestContext, interaction: str, resource_type: str, rid: str
    ) -> StoredVersion | None:
        """``current_version`` for a PUT/PATCH/DELETE at ``rid``, refused (as an unknown
        id) when ``ctx`` may not write there: the rules of single interactions."""
        current = await self._store.read(resource_type, rid)
        await self._check_target(ctx, interaction, resource_type, rid, current)
        return await self._visible(ctx, interaction, current)

    async def _put(
        self,
        ctx: RequestContext,
        resource_type: str,
        rid: str,
        produce: Callable[[StoredVersion | None], Awaitable[dict[str, Any]]],
        expected_tag: int | None,
    ) -> WriteOutcome:
        """Read-modify-write with optimistic concurrency.

        With ``If-Match`` a concurrent change is the client's problem (412). Without it
        the server retries: a plain PUT means "make it this", so a lost race is retried
        against the new current version rather than refused.
        """
        for _attempt in range(MAX_UPDATE_RETRIES):
            current = await self._store.read(resource_type, rid)
            actual = current.version if current else 0
            resource = await produce(current)
            if expected_tag is not None and actual != expected_tag:
                raise precondition_failed(resource_type, rid, expected_tag, actual)
            write, stored = self.new_version(resource_type, rid, resource, expected=actual)
            try:
                await self._commit(ctx, [write])
            except VersionConflict as exc:
                if expected_tag is not None:
                    raise precondition_failed(resource_type, rid, expected_tag, exc.actual) from exc
                continue
            created = current is None or current.deleted
            return WriteOutcome(stored, created=created)
        raise conflict(resource_type, rid)


def _other_id(resource_type: str, why: str, expected: str) -> FhirError:
    """The 400 of an update whose body names another resource than the one it updates."""
    return FhirError.of(
        400, "invalid", f"The id in the body {why} ({expected!r})", (f"{resource_type}.id",)
    )
