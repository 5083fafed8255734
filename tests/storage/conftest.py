"""Every storage test runs once per backend: SQLite (a temp file) and MongoDB (FerretDB).

``backend`` says how to make stores on one fresh database (several stores may share
it, to reopen after a crash or to act as another process); ``store`` is one opened
store on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.storage.factory import create_store
from server.storage.port import Store
from tests.storage.builders import Clock

BACKENDS = ["sqlite", "mongo"]


@dataclass
class Backend:
    name: str
    url: str

    def make(self) -> Store:
        """A new, closed store on this backend's database."""
        return create_store(self.url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'billable.db'}")
    return Backend("mongo", request.getfixturevalue("mongo_db_uri"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()
