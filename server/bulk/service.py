"""``ExportService``: kick-off, status, cancel and download of export jobs, and the runner.

The runner is one asyncio task started in the app lifespan. It runs one job at a time per
server process (bounded CPU and memory next to the API), pages through the store with
keyset paging via ``Repository.search`` under the grants of the client that kicked the job
off, and appends each page's stored JSON bytes to NDJSON files. Every few seconds it
checkpoints (type, keyset position, files and their sizes) into the job's progress record,
which also renews its lease; a server that restarts, or another process once the lease has
run out, resumes from the last checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from server.auth.compartment import referenced_patients
from server.auth.scopes import Grants
from server.auth.search_restriction import compartment_expr
from server.bulk.files import NdjsonFiles, remove_directory
from server.bulk.jobs import (
    ACCEPTED,
    CANCELLED,
    COMPLETED,
    FAILED,
    JOB,
    PROGRESS,
    JobStore,
    new_progress,
)
from server.bulk.request import ExportRequest, patient_compartment_types
from server.config import Settings
from server.errors import FhirError, Issue, operation_outcome
from server.repository import Repository, RequestContext
from server.search.expr import And, Expr, Missing, Or
from server.search.parse import parse_criterion, parse_search
from server.search.registry import registry
from server.spec.resources import resource_types
from server.storage.port import SearchQuery, StoredVersion, VersionConflict

log = logging.getLogger("billable.bulk")

GROUP_CHUNK = 500  # group members per query (a bounded IN list / $in)
ERROR_FILE = "OperationOutcome-1.ndjson"
AUDIT_TYPES = frozenset({"AuditEvent"})


class _LeaseLost(Exception):
    """Another runner took the job over (our lease ran out); stop touching it."""


class _Cancelled(Exception):
    """The client deleted the job while it ran."""


class _Stopping(Exception):
    """The server is shutting down: checkpoint, release the lease, stop."""


@dataclass(slots=True)
class StatusAnswer:
    """What the status endpoint answers: 202 (progress), 200 (manifest), 429."""

    status: int
    manifest: dict[str, Any] | None = None
    progress: str | None = None
    retry_after: int | None = None
    expires: float | None = None


def _encode_position(position: tuple[Any, ...] | None) -> Any:
    if position is None:
        return None
    out: list[Any] = []
    for value in position:
        if isinstance(value, bytes):
            out.append({"b": value.hex()})
        elif isinstance(value, float) and math.isinf(value):
            out.append({"f": "inf" if value > 0 else "-inf"})
        else:
            out.append(value)
    return out


def _decode_position(encoded: Any) -> tuple[Any, ...] | None:
    if encoded is None:
        return None
    out: list[Any] = []
    for value in encoded:
        if isinstance(value, dict) and "b" in value:
            out.append(bytes.fromhex(value["b"]))
        elif isinstance(value, dict) and "f" in value:
            out.append(float(value["f"]))
        else:
            out.append(value)
    return tuple(out)


def owner_of(ctx: RequestContext) -> dict[str, Any] | None:
    """Who may poll, cancel and download: the same client, user and patient context."""
    g = ctx.grants
    if g is None:
        return None
    return {
        "client_id": g.client_id,
        "subject": g.subject,
        "fhir_user": g.fhir_user,
        "patient": g.patient,
    }


def grants_record(grants: Grants | None) -> dict[str, Any] | None:
    if grants is None:
        return None
    return {
        "scope": grants.scope_string,
        "client_id": grants.client_id,
        "subject": grants.subject,
        "fhir_user": grants.fhir_user,
        "patient": grants.patient,
        "user_patients": sorted(grants.user_patients) if grants.user_patients is not None else None,
    }


def grants_from(record: dict[str, Any] | None) -> Grants | None:
    if record is None:
        return None
    return Grants.from_scope_string(
        record["scope"],
        record["client_id"],
        subject=record.get("subject"),
        fhir_user=record.get("fhir_user"),
        patient=record.get("patient"),
        user_patients=record.get("user_patients"),
    )


def group_members(group: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Patient ids of ``Group.member`` (active members), and notes for the error file."""
    members: list[str] = []
    notes: list[dict[str, Any]] = []
    for member in group.get("member") or []:
        reference = (member.get("entity") or {}).get("reference")
        if member.get("inactive") is True:
            continue
        parts = reference.split("/") if isinstance(reference, str) else []
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
            members.append(parts[-1])
        else:
            notes.append(
                operation_outcome(
                    [
                        Issue(
                            "information",
                            "not-supported",
                            f"Group member {reference!r} is not a Patient; it was skipped",
                        )
                    ]
                )
            )
    return sorted(set(members)), notes


