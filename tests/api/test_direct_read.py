"""Reads by id answered past the router give the router's answer, byte for byte.

``server.api.direct_read`` serves ``GET /fhir/{type}/{id}`` and ``.../_history/{vid}``
without route matching. Each case below is asked of the app twice, once as built and once
without that layer (every request through the router), and the answers must match:
status, body and headers; paths other routes own must still reach them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.middleware import Middleware

from server.api.direct_read import DirectReads
from server.app import create_app
from server.config import Settings
from tests.api.conftest import FHIR_JSON, patient

CASES = [
    ("read", "/fhir/Patient/p1", {}),
    ("vread", "/fhir/Patient/p1/_history/1", {}),
    ("vread of the second version", "/fhir/Patient/p1/_history/2", {}),
    ("an unknown version", "/fhir/Patient/p1/_history/9", {}),
    ("a version no store can hold", "/fhir/Patient/p1/_history/99999999999999999999", {}),
    ("a version that is no number", "/fhir/Patient/p1/_history/x", {}),
    ("an unknown id", "/fhir/Patient/nobody", {}),
    ("an id that is no FHIR id", "/fhir/Patient/" + "x" * 65, {}),
    ("an unknown type", "/fhir/Nonsense/p1", {}),
    ("a deleted resource", "/fhir/Patient/gone", {}),
    ("_summary", "/fhir/Patient/p1?_summary=true", {}),
    ("_elements", "/fhir/Patient/p1?_elements=gender", {}),
    ("a bad _summary", "/fhir/Patient/p1?_summary=nope", {}),
    ("_pretty", "/fhir/Patient/p1?_pretty=true", {}),
    ("_format=json", "/fhir/Patient/p1?_format=json", {}),
    ("an unsupported format", "/fhir/Patient/p1", {"Accept": "application/fhir+xml"}),
    ("If-None-Match", "/fhir/Patient/p1", {"If-None-Match": 'W/"2"'}),
    ("If-None-Match of an old version", "/fhir/Patient/p1", {"If-None-Match": 'W/"1"'}),
    (
        "If-Modified-Since",
        "/fhir/Patient/p1",
        {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ),
    ("a bad If-Match", "/fhir/Patient/p1", {"If-Match": "nonsense"}),
    ("type history (another route)", "/fhir/Patient/_history", {}),
    ("instance history (another route)", "/fhir/Patient/p1/_history", {}),
    ("a type-level operation (another route)", "/fhir/CodeSystem/$lookup?system=x&code=y", {}),
    ("CodeSystem read (the terminology route)", "/fhir/CodeSystem/nothing-here", {}),
    ("a trailing slash", "/fhir/Patient/p1/", {}),
]
VARYING = {"date"}  # set by the HTTP server per answer


def _router_only(settings: Settings) -> TestClient:
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not DirectReads]
    return TestClient(app, base_url="http://testserver")


@pytest.fixture
def pair(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    with TestClient(create_app(settings), base_url="http://testserver") as direct:
        assert any(
            isinstance(m, Middleware) and m.cls is DirectReads
            for m in direct.app.user_middleware  # type: ignore[attr-defined]
        )
        direct.put("/fhir/Patient/p1", json=patient(id="p1"), headers=FHIR_JSON)
        direct.put("/fhir/Patient/p1", json=patient(id="p1", gender="male"), headers=FHIR_JSON)
        direct.put("/fhir/Patient/gone", json=patient(id="gone"), headers=FHIR_JSON)
        direct.delete("/fhir/Patient/gone")
        with _router_only(settings) as routed:
            yield direct, routed


def _answer(client: TestClient, path: str, headers: dict[str, str]) -> tuple[int, bytes, dict]:
    response = client.get(path, headers=headers)
    kept = {k: v for k, v in response.headers.items() if k not in VARYING}
    return response.status_code, response.content, kept


@pytest.mark.parametrize(("name", "path", "headers"), CASES, ids=[c[0] for c in CASES])
def test_a_read_past_the_router_answers_as_the_router_does(
    pair: tuple[TestClient, TestClient], name: str, path: str, headers: dict[str, str]
):
    direct, routed = pair
    assert _answer(direct, path, headers) == _answer(routed, path, headers)


def test_only_reads_and_vreads_no_other_route_claims_skip_the_router(settings: Settings):
    app = create_app(settings)
    layer = DirectReads(app, app)
    assert layer.target("/fhir/Patient/p1") == {"resource_type": "Patient", "rid": "p1"}
    assert layer.target("/fhir/Claim/c1/_history/2") == {
        "resource_type": "Claim",
        "rid": "c1",
        "vid": "2",
    }
    for claimed in (
        "/fhir/CodeSystem/icd-10-cm",  # the terminology module serves content
        "/fhir/Patient/$everything",
        "/fhir/Patient/_history",
        "/fhir/Patient/_search",
        "/fhir/Patient/p1/_history",
        "/fhir/Patient/p1/$export",
        "/fhir/metadata",
        "/fhir/Patient",
        "/fhir/Patient/",
        "/healthz",
    ):
        assert layer.target(claimed) is None, claimed
