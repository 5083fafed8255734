"""``billable load PATH...``: bulk loading of Bundle and NDJSON files, in process.

The loader goes through the same ``Repository`` facade and bundle processor as
``POST [base]`` (validation, reference rewriting, index extraction, one atomic commit per
transaction), without HTTP. Files load in parallel; a failed file does not stop the
others; every error is reported with its file and line.

Re-running a load is safe. Entries that say how to stay idempotent (``ifNoneExist``,
``PUT``) are kept as they are. Two rewrites make the rest idempotent too (``--as-is``
turns them off):

* a bundle entry ``POST Type`` without ``ifNoneExist`` whose ``fullUrl`` is
  ``urn:uuid:U`` becomes ``PUT Type/U``: the file's UUID is the resource's id, so a
  second run finds the resource instead of creating a copy (and, the content being the
  same, writes no new version). Synthea's patient bundles are of this kind.
* an NDJSON line (one resource) becomes a conditional create on its first identifier
  (``POST`` with ``ifNoneExist: identifier=system|value``); a line that also has an
  ``id`` becomes a conditional update on that identifier instead (``PUT
  Type?identifier=...`` with the id in the body), which keeps the file's ids so that the
  references between lines still hold; a line with an id and no identifier becomes
  ``PUT Type/id``; a line with neither is a plain create (counted as not idempotent).
NDJSON lines are committed in transactions of ``--chunk`` lines; a bad line is reported
and left out, and the rest of its chunk committed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from server.bundles import process_bundle
from server.bundles.results import EntryResult
from server.errors import FhirError
from server.repository import Repository, RequestContext

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
ENTRY_INDEX = re.compile(r"Bundle\.entry\[(\d+)\]")
REFERENCE_DATA_PREFIXES = ("hospitalInformation", "practitionerInformation")
LOADER_BASE_URL = "http://localhost/fhir"


@dataclass(slots=True)
class LoadError:
    path: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        location = f"{self.path}:{self.line}" if self.line else self.path
        return f"{location}: {self.where + ': ' if self.where else ''}{self.message}"


@dataclass(slots=True)
class LoadStats:
    files: int = 0
    files_done: int = 0
    files_failed: int = 0
    resources: int = 0
    created: int = 0
    existing: int = 0
    not_idempotent: int = 0
    errors: list[LoadError] = field(default_factory=list)


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="files or directories to load")
    parser.add_argument("--store", help="sqlite:///PATH or mongodb://... (env BILLABLE_STORE)")
    parser.add_argument("--jobs", type=int, default=4, help="files loaded at once (default 4)")
    parser.add_argument(
        "--chunk", type=int, default=500, help="NDJSON lines per transaction (default 500)"
    )
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="send bundle entries exactly as written (no POST→PUT by urn:uuid)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--code",
        action="store_true",
        help="then code the encounters written, as `billable code` does (claims, adjudication)",
    )


def load_command(args: argparse.Namespace) -> int:
    from server.config import Settings
    from server.repository.opened import opened
    from server.storage.factory import StoreUrlError
    from server.storage.port import StoreUnavailable

    settings = Settings.from_env(store_url=args.store)
    files = list(expand_paths(args.paths))
    if not files:
        print("billable load: no .json or .ndjson files found", file=sys.stderr)
        return 2

    async def run() -> LoadStats:
        async with opened(settings.store_url) as repo:
            from server.coding_cli import EncounterCollector, code_after_load

            collector = EncounterCollector(repo) if args.code else None
            loader = Loader(
                repo,
                RequestContext(base_url=settings.base_url or LOADER_BASE_URL, user="load"),
                jobs=args.jobs,
                chunk=args.chunk,
                as_is=args.as_is,
            )
            progress = None if args.quiet else ProgressBar(loader.stats)
            stats = await loader.load(files, progress)
            if collector is not None:  # the load's own figures first, then the coding's
                print(summary(stats, time.monotonic() - started), file=sys.stderr)
                await code_after_load(repo, collector, args.quiet)
            return stats

    started = time.monotonic()
    try:
        stats = asyncio.run(run())
    except (StoreUrlError, StoreUnavailable) as exc:
        print(f"billable: cannot use store {settings.store_url}: {exc}", file=sys.stderr)
        return 1
    if not args.code:
        print(summary(stats, time.monotonic() - started), file=sys.stderr)
    return 1 if stats.errors else 0


def expand_paths(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix in (".json", ".ndjson") and p.is_file()
            )
        else:
            yield path


def summary(stats: LoadStats, seconds: float) -> str:
    rate = stats.resources / seconds if seconds > 0 else 0.0
    lines = [
        f"billable load: {stats.files_done} of {stats.files} files loaded"
        f" ({stats.files_failed} with errors), {stats.resources} resources"
        f" ({stats.created} created, {stats.existing} already there or updated)"
        f" in {seconds:.1f}s ({rate:.0f} resources/s), {len(stats.errors)} errors"
    ]
    if stats.not_idempotent:
        lines.append(
            f"  note: {stats.not_idempotent} NDJSON resources had neither id nor identifier;"
            " loading them again would create copies"
        )
    lines.extend(f"  {error}" for error in stats.errors)
    return "\n".join(lines)


class Loader:
    def __init__(
        self,
        repo: Repository,
        ctx: RequestContext,
        jobs: int = 4,
        chunk: int = 500,
        as_is: bool = False,
    ) -> None:
        self.repo = repo
        self.ctx = ctx
        self.jobs = max(1, jobs)
        self.chunk = max(1, chunk)
        self.as_is = as_is
        self.stats = LoadStats()

    async def load(self, files: list[Path], progress: ProgressBar | None = None) -> LoadStats:
        """Load ``files``: reference data first (Synthea's hospital and practitioner
        bundles, which patient bundles refer to), the rest in parallel; files that failed
        on a conditional reference are tried once more at the end, once everything else
        is in."""
        self.stats.files = len(files)
        first = [p for p in files if p.name.startswith(REFERENCE_DATA_PREFIXES)]
        rest = [p for p in files if p not in first]
        ticker = asyncio.create_task(progress.run()) if progress else None
        try:
            for path in first:
                await self._load_file(path, retry_later=None)
            retry: list[Path] = []
            gate = asyncio.Semaphore(self.jobs)

            async def one(path: Path) -> None:
                async with gate:
                    await self._load_file(path, retry_later=retry)

            await asyncio.gather(*(one(p) for p in rest))
            for path in retry:
                await self._load_file(path, retry_later=None)
        finally:
            if ticker is not None:
                ticker.cancel()
                assert progress is not None
                progress.finish()
        return self.stats

    async def _load_file(self, path: Path, retry_later: list[Path] | None) -> None:
        errors: list[LoadError] = []
        try:
            if path.suffix == ".ndjson":
                await self._load_ndjson(path, errors)
            else:
                retry = await self._load_bundle_file(path, errors, retry_later is not None)
                if retry and retry_later is not None:
                    retry_later.append(path)
                    return
        except OSError as exc:
            errors.append(LoadError(str(path), None, "", f"cannot read: {exc}"))
        self.stats.files_done += 1
        if errors:
            self.stats.files_failed += 1
            self.stats.errors.extend(errors)

    # -- bundle files -----------------------------------------------------------------

    async def _load_bundle_file(self, path: Path, errors: list[LoadError], may_retry: bool) -> bool:
        """Load one Bundle file; True when it should be tried again after the others."""
        raw = await asyncio.to_thread(path.read_bytes)
        try:
            bundle = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            errors.append(LoadError(str(path), None, "", f"not JSON: {exc}"))
            return False
        if isinstance(bundle, dict) and not self.as_is:
            make_idempotent(bundle)
        try:
            _kind, results = await process_bundle(self.repo, self.ctx, bundle)
        except FhirError as exc:
            if may_retry and _is_unresolved_reference(exc):
                return True
            index = _failing_entry(exc)
            line = _line_of_entry(raw, bundle, index) if index is not None else None
            for issue in exc.issues[:5]:
                where = ", ".join(issue.expression)
                errors.append(LoadError(str(path), line, where, issue.diagnostics))
            return False
        for index, result in enumerate(results):
            if result.issues:
                line = _line_of_entry(raw, bundle, index)
                message = "; ".join(i.diagnostics for i in result.issues)
                errors.append(LoadError(str(path), line, f"Bundle.entry[{index}]", message))
            else:
                self._count(result)
        return False

    def _count(self, result: EntryResult) -> None:
        self.stats.resources += 1
        if result.status == 201:
            self.stats.created += 1
        else:
            self.stats.existing += 1

    # -- NDJSON files -----------------------------------------------------------------

    async def _load_ndjson(self, path: Path, errors: list[LoadError]) -> None:
        batch: list[tuple[int, dict[str, Any]]] = []
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    resource = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    errors.append(LoadError(str(path), number, "", f"not JSON: {exc}"))
                    continue
                if not isinstance(resource, dict) or "resourceType" not in resource:
                    errors.append(LoadError(str(path), number, "", "not a FHIR resource"))
                    continue
                batch.append((number, resource))
                if len(batch) >= self.chunk:
                    await self._commit_lines(path, batch, errors)
                    batch = []
        if batch:
            await self._commit_lines(path, batch, errors)

    async def _commit_lines(
        self, path: Path, lines: list[tuple[int, dict[str, Any]]], errors: list[LoadError]
    ) -> None:
        """One transaction for the lines; a failing line is reported, dropped, and the
        rest tried again (so one bad line costs one retry, not its chunk)."""
        while lines:
            entries = [ndjson_entry(resource) for _number, resource in lines]
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            try:
                _kind, results = await process_bundle(self.repo, self.ctx, bundle)
            except FhirError as exc:
                index = _failing_entry(exc)
                message = "; ".join(i.diagnostics for i in exc.issues[:3])
                if index is None or index >= len(lines):
                    errors.extend(LoadError(str(path), n, "", message) for n, _ in lines)
                    return
                number, _resource = lines.pop(index)
                where = ", ".join(exc.issues[0].expression) if exc.issues else ""
                errors.append(LoadError(str(path), number, where, message))
                continue
            for entry, result in zip(entries, results, strict=True):
                self._count(result)
                if entry["request"]["method"] == "POST" and "ifNoneExist" not in entry["request"]:
                    self.stats.not_idempotent += 1
            return


def make_idempotent(bundle: dict[str, Any]) -> None:
    """``POST Type`` + ``fullUrl: urn:uuid:U`` (no ifNoneExist) → ``PUT Type/U``."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        request, resource = entry.get("request"), entry.get("resource")
        full_url = entry.get("fullUrl")
        if not (
            isinstance(request, dict)
            and isinstance(resource, dict)
            and isinstance(full_url, str)
            and request.get("method") == "POST"
            and "ifNoneExist" not in request
            and full_url.startswith("urn:uuid:")
        ):
            continue
        rid = full_url[len("urn:uuid:") :]
        url = request.get("url")
        if not FHIR_ID.match(rid) or url != resource.get("resourceType"):
            continue
        entry["request"] = {**request, "method": "PUT", "url": f"{url}/{rid}"}
        entry["resource"] = {**resource, "id": rid}


