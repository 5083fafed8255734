"""The fed Synthea sample through a real `billable serve` with SMART auth on: a hospital
posts its bundles with a backend-services token, the server codes and adjudicates on its
own (the CLI's defaults), and the payer finds EOBs for Medicare, Medicaid and commercial
members, none for the uninsured patient."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from server.feeds.synthea import feed_files
from tests.auth.live import LiveServer, live_server
from tests.feeds.conftest import REFERENCE, SAMPLE

JACKIE = "83a7b92d-3d78-4f3a-6cae-1ae2358f9fbb"  # no insurance in the sample


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    # No timely filing window: the sample's dates must not age out of the test.
    monkeypatch.setenv("BILLABLE_TIMELY_FILING_DAYS", "0")
    yield from live_server(tmp_path)


def _entries(http: httpx.Client, url: str, **params: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    next_url: str | None = url
    query: dict[str, str] | None = {**params, "_count": "200"}
    while next_url:
        page = http.get(next_url, params=query)
        assert page.status_code == 200, page.text[:300]
        body = page.json()
        out += [
            e["resource"]
            for e in body.get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"
        ]
        next_url = next(
            (link["url"] for link in body.get("link", []) if link["relation"] == "next"), None
        )
        query = None
    return out


def test_a_fed_population_posted_over_http_gets_eobs_from_its_payers(
    server: LiveServer, tmp_path: Path
) -> None:
    feed_files([SAMPLE], tmp_path / "fed")
    files = sorted(tmp_path / "fed" / name for name in REFERENCE)
    files += sorted(p for p in (tmp_path / "fed").glob("*.json") if p.name not in REFERENCE)
    headers = {
        "Authorization": f"Bearer {server.backend_token()}",
        "Content-Type": "application/fhir+json",
    }
    with httpx.Client(base_url=server.fhir, headers=headers, timeout=120) as http:
        for path in files:
            posted = http.post("", content=path.read_bytes())
            assert posted.status_code == 200, f"{path.name}: {posted.text[:300]}"
        deadline = time.monotonic() + 180
        while True:  # coding and adjudication run in the background after each commit
            claims = _entries(http, "/Claim")
            encounters = _entries(http, "/Encounter", status="finished")
            insured = [
                c
                for c in claims
                if c["status"] == "active" and c["insurance"][0]["coverage"].get("reference")
            ]
            eobs = _entries(http, "/ExplanationOfBenefit")
            if len(claims) == len(encounters) and len(eobs) == len(insured):
                break
            assert time.monotonic() < deadline, (len(claims), len(encounters), len(eobs))
            time.sleep(1)
        assert insured
        payers = {e["insurer"]["display"] for e in eobs}
        assert {"Medicare", "Medicaid", "UnitedHealthcare", "Cigna Health", "Aetna"} <= payers
        responses = _entries(http, "/ClaimResponse")
        assert len(responses) == len(eobs) and all(r["outcome"] == "complete" for r in responses)
        assert _entries(http, "/ExplanationOfBenefit", patient=f"Patient/{JACKIE}") == []
        self_pay = _entries(http, "/Claim", patient=f"Patient/{JACKIE}")
        assert self_pay and all(
            not c["insurance"][0]["coverage"].get("reference") for c in self_pay
        )
        for eob in eobs:
            totals = {
                t["category"]["coding"][0]["code"]: t["amount"]["value"] for t in eob["total"]
            }
            assert totals["benefit"] <= totals["eligible"] <= totals["submitted"]
        # Posting the feed again (a re-sent export) makes no second Coverage or payer.
        for path in files:
            assert http.post("", content=path.read_bytes()).status_code == 200
        assert len(_entries(http, "/Coverage")) == 5
        medicare = _entries(
            http, "/Organization", identifier="https://billable.dev/fhir/synthea-payer|10000"
        )
        assert [o["id"] for o in medicare] == ["synthea-payer-medicare"]
        orjson.dumps(eobs)  # the EOBs are plain JSON a payer can store
