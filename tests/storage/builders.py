"""Builders for storage tests: increasing timestamps, resource bytes, writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.storage.port import TokenIndexEntry, Write


class Clock:
    """Strictly increasing FHIR instants, as the repository hands them to a backend."""

    def __init__(self) -> None:
        self._t = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> str:
        self._t += timedelta(milliseconds=1)
        return self._t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body(resource_type: str, resource_id: str, version: int, **extra: object) -> bytes:
    """The bytes a repository would store (a tiny resource with a marker of its version)."""
    fields = "".join(f',"{k}":"{v}"' for k, v in extra.items())
    return (
        f'{{"resourceType":"{resource_type}","id":"{resource_id}",'
        f'"meta":{{"versionId":"{version}"}}{fields}}}'
    ).encode()


def write(
    clock: Clock,
    resource_type: str,
    resource_id: str,
    version: int,
    *,
    deleted: bool = False,
    tokens: tuple[TokenIndexEntry, ...] = (),
    expected: int | None = None,
) -> Write:
    """Version ``version`` of a resource, expecting ``version - 1`` unless told otherwise."""
    return Write(
        resource_type=resource_type,
        id=resource_id,
        expected_version=version - 1 if expected is None else expected,
        version=version,
        last_updated=clock(),
        body=None if deleted else body(resource_type, resource_id, version),
        tokens=tokens,
    )
