"""Batch and transaction Bundles (R4 http.html#transaction): the way EHRs push data in.

``process_bundle`` is the one entry point, used by ``POST [base]`` and by the bulk loader
(``billable load``); both go through the ``Repository`` facade.
"""

from __future__ import annotations

from typing import Any

from server.bundles.batch import run_batch
from server.bundles.entries import entries_of, parse_entry
from server.bundles.results import EntryResult, response_bundle
from server.bundles.transaction import run_transaction
from server.errors import FhirError
from server.repository import Repository, RequestContext

ACCEPTED_TYPES = ("transaction", "batch")


async def process_bundle(
    repo: Repository, ctx: RequestContext, bundle: Any
) -> tuple[str, list[EntryResult]]:
    """Run a batch or transaction; the response Bundle type and one result per entry.

    A transaction that fails raises ``FhirError`` (nothing of it stored); a batch never
    does for a failing entry: the entry's result carries the failure.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        shown = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise FhirError.of(
            400,
            "invalid",
            f"POST [base] takes a Bundle of type transaction or batch, not a {shown!r}",
            ("resourceType",),
        )
    kind = bundle.get("type")
    if kind not in ACCEPTED_TYPES:
        raise FhirError.of(
            400,
            "not-supported",
            f"Bundle.type {kind!r} cannot be processed: POST [base] accepts a Bundle of type"
            " 'transaction' or 'batch' (to store a Bundle as a resource, POST it to"
            " [base]/Bundle)",
            ("Bundle.type",),
        )
    raw_entries = entries_of(bundle)
    if kind == "batch":
        return "batch-response", await run_batch(repo, ctx, raw_entries)
    entries = [parse_entry(i, raw, ctx.base_url) for i, raw in enumerate(raw_entries)]
    return "transaction-response", await run_transaction(repo, ctx, entries)


__all__ = ["ACCEPTED_TYPES", "EntryResult", "process_bundle", "response_bundle"]
