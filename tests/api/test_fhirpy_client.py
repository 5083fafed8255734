"""fhirpy (PyPI), unchanged, against a real `billable serve` process over loopback HTTP.

The calls a fhirpy user makes first: save (create), count() (``_count=0`` and
``Bundle.total``), search with a token ``:text``, fetch, and patch (fhirpy PATCHes a partial
resource as plain JSON: a merge patch).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_server_process import server  # noqa: F401  (the served process)

fhirpy = pytest.importorskip("fhirpy")


@pytest.fixture
def fhir(server: tuple[str, object, Path]) -> Iterator[object]:  # noqa: F811
    base, _proc, _tmp = server
    yield fhirpy.SyncFHIRClient(f"{base}/fhir")


def test_fhirpy_saves_counts_searches_and_patches(fhir) -> None:
    for given in ("Ada", "Grace", "Edsger"):
        fhir.resource("Patient", name=[{"family": "Client", "given": [given]}]).save()
    assert fhir.resources("Patient").count() == 3
    assert fhir.resources("Patient").search(given="Grace").count() == 1

    condition = fhir.resource(
        "Condition",
        subject={"reference": "Patient/p1"},
        code={
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "10509002",
                    "display": "Acute bronchitis (disorder)",
                }
            ]
        },
    )
    condition.save()
    found = fhir.resources("Condition").search(**{"code:text": "bronchitis"}).fetch()
    assert [c.id for c in found] == [condition.id]

    patient = fhir.resources("Patient").search(given="Ada").first()
    patient.patch(gender="female", birthDate="1815-12-10")
    fetched = fhir.reference("Patient", patient.id).to_resource()
    assert fetched.gender == "female" and fetched.birthDate == "1815-12-10"
    assert fetched["name"][0]["given"] == ["Ada"]
    assert fetched.meta.versionId == "2"