def ndjson_entry(resource: dict[str, Any]) -> dict[str, Any]:
    rtype = str(resource.get("resourceType"))
    rid = resource.get("id")
    criteria = _identifier_criteria(resource)
    if criteria is not None:
        if isinstance(rid, str):
            return {
                "resource": resource,
                "request": {"method": "PUT", "url": f"{rtype}?{criteria}"},
            }
        return {
            "resource": resource,
            "request": {"method": "POST", "url": rtype, "ifNoneExist": criteria},
        }
    if isinstance(rid, str):
        return {"resource": resource, "request": {"method": "PUT", "url": f"{rtype}/{rid}"}}
    return {"resource": resource, "request": {"method": "POST", "url": rtype}}


def _identifier_criteria(resource: dict[str, Any]) -> str | None:
    from urllib.parse import quote

    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    if not isinstance(identifiers, list):
        return None
    for ident in identifiers:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            system = ident.get("system")
            token = f"{system}|{ident['value']}" if isinstance(system, str) else ident["value"]
            return "identifier=" + quote(token, safe="|:/.-_~")
    return None


def _failing_entry(exc: FhirError) -> int | None:
    for issue in exc.issues:
        for text in (*issue.expression, issue.diagnostics):
            match = ENTRY_INDEX.search(text)
            if match:
                return int(match.group(1))
    return None


