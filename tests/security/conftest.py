"""The attack table runs against a real ``billable serve`` per backend (SMART mode).

One server per backend for the whole session, started on first use: starting one and
logging in through the real flows costs seconds, the table's requests milliseconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import pytest

from tests.security.live import Attack, attack_server
from tests.support.ferretdb import with_database


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server: starts a real billable server process")


@dataclass
class Servers:
    stack: ExitStack
    tmp: pytest.TempPathFactory
    started: dict[str, Attack] = field(default_factory=dict)


@pytest.fixture(scope="session")
def attack_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with ExitStack() as stack:
        yield Servers(stack, tmp_path_factory)


@pytest.fixture
def attack(request: pytest.FixtureRequest, attack_servers: Servers) -> Attack:
    backend: str = request.param
    if backend not in attack_servers.started:
        workdir = attack_servers.tmp.mktemp(f"attack-{backend}")
        if backend == "mongo":
            base_uri = request.getfixturevalue("mongo_uri")
            store_url = with_database(base_uri, f"attack_{uuid.uuid4().hex[:12]}")
        else:
            store_url = f"sqlite:///{workdir / 'billable.db'}"
        server = attack_servers.stack.enter_context(attack_server(store_url, workdir))
        attack_servers.started[backend] = server
    return attack_servers.started[backend]
