"""The application factory: ``create_app(settings)`` builds a Billable ASGI app."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI

from mappings.coding.model import CodingConfig
from server import __version__
from server.api import (
    bundle,
    capabilities,
    claim_submit,
    create,
    delete,
    eligibility,
    export,
    generate_claim,
    health,
    history,
    patch,
    read,
    search,
    terminology,
    update,
    x12,
)
from server.api.direct_read import DirectReads
from server.api.errors import install_error_handlers
from server.api.ids import check_request_ids
from server.api.middleware import BodyLimitMiddleware, ErrorMiddleware
from server.auth.middleware import SECURITY_HEADERS
from server.auth.setup import access_policy, build_security
from server.bulk.service import ExportService
from server.config import Settings
from server.native_heap import return_free_memory
from server.repository import Repository
from server.storage.factory import create_store
from server.storage.port import Store
from server.webapp import install as install_coder_app
from terminology.service import get_service

log = logging.getLogger("billable")

# Order matters: fixed paths (metadata, POST [base], _history) before the generic
# /{type}/{id} routes.
INTERACTION_MODULES = (capabilities, bundle, history, search, read, create, update, patch, delete)


def settle_heap() -> None:
    """Move every object alive now into the collector's permanent generation.

    What start-up builds (modules, the search registry, the validators, terminology
    tables) lives as long as the process; without this each full collection walks all of
    it again, a pause of tens of milliseconds that showed as the 99th percentile of reads.
    After ``gc.freeze()`` collections only walk what requests allocate. The young
    generation's threshold is raised too: a request allocates a few thousand objects and
    most die with it, so collecting every 700 allocations is wasted work.
    ``BILLABLE_GC_FREEZE=0`` keeps CPython's defaults (to measure the difference).
    """
    if os.environ.get("BILLABLE_GC_FREEZE", "1") == "0":
        return
    gc.collect()
    return_free_memory()  # what start-up freed (catalog bodies, their compression)
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


GC_YOUNG_THRESHOLD = 20_000


async def _warm_terminology(repo: Repository) -> None:
    """Load every terminology table, then publish the catalog as CodeSystem/ValueSet/
    ConceptMap resources in the store (see server.api.terminology)."""
    try:
        await asyncio.get_running_loop().run_in_executor(None, get_service().preload)
        # One process at a time (``--workers``): the next finds the catalog unchanged.
        async with repo.process_lock("terminology-catalog"):
            published = await terminology.publish_catalog(repo)
        settle_heap()  # the tables just loaded live as long as the process
        log.info("terminology ready; %d catalog resources published", published)
    except asyncio.CancelledError:
        raise
    except Exception:  # the server works without it; say why in the log
        log.exception("terminology warm-up failed")


def _security_headers(scope: MutableMapping[str, Any]) -> list[tuple[bytes, bytes]]:
    return [*SECURITY_HEADERS, (b"cache-control", b"no-store")]


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the app. The store is opened on start-up and closed on shutdown."""
    settings = settings or Settings()
    # The store is handed to the repository and to nothing else: every other part of
    # the app reaches stored data through ``app.state.repository``.
    repository = Repository(store or create_store(settings.store_url), access_policy(settings))
    security = build_security(settings, repository)  # None with --auth off

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await repository.open()
        log.info("store open: %s %s", repository.backend.kind, repository.backend.location)
        warm_up = None
        if settings.preload_terminology:
            # In the background: the server answers at once, terminology is warm soon after.
            warm_up = asyncio.create_task(_warm_terminology(app.state.repository))
        await app.state.bulk.start()  # the $export job runner (resumes unfinished jobs)
        if settings.preload_terminology:  # a serving process (`billable serve`), not a test
            settle_heap()
        try:
            yield
        finally:
            if warm_up is not None:
                warm_up.cancel()
            await app.state.bulk.stop()
            if security is not None:
                await security.audit.close()  # queued audit records go to the store first
            await repository.close()

    app = FastAPI(
        title="Billable",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.repository = repository
    app.state.bulk = ExportService(settings, app.state.repository)
    # --coding auto: a finished Encounter's Claim is generated once the write commits.
    generate_claim.install(
        app,
        auto=settings.coding == "auto",
        config=CodingConfig(
            locality=settings.coding_locality,
            charge_factor=settings.charge_factor,
            timely_filing_days=settings.timely_filing_days,
        ),
    )
    # --adjudication auto: clean generated claims are adjudicated once committed.
    claim_submit.install(app, auto=settings.adjudication == "auto")
    app.state.interaction_modules = INTERACTION_MODULES
    app.state.capability_statement = None
    install_error_handlers(app)
    # Innermost: reads by id skip the router (same handler, checks and error handlers).
    app.add_middleware(DirectReads, fastapi_app=app)
    # Inside the security middleware: its 413s and 500s get headers and an AuditEvent.
    app.add_middleware(ErrorMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_body_bytes,
        bundle_limit=settings.max_bundle_bytes,
    )
    if security is not None:  # OAuth routes before the generic FHIR routes; middleware
        security.install(app)
        # Outermost: an error in the security middleware itself still gets the headers.
        app.add_middleware(ErrorMiddleware, headers=_security_headers)

    # Every id and version in a path, and If-Match, is checked before any handler runs.
    fhir = APIRouter(prefix="/fhir", dependencies=[Depends(check_request_ids)])
    # POST [base] (batch/transaction): the empty path cannot come from an included router.
    fhir.add_api_route("", bundle.transaction_or_batch, methods=["POST"], include_in_schema=False)
    # GET [base]?_type=... (system search), for the same reason.
    fhir.add_api_route("", search.system_search, methods=["GET"], include_in_schema=False)
    # $export routes before the generic /{type}/{id} ones they would otherwise match.
    fhir.include_router(export.router)
    # Encounter/$generate-claim (coding engine).
    fhir.include_router(generate_claim.router)
    # Adjudication: Claim/$submit, CoverageEligibilityRequest create and $submit.
    fhir.include_router(claim_submit.router)
    fhir.include_router(eligibility.router)
    # X12 5010: Claim/{id}/$x12 (837 out) and $import-x12 (835/999/277CA in).
    fhir.include_router(x12.router)
    # Terminology operations, and CodeSystem/ConceptMap reads with content (before generics).
    fhir.include_router(terminology.router)
    app.state.capability_hooks = [
        *getattr(app.state, "capability_hooks", []),
        terminology.capability_hook,
        export.capability_hook,
        claim_submit.capability_hook,
        eligibility.capability_hook,
        x12.capability_hook,
    ]
    for module in INTERACTION_MODULES:
        fhir.include_router(module.router)
    app.include_router(health.router)
    app.include_router(fhir)
    install_coder_app(app, settings)  # /app: the coders' web app (server/webapp)
    return app


# ``billable serve --workers N``: the parent passes its settings to each worker process.
WORKER_SETTINGS_ENV = "BILLABLE_WORKER_SETTINGS"


def worker_settings_json(settings: Settings) -> str:
    return orjson.dumps(dataclasses.asdict(settings)).decode()


def worker_app() -> FastAPI:
    """The app of one worker process of ``billable serve --workers N`` (uvicorn calls this
    factory in each process): the parent's settings, read back from the environment.

    What each worker keeps for itself: its terminology views and caches (the on-disk
    tables are shared through the OS page cache), its automatic-coding queue (a worker
    codes the Encounters it committed), its rate-limit counters, and its $export runner.
    What is shared goes through the store: writes (SQLite WAL, one writer at a time, each
    commit checked against the versions it expects), the audit chain head, signing keys,
    the pinned base URL; check-then-write sections hold a lock across the processes
    (``server.repository.process_lock``). See docs/performance.md#workers."""
    values = orjson.loads(os.environ[WORKER_SETTINGS_ENV])
    known = {f.name for f in dataclasses.fields(Settings)}
    given: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known
    }
    settings = Settings(**given)
    return create_app(settings)
