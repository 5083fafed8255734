"""The error every terminology question without an answer raises."""

from __future__ import annotations


class TerminologyError(Exception):
    """A terminology question that has no answer; ``kind`` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # unknown-system, unknown-version, unknown-code, not-effective, ...
        self.message = message
