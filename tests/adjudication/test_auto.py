"""--adjudication auto: a clean generated claim is adjudicated once committed."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from mappings.adjudication.auto import AutoAdjudicator
from server.app import create_app
from server.config import Settings
from server.repository import Repository
from server.search.parse import parse_search
from server.storage.port import SearchQuery
from tests.adjudication.conftest import CTX, claim, line

GENERATED = {"system": "https://billable.dev/fhir/claim-for-encounter", "value": "enc-1"}


async def _responses_for(repo: Repository, claim_id: str) -> int:
    parsed = parse_search(("ClaimResponse",), [("request", f"Claim/{claim_id}")], strict=True)
    page = await repo.search(CTX, SearchQuery(("ClaimResponse",), parsed.where, count=10))
    return len(page.versions)


async def test_clean_generated_claims_are_adjudicated_on_commit(
    sqlite_repo: Repository,
) -> None:
    auto = AutoAdjudicator(sqlite_repo)
    clean = await sqlite_repo.create(
        CTX, "Claim", claim(line("99213", 150), identifier=[GENERATED])
    )
    draft = await sqlite_repo.create(
        CTX,
        "Claim",
        {
            **claim(line("99213", 150), identifier=[{**GENERATED, "value": "enc-2"}]),
            "status": "draft",
        },
    )
    submitted_elsewhere = await sqlite_repo.create(CTX, "Claim", claim(line("71046", 100)))
    await auto.drain()
    assert clean.version and draft.version and submitted_elsewhere.version
    assert await _responses_for(sqlite_repo, clean.version.id) == 1
    assert await _responses_for(sqlite_repo, draft.version.id) == 0
    assert await _responses_for(sqlite_repo, submitted_elsewhere.version.id) == 0
    assert auto.adjudicated == 1 and not auto.failures


def test_the_app_installs_the_trigger_only_in_auto_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    with TestClient(create_app(Settings(store_url=url, adjudication="auto"))) as client:
        assert isinstance(client.app.state.adjudication, AutoAdjudicator)  # type: ignore[attr-defined]
    with TestClient(create_app(Settings(store_url=url))) as client:
        assert client.app.state.adjudication is None  # type: ignore[attr-defined]
