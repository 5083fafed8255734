"""The repository facade: the one way into the store.

Every interaction of every endpoint, and every internal record Billable keeps, goes
through ``Repository``; nothing else holds the storage port, so access control,
validation, indexing, Provenance and audit, applied here, cannot be bypassed by a new
endpoint (the pattern of Medplum's ``repo.ts``). It also owns what the backends must
not care about: ids, version numbers, ``meta``, timestamps, the exact bytes stored,
optimistic-concurrency retries and the FHIR semantics of conditional interactions.

The package is split along its seams: ``context`` (who asks, the policy protocol),
``versions`` (instants, tags, bytes), ``base`` (the private store and the one write
path), ``reads``, ``conditional``, ``writes`` and ``records`` (internal records).
"""

from __future__ import annotations

from server.repository.base import decode
from server.repository.context import AccessPolicy, OpenAccess, RequestContext, system_context
from server.repository.records import InternalRecords
from server.repository.versions import (
    InstantClock,
    WriteOutcome,
    parse_version_tag,
    serialise_with_meta,
    with_id,
)
from server.repository.writes import Writes


class Repository(Writes):
    """Reads, searches, conditional matches, writes and internal records, each judged by
    the policy for the ``RequestContext`` passed explicitly."""


__all__ = [
    "AccessPolicy",
    "InstantClock",
    "InternalRecords",
    "OpenAccess",
    "Repository",
    "RequestContext",
    "WriteOutcome",
    "decode",
    "parse_version_tag",
    "serialise_with_meta",
    "system_context",
    "with_id",
]
