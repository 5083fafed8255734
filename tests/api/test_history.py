"""Instance, type and system _history, with _since, _count and next links."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from tests.api.conftest import FHIR_JSON, create, patient


def test_instance_history_lists_versions_newest_first_with_requests(client: TestClient):
    rid = create(client, patient()).json()["id"]
    client.put(f"/fhir/Patient/{rid}", json=patient(id=rid, gender="male"), headers=FHIR_JSON)
    client.delete(f"/fhir/Patient/{rid}")
    bundle = client.get(f"/fhir/Patient/{rid}/_history").json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    entries = bundle["entry"]
    assert [e["response"]["etag"] for e in entries] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in entries] == ["DELETE", "PUT", "POST"]
    assert "resource" not in entries[0]
    assert entries[1]["resource"]["gender"] == "male"
    assert entries[2]["fullUrl"] == f"http://testserver/fhir/Patient/{rid}"


def test_type_and_system_history(client: TestClient):
    create(client, patient())
    create(client, {"resourceType": "Basic", "code": {"text": "x"}})
    create(client, patient())
    types = [
        e["resource"]["resourceType"] for e in client.get("/fhir/Patient/_history").json()["entry"]
    ]
    assert types == ["Patient", "Patient"]
    system = client.get("/fhir/_history").json()["entry"]
    assert [e["resource"]["resourceType"] for e in system] == ["Patient", "Basic", "Patient"]


def test_history_of_unknown_resource_is_404(client: TestClient):
    assert client.get("/fhir/Patient/nope/_history").status_code == 404


def test_since_keeps_only_versions_at_or_after_the_instant(client: TestClient):
    first = create(client, patient()).json()
    second = create(client, patient()).json()
    since = second["meta"]["lastUpdated"]
    entries = client.get("/fhir/Patient/_history", params={"_since": since}).json()["entry"]
    assert [e["resource"]["id"] for e in entries] == [second["id"]]
    everything = client.get("/fhir/Patient/_history", params={"_since": "2020-01-01"}).json()
    assert {e["resource"]["id"] for e in everything["entry"]} == {first["id"], second["id"]}
    future = client.get("/fhir/Patient/_history", params={"_since": "2999-01-01T00:00:00Z"})
    assert "entry" not in future.json()


def test_since_with_a_timezone_offset_is_compared_as_an_instant(client: TestClient):
    made = create(client, patient()).json()
    stamp = datetime.fromisoformat(made["meta"]["lastUpdated"].replace("Z", "+00:00"))
    plus_one = timezone(timedelta(hours=1))
    # 30 minutes before, written in +01:00 (its wall clock reads 30 minutes *after*)
    before = (stamp - timedelta(minutes=30)).astimezone(plus_one).isoformat(timespec="seconds")
    after = (stamp + timedelta(minutes=30)).astimezone(plus_one).isoformat(timespec="seconds")
    r = client.get("/fhir/_history", params={"_since": before})
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [made["id"]]
    assert "entry" not in client.get("/fhir/_history", params={"_since": after}).json()


def test_malformed_since_and_count_are_400(client: TestClient):
    assert client.get("/fhir/_history", params={"_since": "yesterday"}).status_code == 400
    assert client.get("/fhir/_history", params={"_count": "-1"}).status_code == 400
    assert client.get("/fhir/_history", params={"_cursor": "!!"}).status_code == 400


def test_count_pages_through_history_with_next_links_and_no_gaps(client: TestClient):
    made = [create(client, patient()).json()["id"] for _ in range(7)]
    seen: list[str] = []
    url = "/fhir/Patient/_history?_count=3"
    pages = 0
    while url:
        bundle = client.get(url).json()
        pages += 1
        seen.extend(e["resource"]["id"] for e in bundle["entry"])
        if pages == 1:
            # a write between pages must not shift what the next page returns
            create(client, patient())
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = urlsplit(nxt[0])._replace(scheme="", netloc="").geturl() if nxt else ""
    assert pages == 3
    assert seen == list(reversed(made))


def test_count_is_capped_by_the_configured_maximum(client: TestClient):
    for _ in range(3):
        create(client, patient())
    bundle = client.get("/fhir/_history", params={"_count": "100000"}).json()
    assert len(bundle["entry"]) == 3
    self_link = bundle["link"][0]["url"]
    assert "_count=1000" in self_link
