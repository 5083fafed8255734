"""The repository is the only door to the store: a guard over the source tree.

Fails when any module outside ``server/repository/`` and ``server/storage/`` reaches the
raw store: the repository's private ``_store``, a ``.store`` attribute, a storage-port
method called on a store handle, or ``create_store`` outside the app factory and the
repository's own ``opened`` (the CLI commands' door).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("server", "mappings", "terminology")
ALLOWED = ("server/repository/", "server/storage/")
# The app factory builds the store and hands it to the repository; nothing else may.
MAY_CREATE_STORE = ("server/app.py", "server/repository/opened.py")
PORT_METHODS = frozenset(
    {"commit", "read", "vread", "history", "match", "search", "include", "reindex", "ping"}
)


def _text(node: ast.AST) -> str:
    return ast.unparse(node)


def violations(path: str, source: str) -> list[str]:
    """What in ``source`` (the module at ``path``, relative to the root) reaches the
    raw store."""
    if path.startswith(ALLOWED):
        return []
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        where = f"{path}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute):
            if node.attr == "_store":
                found.append(f"{where}: private store {_text(node)}")
            elif node.attr == "store" and _text(node.value) != "args":
                found.append(f"{where}: store handle {_text(node)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = _text(node.func.value).lower()
            if node.func.attr in PORT_METHODS and target.endswith("store"):
                if not target.startswith(("terminology", "store_")):
                    found.append(f"{where}: storage port call {_text(node.func)}(...)")
        if isinstance(node, ast.Name) and node.id == "create_store":
            if path not in MAY_CREATE_STORE:
                found.append(f"{where}: create_store outside the app factory")
        if isinstance(node, ast.ImportFrom) and node.module == "server.storage.factory":
            names = {a.name for a in node.names}
            if "create_store" in names and path not in MAY_CREATE_STORE:
                found.append(f"{where}: imports create_store")
    return found


def _modules() -> list[tuple[str, str]]:
    out = []
    for top in SOURCES:
        for file in sorted((ROOT / top).rglob("*.py")):
            rel = file.relative_to(ROOT).as_posix()
            out.append((rel, file.read_text(encoding="utf-8")))
    return out


def test_no_module_outside_the_repository_and_storage_reaches_the_raw_store():
    modules = _modules()
    assert len(modules) > 50  # the scan really covers the source tree
    problems = [v for path, source in modules for v in violations(path, source)]
    assert problems == [], "\n".join(problems)


def test_the_guard_catches_each_way_around_the_repository():
    """The guard itself must fail on every known bypass (a guard that cannot fail is no
    guard)."""
    bypasses = {
        "repo._store.read('Patient', 'p1')": "private store",
        "request.app.state.repository.store.info": "store handle",
        "await self.store.commit([write])": "storage port call",
        "await store.search(query)": "storage port call",
        "from server.storage.factory import create_store": "imports create_store",
        "s = create_store(url)": "create_store outside",
    }
    for snippet, expected in bypasses.items():
        found = violations("server/api/new_endpoint.py", snippet)
        assert any(expected in f for f in found), (snippet, found)
    # ...and leaves the storage package, the repository and the CLI's --store alone.
    assert violations("server/repository/base.py", "await self._store.commit(w)") == []
    assert violations("server/cli.py", "url = args.store") == []


def test_the_repository_has_no_public_store(tmp_path: Path):
    from server.repository import Repository
    from server.storage.factory import create_store

    repo = Repository(create_store(f"sqlite:///{tmp_path / 'b.db'}"))
    assert not hasattr(repo, "store")
    assert not hasattr(repo.records, "store")
