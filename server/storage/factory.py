"""Pick a storage backend from a store URL (``sqlite:///PATH`` or ``mongodb://...``)."""

from __future__ import annotations

from pathlib import Path

from server.storage.port import Store

DEFAULT_STORE_URL = "sqlite:///./data/billable.db"


class StoreUrlError(ValueError):
    """The store URL names no backend Billable has."""


def sqlite_path(url: str) -> Path:
    """``sqlite:///./data/x.db`` → ``./data/x.db``; ``sqlite:////var/x.db`` → ``/var/x.db``."""
    path = url[len("sqlite:///") :]
    if not path:
        raise StoreUrlError(f"no file path in store URL {url!r}")
    return Path(path)


def create_store(url: str) -> Store:
    """A closed store for ``url``; the caller opens it (``await store.open()``)."""
    if url.startswith("sqlite:///"):
        from server.storage.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url))
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from server.storage.mongo import MongoStore

        return MongoStore(url)
    raise StoreUrlError(
        f"unsupported store URL {url!r}: use sqlite:///PATH or mongodb://HOST[:PORT]/DB"
    )
