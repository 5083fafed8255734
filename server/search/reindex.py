"""``billable reindex``: rebuild every search index row from the stored resources.

Needed after the registry or the extraction changes (a new Billable version). It walks
the current resources of every type in keyset order, a batch at a time, re-extracts and
replaces their index rows; writes that happen meanwhile index themselves as usual.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from server.search.extract import extract_index_values
from server.storage.port import SearchIndex, SearchQuery, SearchStore


async def reindex(
    store: SearchStore,
    types: tuple[str, ...] = (),
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-extract the index of every current resource (of ``types``; all when empty)."""
    done = 0
    after = None
    while True:
        page = await store.search(SearchQuery(types, count=batch, after=after))
        entries: list[tuple[str, str, SearchIndex]] = []
        for version in page.versions:
            assert version.body is not None
            resource = orjson.loads(version.body)
            entries.append(
                (
                    version.resource_type,
                    version.id,
                    extract_index_values(resource, version.last_updated),
                )
            )
        if entries:
            await store.reindex(entries)
        done += len(entries)
        if progress is not None:
            progress(done)
        if not page.more or not page.positions:
            return done
        after = page.positions[-1]
