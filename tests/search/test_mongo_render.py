"""The same table of cases through the MongoDB renderer, against a real wire server.

Documents are shaped as ``MongoStore`` stores them (``type``, ``id``, ``cur``,
``deleted``, ``body``) plus the ``idx`` sub-document of ``server.search.mongo_index``;
the filters run on FerretDB (or ``BILLABLE_TEST_MONGO_URI``), so every operator used is
one a real server accepts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl

import pymongo
import pytest
from pymongo import AsyncMongoClient

from server.repository import serialise_with_meta
from server.search.extract import extract_index_values
from server.search.mongo_index import INDEXES, index_document
from server.search.mongo_render import mongo_include, mongo_search
from server.search.parse import parse_search
from server.storage.port import IncludeSpec, SearchQuery, StoredVersion
from tests.search.fixtures import CASES, RESOURCES
from tests.support.ferretdb import with_database

BASE = {"cur": True, "deleted": False}
LAST_UPDATED = "2026-01-01T00:00:00.000000Z"

pytestmark = pytest.mark.mongo


def version_doc(resource: dict[str, Any]) -> dict[str, Any]:
    body = serialise_with_meta(resource, resource["id"], 1, LAST_UPDATED)
    return {
        "_id": f"{resource['resourceType']}/{resource['id']}/000000001",
        "type": resource["resourceType"],
        "id": resource["id"],
        "version": 1,
        "lu": LAST_UPDATED,
        "deleted": False,
        "cur": True,
        "body": body,
        "idx": index_document(extract_index_values(resource, LAST_UPDATED)),
    }


@pytest.fixture(scope="module")
def search_db(mongo_uri: str) -> Iterator[str]:
    name = f"test_search_{uuid.uuid4().hex[:12]}"
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri)
    coll = client[name]["versions"]
    for index_name, keys, wildcard in INDEXES:
        if not wildcard:  # FerretDB has no wildcard indexes
            coll.create_index(keys, name=index_name)
    coll.insert_many([version_doc(r) for r in RESOURCES])
    try:
        yield with_database(mongo_uri, name)
    finally:
        client.drop_database(name)
        client.close()


@pytest.fixture
async def versions(search_db: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(search_db)
    try:
        yield client.get_default_database()["versions"]
    finally:
        await client.close()


async def always(doc: dict[str, Any]) -> bool:
    return True


def to_version(doc: dict[str, Any]) -> StoredVersion:
    body = doc.get("body")
    return StoredVersion(
        doc["type"], doc["id"], doc["version"], doc["lu"], False, bytes(body) if body else None
    )


async def run(coll: Any, rtype: str, query: str, **kw: Any) -> Any:
    parsed = parse_search(
        (rtype,), parse_qsl(query), base_url="http://testserver/fhir", strict=True
    )
    q = SearchQuery((rtype,), parsed.where, parsed.sort, kw.get("count", 100), kw.get("after"))
    return await mongo_search(coll, q, base=BASE, is_current=always, to_version=to_version)


@pytest.mark.parametrize(
    ("rtype", "query", "expected"), CASES, ids=[f"{t}?{q}" for t, q, _ in CASES]
)
async def test_mongo_filter_returns_exactly_the_expected_ids(
    versions: Any, rtype: str, query: str, expected: set[str]
) -> None:
    page = await run(versions, rtype, query)
    assert {v.id for v in page.versions} == expected


async def test_mongo_sort_and_keyset_paging(versions: Any) -> None:
    seen: list[str] = []
    after = None
    while True:
        parsed = parse_search(("Claim",), [("_sort", "-created")])
        q = SearchQuery(("Claim",), None, parsed.sort, 1, after)
        page = await mongo_search(versions, q, base=BASE, is_current=always, to_version=to_version)
        seen += [v.id for v in page.versions]
        if not page.more:
            break
        after = page.positions[-1]
    assert seen == ["cl2", "cl1", "cl3"]


async def test_mongo_include_and_revinclude(versions: Any) -> None:
    forward = await mongo_include(
        versions,
        IncludeSpec("Encounter", "patient"),
        [("Encounter", "e1"), ("Encounter", "e2")],
        100,
        base=BASE,
        is_current=always,
        to_version=to_version,
    )
    assert {v.id for v in forward} == {"p1", "p2"}
    reverse = await mongo_include(
        versions,
        IncludeSpec("Condition", "subject", reverse=True),
        [("Patient", "p1")],
        100,
        base=BASE,
        is_current=always,
        to_version=to_version,
    )
    assert {v.id for v in reverse} == {"c1"}
