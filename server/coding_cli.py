"""``billable code [--since DATE] [--patient ID]``: code the encounters already stored.

The HTTP path codes a finished Encounter when it is written (``--coding auto``); data
that reached the store another way (``billable load``, a restore, an upgrade of the rule
tables) is coded here, through the same ``ClaimService.generate`` that
``Encounter/$generate-claim`` and the automatic trigger call, and with the same
automatic adjudication of clean insured claims (``--adjudication auto``, the default).
Every read and write goes through the ``Repository`` under the coding engine's explicit
system context.

Re-running is safe: ``generate`` finds the encounter's claim by its identifier and writes
nothing when the claim it would produce is the one stored (an unchanged claim is not
adjudicated again either), so a second run reports every encounter as up to date.

``billable load --code`` runs the same pass, after the load, over the encounters the
load wrote (``EncounterCollector``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any

import orjson

from mappings.adjudication.auto import AutoAdjudicator
from mappings.coding.model import CodingConfig
from mappings.coding.service import ClaimService, system_context
from server.repository import Repository, RequestContext
from server.search.parse import parse_search
from server.storage.port import SearchQuery, Write

PAGE = 200


@dataclass(slots=True)
class CodeStats:
    seen: int = 0
    coded: int = 0  # a claim version was written
    unchanged: int = 0  # the stored claim was already the one the engine produces
    failed: int = 0
    skipped_window: int = 0  # past the timely filing window (when the engine has one)
    window_days: int | None = None  # None: this engine has no timely filing window
    claims_by_status: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    adjudicated: int = 0
    adjudication_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


class EncounterCollector:
    """Commit listener: the ids of the Encounters a load writes (for ``load --code``)."""

    def __init__(self, repo: Repository) -> None:
        self.ids: dict[str, None] = {}
        repo.commit_listeners.append(self.on_commit)

    def on_commit(self, writes: Sequence[Write]) -> None:
        for w in writes:
            if w.resource_type == "Encounter" and w.body is not None:
                self.ids[w.id] = None


async def stored_encounters(
    repo: Repository, ctx: RequestContext, since: date | None, patient: str | None
) -> list[str]:
    """Ids of the finished Encounters matching the filters, in the store's order."""
    pairs = [("status", "finished")]
    if since is not None:
        pairs.append(("date", f"ge{since.isoformat()}"))
    if patient is not None:
        pairs.append(("subject", patient if "/" in patient else f"Patient/{patient}"))
    parsed = parse_search(("Encounter",), pairs, strict=True, base_url=ctx.base_url)
    query = SearchQuery(("Encounter",), parsed.where, count=PAGE)
    ids: list[str] = []
    while True:
        page = await repo.search(ctx, query)
        ids += [v.id for v in page.versions if v.body is not None]
        if not page.more or not page.positions:
            return ids
        query = replace(query, after=page.positions[-1])


async def code_encounters(
    repo: Repository,
    encounter_ids: Sequence[str],
    config: CodingConfig | None = None,
    adjudicate: bool = True,
    progress: Callable[[CodeStats, int], None] | None = None,
) -> CodeStats:
    """Generate (or confirm) the claim of each encounter; adjudicate what becomes clean."""
    ctx = system_context()
    stats = CodeStats()
    service = ClaimService(repo, config)
    adjudicator = AutoAdjudicator(repo) if adjudicate else None
    # The timely filing window of the CMS-tables work, where this engine has it: an
    # encounter past it is left alone, as the automatic trigger leaves it.
    past_window = getattr(service, "past_timely_filing", None)
    stats.window_days = getattr(service.config, "timely_filing_days", None)
    started = time.monotonic()
    try:
        for encounter_id in encounter_ids:
            stats.seen += 1
            try:
                if past_window is not None and stats.window_days:
                    encounter = await repo.read(ctx, "Encounter", encounter_id)
                    assert encounter.body is not None
                    if past_window(orjson.loads(encounter.body)) is not None:
                        stats.skipped_window += 1
                        if progress is not None:
                            progress(stats, len(encounter_ids))
                        continue
                generated = await service.generate(ctx, encounter_id)
            except Exception as exc:  # one encounter never stops the run; say which
                stats.failed += 1
                stats.failures.append(f"Encounter/{encounter_id}: {type(exc).__name__}: {exc}")
            else:
                stats.coded += generated.written
                stats.unchanged += not generated.written
                stats.claims_by_status[str(generated.result.claim.get("status"))] += 1
                for problem in generated.result.problems:
                    if problem.severity == "error":
                        stats.errors_by_code[problem.code] += 1
            if progress is not None:
                progress(stats, len(encounter_ids))
        if adjudicator is not None:
            await adjudicator.drain()
            stats.adjudicated = adjudicator.adjudicated
            stats.adjudication_failures = [f"Claim/{c}: {m}" for c, m in adjudicator.failures]
    finally:
        if adjudicator is not None:
            repo.commit_listeners.remove(adjudicator.on_commit)
    stats.seconds = time.monotonic() - started
    return stats


