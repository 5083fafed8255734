"""The storage port: the one interface every backend implements and the repository uses.

The port is deliberately small and dumb. The repository facade (``server.repository``)
decides ids, version numbers, timestamps and the exact JSON bytes; a backend only has
to store versions atomically and answer a handful of lookups. Keeping policy out of the
backends is what lets SQLite and MongoDB pass one contract suite.

Concurrency model: optimistic. Each ``Write`` carries the version the caller saw
(``expected_version``, 0 when the resource had never existed). ``commit`` applies all
writes of one call atomically, or none of them, and raises ``VersionConflict`` when the
current version of any resource differs from what the caller expected. No lost updates,
no locks held across requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from server.search.expr import Expr


class StoreError(Exception):
    """Base class of the errors a backend may raise through the port."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached (network, file system). Maps to HTTP 503."""


class SearchTooCostly(StoreError):
    """A search the backend refuses to run in full (e.g. a chain matching too many). 400."""


class VersionConflict(StoreError):
    """The current version of a resource is not the one the writer expected."""

    def __init__(self, resource_type: str, resource_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{resource_type}/{resource_id}: expected version {expected}, found {actual}"
        )
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of one resource, as stored.

    ``body`` holds the exact JSON bytes served to clients (with ``id`` and ``meta``
    already filled in), or ``None`` for the marker version a delete leaves behind.
    ``last_updated`` is a FHIR instant in UTC with microseconds and a ``Z`` suffix, so
    that it sorts as a string.
    """

    resource_type: str
    id: str
    version: int
    last_updated: str
    deleted: bool
    body: bytes | None


class CompositePart(NamedTuple):
    """One component value of a composite index row.

    token: (system, code); quantity: (system, code, value, value); date: (None, None, lo,
    hi); string: (None, normalised); reference: (type, id); number: (None, None, v, v).
    """

    s: str | None
    c: str | None
    lo: float | None
    hi: float | None


@dataclass(frozen=True, slots=True)
class SearchIndex:
    """Every search index value of one resource version, extracted at write time.

    Rows are tuples whose first member is the parameter code. Dates are closed ranges of
    epoch microseconds (UTC); strings carry their normalised (case- and accent-folded)
    form and the exact text. Only current, non-deleted versions are indexed.
    """

    tokens: Sequence[tuple[str, str | None, str]] = ()  # (param, system, code)
    strings: Sequence[tuple[str, str, str]] = ()  # (param, normalised, exact)
    references: Sequence[tuple[str, str | None, str | None, str | None]] = ()  # type, id, url
    dates: Sequence[tuple[str, int, int]] = ()  # (param, lo, hi)
    numbers: Sequence[tuple[str, float]] = ()
    quantities: Sequence[tuple[str, str | None, str | None, float]] = ()  # system, code, v
    uris: Sequence[tuple[str, str]] = ()
    composites: Sequence[tuple[str, tuple[CompositePart, ...]]] = ()


@dataclass(frozen=True, slots=True)
class Write:
    """One new version to store. ``body is None`` means a delete marker."""

    resource_type: str
    id: str
    expected_version: int
    version: int
    last_updated: str
    body: bytes | None
    # Every search index value (``server.search.extract``); ``None`` on delete markers.
    index: SearchIndex | None = None

    @property
    def deleted(self) -> bool:
        return self.body is None


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` key. ``kind`` is ``id``, ``lastUpdated`` or a parameter type."""

    param: str
    kind: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A compiled FHIR search (``server.search.parse``) for a backend to render and run.

    ``types`` empty means every type. Results are ordered by ``sort`` then type and id;
    ``after`` / ``before`` are keyset positions (as returned in ``SearchPage.positions``)
    to page forwards or backwards from.
    """

    types: tuple[str, ...]
    where: Expr | None = None
    sort: tuple[SortKey, ...] = ()
    count: int = 20
    after: tuple[Any, ...] | None = None
    before: tuple[Any, ...] | None = None
    total: bool = False


@dataclass(slots=True)
class SearchPage:
    versions: list[StoredVersion]
    positions: list[tuple[Any, ...]]
    more: bool  # another page in the paging direction
    total: int | None = None


@dataclass(frozen=True, slots=True)
class IncludeSpec:
    """``_include`` (forward) or ``_revinclude`` (``reverse``).

    Forward: resources referenced through ``param`` (``None``: every reference parameter)
    of the ``source_type`` resources given; reverse: ``source_type`` resources whose
    ``param`` references any of the resources given. ``target_type`` narrows the target.
    """

    source_type: str
    param: str | None
    target_type: str | None = None
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Versions newest first; ``resource_type``/``resource_id`` narrow the scope.

    ``since`` (inclusive) is a normalised instant string. ``cursor`` is the opaque value
    returned with the previous page; its meaning belongs to the backend.
    """

    resource_type: str | None = None
    resource_id: str | None = None
    since: str | None = None
    count: int = 20
    cursor: str | None = None


@dataclass(slots=True)
class HistoryPage:
    versions: list[StoredVersion]
    next_cursor: str | None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What the backend is, for health checks, logs and the CapabilityStatement."""

    kind: Literal["sqlite", "mongodb"]
    location: str
    atomic_commit: str = field(default="native")


class Store(Protocol):
    """The storage port. Every method may raise ``StoreUnavailable``."""

    info: BackendInfo

    async def open(self) -> None:
        """Connect, create tables/indexes idempotently, recover from any crash."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the backend answers."""

    async def read(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        """The latest version, including a delete marker; ``None`` if never stored."""

    async def vread(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredVersion | None: ...

    async def commit(self, writes: Sequence[Write]) -> None:
        """Store every write or none. Raises ``VersionConflict``."""

    async def history(self, query: HistoryQuery) -> HistoryPage: ...


class SearchStore(Protocol):
    """The search part of the port (SQLite implements it; MongoDB once wired).

    Kept apart from ``Store`` while a backend is being wired, so that a backend without
    it still type-checks as a ``Store`` and searches on it answer 501.
    """

    async def search(self, query: SearchQuery) -> SearchPage:
        """One page of current resources matching ``query``."""

    async def include(
        self, spec: IncludeSpec, resources: Sequence[tuple[str, str]], limit: int
    ) -> list[StoredVersion]:
        """Current resources ``spec`` reaches from ``resources`` (type, id), at most ``limit``."""

    async def reindex(self, entries: Sequence[tuple[str, str, SearchIndex]]) -> None:
        """Replace the search index rows of current resources (``billable reindex``)."""
