"""What the MongoDB store's parts share: its collections, the error guard, the version
documents (``_new_doc``), the newest visible version (``_latest``) and the visibility
rules of staged commits (``Visibility``). The document model is described in
``server.storage.mongo``; staged commits in ``server.storage.mongo_staged``."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pymongo import DESCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from server.search.mongo_index import index_document
from server.storage.mongo_heads import Heads
from server.storage.port import (
    BackendInfo,
    StoredVersion,
    StoreUnavailable,
    Write,
)

Doc = dict[str, Any]
AtomicCommit = Literal["auto", "transactions", "staged"]

DEFAULT_DATABASE = "billable"
DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5000
# Records of finished staged commits are kept this long so that a reader that saw a
# marker can still look its commit up.
FINISHED_RECORD_TTL = timedelta(minutes=10)
GC_EVERY_COMMITS = 256

COMMITTED = "committed"
DUPLICATE_KEY = 11000
ABORTED = "aborted"


class SlotTaken(Exception):
    """Another writer already moved this resource on from the expected version."""

    def __init__(self, write: Write) -> None:
        self.write = write


def redact_url(url: str) -> str:
    """The URL without its password, for logs and health output."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, hosts = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{hosts}"))


def version_doc_id(resource_type: str, resource_id: str, version: int) -> str:
    return f"{resource_type}/{resource_id}/{version:09d}"


def to_version(doc: Mapping[str, Any]) -> StoredVersion:
    body = doc.get("body")
    return StoredVersion(
        resource_type=doc["type"],
        id=doc["id"],
        version=int(doc["version"]),
        last_updated=doc["lu"],
        deleted=bool(doc["deleted"]),
        body=bytes(body) if body is not None else None,
    )


def encode_cursor(last_updated: str, doc_id: str) -> str:
    raw = json.dumps([last_updated, doc_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        last_updated, doc_id = json.loads(base64.urlsafe_b64decode(padded))
        return str(last_updated), str(doc_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed paging cursor") from exc


def one_line(exc: BaseException) -> str:
    """PyMongo's server-selection errors carry a topology dump; keep the first clause."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for cut in (", Timeout:", " (configured timeouts", ", full error:"):
        text = text.split(cut, 1)[0]
    return text


def utc_now() -> datetime:
    return datetime.now(UTC)


class Visibility:
    """Decides, per call, which marked documents readers may see (fallback scheme)."""

    def __init__(self, transactions: AsyncCollection[Doc], session: AsyncClientSession | None):
        self._transactions = transactions
        self._session = session
        self._states: dict[str, str | None] = {}

    async def committed(self, txn: str) -> bool:
        if txn not in self._states:
            record = await self._transactions.find_one({"_id": txn}, session=self._session)
            self._states[txn] = record["state"] if record else None
        return self._states[txn] == COMMITTED

    async def visible(self, doc: Mapping[str, Any]) -> bool:
        """The version exists for readers (its commit, if staged, is decided)."""
        txn = doc.get("txn")
        return txn is None or await self.committed(txn)

    async def current(self, doc: Mapping[str, Any]) -> bool:
        """The version is visible and is still the newest one of its resource."""
        if not doc.get("cur") or not await self.visible(doc):
            return False
        sup = doc.get("sup")
        return sup is None or not await self.committed(sup)


class MongoBase:
    """The plumbing of ``MongoStore``: collections, the driver-error guard, versions."""

    def __init__(
        self,
        url: str,
        *,
        atomic_commit: AtomicCommit = "auto",
        stale_after: float = 30.0,
    ) -> None:
        self.url = url
        self.info = BackendInfo(kind="mongodb", location=redact_url(url), atomic_commit="unknown")
        self._requested_mode = atomic_commit
        self._stale_after = timedelta(seconds=stale_after)
        self._client: AsyncMongoClient[Doc] | None = None
        self._versions_coll: AsyncCollection[Doc] | None = None
        self._transactions_coll: AsyncCollection[Doc] | None = None
        self._meta_coll: AsyncCollection[Doc] | None = None
        self._heads_coll: Heads | None = None
        self._use_transactions = False
        self._commits_since_gc = 0

    # -- plumbing ------------------------------------------------------------------

    @property
    def _versions(self) -> AsyncCollection[Doc]:
        if self._versions_coll is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._versions_coll

    @property
    def _transactions(self) -> AsyncCollection[Doc]:
        if self._transactions_coll is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._transactions_coll

    @property
    def _meta(self) -> AsyncCollection[Doc]:
        if self._meta_coll is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._meta_coll

    @property
    def _heads(self) -> Heads:
        if self._heads_coll is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._heads_coll

    @asynccontextmanager
    async def _guard(self, doing: str) -> AsyncIterator[None]:
        """Turn every driver error into ``StoreUnavailable`` with a one-line message."""
        try:
            yield
        except PyMongoError as exc:
            raise StoreUnavailable(
                f"MongoDB at {self.info.location}: {doing} failed: {one_line(exc)}"
            ) from exc

    def _visibility(self, session: AsyncClientSession | None = None) -> Visibility:
        return Visibility(self._transactions, session)

    def _new_doc(self, w: Write, txn: str | None, started: datetime) -> Doc:
        doc: Doc = {
            "_id": version_doc_id(w.resource_type, w.id, w.version),
            "type": w.resource_type,
            "id": w.id,
            "version": w.version,
            "prev": w.expected_version,
            "lu": w.last_updated,
            "deleted": w.deleted,
            "body": w.body,
            "cur": True,
        }
        if not w.deleted and w.index is not None:
            doc["idx"] = index_document(w.index)
        if txn is not None:
            doc["txn"] = txn
            doc["started"] = started
        return doc

    async def _latest(
        self,
        resource_type: str,
        resource_id: str,
        visibility: Visibility,
        session: AsyncClientSession | None = None,
        exclude_txn: str | None = None,
    ) -> Doc | None:
        """The newest visible version (``exclude_txn``: ignoring that commit's own staging).

        ``id`` comes first: FerretDB on PostgreSQL evaluates the pushed-down equalities in
        order, and ``id`` rejects nearly every row at the first test."""
        cursor = self._versions.find(
            {"id": resource_id, "type": resource_type},
            session=session,
            sort=[("version", DESCENDING)],
        )
        try:
            async for doc in cursor:
                if exclude_txn is not None and doc.get("txn") == exclude_txn:
                    continue
                if await visibility.visible(doc):
                    return doc
        finally:
            await cursor.close()
        return None
