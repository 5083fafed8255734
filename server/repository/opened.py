"""``opened(store_url)``: a Repository over a freshly opened store, for the CLI commands
(``billable load``, ``reindex``, ``clients``, ``audit``...), which therefore reach the
store through the same door as the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from server.repository.context import AccessPolicy
from server.storage.factory import create_store

if TYPE_CHECKING:
    from server.repository import Repository


@asynccontextmanager
async def opened(store_url: str, policy: AccessPolicy | None = None) -> AsyncIterator[Repository]:
    from server.repository import Repository

    repo = Repository(create_store(store_url), policy)
    await repo.open()
    try:
        yield repo
    finally:
        await repo.close()
