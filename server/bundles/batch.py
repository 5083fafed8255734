"""Batches: every entry on its own, answered on its own.

Entries are executed in the R4 processing order (the order must not matter in a batch,
http.html#brules), each as a transaction of its own, and answered in request order; one
entry failing does not affect the others: its response carries the status and an
OperationOutcome. Entries of a batch may not refer to each other (references to another
entry's fullUrl, and conditional references, which R4 defines for transactions only, fail
that entry with 400).
"""

from __future__ import annotations

from server.bundles.entries import PROCESSING_ORDER, Entry, entry_error
from server.bundles.references import is_conditional_reference, rewrite_serialised
from server.bundles.results import EntryResult
from server.bundles.transaction import run_transaction
from server.errors import FhirError, Issue
from server.repository import Repository, RequestContext


async def run_batch(
    repo: Repository, ctx: RequestContext, parsed: list[tuple[Entry | FhirError, str | None]]
) -> list[EntryResult]:
    """``parsed``: each entry (or why it could not be parsed) and its fullUrl."""
    results: dict[int, EntryResult] = {}
    entries: list[Entry] = []
    full_urls: set[str] = set()
    for index, (entry_or_error, full_url) in enumerate(parsed):
        if isinstance(entry_or_error, FhirError):
            results[index] = EntryResult(entry_or_error.status, issues=entry_or_error.issues)
        else:
            entries.append(entry_or_error)
        if full_url is not None:
            full_urls.add(full_url)
    for entry in sorted(entries, key=lambda e: (PROCESSING_ORDER[e.method], e.index)):
        try:
            _refuse_links_between_entries(entry, full_urls)
            results[entry.index] = await _execute(repo, ctx, entry)
        except FhirError as exc:
            located = entry_error(entry.index, entry.label, exc)
            results[entry.index] = EntryResult(exc.status, issues=located.issues)
    return [results[i] for i in range(len(parsed))]


def _refuse_links_between_entries(entry: Entry, full_urls: set[str]) -> None:
    serialised = entry.resource_bytes()
    if serialised is None:
        return
    problems: list[str] = []

    def check(ref: str) -> str | None:
        if ref in full_urls or ref.partition("/_history/")[0] in full_urls:
            problems.append(f"{ref!r} refers to another entry of the batch")
        elif "?" in ref and is_conditional_reference(ref):
            problems.append(f"conditional reference {ref!r} is allowed in transactions only")
        return None

    rewrite_serialised(serialised, check)
    if problems:
        raise FhirError(
            400,
            [Issue("error", "invalid", p + "; send a transaction instead") for p in problems],
        )


async def _execute(repo: Repository, ctx: RequestContext, entry: Entry) -> EntryResult:
    """One entry, as a transaction of its own: the same planning (conditional matching,
    no-op updates, policy checks) and its own commit."""
    (result,) = await run_transaction(repo, ctx, [entry])
    return result
