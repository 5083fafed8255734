"""Batch and transaction Bundles (R4 http.html#transaction): the way EHRs push data in.

``process_bundle`` is the one entry point, used by ``POST [base]`` and by the bulk loader
(``billable load``); both go through the ``Repository`` facade.
"""

from __future__ import annotations

import asyncio
from typing import Any

from server.bundles.batch import run_batch
from server.bundles.entries import Entry, entries_of, parse_entry
from server.bundles.results import EntryResult, response_bundle
from server.bundles.split import ParsedEntry, SplitBundle, parse_entries
from server.bundles.transaction import run_transaction
from server.errors import FhirError
from server.repository import Repository, RequestContext

ACCEPTED_TYPES = ("transaction", "batch")


async def process_bundle(
    repo: Repository, ctx: RequestContext, bundle: Any
) -> tuple[str, list[EntryResult]]:
    """Run a batch or transaction; the response Bundle type and one result per entry.

    ``bundle`` is the parsed Bundle, or a ``SplitBundle`` (a large body: envelope parsed,
    entries parsed here one at a time). A transaction that fails raises ``FhirError``
    (nothing of it stored); a batch never does for a failing entry: the entry's result
    carries the failure.
    """
    envelope = bundle.envelope if isinstance(bundle, SplitBundle) else bundle
    if not isinstance(envelope, dict) or envelope.get("resourceType") != "Bundle":
        shown = (
            envelope.get("resourceType") if isinstance(envelope, dict) else type(envelope).__name__
        )
        raise FhirError.of(
            400,
            "invalid",
            f"POST [base] takes a Bundle of type transaction or batch, not a {shown!r}",
            ("resourceType",),
        )
    kind = envelope.get("type")
    if kind not in ACCEPTED_TYPES:
        raise FhirError.of(
            400,
            "not-supported",
            f"Bundle.type {kind!r} cannot be processed: POST [base] accepts a Bundle of type"
            " 'transaction' or 'batch' (to store a Bundle as a resource, POST it to"
            " [base]/Bundle)",
            ("Bundle.type",),
        )
    if isinstance(bundle, SplitBundle):
        parsed = await asyncio.to_thread(parse_entries, bundle, ctx.base_url)
    else:
        parsed = [_parsed(i, raw, ctx.base_url) for i, raw in enumerate(entries_of(bundle))]
    if kind == "batch":
        return "batch-response", await run_batch(repo, ctx, parsed)
    entries: list[Entry] = []
    for entry, _full_url in parsed:
        if isinstance(entry, FhirError):
            raise entry
        entries.append(entry)
    del parsed
    return "transaction-response", await run_transaction(repo, ctx, entries)


def _parsed(index: int, raw: Any, base_url: str) -> ParsedEntry:
    full_url = raw.get("fullUrl") if isinstance(raw, dict) else None
    try:
        entry: Entry | FhirError = parse_entry(index, raw, base_url)
    except FhirError as exc:
        entry = exc
    return entry, full_url if isinstance(full_url, str) else None


__all__ = ["ACCEPTED_TYPES", "EntryResult", "SplitBundle", "process_bundle", "response_bundle"]
