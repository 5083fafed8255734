"""Errors as FHIR OperationOutcomes.

Every failure anywhere in Billable becomes a ``FhirError`` (or is converted into one by
the exception handlers in ``server.api.errors``), so that a client always gets an
OperationOutcome with the right HTTP status and, where it makes sense, a FHIRPath
location of the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue. ``code`` is from the IssueType value set."""

    severity: Severity
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


@dataclass(slots=True)
class FhirError(Exception):
    """An error to answer with ``status`` and an OperationOutcome of ``issues``."""

    status: int
    issues: list[Issue]
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(i.diagnostics for i in self.issues)

    @classmethod
    def of(
        cls,
        status: int,
        code: str,
        diagnostics: str,
        expression: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> FhirError:
        return cls(status, [Issue("error", code, diagnostics, expression)], headers or {})


def bad_request(diagnostics: str, code: str = "invalid") -> FhirError:
    return FhirError.of(400, code, diagnostics)


def not_found(diagnostics: str) -> FhirError:
    return FhirError.of(404, "not-found", diagnostics)
