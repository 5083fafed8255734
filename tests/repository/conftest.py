"""Fixtures: a repository per backend, and the SMART-mode app of the security tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.auth.policy import SmartPolicy
from server.repository import Repository
from server.storage.factory import create_store
from tests.auth.conftest import (  # noqa: F401  (fixtures of the security tests)
    client,
    ec_key,
    registered,
    rsa_key,
    seeded,
    store_url,
)


@pytest.fixture(params=["sqlite", "mongo"])
async def smart_repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    """A repository judged by the SMART policy, on a fresh store of each backend."""
    if request.param == "mongo":
        url = str(request.getfixturevalue("mongo_db_uri"))
    else:
        url = f"sqlite:///{tmp_path / 'billable.db'}"
    repo = Repository(create_store(url), SmartPolicy())
    await repo.open()
    try:
        yield repo
    finally:
        await repo.close()
