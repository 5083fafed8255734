"""FHIRPath locations of problems found in a resource's JSON."""

from __future__ import annotations

from collections.abc import Iterable


def fhirpath_of(root: str, loc: Iterable[object]) -> str:
    """``('item', 0, 'sequence')`` → ``Claim.item[0].sequence``; ``_birthDate`` → ``birthDate``."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = str(part)
            if name.startswith("__") or name == "":
                continue
            path += "." + name.removeprefix("_")
    return path
