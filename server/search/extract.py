"""Search index values extracted from a resource once, at write time.

Until the full search-parameter registry lands this extracts the values conditional
interactions need: the ``identifier`` token of every resource type that has one.
"""

from __future__ import annotations

from typing import Any

from server.storage.port import TokenIndexEntry


def extract_tokens(resource: dict[str, Any]) -> list[TokenIndexEntry]:
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):  # a few types have a single identifier (0..1)
        identifiers = [identifiers]
    tokens: list[TokenIndexEntry] = []
    if isinstance(identifiers, list):
        for ident in identifiers:
            if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                system = ident.get("system")
                tokens.append(
                    TokenIndexEntry(
                        "identifier", system if isinstance(system, str) else None, ident["value"]
                    )
                )
    return tokens