def _is_unresolved_reference(exc: FhirError) -> bool:
    return exc.status == 400 and any(
        "conditional reference" in i.diagnostics and "matches no" in i.diagnostics
        for i in exc.issues
    )


def _line_of_entry(raw: bytes, bundle: Any, index: int) -> int | None:
    """The line of entry ``index`` in the file, found by its fullUrl (best effort)."""
    try:
        full_url = bundle["entry"][index].get("fullUrl")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if not isinstance(full_url, str):
        return None
    at = raw.find(orjson.dumps(full_url))
    return raw.count(b"\n", 0, at) + 1 if at >= 0 else None


class ProgressBar:
    """Plain-text progress on stderr: redrawn in place on a terminal, a line every few
    seconds otherwise (logs)."""

    def __init__(self, stats: LoadStats, out: Callable[[str], None] | None = None) -> None:
        self.stats = stats
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.out = out or (lambda text: print(text, end="", file=sys.stderr, flush=True))

    def line(self) -> str:
        s = self.stats
        width = 30
        done = int(width * s.files_done / s.files) if s.files else width
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return (
            f"[{'#' * done}{'.' * (width - done)}] {s.files_done}/{s.files} files"
            f"  {s.resources} resources  {len(s.errors)} errors"
            f"  {s.resources / elapsed:.0f}/s"
        )

    async def run(self) -> None:
        interval = 0.5 if self.tty else 5.0
        while True:
            await asyncio.sleep(interval)
            self.out(("\r" if self.tty else "") + self.line() + ("" if self.tty else "\n"))

    def finish(self) -> None:
        self.out(("\r" if self.tty else "") + self.line() + "\n")
