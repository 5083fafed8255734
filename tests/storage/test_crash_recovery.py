"""A process killed in the middle of a multi-write commit leaves no trace, on every backend.

A child process opens the store and starts a commit of several writes; a test hook
(``BILLABLE_TEST_PAUSE_BEFORE_COMMIT``) freezes it at the last moment before its commit
would become durable (SQLite: inside the open transaction, before ``COMMIT``; MongoDB:
after staging every version, before the commit record or ``commitTransaction``), and the
test kills it with SIGKILL there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from asyncio.subprocess import Process
from pathlib import Path

from server.storage.port import HistoryQuery, Store
from server.storage.testhooks import PAUSE_ENV, PAUSED_MARKER
from tests.storage.builders import (
    Clock,
    Criteria,
    TokenCriterion,
    TokenIndexEntry,
    matching,
    write,
)
from tests.storage.conftest import Backend
from tests.storage.test_contract import all_history

REPO_ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, json, sys
from server.storage.factory import create_store
from server.storage.port import SearchIndex, Write

async def main(url, writes):
    store = create_store(url)
    await store.open()
    await store.commit([
        Write(t, i, e, v, lu, None if b is None else b.encode(),
              None if b is None else SearchIndex(tokens=[tuple(tok) for tok in toks]))
        for t, i, e, v, lu, b, toks in writes
    ])
    print("COMMITTED", flush=True)

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""

PLANNED = (TokenIndexEntry("status", None, "planned"),)
FINISHED = (TokenIndexEntry("status", None, "finished"),)


def planned() -> Criteria:
    return Criteria(
        "Encounter", token_groups=[[TokenCriterion("status", None, "planned", False)]], limit=9
    )


def finished() -> Criteria:
    return Criteria(
        "Encounter", token_groups=[[TokenCriterion("status", None, "finished", False)]], limit=9
    )


async def start_commit_and_freeze(url: str, writes: list[list[object]]) -> Process:
    """Run the commit in a child process; return once it is frozen before its commit point."""
    env = dict(os.environ, **{PAUSE_ENV: "120", "PYTHONPATH": str(REPO_ROOT)})
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        url,
        json.dumps(writes),
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stderr is not None
    stderr = child.stderr

    async def wait_for_marker() -> None:
        while True:
            line = await stderr.readline()
            if not line:
                raise AssertionError(f"child exited before pausing (code {await child.wait()})")
            if line.decode().strip() == PAUSED_MARKER:
                return

    try:
        await asyncio.wait_for(wait_for_marker(), timeout=60)
    except BaseException:
        child.kill()
        await child.wait()
        raise
    return child


async def assert_nothing_of_the_commit_is_visible(
    store: Store, history_before: list[tuple[str, str, int]]
) -> None:
    updated = await store.read("Encounter", "updated")
    assert updated is not None and updated.version == 1
    assert await store.vread("Encounter", "updated", 2) is None
    deleted = await store.read("Encounter", "deleted")
    assert deleted is not None and (deleted.version, deleted.deleted) == (1, False)
    assert await store.read("Encounter", "created") is None
    assert await store.read("Claim", "created") is None
    assert await matching(store, planned()) == ["deleted", "updated"]
    assert await matching(store, finished()) == []
    assert await all_history(store, HistoryQuery()) == history_before


async def test_commit_killed_before_its_commit_point_leaves_nothing_after_restart(
    backend: Backend, store: Store
) -> None:
    clock = Clock()
    await store.commit(
        [
            write(clock, "Encounter", "updated", 1, tokens=PLANNED),
            write(clock, "Encounter", "deleted", 1, tokens=PLANNED),
        ]
    )
    history_before = await all_history(store, HistoryQuery())
    doomed = [
        write(clock, "Encounter", "created", 1, tokens=FINISHED),
        write(clock, "Encounter", "updated", 2, tokens=FINISHED),
        write(clock, "Claim", "created", 1),
        write(clock, "Encounter", "deleted", 2, deleted=True),
    ]
    as_json: list[list[object]] = [
        [
            w.resource_type,
            w.id,
            w.expected_version,
            w.version,
            w.last_updated,
            None if w.body is None else w.body.decode(),
            [list(row) for row in (w.index.tokens if w.index else ())],
        ]
        for w in doomed
    ]

    child = await start_commit_and_freeze(backend.url, as_json)
    try:
        # Frozen mid-commit: other processes see none of it.
        await assert_nothing_of_the_commit_is_visible(store, history_before)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert child.stdout is not None and b"COMMITTED" not in await child.stdout.read()

    # Killed: still nothing, before and after a restart (which recovers).
    await assert_nothing_of_the_commit_is_visible(store, history_before)
    await store.close()
    restarted = backend.make()
    await restarted.open()
    try:
        await assert_nothing_of_the_commit_is_visible(restarted, history_before)

        # The same resources take new writes as if the crashed commit never happened.
        await restarted.commit(
            [
                write(clock, "Encounter", "created", 1, tokens=FINISHED),
                write(clock, "Encounter", "updated", 2, tokens=FINISHED),
                write(clock, "Encounter", "deleted", 2, deleted=True),
            ]
        )
        await restarted.commit([write(clock, "Claim", "created", 1)])
        updated = await restarted.read("Encounter", "updated")
        assert updated is not None and updated.version == 2
        assert await matching(restarted, finished()) == ["created", "updated"]
        assert await matching(restarted, planned()) == []
        assert len(await all_history(restarted, HistoryQuery())) == len(history_before) + 4
    finally:
        await restarted.close()
