"""Validation and search index of AuditEvents, worked out once per kind of request.

Every request writes one AuditEvent, and they differ from each other in a few values
only: when (``recorded``), which resource (the id in ``entity``), the free text of
``outcomeDesc`` and the query. Validating the event and extracting its search index from
scratch costs more than the rest of a read; instead both are done, with the generic code
(``validate_resource``, ``extract_index_values``), on a *template*: the same event with
placeholders in those few places. The index of a real event is the template's with the
placeholders replaced. Whatever the registry does with a placeholder that this module
cannot replace exactly (say a future search parameter on ``outcomeDesc``), the template
says so and events of that kind are validated and indexed the generic way, one by one.
A value that the template cannot stand for (an id that is no FHIR id, text with control
characters) also takes the generic way. ``tests/auth/test_audit_prepared.py`` checks the
result against the generic code over every kind of record the middleware writes.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from server.search.extract import extract_index_values
from server.search.values import date_range
from server.storage.port import SearchIndex
from server.validation import validate_resource

if TYPE_CHECKING:
    from server.audit.chain import AuditRecord

TEMPLATE_INSTANT = "2000-01-01T00:00:00.000000Z"  # stands for ``recorded``
TEMPLATE_UPDATED = "2000-01-02T00:00:00.000000Z"  # stands for ``meta.lastUpdated``
PLACEHOLDER_ID = "billable-audit-placeholder-id"
PLACEHOLDER_VERSION = "billable-audit-placeholder-version"
PLACEHOLDER_TEXT = "billable-audit-placeholder-text"
PLACEHOLDER_QUERY = "billable-audit-placeholder-query"
_PLACEHOLDERS = (
    PLACEHOLDER_ID,
    PLACEHOLDER_VERSION,
    PLACEHOLDER_TEXT,
    PLACEHOLDER_QUERY,
    base64.b64encode(PLACEHOLDER_QUERY.encode()).decode(),
)
# Type/id or Type/id/_history/vid, with FHIR ids (R4 id: [A-Za-z0-9\-\.]{1,64}).
_ENTITY = re.compile(
    r"([A-Za-z]{1,64})/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?"
)
# Text any FHIR string may hold (R4 string: [ \r\n\t\S]+), without the line breaks.
_SAFE_TEXT = re.compile(r"[ \S]+")
MAX_TEMPLATES = 4096


@dataclass(frozen=True, slots=True)
class _Template:
    index: SearchIndex | None  # None: the placeholders cannot be replaced exactly
    stamp: tuple[int, int]  # the date range of TEMPLATE_INSTANT
    updated: tuple[int, int]  # the date range of TEMPLATE_UPDATED


def _template_of(record: AuditRecord) -> tuple[tuple[object, ...], str | None] | None:
    """(the key of the record's kind, the entity id the placeholder stands for); None
    when the record cannot be written from a template."""
    entity, entity_id = record.entity, None
    if entity is not None:
        match = _ENTITY.fullmatch(entity)
        if match is not None:  # otherwise the entity is part of the key as it is
            entity_id = match[2]
            entity = f"{match[1]}/{PLACEHOLDER_ID}"
            if match[3] is not None:
                entity += f"/_history/{PLACEHOLDER_VERSION}"
    description = record.description
    if description is not None:
        if not _SAFE_TEXT.fullmatch(description) or any(p in description for p in _PLACEHOLDERS):
            return None
        description = PLACEHOLDER_TEXT
    query = PLACEHOLDER_QUERY if record.query else record.query
    key = (
        record.action,
        record.interaction,
        record.status,
        record.client_id,
        record.user,
        record.remote_addr,
        entity,
        query,
        description,
    )
    return key, entity_id


def _mentions_placeholder(value: object) -> bool:
    return isinstance(value, str) and any(p in value for p in _PLACEHOLDERS)


def _replaceable(index: SearchIndex) -> bool:
    """Whether every placeholder in the index is an entity id in a reference row."""
    for name in ("tokens", "strings", "dates", "numbers", "quantities", "uris", "composites"):
        for row in getattr(index, name):
            if any(_mentions_placeholder(v) for v in row) or (
                name == "composites" and PLACEHOLDER_ID in repr(row)
            ):
                return False
    for param, rtype, rid, url in index.references:
        if _mentions_placeholder(param) or _mentions_placeholder(rtype):
            return False
        if _mentions_placeholder(url) or (_mentions_placeholder(rid) and rid != PLACEHOLDER_ID):
            return False
    return True


class PreparedEvents:
    """Validates AuditEvents and extracts their index through templates (one per kind)."""

    def __init__(self, max_templates: int = MAX_TEMPLATES) -> None:
        self.max_templates = max_templates
        self._templates: dict[tuple[object, ...], _Template] = {}
        self._stamp: tuple[str, tuple[int, int]] = ("", (0, 0))  # the last instant seen

    def index(
        self,
        record: AuditRecord,
        event: dict[str, Any],
        recorded: str,
        last_updated: str | None = None,
    ) -> SearchIndex:
        """The search index of ``event`` (built from ``record`` at ``recorded``, stored
        at ``last_updated``, by default the same), which is valid R4; raises
        ``FhirError`` as ``validate_resource`` would."""
        last_updated = last_updated or recorded
        shaped = _template_of(record)
        if shaped is None:
            return _generic(event, last_updated)
        key, entity_id = shaped
        template = self._templates.get(key)
        if template is None:
            template = self._make(key, event)
        if template.index is None:
            return _generic(event, last_updated)
        if self._stamp[0] != last_updated:  # the events of one commit share it
            self._stamp = (last_updated, date_range(last_updated))
        stamp = self._stamp[1] if recorded == last_updated else date_range(recorded)
        return _filled(template, entity_id, stamp, self._stamp[1])

    def _make(self, key: tuple[object, ...], event: dict[str, Any]) -> _Template:
        from server.audit.chain import AuditRecord, build_event

        action, interaction, status, client_id, user, remote, entity, query, text = key
        record = AuditRecord(
            str(action),
            str(interaction),
            int(str(status)),
            None if client_id is None else str(client_id),
            None if user is None else str(user),
            None if remote is None else str(remote),
            None if entity is None else str(entity),
            None if query is None else str(query),
            None if text is None else str(text),
        )
        sample = build_event(record, TEMPLATE_INSTANT)
        # id, meta and the hash extensions have the same shape on every event.
        for name in ("id", "meta", "extension"):
            if name in event:
                sample[name] = event[name]
        if isinstance(sample.get("meta"), dict):
            sample["meta"] = {**sample["meta"], "lastUpdated": TEMPLATE_UPDATED}
        validate_resource(sample)
        index = extract_index_values(sample, TEMPLATE_UPDATED)
        template = _Template(
            index if _replaceable(index) else None,
            date_range(TEMPLATE_INSTANT),
            date_range(TEMPLATE_UPDATED),
        )
        if len(self._templates) >= self.max_templates:
            self._templates.clear()  # bounded: a flood of odd paths cannot grow it
        self._templates[key] = template
        return template


def _generic(event: dict[str, Any], recorded: str) -> SearchIndex:
    validate_resource(event)
    return extract_index_values(event, recorded)


def _filled(
    template: _Template,
    entity_id: str | None,
    stamp: tuple[int, int],
    updated: tuple[int, int],
) -> SearchIndex:
    index = template.index
    assert index is not None
    references = index.references
    if entity_id is not None:  # rows that become equal are one row, as in the generic code
        references = list(
            dict.fromkeys(
                (param, rtype, entity_id if rid == PLACEHOLDER_ID else rid, url)
                for param, rtype, rid, url in references
            )
        )
    replaced = {template.stamp: stamp, template.updated: updated}
    dates = list(
        dict.fromkeys((param, *replaced.get((lo, hi), (lo, hi))) for param, lo, hi in index.dates)
    )
    return replace(index, references=references, dates=dates)
