"""One claim: the page, and the coder's actions on it (decide, withdraw, regenerate,
release, query the provider)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mappings.coding.overrides import ACTIONS, check_decision, override_resource
from mappings.coding.service import TASK_CODE
from server.webapp import PREFIX
from server.webapp.claim_view import load_claim
from server.webapp.fhir import FhirCallError, FhirClient, matches
from server.webapp.queue import payer_label
from server.webapp.signin import Session
from server.webapp.web import NOTICES, back, failed, form_of, now, put_task, signed_in, state_of

router = APIRouter()


# -- one claim -----------------------------------------------------------------------


@router.get(f"{PREFIX}/claim/{{claim_id}}")
async def claim_page(request: Request, claim_id: str) -> Response:
    state = state_of(request)
    who = await signed_in(request)
    if isinstance(who, Response):
        return who
    session, fhir = who
    try:
        view = await load_claim(fhir, claim_id)
    except FhirCallError as exc:
        return failed(request, session, exc)
    if view is None:
        return failed(request, session, f"Claim/{claim_id} is not there or not yours to see.", 404)
    names = await state.payer_names(fhir)
    payer = payer_label(
        str(((view.task or {}).get("groupIdentifier") or {}).get("value") or ""), names
    )
    return state.render(
        "claim.html",
        session=session,
        v=view,
        payer=payer,
        actions=ACTIONS,
        notice=NOTICES.get(request.query_params.get("done", "")),
        target=request.query_params.get("target", "")[:20],
    )


async def regenerate(fhir: FhirClient, encounter_id: str) -> dict[str, Any]:
    answer = await fhir.call("POST", f"Encounter/{encounter_id}/$generate-claim")
    params = {p["name"]: p.get("resource") for p in answer.get("parameter") or []}
    return params


async def claim_action(
    request: Request, claim_id: str
) -> tuple[Session, FhirClient, dict[str, str], dict[str, Any]] | Response:
    who = await signed_in(request)
    if isinstance(who, Response):
        return who
    session, fhir = who
    form = await form_of(request, session)
    if form is None:
        return failed(request, session, "The form expired; reload the page.", 403)
    try:
        claim = await fhir.call("GET", f"Claim/{claim_id}")
    except FhirCallError as exc:
        return failed(request, session, exc)
    return session, fhir, form, claim


def encounter_of(claim: dict[str, Any]) -> str:
    return str(((claim.get("identifier") or [{}])[0]).get("value") or "")


@router.post(f"{PREFIX}/claim/{{claim_id}}/decide")
async def decide(request: Request, claim_id: str) -> Response:
    got = await claim_action(request, claim_id)
    if isinstance(got, Response):
        return got
    session, fhir, form, claim = got
    action, target = form.get("action", ""), form.get("target", "")
    value, reason = form.get("value", ""), form.get("reason", "")
    refusals = check_decision(action, target, value, reason)
    if action == "release":
        refusals.append("use the Release button to release the claim")
    if refusals:
        return failed(
            request, session, "The decision was not recorded: " + "; ".join(refusals), 422
        )
    basic = override_resource(
        encounter_id=encounter_of(claim),
        claim_id=claim_id,
        action=action,
        target=target,
        value=value,
        reason=reason,
        author=session.owner_reference(),
    )
    try:
        await fhir.call("POST", "Basic", body=basic)
        params = await regenerate(fhir, encounter_of(claim))
    except FhirCallError as exc:
        return failed(request, session, exc)
    return back(f"/claim/{_claim_id(params, claim_id)}", "decided")


@router.post(f"{PREFIX}/claim/{{claim_id}}/withdraw/{{basic_id}}")
async def withdraw(request: Request, claim_id: str, basic_id: str) -> Response:
    got = await claim_action(request, claim_id)
    if isinstance(got, Response):
        return got
    session, fhir, _, claim = got
    try:
        basic = await fhir.call("GET", f"Basic/{basic_id}")
        if (basic.get("subject") or {}).get("reference") != f"Encounter/{encounter_of(claim)}":
            return failed(request, session, "That decision is not about this claim.", 422)
        await fhir.call("DELETE", f"Basic/{basic_id}")
        params = await regenerate(fhir, encounter_of(claim))
    except FhirCallError as exc:
        return failed(request, session, exc)
    return back(f"/claim/{_claim_id(params, claim_id)}", "withdrawn")


@router.post(f"{PREFIX}/claim/{{claim_id}}/regenerate")
async def regenerate_page(request: Request, claim_id: str) -> Response:
    got = await claim_action(request, claim_id)
    if isinstance(got, Response):
        return got
    session, fhir, _, claim = got
    try:
        params = await regenerate(fhir, encounter_of(claim))
    except FhirCallError as exc:
        return failed(request, session, exc)
    return back(f"/claim/{_claim_id(params, claim_id)}", "regenerated")


@router.post(f"{PREFIX}/claim/{{claim_id}}/release")
async def release(request: Request, claim_id: str) -> Response:
    got = await claim_action(request, claim_id)
    if isinstance(got, Response):
        return got
    session, fhir, form, claim = got
    reason = form.get("reason", "")
    if not reason.strip():
        return failed(request, session, "Say why the claim may go out (a reason is required).", 422)
    view = await load_claim(fhir, claim_id)
    if view is None:
        return failed(request, session, f"Claim/{claim_id} is gone.", 404)
    if view.stale:
        return failed(
            request,
            session,
            "A decision no longer fits this claim: withdraw or redo it before releasing.",
            422,
        )
    basic = override_resource(
        encounter_id=view.encounter_id,
        claim_id=claim_id,
        action="release",
        target="",
        value="",
        reason=reason,
        author=session.owner_reference(),
        accepted=view.accepted_edits,
    )
    try:
        await fhir.call("POST", "Basic", body=basic)
        params = await regenerate(fhir, view.encounter_id)
        released = params.get("claim") or {}
        if released.get("status") != "active":
            return failed(
                request,
                session,
                "The claim is still a draft after the release: "
                + "; ".join(
                    str(i.get("diagnostics"))
                    for i in (params.get("outcome") or {}).get("issue") or []
                    if i.get("severity") == "error"
                ),
                409,
            )
        insurance = released.get("insurance") or [{}]
        if (insurance[0].get("coverage") or {}).get("reference"):
            submit = {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "claim",
                        "valueReference": {"reference": f"Claim/{released['id']}"},
                    }
                ],
            }
            await fhir.call("POST", "Claim/$submit", body=submit)
    except FhirCallError as exc:
        return failed(request, session, exc)
    return back("/", "released")


@router.post(f"{PREFIX}/claim/{{claim_id}}/query")
async def query_provider(request: Request, claim_id: str) -> Response:
    got = await claim_action(request, claim_id)
    if isinstance(got, Response):
        return got
    session, fhir, form, claim = got
    question = form.get("question", "").strip()
    if not question:
        return failed(request, session, "Write the question for the provider.", 422)
    encounter_id = encounter_of(claim)
    try:
        tasks = matches(
            await fhir.search(
                "Task", [("focus", f"Claim/{claim_id}"), ("code", f"{TASK_CODE}|review-claim")]
            ),
            "Task",
        )
        if not tasks:
            return failed(request, session, "The claim has no review Task to put on hold.", 409)
        task = tasks[0]
        encounter = await fhir.read(f"Encounter/{encounter_id}") or {}
        recipients = [
            p["individual"]
            for p in encounter.get("participant") or []
            if str((p.get("individual") or {}).get("reference", "")).startswith("Practitioner/")
        ][:1]
        request_body: dict[str, Any] = {
            "resourceType": "CommunicationRequest",
            "status": "active",
            "category": [{"text": "documentation query"}],
            "subject": claim.get("patient"),
            "about": [{"reference": f"Claim/{claim_id}"}, {"reference": f"Task/{task['id']}"}],
            "encounter": {"reference": f"Encounter/{encounter_id}"},
            "payload": [{"contentString": question}],
            "authoredOn": now(),
            "requester": session.owner_reference(),
        }
        if recipients:
            request_body["recipient"] = recipients
        created = await fhir.call("POST", "CommunicationRequest", body=request_body)
        task["status"] = "on-hold"
        task["statusReason"] = {"text": f"Documentation query: {question}"[:500]}
        task["input"] = [
            i
            for i in task.get("input") or []
            if (i.get("type") or {}).get("text") != "documentation query"
        ] + [
            {
                "type": {"text": "documentation query"},
                "valueReference": {"reference": f"CommunicationRequest/{created['id']}"},
            }
        ]
        await put_task(fhir, task)
    except FhirCallError as exc:
        return failed(request, session, exc)
    return back("/", "queried")


def _claim_id(params: dict[str, Any], fallback: str) -> str:
    return str((params.get("claim") or {}).get("id") or fallback)
