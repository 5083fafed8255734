"""Fixtures shared by every test package."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pymongo
import pytest

# ---- MongoDB test server (storage backend tests) ------------------------------------
# `mongo_uri`: base URI of a MongoDB wire-protocol server for the session (a given
# BILLABLE_TEST_MONGO_URI, else a private FerretDB); skips, or fails when
# BILLABLE_REQUIRE_MONGO=1, if there is none. `mongo_db_uri`: the same server with a
# database of the test's own, dropped afterwards, so tests never see each other's data.
from tests.support.ferretdb import MongoNotAvailable, mongo_required, mongo_server, with_database


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    try:
        with mongo_server() as uri:
            yield uri
    except MongoNotAvailable as exc:
        if mongo_required():
            pytest.fail(f"BILLABLE_REQUIRE_MONGO=1 but {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture
def mongo_db_uri(mongo_uri: str) -> Iterator[str]:
    database = f"test_{uuid.uuid4().hex[:16]}"
    yield with_database(mongo_uri, database)
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        mongo_uri, serverSelectionTimeoutMS=5000
    )
    try:
        client.drop_database(database)
    finally:
        client.close()


# ---- end of MongoDB test server -------------------------------------------------------
