"""Rewriting the references of a bundle to the ids the server gave its resources.

R4 (http.html#trules) asks the server to replace, everywhere in the bundle, each
reference to an entry's ``fullUrl`` (``urn:uuid:``, ``urn:oid:`` or an absolute URL)
by a reference to the resource as stored, including version-specific references
(``.../_history/n``) and links in the narrative (``<a href>``, ``<img src>``).

The walk is copy-on-write: the original resource is left as it was (a transaction that
is retried after a concurrent change plans again from the same input), and only objects
on the path to a changed string are copied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

URN_PREFIXES = ("urn:uuid:", "urn:oid:")
_NARRATIVE_LINK = re.compile(r"""(\b(?:href|src)\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a bundle identity ends up: ``Type/id`` at ``version`` (``None`` if unknown)."""

    resource_type: str
    id: str
    version: int | None = None

    def reference(self, versioned: bool = False) -> str:
        if versioned and self.version is not None:
            return f"{self.resource_type}/{self.id}/_history/{self.version}"
        return f"{self.resource_type}/{self.id}"


def is_conditional_reference(ref: str) -> bool:
    """``Patient?identifier=...``: a search URL relative to the base, starting with a type."""
    head, question, _ = ref.partition("?")
    return bool(question) and "/" not in head and ":" not in head and head[:1].isupper()


def base_of(full_url: str | None) -> str | None:
    """``http://x/fhir/Patient/1`` → ``http://x/fhir``: what its relative references resolve
    against. ``None`` for ``urn:`` and missing fullUrls."""
    if not full_url or not full_url.startswith(("http://", "https://")):
        return None
    parts = full_url.rstrip("/").rsplit("/", 2)
    return parts[0] if len(parts) == 3 else None


class ReferenceMap:
    """Bundle identities → targets, and the rewriting of references with them."""

    def __init__(self) -> None:
        self.absolute: dict[str, Target] = {}
        # "Type/id" → target, for entries whose fullUrl is an absolute URL; None when two
        # entries with different bases share it (then only the base can tell them apart).
        self.relative: dict[str, Target | None] = {}
        self.conditional: dict[str, Target] = {}

    def add(self, full_url: str, target: Target) -> None:
        self.absolute[full_url] = target
        if full_url.startswith(("http://", "https://")):
            tail = "/".join(full_url.rstrip("/").rsplit("/", 2)[-2:])
            self.relative[tail] = None if tail in self.relative else target

    def __bool__(self) -> bool:
        return bool(self.absolute or self.conditional)

    def resolve(self, ref: str, base: str | None) -> str | None:
        """The new reference for ``ref`` made in an entry with fullUrl base ``base``, or
        ``None`` when it stays as it is."""
        if not ref or ref[0] == "#":
            return None
        if "?" in ref and is_conditional_reference(ref):
            found = self.conditional.get(ref)
            return found.reference() if found else None
        target_ref, marker, _version = ref.partition("/_history/")
        target = self.absolute.get(target_ref)
        if target is None and not target_ref.startswith(("http:", "https:", "urn:")):
            if base is not None:
                target = self.absolute.get(f"{base}/{target_ref}")
            if target is None:
                target = self.relative.get(target_ref)
        if target is None:
            return None
        new = target.reference(versioned=bool(marker))
        return None if new == ref else new


def rewrite_resource(
    resource: dict[str, Any],
    resolve: Callable[[str], str | None],
    on_conditional: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``resource`` with every reference ``resolve`` changes replaced (a copy if any did).

    ``resolve`` rewrites ``Reference.reference`` anywhere (nested, contained, extensions);
    other strings are rewritten only when they are exactly a ``urn:uuid:``/``urn:oid:``
    bundle identity (elements of type uri), never ``Identifier.value``, which is data.
    ``on_conditional`` sees each conditional reference met, resolved or not.
    """

    def walk_dict(obj: dict[str, Any]) -> dict[str, Any] | None:
        out: dict[str, Any] | None = None
        for key, value in obj.items():
            new: Any = None
            if isinstance(value, str):
                if key == "reference":
                    if on_conditional is not None and "?" in value:
                        if is_conditional_reference(value):
                            on_conditional(value)
                    new = resolve(value)
                elif key == "div":
                    new = _rewrite_narrative(value, resolve)
                elif key != "value" and value.startswith(URN_PREFIXES):
                    new = resolve(value)
            elif isinstance(value, dict):
                new = walk_dict(value)
            elif isinstance(value, list):
                new = walk_list(value)
            if new is not None:
                if out is None:
                    out = dict(obj)
                out[key] = new
        return out

    def walk_list(items: list[Any]) -> list[Any] | None:
        out: list[Any] | None = None
        for i, value in enumerate(items):
            new: dict[str, Any] | list[Any] | None
            if isinstance(value, dict):
                new = walk_dict(value)
            elif isinstance(value, list):
                new = walk_list(value)
            else:
                continue
            if new is not None:
                if out is None:
                    out = list(items)
                out[i] = new
        return out

    rewritten = walk_dict(resource)
    return resource if rewritten is None else rewritten


def _rewrite_narrative(div: str, resolve: Callable[[str], str | None]) -> str | None:
    if "href" not in div and "src" not in div and "HREF" not in div and "SRC" not in div:
        return None
    changed = False

    def swap(match: re.Match[str]) -> str:
        nonlocal changed
        new = resolve(match.group(3))
        if new is None:
            return match.group(0)
        changed = True
        return f"{match.group(1)}{match.group(2)}{new}{match.group(2)}"

    result = _NARRATIVE_LINK.sub(swap, div)
    return result if changed else None
