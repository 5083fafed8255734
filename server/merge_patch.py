"""JSON Merge Patch (RFC 7386): the PATCH format fhirpy and many JSON clients send.

A merge patch is a partial resource: its members replace the target's, ``null`` removes
one, objects merge recursively, and anything else (arrays included) replaces wholesale
(RFC 7386 §2). Billable accepts it beside JSON Patch (RFC 6902) on ``PATCH [type]/[id]``
with ``Content-Type: application/merge-patch+json``; the result is validated like any
write.
"""

from __future__ import annotations

from typing import Any

MERGE_PATCH = "application/merge-patch+json"


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` merged in, as RFC 7386's MergePatch(Target, Patch)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = apply_merge_patch(result.get(name), value)
    return result


class MergePatch:
    """A merge patch with ``jsonpatch.JsonPatch``'s ``apply``, so that the repository's
    patch interaction treats both formats alike."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def apply(self, target: dict[str, Any]) -> Any:
        return apply_merge_patch(target, self.document)
