"""Conditional matching: ``If-None-Exist``, conditional update/delete, and the
conditional references and ``ifNoneExist`` of bundles.

Every match is a search through the caller's policy (``restrict_search``, then
``can_see`` on each match), so a resource the caller cannot see never matches: it
behaves exactly as if it did not exist, and no answer (200, 201, 204, 404, 412) depends
on it. What a write does next is decided in ``server.repository.writes``.
"""

from __future__ import annotations

from server.errors import FhirError
from server.repository.context import RequestContext
from server.repository.process_lock import ProcessLock
from server.repository.reads import Reads
from server.storage.port import SearchQuery, SearchTooCostly


class Conditional(Reads):
    @property
    def conditional_lock(self) -> ProcessLock:
        """Held around check-then-write of conditional interactions, bundles included."""
        return self._conditional_lock

    async def _conditional_ids(self, ctx: RequestContext, query: SearchQuery) -> list[str]:
        """Ids matching conditional criteria among what ``ctx`` may see, at most
        ``query.count``."""
        self.policy.authorize(ctx, "search-type", query.types[0] if query.types else None)
        query = self.policy.restrict_search(ctx, query)
        try:
            page = await self._search_port().search(query)
        except SearchTooCostly as exc:
            raise FhirError.of(400, "too-costly", f"Conditional criteria: {exc}") from exc
        return [v.id for v in page.versions if self.policy.can_see(ctx, "search-type", v)]

    async def find_ids(self, ctx: RequestContext, query: SearchQuery) -> list[str]:
        """Ids matching conditional criteria (``parse_conditional_search``) that ``ctx``
        may see, for planning bundles: the same semantics as single conditional
        interactions (conditional references and ``ifNoneExist`` included)."""
        return await self._conditional_ids(ctx, query)