class ExportService:
    def __init__(self, settings: Settings, repository: Repository) -> None:
        self.repo = repository
        self.jobs = JobStore(repository.records)
        self.directory = Path(settings.export_dir)
        self.max_file_bytes = settings.export_file_max_bytes
        self.expiry_seconds = settings.export_expiry_seconds
        self.requires_token = settings.auth != "off"
        # Tuning (tests and benches change these on the instance).
        self.page_size = 1000
        self.checkpoint_seconds = 2.0
        self.lease_seconds = 30.0
        self.retry_after_seconds = 2
        self.min_poll_seconds = 1.0
        self.idle_seconds = 5.0
        self.cleanup_seconds = 60.0
        self.page_delay = 0.0
        self.instance = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._running: str | None = None
        self._last_poll: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="billable-export-runner")

    async def stop(self) -> None:
        """Let the running job checkpoint and release its lease, then end the task."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        except Exception:  # the loop logs its own failures
            pass
        self._task = None

    async def _loop(self) -> None:
        last_cleanup = -math.inf
        while not self._stopping:
            try:
                if time.monotonic() - last_cleanup >= self.cleanup_seconds:
                    last_cleanup = time.monotonic()
                    await self.cleanup()
                if await self._run_next():
                    continue
            except Exception:
                log.exception("export runner: unexpected error; retrying shortly")
            if self._stopping:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.idle_seconds)
            except TimeoutError:
                pass

    # -- kick-off ----------------------------------------------------------------------

    def _may_export(self, ctx: RequestContext, rtype: str) -> bool:
        try:
            self.repo.authorize(ctx, "export", rtype)
            self.repo.authorize(ctx, "search-type", rtype)
        except FhirError:
            return False
        return True

    def resolve_types(self, ctx: RequestContext, req: ExportRequest) -> list[str]:
        if req.types is not None:
            for rtype in req.types:  # explicitly asked for: refuse what the token may not
                self.repo.authorize(ctx, "export", rtype)
                self.repo.authorize(ctx, "search-type", rtype)
            return list(req.types)
        candidates = resource_types() if req.level == "system" else patient_compartment_types()
        # AuditEvent only when a scope names it (the wildcard never covers it; with
        # --auth off there is no scope, so it is left out unless asked for by _type).
        found = [
            t
            for t in sorted(candidates)
            if not (t in AUDIT_TYPES and ctx.grants is None) and self._may_export(ctx, t)
        ]
        if not found:
            raise FhirError.of(
                403, "forbidden", "The access token's scopes allow exporting no resource type"
            )
        return found

    async def kickoff(self, ctx: RequestContext, request_url: str, req: ExportRequest) -> str:
        types = self.resolve_types(ctx, req)
        members: list[str] | None = None
        notes: list[dict[str, Any]] = []
        if req.level == "group":
            assert req.group_id is not None
            group = await self.repo.read(ctx, "Group", req.group_id)
            assert group.body is not None
            members, notes = group_members(orjson.loads(group.body))
        job_id = uuid.uuid4().hex
        job = {
            "id": job_id,
            "status": ACCEPTED,
            "request": request_url,
            "level": req.level,
            "group_id": req.group_id,
            "members": members,
            "types": types,
            "since": req.since,
            "type_filters": req.type_filters,
            "transaction_time": self.repo.clock.next(),
            "base_url": ctx.base_url,
            "owner": owner_of(ctx),
            "grants": grants_record(ctx.grants),
            "requires_token": self.requires_token,
            "created": time.time(),
        }
        progress = new_progress()
        progress["errors"] = notes
        await self.jobs.create(PROGRESS, job_id, progress)
        await self.jobs.create(JOB, job_id, job)
        log.info("export %s accepted: client=%s level=%s", job_id, ctx.client_id, req.level)
        self._wake.set()
        return job_id

    # -- status, cancel, files ----------------------------------------------------------

    async def _owned(self, ctx: RequestContext, job_id: str) -> dict[str, Any]:
        found = await self.jobs.get(JOB, job_id)
        if found is None or found[1].get("owner") != owner_of(ctx):
            # Another client's job reads as a missing one: existence does not leak.
            raise FhirError.of(404, "not-found", f"No export job {job_id}")
        job = found[1]
        if job["status"] == CANCELLED or _expired(job):
            raise FhirError.of(404, "not-found", f"No export job {job_id}")
        return job

    async def status(self, ctx: RequestContext, job_id: str) -> StatusAnswer:
        job = await self._owned(ctx, job_id)
        if job["status"] == FAILED:
            raise FhirError.of(500, "exception", f"The export failed: {job.get('error')}")
        if job["status"] == COMPLETED:
            self._last_poll.pop(job_id, None)
            return StatusAnswer(200, manifest=self._manifest(ctx, job), expires=job["expires"])
        now = time.monotonic()
        last = self._last_poll.get(job_id)
        if last is not None and now - last < self.min_poll_seconds:
            return StatusAnswer(429, retry_after=self.retry_after_seconds)
        self._last_poll[job_id] = now
        found = await self.jobs.get(PROGRESS, job_id)
        progress = found[1] if found else new_progress()
        types = job["types"]
        index = min(progress["type_index"], len(types) - 1)
        if progress.get("started") is None:
            text = "queued"
        else:
            text = (
                f"in progress: {progress['exported']} resources exported;"
                f" type {index + 1} of {len(types)} ({types[index]})"
            )
        return StatusAnswer(202, progress=text, retry_after=self.retry_after_seconds)

    def _manifest(self, ctx: RequestContext, job: dict[str, Any]) -> dict[str, Any]:
        base = f"{ctx.base_url}/$export-file/{job['id']}"
        return {
            "transactionTime": job["transaction_time"],
            "request": job["request"],
            "requiresAccessToken": job["requires_token"],
            "output": [
                {"type": f["type"], "url": f"{base}/{f['name']}", "count": f["count"]}
                for f in job["output"]
            ],
            "error": [
                {"type": "OperationOutcome", "url": f"{base}/{name}"}
                for name in job.get("error_files", [])
            ],
        }

    async def file_path(self, ctx: RequestContext, job_id: str, name: str) -> Path:
        job = await self._owned(ctx, job_id)
        names = {f["name"] for f in job.get("output", [])} | set(job.get("error_files", []))
        if job["status"] != COMPLETED or name not in names:
            raise FhirError.of(404, "not-found", f"No file {name} in export job {job_id}")
        path = self.directory / job_id / name
        if not path.is_file():
            raise FhirError.of(404, "not-found", f"The file {name} is no longer available")
        return path

    async def cancel(self, ctx: RequestContext, job_id: str) -> None:
        job = await self._owned(ctx, job_id)
        if job["status"] == ACCEPTED:

            def mark(value: dict[str, Any]) -> dict[str, Any] | None:
                return {**value, "status": CANCELLED}

            await self.jobs.update(JOB, job_id, mark)
            found = await self.jobs.get(PROGRESS, job_id)
            running = found is not None and (
                found[1]["lease_owner"] is not None and found[1]["lease_until"] > time.time()
            )
            if running or self._running == job_id:
                log.info("export %s cancelled; its runner will remove it", job_id)
                return  # the runner notices at its next checkpoint and cleans up
        await self._remove(job_id)
        log.info("export %s deleted", job_id)

    async def _remove(self, job_id: str) -> None:
        await asyncio.to_thread(remove_directory, self.directory / job_id)
        await self.jobs.delete(PROGRESS, job_id)
        await self.jobs.delete(JOB, job_id)
        self._last_poll.pop(job_id, None)

    async def cleanup(self) -> int:
        """Remove expired exports (and cancelled ones nobody is running); how many."""
        removed = 0
        now = time.time()
        for job in await self.jobs.list_jobs():
            if job["id"] == self._running:
                continue
            gone = _expired(job, now)
            if job["status"] == CANCELLED:
                found = await self.jobs.get(PROGRESS, job["id"])
                gone = found is None or found[1]["lease_until"] <= now
            if gone:
                await self._remove(job["id"])
                removed += 1
        if removed:
            log.info("export cleanup: %d job(s) removed", removed)
        return removed

    # -- the runner --------------------------------------------------------------------

    async def _run_next(self) -> bool:
        for job in await self.jobs.list_jobs():
            if self._stopping:
                return False
            if job["status"] != ACCEPTED:
                continue
            claimed = await self._claim(job["id"])
            if claimed is None:
                continue
            self._running = job["id"]
            try:
                await self._run(job, *claimed)
            finally:
                self._running = None
            return True
        return False

    async def _claim(self, job_id: str) -> tuple[int, dict[str, Any]] | None:
        found = await self.jobs.get(PROGRESS, job_id)
        if found is None:
            return None
        version, progress = found
        now = time.time()
        owner = progress["lease_owner"]
        if owner not in (None, self.instance) and progress["lease_until"] > now:
            return None  # another process is running it
        progress["lease_owner"] = self.instance
        progress["lease_until"] = now + self.lease_seconds
        if progress["started"] is None:
            progress["started"] = now
        try:
            version = await self.jobs.replace(PROGRESS, job_id, version, progress)
        except VersionConflict:
            return None
        if owner not in (None, self.instance):
            log.info("export %s: taking over from an expired lease", job_id)
        return version, progress

    async def _run(self, job: dict[str, Any], version: int, progress: dict[str, Any]) -> None:
        job_id = job["id"]
        grants = grants_from(job["grants"])
        ctx = RequestContext(
            base_url=job["base_url"],
            client_id=grants.client_id if grants else None,
            user=(grants.fhir_user or grants.subject) if grants else None,
            grants=grants,
        )
        directory = self.directory / job_id
        files = NdjsonFiles(directory, self.max_file_bytes, progress["files"])
        checkpoint = _Checkpoint(self, job_id, version, progress, files)
        try:
            await asyncio.to_thread(_prepare, self.directory, files)
            types: list[str] = job["types"]
            while progress["type_index"] < len(types):
                before = progress["exported"]
                await self._export_type(job, ctx, types[progress["type_index"]], files, checkpoint)
                progress["type_index"] += 1
                progress["chunk"] = 0
                progress["after"] = None
                # A type that wrote nothing costs no checkpoint (145 of them in a system
                # export); redoing empty types after a restart is cheap.
                await checkpoint.save(force=progress["exported"] > before)
            await self._finish(job, progress, files)
            await self.jobs.delete(PROGRESS, job_id)
            log.info("export %s completed: %d resources", job_id, progress["exported"])
        except _Stopping:
            await checkpoint.save(force=True, release=True)
            log.info("export %s paused for shutdown at a checkpoint", job_id)
        except _LeaseLost:
            log.warning("export %s: lease lost to another runner; stopping here", job_id)
        except _Cancelled:
            files.close()
            await self._remove(job_id)
            log.info("export %s cancelled and removed", job_id)
        except Exception as exc:
            log.exception("export %s failed", job_id)
            files.close()
            await asyncio.to_thread(remove_directory, directory)
            if isinstance(exc, FhirError):
                message = "; ".join(i.diagnostics for i in exc.issues)
            else:
                message = f"internal error ({type(exc).__name__}); see the server log"

            def fail(value: dict[str, Any]) -> dict[str, Any]:
                return {
                    **value,
                    "status": FAILED,
                    "error": message,
                    "finished": time.time(),
                    "expires": time.time() + self.expiry_seconds,
                }

            await self.jobs.update(JOB, job_id, fail)
            await self.jobs.delete(PROGRESS, job_id)
        finally:
            files.close()

    def _where(self, job: dict[str, Any], rtype: str, chunk: list[str] | None) -> Expr | None:
        base_url = job["base_url"]
        now = int(time.time() * 1_000_000)
        parts: list[Expr] = []
        filters = job["type_filters"].get(rtype) or []
        alternatives = []
        for text in filters:
            parsed = parse_search(
                (rtype,), parse_qsl(text, keep_blank_values=True), base_url=base_url, strict=True
            )
            if parsed.where is not None:
                alternatives.append(parsed.where)
        if alternatives:  # several _typeFilter queries for one type are ORed
            parts.append(alternatives[0] if len(alternatives) == 1 else Or(tuple(alternatives)))
        if job["since"]:
            parts.append(
                parse_criterion((rtype,), "_lastUpdated", "gt" + job["since"], base_url, now)
            )
        if job["level"] == "patient" and rtype != "Patient":
            codes = [c for c in registry().compartment_params("Patient", rtype) if c != "{def}"]
            present: list[Expr] = [Missing(c, "reference", False) for c in codes]
            if present:  # a cheap pre-filter; membership is checked exactly on each resource
                parts.append(present[0] if len(present) == 1 else Or(tuple(present)))
        if job["level"] == "group":
            assert chunk is not None
            parts.append(compartment_expr(rtype, frozenset(chunk)))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _keep(
        self, job: dict[str, Any], rtype: str, chunk_index: int, member_index: dict[str, int]
    ) -> Callable[[StoredVersion], bool] | None:
        """An exact check after the query, where the query alone cannot be exact."""
        if rtype == "Patient" or job["level"] == "system":
            return None
        if job["level"] == "patient":
            return lambda v: bool(referenced_patients(rtype, orjson.loads(v.body or b"{}")))

        def first_member_here(v: StoredVersion) -> bool:
            # In several members' compartments: written once, with the first member's chunk.
            refs = referenced_patients(rtype, orjson.loads(v.body or b"{}"))
            indexes = [member_index[p] for p in refs if p in member_index]
            return bool(indexes) and min(indexes) // GROUP_CHUNK == chunk_index

        return first_member_here

    async def _export_type(
        self,
        job: dict[str, Any],
        ctx: RequestContext,
        rtype: str,
        files: NdjsonFiles,
        checkpoint: _Checkpoint,
    ) -> None:
        progress = checkpoint.progress
        members: list[str] | None = job.get("members")
        chunks: list[list[str] | None]
        if job["level"] == "group":
            assert members is not None
            chunks = [members[i : i + GROUP_CHUNK] for i in range(0, len(members), GROUP_CHUNK)]
        else:
            chunks = [None]
        member_index = {p: i for i, p in enumerate(members or [])}
        until: str = job["transaction_time"]
        while progress["chunk"] < len(chunks):
            chunk = chunks[progress["chunk"]]
            where = self._where(job, rtype, chunk)
            keep = self._keep(job, rtype, progress["chunk"], member_index)
            after = _decode_position(progress["after"])
            while True:
                if self._stopping:
                    raise _Stopping
                query = SearchQuery((rtype,), where, count=self.page_size, after=after)
                try:
                    page = await self.repo.search(ctx, query)
                except FhirError as exc:
                    _note_error(progress, rtype, exc)
                    break
                # Nothing written after the transaction time (the next export's _since
                # picks it up); checked on the version itself, which every type has.
                lines = [
                    v.body
                    for v in page.versions
                    if v.body is not None and v.last_updated <= until and (keep is None or keep(v))
                ]
                if lines:
                    await asyncio.to_thread(files.write_lines, rtype, lines)
                    progress["exported"] += len(lines)
                if page.positions:
                    after = page.positions[-1]
                    progress["after"] = _encode_position(after)
                elif page.more:  # a whole page hidden by the policy: no position to go on
                    _note_error(
                        progress,
                        rtype,
                        FhirError.of(500, "exception", "paging stopped at a hidden page"),
                    )
                    break
                if not page.more:
                    break
                await checkpoint.save()
                if self.page_delay:
                    await asyncio.sleep(self.page_delay)
            progress["chunk"] += 1
            progress["after"] = None

    async def _finish(
        self, job: dict[str, Any], progress: dict[str, Any], files: NdjsonFiles
    ) -> None:
        files.close()
        error_files: list[str] = []
        if progress["errors"]:
            lines = [orjson.dumps(o) for o in progress["errors"]]
            await asyncio.to_thread(files.write_whole, ERROR_FILE, lines)
            error_files.append(ERROR_FILE)
        outputs = [
            {"type": f["type"], "name": f["name"], "count": f["count"]}
            for f in progress["files"]
            if f["count"] > 0
        ]
        finished = time.time()

        def complete(value: dict[str, Any]) -> dict[str, Any] | None:
            if value["status"] != ACCEPTED:
                return None
            return {
                **value,
                "status": COMPLETED,
                "output": outputs,
                "error_files": error_files,
                "exported": progress["exported"],
                "finished": finished,
                "expires": finished + self.expiry_seconds,
            }

        if await self.jobs.update(JOB, job["id"], complete) is None:
            raise _Cancelled


class _Checkpoint:
    """Saves the progress record (renewing the lease) at most every ``checkpoint_seconds``."""

    def __init__(
        self,
        service: ExportService,
        job_id: str,
        version: int,
        progress: dict[str, Any],
        files: NdjsonFiles,
    ) -> None:
        self.service = service
        self.job_id = job_id
        self.version = version
        self.progress = progress
        self.files = files
        self.last = time.monotonic()

    async def save(self, force: bool = False, release: bool = False) -> None:
        service = self.service
        if not force and time.monotonic() - self.last < service.checkpoint_seconds:
            return
        found = await service.jobs.get(JOB, self.job_id)
        if found is None or found[1]["status"] == CANCELLED:
            raise _Cancelled
        await asyncio.to_thread(self.files.flush)
        if release:
            self.progress["lease_owner"] = None
            self.progress["lease_until"] = 0.0
        else:
            self.progress["lease_until"] = time.time() + service.lease_seconds
        try:
            self.version = await service.jobs.replace(
                PROGRESS, self.job_id, self.version, self.progress
            )
        except VersionConflict as exc:
            raise _LeaseLost from exc
        self.last = time.monotonic()


def _prepare(root: Path, files: NdjsonFiles) -> None:
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # exported files are PHI: readable by the server's user only
    files.restore()


def _note_error(progress: dict[str, Any], rtype: str, exc: FhirError) -> None:
    text = "; ".join(i.diagnostics for i in exc.issues)
    progress["errors"].append(
        operation_outcome([Issue("error", "processing", f"{rtype} was not exported: {text}")])
    )


def _expired(job: dict[str, Any], now: float | None = None) -> bool:
    expires = job.get("expires")
    return expires is not None and expires <= (time.time() if now is None else now)
