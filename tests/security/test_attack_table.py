"""The attack table of issue 13 over real HTTP, on both backends.

Each case is one request (or a short sequence) by patient A, another identity or no one;
it must get exactly its expected status, never a 500, always the security headers and,
on the FHIR API, an OperationOutcome for an error; and no marker of patient B's data
may appear in what comes back unless the request itself carried it.
"""

from __future__ import annotations

import pytest

from tests.security.live import Attack
from tests.security.table import Case, all_cases, run_case

CASES = all_cases()


def _params() -> list[object]:
    params = []
    for backend in ("sqlite", "mongo"):
        for case in CASES:
            if backend == "mongo" and not case.mongo:
                continue
            marks = [pytest.mark.server]
            if backend == "mongo":
                marks.append(pytest.mark.mongo)
            if case.fixed_by:
                marks.append(pytest.mark.xfail(strict=True, reason=f"fixed by {case.fixed_by}"))
            params.append(pytest.param(backend, case, id=f"{backend}:{case.name}", marks=marks))
    return params


@pytest.mark.parametrize(("attack", "case"), _params(), indirect=["attack"])
def test_attack_is_refused_without_leaking_patient_b(attack: Attack, case: Case) -> None:
    result = run_case(attack, case)
    assert not result.problems, "\n".join(result.problems)
