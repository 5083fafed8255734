"""``--adjudication auto``: adjudicate clean generated claims as soon as they are committed.

The coding engine commits each Claim it generates with the identifier system
``https://billable.dev/fhir/claim-for-encounter``; a clean one has ``status = active``
(a claim that needs a coder's review is ``draft`` and waits; a self-pay claim, without a
Coverage reference, has no payer to adjudicate it). ``AutoAdjudicator`` is a
repository commit listener: it notes such Claim writes and adjudicates them in the
background with the payer's own system identity, one at a time, in commit order. A
claim that cannot be adjudicated is logged and kept in ``failures``; the queue goes on.

Anything else that wants a claim adjudicated now calls ``adjudicate_claim(repo, ctx,
claim_id)`` directly (``Claim/$submit`` does).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Sequence

import orjson

from mappings.adjudication.service import adjudicate_claim
from server.repository import Repository, RequestContext
from server.repository import system_context as repository_system_context
from server.storage.port import Write

log = logging.getLogger("billable.adjudication")

GENERATED_CLAIM = b"https://billable.dev/fhir/claim-for-encounter"


def system_context(base_url: str = "urn:billable:system") -> RequestContext:
    """The payer's identity for automatic adjudication, with system scopes."""
    return repository_system_context("billable-adjudication", base_url)


def _insured(body: bytes) -> bool:
    """A claim billed to a Coverage (not self-pay): there is a payer to adjudicate it."""
    insurance = orjson.loads(body).get("insurance") or []
    focal = next((i for i in insurance if i.get("focal")), insurance[0] if insurance else {})
    return bool((focal.get("coverage") or {}).get("reference"))


class AutoAdjudicator:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._pending: dict[str, None] = {}
        self._worker: asyncio.Task[None] | None = None
        self.adjudicated = 0
        self.failures: list[tuple[str, str]] = []
        repo.commit_listeners.append(self.on_commit)

    def on_commit(self, writes: Sequence[Write]) -> None:
        """Commit listener: queue clean generated Claims (never raises, never blocks)."""
        for w in writes:
            if (
                w.resource_type == "Claim"
                and w.body is not None
                and b'"status":"active"' in w.body
                and GENERATED_CLAIM in w.body
                and _insured(w.body)
            ):
                self._pending[w.id] = None
        if self._pending and (self._worker is None or self._worker.done()):
            loop = asyncio.get_running_loop()
            self._worker = loop.create_task(self._work(), context=contextvars.Context())

    async def _work(self) -> None:
        ctx = system_context()
        while self._pending:
            claim_id = next(iter(self._pending))
            del self._pending[claim_id]
            try:
                await adjudicate_claim(self.repo, ctx, claim_id)
                self.adjudicated += 1
            except Exception as exc:  # one claim never stops the queue
                log.exception("adjudication failed for Claim/%s", claim_id)
                self.failures.append((claim_id, f"{type(exc).__name__}: {exc}"))

    async def drain(self) -> None:
        """Wait until every queued claim is adjudicated (tests, loaders, benches)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)
        if self._pending:
            self._worker = asyncio.get_running_loop().create_task(self._work())
            await self._worker
