"""Writing X12 segments: delimiters, element cleaning and composites.

Billable writes with the delimiters most payers expect (``~`` segment, ``*`` element,
``:`` component, ``^`` repetition). A value from a FHIR resource may contain any of
them, so every element is cleaned: delimiters and characters outside the X12 extended
character set are replaced, and whitespace runs are collapsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SEGMENT_TERMINATOR = "~"
ELEMENT_SEPARATOR = "*"
COMPONENT_SEPARATOR = ":"
REPETITION_SEPARATOR = "^"
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9 !\"&'()+,\-./;?=%@\[\]_{}\\|<>#$]")

Element = str | Sequence[str] | None


def clean(value: object, max_length: int | None = None) -> str:
    """``value`` as an X12 element: no delimiters, no control characters, trimmed."""
    text = _NOT_ALLOWED.sub(" ", str(value))
    text = " ".join(text.split())
    return text[:max_length].rstrip() if max_length else text


def _element(value: Element) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    parts = [p or "" for p in value]
    while parts and not parts[-1]:
        parts.pop()
    return COMPONENT_SEPARATOR.join(parts)


@dataclass(slots=True)
class Segments:
    """An ordered list of segments; trailing empty elements are dropped, as X12 requires."""

    items: list[str] = field(default_factory=list)

    def add(self, segment_id: str, *elements: Element) -> None:
        values = [_element(e) for e in elements]
        while values and not values[-1]:
            values.pop()
        self.items.append(ELEMENT_SEPARATOR.join([segment_id, *values]))

    def extend(self, other: Segments) -> None:
        self.items.extend(other.items)

    def __len__(self) -> int:
        return len(self.items)


def render(segments: Iterable[str], newlines: bool = True) -> str:
    """The document text: each segment terminated, one a line (readable, still valid)."""
    end = SEGMENT_TERMINATOR + ("\n" if newlines else "")
    return "".join(s + end for s in segments)
