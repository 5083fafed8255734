"""Large batch/transaction bodies, split into their entries without parsing them all at once.

A real patient's history is a transaction of 100 MB and 40,000 entries. Parsed whole,
its Python objects take about four times the bytes (430 MB), on top of the body itself.
Instead, ``split_bundle`` finds the byte span of every ``Bundle.entry`` item with one
compiled regex that jumps over strings and plain values and stops only at brackets
(about 20 µs per Synthea entry), and ``parse_entries`` parses each span on its own,
checks its shape, turns it into an ``Entry`` and keeps only the resource's compact JSON:
the body, then the entries' bytes, are all that is ever held at once.

Correctness does not depend on the scan guessing right: every span, and the rest of the
body (with the entry array replaced by a placeholder), is parsed by orjson, and the
bytes between spans must be exactly whitespace and one comma. Whenever the scan finds no
unique ``entry`` array (an escaped key, a duplicate key, no array at all), the caller
parses the body whole instead, with orjson's own semantics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from server.api.body import (
    MAX_DEPTH,
    MAX_ENTRIES,
    MAX_VALUES_PER_BODY,
    check_entry_shape,
    too_deep,
    too_many,
)
from server.bundles.entries import Entry, parse_entry
from server.errors import FhirError
from server.native_heap import return_free_memory

# Everything up to and including the next bracket that is not inside a string: runs of
# plain characters and whole strings are consumed inside the regex engine.
_TO_BRACKET = re.compile(rb'[^"{}\[\]]*(?:"[^"\\]*(?:\\.[^"\\]*)*"[^"{}\[\]]*)*([{}\[\]])')
_PLACEHOLDER = b'"urn:billable:split-entries"'
_WHITESPACE = b" \t\r\n"
_OPEN = frozenset(b"{[")

ParsedEntry = tuple[Entry | FhirError, str | None]  # an entry or why not, and its fullUrl


@dataclass(slots=True)
class SplitBundle:
    """A Bundle body: its envelope (every element but ``entry``) and the entry spans."""

    envelope: dict[str, Any]
    body: bytes | bytearray | None
    spans: list[tuple[int, int]]


def _invalid(detail: str) -> FhirError:
    return FhirError.of(400, "structure", f"The body is not valid JSON: {detail}")


def _is_entry_key(body: bytes | bytearray, bracket: int) -> bool:
    """The array at ``bracket`` is the value of a key spelled exactly ``"entry"``."""
    k = bracket
    while k > 0 and body[k - 1] in _WHITESPACE:
        k -= 1
    if k == 0 or body[k - 1] != 0x3A:  # ':'
        return False
    k -= 1
    while k > 0 and body[k - 1] in _WHITESPACE:
        k -= 1
    return body[k - 7 : k] == b'"entry"' and (k < 8 or body[k - 8] != 0x5C)  # not \"


def split_bundle(body: bytes | bytearray) -> SplitBundle | None:
    """The envelope and entry spans of a Bundle body; ``None`` when the body should be
    parsed whole instead (no unique plain ``entry`` array). Raises a 400 for JSON
    nested deeper than ``MAX_DEPTH`` or broken around the entries."""
    match = _TO_BRACKET.match
    pos = depth = 0
    array_start = array_end = -1
    entry_start = -1
    in_array = False
    spans: list[tuple[int, int]] = []
    while True:
        m = match(body, pos)
        if m is None:
            break
        pos = m.end()
        bracket = body[pos - 1]
        if bracket in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                raise too_deep("body", f"byte {pos - 1}")
            if depth == 2 and bracket == 0x5B and array_start < 0:
                if _is_entry_key(body, pos - 1):
                    array_start, in_array = pos - 1, True
            elif depth == 3 and in_array and bracket == 0x7B:
                entry_start = pos - 1
        else:
            if depth == 3 and in_array and entry_start >= 0:
                spans.append((entry_start, pos))
                entry_start = -1
                if len(spans) > MAX_ENTRIES:
                    raise too_many_entries()
            elif depth == 2 and in_array:
                array_end, in_array = pos, False
            depth -= 1
    if array_start < 0 or array_end < 0 or body[array_end - 1] != 0x5D:  # ']'
        return None
    _check_separators(body, array_start, array_end, spans)
    try:
        envelope = orjson.loads(bytes(body[:array_start]) + _PLACEHOLDER + bytes(body[array_end:]))
    except orjson.JSONDecodeError as exc:
        raise _invalid(str(exc)) from exc
    if not isinstance(envelope, dict) or envelope.get("entry") != _PLACEHOLDER.strip(b'"').decode():
        return None
    return SplitBundle(envelope, body, spans)


def _check_separators(
    body: bytes | bytearray, start: int, end: int, spans: list[tuple[int, int]]
) -> None:
    """Between ``[``, the entry objects and ``]``: whitespace, and one comma between two."""
    edges = [start + 1, *(p for span in spans for p in span), end - 1]
    for i in range(0, len(edges), 2):
        gap = bytes(body[edges[i] : edges[i + 1]]).strip(_WHITESPACE)
        inner = 0 < i < len(edges) - 2
        if gap != (b"," if inner else b""):
            raise _invalid(f"Bundle.entry[{i // 2}] is not a JSON object in a JSON array")


def too_many_entries() -> FhirError:
    return FhirError.of(
        413,
        "too-costly",
        f"The Bundle has more than {MAX_ENTRIES:,} entries; split it into smaller bundles",
    )


def parse_entries(split: SplitBundle, base_url: str) -> list[ParsedEntry]:
    """Every entry of ``split``, one at a time: parsed, shape-checked (a 400/413 for the
    whole body, as when it is parsed whole) and kept as an ``Entry`` holding only its
    resource's bytes. The body is released at the end."""
    body = split.body
    assert body is not None
    view = memoryview(body)
    out: list[ParsedEntry] = []
    total = 0
    try:
        for index, (start, end) in enumerate(split.spans):
            try:
                raw = orjson.loads(view[start:end])
            except orjson.JSONDecodeError as exc:
                raise _invalid(f"Bundle.entry[{index}]: {exc}") from exc
            total += check_entry_shape(raw, index)
            if total > MAX_VALUES_PER_BODY:
                raise too_many("body", MAX_VALUES_PER_BODY, "in all")
            full_url = raw.get("fullUrl")
            result: Entry | FhirError
            try:
                parsed = parse_entry(index, raw, base_url)
            except FhirError as exc:
                result = exc
            else:
                parsed.release()
                result = parsed
            out.append((result, full_url if isinstance(full_url, str) else None))
    finally:
        view.release()
    split.body = None
    return_free_memory()
    return out


__all__ = ["ParsedEntry", "SplitBundle", "parse_entries", "return_free_memory", "split_bundle"]