class ProgressLine:
    """One line on stderr, redrawn on a terminal, every few seconds otherwise (logs)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.shown = 0.0

    def __call__(self, stats: CodeStats, total: int) -> None:
        now = time.monotonic()
        if stats.seen < total and now - self.shown < (0.5 if self.tty else 5.0):
            return
        self.shown = now
        width = 30
        done = int(width * stats.seen / total) if total else width
        rate = stats.seen / max(now - self.started, 1e-6)
        line = (
            f"[{'#' * done}{'.' * (width - done)}] {stats.seen}/{total} encounters"
            f"  {stats.coded} coded  {stats.unchanged} up to date  {stats.failed} failed"
            f"  {stats.skipped_window} past the filing window"
            f"  {rate:.1f}/s"
        )
        end = "\n" if not self.tty or stats.seen >= total else ""
        print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


def summary(stats: CodeStats) -> str:
    rate = stats.seen / stats.seconds if stats.seconds > 0 else 0.0
    by_status = ", ".join(f"{n} {s}" for s, n in stats.claims_by_status.most_common()) or "none"
    lines = [
        f"billable code: {stats.seen} encounters seen, {stats.coded} coded (claim written),"
        f" {stats.unchanged} already up to date, {stats.skipped_window} skipped (filing"
        f" window), {stats.failed} failed"
        f" in {stats.seconds:.1f}s ({rate:.1f} encounters/s)",
        f"  claims: {by_status}; {stats.adjudicated} adjudicated (ClaimResponse + EOB)",
    ]
    if stats.window_days is None:
        lines.append(
            "  filing window: none in this version, so no encounter was skipped for its age"
            " (older dates of service get draft claims when no code set of their year is"
            " loaded)"
        )
    elif stats.window_days:
        lines.append(
            f"  filing window: {stats.skipped_window} skipped, their date of service more"
            f" than {stats.window_days} days ago (BILLABLE_TIMELY_FILING_DAYS; 0 = no limit)"
        )
    else:
        lines.append("  filing window: off (BILLABLE_TIMELY_FILING_DAYS=0), nothing skipped")
    if stats.errors_by_code:
        top = ", ".join(f"{code} {n}" for code, n in stats.errors_by_code.most_common(5))
        lines.append(f"  why claims are draft (top errors): {top}")
    lines.extend(f"  {failure}" for failure in stats.failures[:20])
    lines.extend(f"  adjudication failed: {failure}" for failure in stats.adjudication_failures)
    return "\n".join(lines)


def add_code_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="sqlite:///PATH or mongodb://... (env BILLABLE_STORE)")
    parser.add_argument(
        "--since", type=date.fromisoformat, help="only encounters on or after this date"
    )
    parser.add_argument("--patient", help="only this patient's encounters (id or Patient/id)")
    parser.add_argument(
        "--adjudication",
        choices=("auto", "manual"),
        help="adjudicate clean insured claims at once (auto, default) or leave them for"
        " Claim/$submit (env BILLABLE_ADJUDICATION)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def _config() -> tuple[CodingConfig, bool]:
    from server.config import Settings

    settings = Settings.from_env()
    values: dict[str, Any] = {
        "locality": settings.coding_locality,
        "charge_factor": settings.charge_factor,
    }
    if "timely_filing_days" in {f.name for f in fields(CodingConfig)}:
        values["timely_filing_days"] = getattr(settings, "timely_filing_days", 0)
    return CodingConfig(**values), settings.adjudication == "auto"


def code_command(args: argparse.Namespace) -> int:
    from server.config import Settings
    from server.repository.opened import opened
    from server.storage.factory import StoreUrlError
    from server.storage.port import StoreUnavailable
    from terminology.service import get_service

    settings = Settings.from_env(store_url=args.store)
    config, _ = _config()
    mode = args.adjudication or os.environ.get("BILLABLE_ADJUDICATION") or "auto"

    async def run() -> CodeStats:
        async with opened(settings.store_url) as repo:
            get_service().preload()
            ids = await stored_encounters(repo, system_context(), args.since, args.patient)
            progress = None if args.quiet else ProgressLine()
            return await code_encounters(repo, ids, config, mode == "auto", progress)

    try:
        stats = asyncio.run(run())
    except (StoreUrlError, StoreUnavailable) as exc:
        print(f"billable: cannot use store {settings.store_url}: {exc}", file=sys.stderr)
        return 1
    print(summary(stats), file=sys.stderr)
    return 1 if stats.failed or stats.adjudication_failures else 0


async def code_after_load(
    repo: Repository, collector: EncounterCollector, quiet: bool = False
) -> CodeStats:
    """``billable load --code``: the second phase, over the encounters the load wrote."""
    from terminology.service import get_service

    config, _ = _config()
    mode = os.environ.get("BILLABLE_ADJUDICATION") or "auto"
    get_service().preload()
    ctx = system_context()
    finished = await stored_encounters(repo, ctx, None, None)
    wanted = [eid for eid in finished if eid in collector.ids]
    progress = None if quiet else ProgressLine()
    stats = await code_encounters(repo, wanted, config, mode == "auto", progress)
    print(summary(stats), file=sys.stderr)
    return stats
