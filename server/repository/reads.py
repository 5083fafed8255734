"""Reads: read, vread, history, search, includes, each judged by the caller's policy."""

from __future__ import annotations

from collections.abc import Sequence

from server.errors import FhirError
from server.repository.base import RepositoryCore
from server.repository.context import RequestContext
from server.repository.versions import not_known
from server.storage.port import (
    HistoryPage,
    HistoryQuery,
    IncludeSpec,
    SearchPage,
    SearchQuery,
    SearchTooCostly,
    StoredVersion,
)


class Reads(RepositoryCore):
    async def read(self, ctx: RequestContext, resource_type: str, rid: str) -> StoredVersion:
        self.policy.authorize(ctx, "read", resource_type)
        current = await self._visible(ctx, "read", await self._store.read(resource_type, rid))
        if current is None:
            raise not_known(resource_type, rid)
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
        version = await self._store.vread(resource_type, rid, int(vid))
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
            current = await self._store.read(query.resource_type, query.resource_id)
            if await self._visible(ctx, interaction, current) is None:
                raise not_known(query.resource_type, query.resource_id)
        try:
            page = await self._store.history(query)
        except ValueError as exc:
            raise FhirError.of(400, "invalid", f"Invalid history paging cursor: {exc}") from exc
        # Hidden versions are dropped from the page; the cursor still moves past them.
        keep = [v for v in page.versions if self.policy.can_see(ctx, interaction, v)]
        if len(keep) != len(page.versions):
            page.total = None  # a total that counted hidden versions would leak them
        page.versions = keep
        return page

    async def search(self, ctx: RequestContext, query: SearchQuery) -> SearchPage:
        """One page of a compiled FHIR search (``server.search``), limited by the policy
        (``restrict_search``: per type for system and multi-type searches) and filtered
        by ``can_see``; no type given means every FHIR type, never an internal record."""
        if len(query.types) == 1:
            self.policy.authorize(ctx, "search-type", query.types[0])
        else:
            self.policy.authorize(ctx, "search-system", None)
            for rtype in query.types:
                self.policy.authorize(ctx, "search-type", rtype)
        query = self.policy.restrict_search(ctx, query)
        try:
            page = await self._search_port().search(query)
        except SearchTooCostly as exc:
            raise FhirError.of(400, "too-costly", f"Search too costly: {exc}") from exc
        # Safety net: never hand out a version the policy hides; a total that counted
        # hidden ones would leak them.
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
        found = await self._search_port().include(spec, resources, limit)
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
